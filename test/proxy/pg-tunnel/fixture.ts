/**
 * Shared fixture for the PostgreSQL tunnel tests: one real PostgreSQL per test file (seeded with the demo
 * shop), one SQLite session store in a temp directory, and in-process tunnels built from YAML policies the
 * way `dlpctl connect` builds them.
 *
 *   const fx = await startFixture();                       // beforeAll
 *   const t = await fx.tunnel({ policies: '…yaml…' });    // a tunnel for resource `db`
 *   t.url, t.events, t.close()
 *   await fx.stop();                                       // afterAll
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parseConfig } from '../../../src/config/index.js';
import type { PostgresResource } from '../../../src/config/types.js';
import { demoSeedSql } from '../../../src/demo/seed.js';
import { initSqlParser, resolvePolicies } from '../../../src/policy/index.js';
import { PostgresEngine } from '../../../src/proxy/postgres/engine.js';
import {
  decodeBackend,
  encodeSASLInitialResponse,
  encodeSASLResponse,
  encodeStartupMessage,
  Framer,
  SCRAM_SHA_256,
  ScramClient,
  type Frame,
} from '../../../src/proxy/postgres/protocol.js';
import { parseTargetUrl } from '../../../src/proxy/postgres/upstream.js';
import { Tunnel, type TunnelEvent } from '../../../src/proxy/tunnel.js';
import { openStore } from '../../../src/store/index.js';
import type { Identity, SessionStore } from '../../../src/store/types.js';
import { startPostgres, type TestPostgres } from '../../helpers/postgres.js';

export const IDENTITY: Identity = { issuer: 'local', subject: 'tester', groups: ['dev'], kind: 'human', verified: false };

export interface TunnelOptions {
  /** YAML of the `policies:` map body (indented by 2), e.g. `  p:\n    - name: …`. */
  policies?: string;
  /** Names of the policies the resource lists. */
  use?: string[];
  /** Extra YAML lines of the resource (indented by 4), e.g. `    default: deny`. */
  resource?: string;
  /** Override the injected password / port / database (auth and unreachable tests). */
  password?: string;
  port?: number;
  database?: string;
  store?: SessionStore;
  /** TLS toward clients (the resource's serverTls, PEM text). */
  serverTls?: { cert: string; key: string };
  /** TLS toward the database (default: disable) and the host name to reach it by (default 127.0.0.1). */
  upstreamTls?: { mode: 'require' | 'verify-full'; ca?: string };
  host?: string;
  /** The tunnel's own listen address (default 127.0.0.1). */
  bind?: string;
  startupTimeoutMs?: number;
}

export interface TestTunnel {
  tunnel: Tunnel;
  engine: PostgresEngine;
  url: string;
  port: number;
  secret: string;
  events: TunnelEvent[];
  close(): Promise<void>;
}

export interface Fixture {
  pg: TestPostgres;
  /** Direct URL of the seeded database (with the real password). */
  dbUrl: string;
  database: string;
  dir: string;
  storeUrl: string;
  store: SessionStore;
  tunnel(o?: TunnelOptions): Promise<TestTunnel>;
  stop(): Promise<void>;
}

export async function startFixture(opts: { customers?: number; serverFlags?: string[] } = {}): Promise<Fixture> {
  await initSqlParser();
  const server = await startPostgres(opts.serverFlags ? { flags: opts.serverFlags } : {});
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query(demoSeedSql(opts.customers ?? 20));
  await admin.end();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-pgt-'));
  const storeUrl = `sqlite:${path.join(dir, 'store.db')}`;
  const store = await openStore(storeUrl, { sqliteSynchronous: 'normal', threads: 'tunnel' }); // as `dlpctl connect` opens it
  const u = new URL(server.url);
  const database = decodeURIComponent(u.pathname.slice(1));
  const open: TestTunnel[] = [];

  const tunnel = async (o: TunnelOptions = {}): Promise<TestTunnel> => {
    const yaml = `version: 1
resources:
  db:
    kind: postgres
    target: postgres://${server.user}@127.0.0.1:${o.port ?? server.port}/${o.database ?? database}
    password: \${env:PW}
    tls: { mode: disable }
    policies: [${(o.use ?? ['recommended']).join(', ')}]
${o.resource ?? ''}
policies:
${o.policies ?? '  {}'}
`.replace('policies:\n  {}', 'policies: {}');
    const cfg = parseConfig(yaml, 'test.yaml');
    const res = cfg.resources['db'] as PostgresResource;
    const engine = new PostgresEngine({
      resource: res,
      target: { ...parseTargetUrl(res.target), ...(o.host ? { host: o.host } : {}), password: o.password ?? server.password, tls: o.upstreamTls ?? { mode: 'disable' } },
      policies: resolvePolicies(res.policies, cfg.policies),
      store: o.store ?? store,
      identity: IDENTITY,
      ...(o.serverTls ? { serverTls: o.serverTls } : {}),
      ...(o.startupTimeoutMs !== undefined ? { startupTimeoutMs: o.startupTimeoutMs } : {}),
    });
    const t = new Tunnel({ resource: 'db', kind: 'postgres', clientTls: o.serverTls !== undefined, engine, graceMs: 2000, ...(o.bind ? { host: o.bind } : {}) });
    const events: TunnelEvent[] = [];
    t.on('event', (e) => events.push(e));
    const addr = await t.open();
    const tt: TestTunnel = {
      tunnel: t,
      engine,
      url: t.url,
      port: addr.port,
      secret: t.secret,
      events,
      async close() {
        await t.close();
        await engine.close();
      },
    };
    open.push(tt);
    return tt;
  };

  return {
    pg: server,
    dbUrl: server.url,
    database,
    dir,
    storeUrl,
    store,
    tunnel,
    async stop() {
      for (const t of open) await t.close().catch(() => undefined);
      await store.close().catch(() => undefined);
      await server.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** A connected node-postgres client (the caller ends it). */
export async function pgClient(url: string, extra: pg.ClientConfig = {}): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, ...extra });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** Runs a query and returns the error it fails with (throws if it succeeds). */
export async function queryError(c: pg.Client, q: string | pg.QueryConfig, values?: unknown[]): Promise<pg.DatabaseError> {
  try {
    await c.query(q as string, values);
  } catch (err) {
    return err as pg.DatabaseError;
  }
  throw new Error(`expected ${JSON.stringify(q)} to fail`);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** An async child process (never the sync variants: the tunnel runs on this event loop). */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { encoding: 'utf8', env: opts.env ?? { ...process.env, PGCONNECT_TIMEOUT: '10' }, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

export function psql(url: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', url, ...args], opts);
}

/** A raw protocol client (the codec's encoders out, its framer in), for what real drivers never send. */
export class RawClient {
  readonly socket: net.Socket;
  private readonly framer = new Framer({ mode: 'typed' });
  private readonly frames: Frame[] = [];
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk) => {
      this.framer.push(chunk);
      for (let f = this.framer.next(); f; f = this.framer.next()) this.frames.push(f);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  /**
   * Start-up and SCRAM with the tunnel password; returns every frame up to the first ReadyForQuery.
   * `params` are extra start-up parameters; `protocolVersion` defaults to 3.0 (196608).
   */
  async startup(user: string, database: string, password: string, o: { params?: Record<string, string>; protocolVersion?: number } = {}): Promise<Frame[]> {
    this.socket.write(encodeStartupMessage({ user, database, ...o.params }, o.protocolVersion));
    let scram: ScramClient | null = null;
    const all: Frame[] = [];
    for (;;) {
      const f = await this.next();
      if (!f) throw new Error('closed during start-up');
      all.push(f);
      const m = decodeBackend(f);
      if (m.kind === 'AuthenticationSASL') {
        scram = new ScramClient({ password });
        this.write(encodeSASLInitialResponse(SCRAM_SHA_256, scram.clientFirstMessage()));
      } else if (m.kind === 'AuthenticationSASLContinue') this.write(encodeSASLResponse(scram!.handleServerFirst(m.data)));
      else if (m.kind === 'AuthenticationSASLFinal') scram!.handleServerFinal(m.data);
      else if (m.kind === 'ErrorResponse') throw new Error(`start-up failed: ${m.code} ${m.message}`);
      else if (m.kind === 'ReadyForQuery') return all;
    }
  }

  write(buf: Buffer): void {
    this.socket.write(buf);
  }

  /** The next frame, or null when the connection closed. */
  async next(timeoutMs = 20_000): Promise<Frame | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.shift();
      if (f) return f;
      if (this.closed) return null;
      if (Date.now() > deadline) throw new Error('no frame from the tunnel in time');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 500);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Frames up to and including ReadyForQuery ('Z'). */
  async untilReady(): Promise<Frame[]> {
    const out: Frame[] = [];
    for (;;) {
      const f = await this.next();
      if (!f) throw new Error(`connection closed; got ${out.map((x) => String.fromCharCode(x.type ?? 63)).join('')}`);
      out.push(f);
      if (f.type === 0x5a) return out;
    }
  }

  /** Everything until the connection closes. */
  async untilClosed(): Promise<Frame[]> {
    const out: Frame[] = [];
    for (;;) {
      const f = await this.next();
      if (!f) return out;
      out.push(f);
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Dumps every row of every table of a SQLite file as text (for "the password is nowhere" checks). */
export async function dumpSqlite(file: string): Promise<string> {
  const { DatabaseSync } = await import('node:sqlite');
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[];
    let out = '';
    for (const { name } of tables) {
      for (const row of db.prepare(`SELECT * FROM "${name}"`).all()) {
        out += `${name}: ${JSON.stringify(row, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v))}\n`;
      }
    }
    return out;
  } finally {
    db.close();
  }
}
