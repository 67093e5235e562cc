/**
 * The shared PostgreSQL session store (`pg` Pool, loaded lazily).
 *
 * Appends: sessions are spread over write lanes (by a hash of the session id; one lane by default, which
 * measured best for writers that await each append); each lane has a queue and at most one statement in flight. Everything queued on a lane while its previous statement commits is
 * written by the next one: ONE statement (so one implicit transaction, one round trip, one WAL flush) that
 * inserts all the events with a multi-row `INSERT … SELECT FROM unnest(…)`, its columns bound as binary
 * arrays (pg-binary.ts). Appends do not move the sessions rows (schema 3): an open session's head is its
 * newest event. A row takes the head, outcome and counters when its session ends, and the heads of its lane's
 * other sessions at most once a second (ROW_SYNC_MS; before `verify` too), both by an `UPDATE` in the same
 * statement. Readers that need an open session's head or last activity (checkpoints, prune, crash close,
 * verify) read its newest event through the unique (session_id, seq) index. A promise resolves
 * when that statement committed (`synchronous_commit` as the server has it; `on` by default, so durable).
 *
 * Seq and hash are computed here by the write path both stores share (batch.ts: one ChainBatch plans the
 * lane's batch, a failing item fails alone), from each session's head kept in memory by the process that
 * owns the session; a session not in memory (cold start, or another process's session) has its head read
 * first. An item whose caller gave up (store timeout) and that is not sent yet is dropped.
 * If someone else appended to the session meanwhile, the unique (session_id, seq) key rejects the whole
 * statement; the lane drops the cached heads, re-reads them and retries.
 *
 * Approvals: read-modify-write under `SELECT … FOR UPDATE`, then `pg_notify('dlpctl_approval', id)` in the
 * same transaction; `waitForApprovalChange` LISTENs on a dedicated connection (with a slow poll as backstop).
 */
import type { Client, Pool, PoolClient } from 'pg';
import { DlpctlError } from '../errors.js';
import { ChainBatch, startEvent, type Head, type MovedHead } from './batch.js';
import { ChainVerifier, GENESIS_HASH, sealEvent } from './chain.js';
import { buildCheckpoint } from './checkpoint.js';
import { int4Array, textArray, timestamptzArray } from './pg-binary.js';
import { rawSessionRow, verifyIntegrity, type IntegritySource } from './integrity.js';
import {
  buildEvent,
  clampLimit,
  countersFromEvents,
  DEFAULT_SEARCH_LIMIT,
  DEFAULT_STORE_TIMEOUT_MS,
  DEFER_WRITE_MS,
  eventDecision,
  eventText,
  maintenanceSession,
  openSessionInfo,
  parseSearch,
  rowToEvent,
  sessionRowValues,
  toMs,
  StoreDeadlines,
  withStoreTimeout,
  WatchedWrite,
} from './common.js';
import { newApprovalId, newSessionId, normalizeApprovalId } from './ids.js';
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js';
import {
  MAINTENANCE_SESSION_ID,
  zeroCounters,
  type AppendOptions,
  type Approval,
  type CheckpointOptions,
  type CheckpointRecord,
  type EventBody,
  type OpenSessionInfo,
  type VerifyOptions,
  type ApprovalMutator,
  type ApprovalState,
  type ApprovalUpdate,
  type Counters,
  type ListEventsOptions,
  type NewApproval,
  type NewEvent,
  type NewSession,
  type OpenStoreOptions,
  type Outcome,
  type PruneResult,
  type SearchHit,
  type SearchQuery,
  type Session,
  type SessionStore,
  type StoreEvent,
  type StoreInfo,
  type VerifyResult,
} from './types.js';

export const POSTGRES_SCHEMA_VERSION = POSTGRES_MIGRATIONS[POSTGRES_MIGRATIONS.length - 1]!.version;
const MIGRATION_LOCK = 0x646c7063746c; // "dlpctl"
const NOTIFY_CHANNEL = 'dlpctl_approval';
const MAX_BATCH_EVENTS = 5000;
/**
 * How far an open session's row may lag its head (ms). Appends do not write rows; a batch at most this long
 * after the last one that did writes every lagging row of its lane in the same statement (one UPDATE per
 * second instead of one per batch), so the row's head still shows a removed tail older than this.
 */
const ROW_SYNC_MS = 1000;

type Row = Record<string, unknown>;


interface Unit {
  sessionId: string;
  inputs: NewEvent[];
  end?: { outcome: Outcome; counters: Counters };
  /** No events: brings the lane's session rows up to their heads now (see Lane.behind). */
  syncRows?: boolean;
}

/** One queued write of a lane (an abandoned one that is not sent yet is not written). */
class Item extends WatchedWrite<StoreEvent[]> implements Unit {
  readonly sessionId: string;
  readonly inputs: NewEvent[];
  readonly end?: { outcome: Outcome; counters: Counters };
  readonly syncRows?: boolean;

  constructor(unit: Unit, res: (events: StoreEvent[]) => void, rej: (err: unknown) => void, deadlines: StoreDeadlines | undefined) {
    super(res, rej, deadlines);
    this.sessionId = unit.sessionId;
    this.inputs = unit.inputs;
    if (unit.end !== undefined) this.end = unit.end;
    if (unit.syncRows !== undefined) this.syncRows = unit.syncRows;
  }
}

interface Lane {
  queue: Item[];
  busy: boolean;
  /** Set while only deferred items wait (AppendOptions.defer). */
  timer?: NodeJS.Timeout | undefined;
  /** Committed heads of this lane's open sessions that their rows do not hold yet. */
  behind: Map<string, MovedHead>;
  /** When a batch last brought the rows up to date (ms). */
  rowsSyncedAt: number;
}

const UNREACHABLE_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
};

/** Translates a `pg` or socket error into a DlpctlError whose message never contains the password. */
export function mapPgError(err: unknown, display: string): unknown {
  if (err instanceof DlpctlError) return err;
  const e = err as { code?: string; message?: string; errors?: { code?: string }[] };
  const code = e.code ?? e.errors?.find((x) => x.code)?.code;
  const msg = typeof e.message === 'string' ? e.message : '';
  if (code !== undefined && code in UNREACHABLE_CODES) {
    return new DlpctlError(
      'STORE_UNREACHABLE',
      `cannot reach the store at ${display} (${UNREACHABLE_CODES[code]}); check the URL or start the server`,
      { cause: err },
    );
  }
  if (/timeout|terminated unexpectedly|Connection terminated/i.test(msg) && code === undefined) {
    return new DlpctlError('STORE_UNREACHABLE', `cannot reach the store at ${display} (${msg.toLowerCase()}); check the URL or start the server`, {
      cause: err,
    });
  }
  if (code === '28P01' || code === '28000' || /SASL|SCRAM|password must be a string/i.test(msg)) {
    return new DlpctlError(
      'STORE_AUTH',
      `the store at ${display} refused the login (${code === '28000' ? 'not allowed to connect' : 'password authentication failed'}); check the user and password of the store URL`,
      { cause: err },
    );
  }
  switch (code) {
    case '3D000':
      return new DlpctlError('STORE_NOT_FOUND', `the database of the store ${display} does not exist; create it (createdb) or fix the URL`, { cause: err });
    case '25006':
    case '42501':
      return new DlpctlError(
        'STORE_READONLY',
        `the store at ${display} refused a write (${code === '25006' ? 'read-only transaction' : 'insufficient privilege'}); use a role that may write, or a primary server`,
        { cause: err },
      );
    case '55P03':
    case '40P01':
    case '57014':
      return new DlpctlError('STORE_LOCKED', `the store at ${display} is locked by another session (${code}); retry`, { cause: err });
    case '53300':
      return new DlpctlError('STORE_UNREACHABLE', `the store at ${display} has too many connections; retry later or raise max_connections`, { cause: err });
    default:
      return err;
  }
}

function iso(v: unknown): string {
  return v instanceof Date ? v.toISOString() : new Date(String(v)).toISOString();
}

function rowToSession(r: Row, prefix = ''): Session {
  const g = (k: string): unknown => r[prefix + k];
  const s: Session = {
    id: g('id') as string,
    resource: g('resource') as string,
    kind: g('kind') as Session['kind'],
    identity: g('identity') as Session['identity'],
    clientAddr: g('client_addr') as string,
    startedAt: iso(g('started_at')),
    counters: g('counters') as Counters,
  };
  if (g('reason') != null) s.reason = g('reason') as string;
  if (g('ended_at') != null) s.endedAt = iso(g('ended_at'));
  if (g('outcome') != null) s.outcome = g('outcome') as Outcome;
  return s;
}

function checkpointRow(r: Row): CheckpointRecord {
  return { n: Number(r['n']), time: iso(r['time']), body: r['body'] as string, hash: r['hash'] as string, signature: (r['signature'] as string | null) ?? null };
}

function laneOf(sessionId: string, lanes: number): number {
  let h = 0;
  for (let i = 0; i < sessionId.length; i++) h = (h * 31 + sessionId.charCodeAt(i)) | 0;
  return Math.abs(h) % lanes;
}

const INSERT_EVENTS = `
INSERT INTO events (session_id, seq, type, time, subject, decision, text, body, hash)
SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])`;

/** The statement that writes one lane batch (see the module comment): its events, nothing else. */
const WRITE_BATCH_SQL = INSERT_EVENTS;

/**
 * The same, also writing session rows: those the batch ends (head, time, outcome, counters) and, once a second,
 * those whose sessions' heads moved since (ROW_SYNC_MS). A row never moves back (crash close by another
 * process, say, wrote a newer head).
 */
const WRITE_BATCH_ROWS_SQL = `
WITH ins AS (${INSERT_EVENTS}
)
UPDATE sessions s
   SET last_seq = h.seq, last_hash = h.hash, last_time = greatest(s.last_time, h.last_time),
       ended_at = coalesce(h.ended_at, s.ended_at), outcome = coalesce(h.outcome, s.outcome),
       counters = coalesce(h.counters::jsonb, s.counters)
  FROM unnest($10::text[], $11::int4[], $12::text[], $13::timestamptz[], $14::timestamptz[], $15::text[], $16::text[])
       AS h(id, seq, hash, last_time, ended_at, outcome, counters)
 WHERE s.id = h.id AND s.last_seq <= h.seq`;

/**
 * Joined to `sessions s` as `h`: the session's newest event (through the unique (session_id, seq) index,
 * backwards). An open session's head is its newest event; its row holds the head as of its creation, its
 * end or crash close, or the last once-a-second catch-up (see the module comment).
 */
const NEWEST_EVENT = 'LEFT JOIN LATERAL (SELECT e.seq, e.hash, e.time FROM events e WHERE e.session_id = s.id ORDER BY e.seq DESC LIMIT 1) h ON true';

/** The head a writer chains to: the newest event, or the row when the session has none (never, untampered). */
const WRITER_HEAD = 'coalesce(h.seq, s.last_seq) AS head_seq, coalesce(h.hash, s.last_hash) AS head_hash, greatest(s.last_time, h.time) AS head_time';

export class PostgresStore implements SessionStore {
  readonly engine = 'postgres' as const;
  readonly display: string;
  private readonly url: string;
  private readonly pool: Pool;
  private readonly pg: typeof import('pg').default;
  private readonly now: () => Date;
  private readonly heads = new Map<string, Head>();
  private readonly lanes: Lane[];
  private readonly idle = new Set<() => void>();
  private listener: Client | undefined;
  private listenerReady: Promise<Client | undefined> | undefined;
  private readonly waiters = new Map<string, Set<() => void>>();
  private closed = false;
  private readonly timeoutMs: number;
  /** The store timeout of queued session writes (one timer for all of them). */
  private readonly deadlines: StoreDeadlines;

  private constructor(pg: typeof import('pg').default, pool: Pool, url: string, display: string, opts: OpenStoreOptions) {
    this.pg = pg;
    this.pool = pool;
    this.url = url;
    this.display = display;
    this.now = opts.now ?? (() => new Date());
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
    this.deadlines = new StoreDeadlines(this.timeoutMs, display);
    const lanes = Math.max(1, Math.min(16, Math.floor(opts.postgresWriteLanes ?? 1)));
    this.lanes = Array.from({ length: lanes }, () => ({ queue: [], busy: false, behind: new Map(), rowsSyncedAt: Date.now() }));
  }

  static async open(url: string, display: string, opts: OpenStoreOptions = {}): Promise<PostgresStore> {
    const pg = (await import('pg')).default;
    const pool = new pg.Pool({
      connectionString: url,
      max: Math.max(1, Math.min(16, Math.floor(opts.postgresWriteLanes ?? 1))) + 4,
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 30_000,
      application_name: 'dlpctl',
    });
    pool.on('error', () => {
      // an idle connection died; the pool replaces it on next use
    });
    try {
      const c = await pool.connect();
      c.release();
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw mapPgError(err, display);
    }
    return new PostgresStore(pg, pool, url, display, opts);
  }

  private map(err: unknown): unknown {
    return mapPgError(err, this.display);
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('session store is closed');
  }

  private async q(sql: string, params: unknown[] = []): Promise<Row[]> {
    this.checkOpen();
    try {
      return (await this.pool.query(sql, params)).rows as Row[];
    } catch (err) {
      throw this.map(err);
    }
  }

  /** A pooled connection; an unreachable store is a DlpctlError that says so. */
  private async connection(): Promise<PoolClient> {
    try {
      return await this.pool.connect();
    } catch (err) {
      throw this.map(err);
    }
  }

  private async tx<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    this.checkOpen();
    const c = await this.connection();
    try {
      await c.query('BEGIN');
      const r = await fn(c);
      await c.query('COMMIT');
      c.release();
      return r;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release();
      throw this.map(err);
    }
  }

  // ---- schema ------------------------------------------------------------------------------------

  async migrate(): Promise<{ from: number; to: number }> {
    return this.tx(async (c) => {
      // Serialises concurrent migrators (released at commit).
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await c.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
      );
      const cur = Number((await c.query('SELECT coalesce(max(version), 0) AS v FROM schema_migrations')).rows[0].v);
      if (cur > POSTGRES_SCHEMA_VERSION) {
        throw new DlpctlError(
          'STORE_TOO_NEW',
          `this store was migrated by a newer dlpctl (schema ${cur}, this binary knows ${POSTGRES_SCHEMA_VERSION}); upgrade dlpctl`,
        );
      }
      for (const m of POSTGRES_MIGRATIONS) {
        if (m.version <= cur) continue;
        await c.query(m.sql);
        await c.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      }
      return { from: cur, to: Math.max(cur, POSTGRES_SCHEMA_VERSION) };
    });
  }

  async info(): Promise<StoreInfo> {
    let version = 0;
    try {
      version = Number((await this.q('SELECT coalesce(max(version), 0) AS v FROM schema_migrations'))[0]!['v']);
    } catch (err) {
      if ((err as { code?: string }).code !== '42P01') throw err;
    }
    const counts =
      version > 0
        ? (
            await this.q(
              `SELECT (SELECT count(*) FROM sessions WHERE id <> $1) AS s, (SELECT count(*) FROM events) AS e,
                      (SELECT count(*) FROM approvals) AS a, pg_database_size(current_database()) AS b`,
              [MAINTENANCE_SESSION_ID],
            )
          )[0]!
        : (await this.q('SELECT 0 AS s, 0 AS e, 0 AS a, pg_database_size(current_database()) AS b'))[0]!;
    return {
      engine: 'postgres',
      url: this.display,
      schemaVersion: version,
      binaryVersion: POSTGRES_SCHEMA_VERSION,
      sessions: Number(counts['s']),
      events: Number(counts['e']),
      approvals: Number(counts['a']),
      sizeBytes: Number(counts['b']),
    };
  }

  // ---- sessions and events -----------------------------------------------------------------------

  async createSession(input: NewSession): Promise<Session> {
    const startedAt = input.startedAt ?? this.now().toISOString();
    const session: Session = { ...input, id: input.id ?? newSessionId(new Date(startedAt)), startedAt, counters: zeroCounters() };
    const start = startEvent(session);
    const { event, body } = sealEvent(GENESIS_HASH, buildEvent(session.id, 1, session.identity.subject, start, this.now));
    await withStoreTimeout(this.q(
      `WITH s AS (
         INSERT INTO sessions (id, resource, kind, subject, email, identity, client_addr, reason, started_at, counters, last_seq, last_hash, last_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $9)
       )
       INSERT INTO events (session_id, seq, type, time, subject, decision, text, body, hash)
       VALUES ($1, 1, 'session.start', $9, $4, NULL, NULL, $12, $11)`,
      [...sessionRowValues(session), event.hash, body],
    ), this.timeoutMs, this.display);
    this.heads.set(session.id, { seq: 1, hash: event.hash, subject: session.identity.subject });
    return session;
  }

  /**
   * Queues an item on its session's lane; a deferred one waits up to DEFER_WRITE_MS for company. Fails
   * with STORE_TIMEOUT when not committed within the store timeout (see withStoreTimeout).
   */
  private enqueue(unit: Unit, defer = false, to?: Lane): Promise<StoreEvent[]> {
    this.checkOpen();
    return new Promise<StoreEvent[]>((resolve, reject) => {
      const deadlines = this.deadlines.active ? this.deadlines : undefined;
      const item = new Item(unit, resolve, reject, deadlines);
      deadlines?.add(item);
      const lane = to ?? this.lanes[laneOf(item.sessionId, this.lanes.length)]!;
      lane.queue.push(item);
      const start = (): void => {
        lane.timer = undefined;
        void this.drain(lane);
      };
      if (!lane.busy) {
        lane.busy = true;
        if (defer) lane.timer = setTimeout(start, DEFER_WRITE_MS);
        else queueMicrotask(start);
      } else if (!defer && lane.timer !== undefined) {
        clearTimeout(lane.timer);
        queueMicrotask(start);
      }
    });
  }

  private async drain(lane: Lane): Promise<void> {
    while (lane.queue.length > 0) {
      // At most MAX_BATCH_EVENTS per statement (one item may exceed it alone); the rest waits its turn.
      let n = 0;
      let take = 0;
      while (take < lane.queue.length && (take === 0 || n + lane.queue[take]!.inputs.length + 1 <= MAX_BATCH_EVENTS)) {
        n += lane.queue[take]!.inputs.length + 1;
        take++;
      }
      const batch = lane.queue.splice(0, take);
      try {
        await this.writeBatch(lane, batch);
      } catch (err) {
        // A fault of the write path itself (not an answer of the store): this batch fails, the lane goes on.
        for (const it of batch) it.reject(err);
      }
    }
    lane.busy = false;
    if (this.lanes.every((l) => !l.busy)) for (const f of this.idle) f();
  }

  private async loadHeads(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const rows = await this.q(`SELECT s.id, s.subject, ${WRITER_HEAD} FROM sessions s ${NEWEST_EVENT} WHERE s.id = ANY($1::text[])`, [ids]);
    for (const r of rows) {
      this.heads.set(r['id'] as string, { seq: Number(r['head_seq']), hash: r['head_hash'] as string, subject: r['subject'] as string });
    }
  }

  /** Brings every open session row this process is ahead of up to its head (verify reads rows as recorded). */
  private async syncRows(): Promise<void> {
    await Promise.all(this.lanes.filter((l) => l.behind.size > 0).map((l) => this.enqueue({ sessionId: '', inputs: [], syncRows: true }, false, l)));
  }

  private async writeBatch(lane: Lane, all: Item[], attempt = 0): Promise<void> {
    // A unit whose caller already gave up (store timeout) and that was not sent yet is not written.
    const batch = all.filter((i) => !i.abandoned);
    if (batch.length === 0) return;
    const syncs = batch.filter((i) => i.syncRows);
    const units = syncs.length === 0 ? batch : batch.filter((i) => !i.syncRows);
    try {
      await this.loadHeads([...new Set(units.map((i) => i.sessionId).filter((id) => !this.heads.has(id)))]);
    } catch (err) {
      for (const it of batch) it.reject(err);
      return;
    }
    const plan = new ChainBatch((id) => this.heads.get(id), this.display, this.now);
    const ok: { item: Item; events: StoreEvent[] }[] = [];
    for (const item of units) {
      try {
        ok.push({ item, events: plan.unit(() => (item.end ? [plan.end(item.sessionId, item.end.outcome, item.end.counters, this.now().toISOString())] : plan.append(item.sessionId, item.inputs))) });
      } catch (err) {
        item.reject(err);
      }
    }
    if (ok.length === 0 && syncs.length === 0) return;
    const rows = plan.rows;
    const params: Buffer[] = [
      textArray(rows.map((r) => r.sessionId)),
      int4Array(rows.map((r) => r.seq)),
      textArray(rows.map((r) => r.type)),
      timestamptzArray(rows.map((r) => r.timeMs)),
      textArray(rows.map((r) => r.subject)),
      textArray(rows.map((r) => r.decision)),
      textArray(rows.map((r) => r.text)),
      textArray(rows.map((r) => r.body)),
      textArray(rows.map((r) => r.hash)),
    ];
    // The session rows this statement writes: those it ends, and, when due, every one the lane is ahead of.
    const startedAt = Date.now();
    const sync = syncs.length > 0 || startedAt - lane.rowsSyncedAt >= ROW_SYNC_MS;
    const toRows = new Map<string, MovedHead>(sync ? lane.behind : undefined);
    for (const [id, h] of plan.moved) if (sync || h.end) toRows.set(id, h);
    const updates = [...toRows.entries()];
    if (updates.length > 0) {
      params.push(
        textArray(updates.map(([id]) => id)),
        int4Array(updates.map(([, h]) => h.seq)),
        textArray(updates.map(([, h]) => h.hash)),
        timestamptzArray(updates.map(([, h]) => h.lastMs)),
        timestamptzArray(updates.map(([, h]) => (h.end ? Date.parse(h.end.time) : null))),
        textArray(updates.map(([, h]) => h.end?.outcome ?? null)),
        textArray(updates.map(([, h]) => (h.end ? JSON.stringify(h.end.counters) : null))),
      );
    }
    try {
      // Named: parsed and planned once per connection. Buffers go as binary parameters (pg-binary.ts).
      await this.pool.query(
        updates.length > 0
          ? { name: 'dlpctl_write_batch_rows', text: WRITE_BATCH_ROWS_SQL, values: params }
          : { name: 'dlpctl_write_batch', text: WRITE_BATCH_SQL, values: params },
      );
    } catch (err) {
      const code = (err as { code?: string }).code;
      for (const [id] of plan.moved) this.heads.delete(id);
      if (code === '23505' && attempt < 3) {
        // Another writer appended to one of these sessions: re-read the heads and try again.
        return this.writeBatch(lane, [...ok.map((o) => o.item), ...syncs], attempt + 1);
      }
      const mapped = this.map(err);
      for (const o of ok) o.item.reject(mapped);
      for (const it of syncs) it.reject(mapped);
      return;
    }
    if (sync) {
      lane.behind.clear();
      lane.rowsSyncedAt = startedAt;
    }
    for (const [id, h] of plan.moved) {
      if (h.end) {
        this.heads.delete(id); // the session is over; free its head
        lane.behind.delete(id);
      } else {
        this.heads.set(id, { seq: h.seq, hash: h.hash, subject: h.subject });
        if (!sync) lane.behind.set(id, h);
      }
    }
    for (const o of ok) o.item.resolve(o.events);
    for (const it of syncs) it.resolve([]);
  }

  async endSession(id: string, outcome: Outcome, counters: Counters): Promise<Session> {
    await this.enqueue({ sessionId: id, inputs: [], end: { outcome, counters } });
    const session = await this.getSession(id);
    if (session === undefined) throw new DlpctlError('STORE_NOT_FOUND', `session ${id} does not exist in ${this.display}`);
    return session;
  }

  async append(sessionId: string, event: NewEvent, options: AppendOptions = {}): Promise<StoreEvent> {
    const [e] = await this.enqueue({ sessionId, inputs: [event] }, options.defer);
    return e!;
  }

  async appendMany(sessionId: string, events: NewEvent[], options: AppendOptions = {}): Promise<StoreEvent[]> {
    if (events.length === 0) return [];
    return this.enqueue({ sessionId, inputs: events }, options.defer);
  }

  async getSession(id: string): Promise<Session | undefined> {
    const rows = await this.q('SELECT * FROM sessions WHERE id = $1', [id]);
    return rows[0] === undefined ? undefined : rowToSession(rows[0]);
  }

  async listEvents(sessionId: string, options: ListEventsOptions = {}): Promise<StoreEvent[]> {
    const rows = await this.q('SELECT body, hash FROM events WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3', [
      sessionId,
      options.afterSeq ?? 0,
      clampLimit(options.limit, 100_000),
    ]);
    return rows.map((r) => rowToEvent(r['body'] as string, r['hash'] as string));
  }

  async search(q: SearchQuery): Promise<SearchHit[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const p = (v: unknown): string => {
      params.push(v);
      return `$${params.length}`;
    };
    if (q.text !== undefined && q.text.trim() !== '') {
      const terms = parseSearch(q.text);
      if (terms.length === 0) return [];
      // Words are letters and digits only (parseSearch), so they are safe inside a tsquery.
      where.push(`e.tsv @@ to_tsquery('simple', ${p(terms.map((t) => (t.prefix ? `${t.word}:*` : t.word)).join(' & '))})`);
    }
    if (q.resource !== undefined) where.push(`s.resource = ${p(q.resource)}`);
    if (q.identity !== undefined) {
      const v = p(q.identity);
      where.push(`(s.subject = ${v} OR s.email = ${v})`);
    }
    if (q.since !== undefined) where.push(`e.time >= ${p(new Date(toMs(q.since, 'since')).toISOString())}`);
    if (q.until !== undefined) where.push(`e.time < ${p(new Date(toMs(q.until, 'until')).toISOString())}`);
    if (q.decision !== undefined) where.push(`e.decision = ${p(q.decision)}`);
    const limit = p(clampLimit(q.limit, DEFAULT_SEARCH_LIMIT));
    const rows = await this.q(
      `SELECT e.body AS e_body, e.hash AS e_hash, s.* FROM events e JOIN sessions s ON s.id = e.session_id
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY e.id DESC LIMIT ${limit}`,
      params,
    );
    const sessions = new Map<string, Session>();
    return rows.map((r) => {
      const id = r['id'] as string;
      let s = sessions.get(id);
      if (s === undefined) {
        s = rowToSession(r);
        sessions.set(id, s);
      }
      return { event: rowToEvent(r['e_body'] as string, r['e_hash'] as string), session: s };
    });
  }

  async verify(options: string | VerifyOptions = {}): Promise<VerifyResult> {
    const o: VerifyOptions = typeof options === 'string' ? { sessionId: options } : options;
    this.checkOpen();
    await this.syncRows();
    const c = await this.connection();
    const rows = async (sql: string, params: unknown[] = []): Promise<Row[]> => (await c.query(sql, params)).rows as Row[];
    const PAGE = 5000;
    const source: IntegritySource = {
      // An open session's head is its newest event when that is past its row's (the row is not moved by appends:
      // see the module comment); an ended session's is its row, so an event added after its end still shows.
      sessions: async (id) =>
        (
          await rows(
            `SELECT s.*, h.seq AS newest_seq, h.hash AS newest_hash FROM sessions s ${NEWEST_EVENT} ${id === undefined ? '' : 'WHERE s.id = $1'} ORDER BY s.id`,
            id === undefined ? [] : [id],
          )
        ).map((r) => {
          const ahead = r['ended_at'] == null && r['newest_seq'] != null && Number(r['newest_seq']) > Number(r['last_seq']);
          return rawSessionRow(ahead ? { ...r, last_seq: r['newest_seq'], last_hash: r['newest_hash'] } : r, (v) => new Date(v as Date).getTime());
        }),
      events: async function* (id) {
        let after = 0;
        for (;;) {
          const page = await rows('SELECT seq, type, time, subject, decision, text, body, hash FROM events WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3', [id, after, PAGE]);
          if (page.length === 0) return;
          after = Number(page[page.length - 1]!['seq']);
          yield page.map((r) => ({
            seq: Number(r['seq']),
            type: r['type'] as string,
            timeMs: new Date(r['time'] as Date).getTime(),
            subject: r['subject'] as string,
            decision: (r['decision'] as string | null) ?? null,
            text: (r['text'] as string | null) ?? null,
            body: r['body'] as string,
            hash: r['hash'] as string,
          }));
          if (page.length < PAGE) return;
        }
      },
      orphans: async () =>
        (await rows('SELECT DISTINCT e.session_id AS id FROM events e WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = e.session_id) ORDER BY 1')).map((r) => r['id'] as string),
      checkpoints: async () => (await rows('SELECT n, time, body, hash, signature FROM checkpoints ORDER BY n')).map(checkpointRow),
    };
    try {
      // One snapshot for the whole check.
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        return await verifyIntegrity(source, o, (id) => new DlpctlError('STORE_NOT_FOUND', `session ${id} does not exist in ${this.display}`));
      } finally {
        await c.query('COMMIT').catch(() => undefined);
      }
    } catch (err) {
      throw this.map(err);
    } finally {
      c.release();
    }
  }

  async checkpoint(options: CheckpointOptions = {}): Promise<CheckpointRecord | undefined> {
    const time = options.time ?? this.now().toISOString();
    return this.tx(async (c) => {
      // One checkpointer at a time: each chains to the one before.
      await c.query('LOCK TABLE checkpoints IN EXCLUSIVE MODE');
      const prev = (await c.query('SELECT n, body, hash FROM checkpoints ORDER BY n DESC LIMIT 1')).rows[0] as Row | undefined;
      // An ended session's head is its row (written by its end); an open one's is its newest event. Ended
      // sessions already checkpointed are skipped before their events are looked at.
      const moved = (
        await c.query(
          `SELECT s.id, CASE WHEN s.ended_at IS NULL THEN h.seq ELSE s.last_seq END AS seq,
                  CASE WHEN s.ended_at IS NULL THEN h.hash ELSE s.last_hash END AS hash, greatest(s.last_time, h.time) AS last_time
             FROM sessions s ${NEWEST_EVENT}
            WHERE (s.ended_at IS NULL OR s.last_seq <> s.checkpointed_seq)
              AND (CASE WHEN s.ended_at IS NULL THEN h.seq ELSE s.last_seq END) <> s.checkpointed_seq
            ORDER BY s.id`,
        )
      ).rows as Row[];
      const record = buildCheckpoint(
        prev === undefined ? undefined : { n: Number(prev['n']), hash: prev['hash'] as string },
        moved.map((r) => ({ id: r['id'] as string, seq: Number(r['seq']), hash: r['hash'] as string, lastTime: iso(r['last_time']) })),
        time,
        options.signingKey,
      );
      if (moved.length === 0 && prev !== undefined && !options.force && (JSON.parse(prev['body'] as string) as { key?: string }).key === (JSON.parse(record.body) as { key?: string }).key) {
        return undefined;
      }
      await c.query('INSERT INTO checkpoints (n, time, body, hash, signature) VALUES ($1, $2, $3, $4, $5)', [record.n, record.time, record.body, record.hash, record.signature]);
      if (moved.length > 0) {
        await c.query('UPDATE sessions s SET checkpointed_seq = h.seq FROM unnest($1::text[], $2::int[]) AS h(id, seq) WHERE s.id = h.id', [
          moved.map((r) => r['id']),
          moved.map((r) => Number(r['seq'])),
        ]);
      }
      return record;
    });
  }

  async listCheckpoints(): Promise<CheckpointRecord[]> {
    return (await this.q('SELECT n, time, body, hash, signature FROM checkpoints ORDER BY n')).map(checkpointRow);
  }

  async openSessions(): Promise<OpenSessionInfo[]> {
    const rows = await this.q(
      'SELECT s.id, s.started_at, e.body FROM sessions s LEFT JOIN events e ON e.session_id = s.id AND e.seq = 1 WHERE s.ended_at IS NULL AND s.id <> $1 ORDER BY s.id',
      [MAINTENANCE_SESSION_ID],
    );
    return rows.map((r) => openSessionInfo(r['id'] as string, iso(r['started_at']), (r['body'] as string | null) ?? null));
  }

  async closeCrashed(ids: string[]): Promise<string[]> {
    const closed: string[] = [];
    for (const id of ids) {
      this.heads.delete(id);
      const done = await this.tx(async (c) => {
        const head = (await c.query(`SELECT s.subject, s.ended_at, ${WRITER_HEAD} FROM sessions s ${NEWEST_EVENT} WHERE s.id = $1 FOR UPDATE OF s`, [id])).rows[0] as
          | Row
          | undefined;
        if (head === undefined || head['ended_at'] != null) return false;
        const bodies = ((await c.query('SELECT body FROM events WHERE session_id = $1 ORDER BY seq', [id])).rows as Row[]).map((r) => JSON.parse(r['body'] as string) as EventBody);
        const counters = countersFromEvents(bodies);
        const seq = Number(head['head_seq']) + 1;
        const time = iso(head['head_time']);
        const { event, body } = sealEvent(
          head['head_hash'] as string,
          buildEvent(id, seq, head['subject'] as string, { type: 'session.end', outcome: 'crashed', counters, time }, this.now),
        );
        await c.query('INSERT INTO events (session_id, seq, type, time, subject, decision, text, body, hash) VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7)', [
          id,
          seq,
          event.type,
          event.time,
          event.subject,
          body,
          event.hash,
        ]);
        await c.query(
          "UPDATE sessions SET last_seq = $2, last_hash = $3, last_time = greatest(last_time, $4), ended_at = $4, outcome = 'crashed', counters = $5 WHERE id = $1",
          [id, seq, event.hash, event.time, JSON.stringify(counters)],
        );
        return true;
      });
      if (done) closed.push(id);
    }
    return closed;
  }

  async prune(olderThanMs: number, now: Date = this.now()): Promise<PruneResult> {
    const cutoff = new Date(now.getTime() - olderThanMs);
    this.heads.delete(MAINTENANCE_SESSION_ID);
    return this.tx(async (c) => {
      const m = maintenanceSession(now);
      await c.query(
        `INSERT INTO sessions (id, resource, kind, subject, email, identity, client_addr, reason, started_at, counters, last_seq, last_hash, last_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $9) ON CONFLICT (id) DO NOTHING`,
        [...sessionRowValues(m), GENESIS_HASH],
      );
      // Locks the maintenance chain's head: concurrent prunes append one after the other.
      const head = (await c.query('SELECT last_seq, last_hash, subject FROM sessions WHERE id = $1 FOR UPDATE', [MAINTENANCE_SESSION_ID])).rows[0] as Row;
      const doomed = (
        // A session's last activity is its newest event's time (an open session's row is not moved by its appends);
        // a row already past the cutoff keeps its session without a look at its events.
        await c.query(`SELECT s.id FROM sessions s ${NEWEST_EVENT} WHERE s.last_time < $1 AND greatest(s.last_time, h.time) < $1 AND s.id <> $2 FOR UPDATE OF s`, [
          cutoff.toISOString(),
          MAINTENANCE_SESSION_ID,
        ])
      ).rows.map((r: Row) => r['id'] as string);
      let eventsRemoved = 0;
      if (doomed.length > 0) {
        eventsRemoved = (await c.query('DELETE FROM events WHERE session_id = ANY($1::text[])', [doomed])).rowCount ?? 0;
        await c.query('DELETE FROM approvals WHERE session_id = ANY($1::text[])', [doomed]);
        await c.query('DELETE FROM sessions WHERE id = ANY($1::text[])', [doomed]);
        for (const id of doomed) this.heads.delete(id);
      }
      const seq = Number(head['last_seq']) + 1;
      const { event, body } = sealEvent(
        head['last_hash'] as string,
        buildEvent(
          MAINTENANCE_SESSION_ID,
          seq,
          head['subject'] as string,
          { type: 'store.prune', olderThanMs, cutoff: cutoff.toISOString(), sessionsRemoved: doomed.length, eventsRemoved, time: now.toISOString() },
          this.now,
        ),
      );
      await c.query(
        `INSERT INTO events (session_id, seq, type, time, subject, decision, text, body, hash) VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7)`,
        [MAINTENANCE_SESSION_ID, seq, event.type, event.time, event.subject, body, event.hash],
      );
      await c.query('UPDATE sessions SET last_seq = $2, last_hash = $3, last_time = greatest(last_time, $4) WHERE id = $1', [
        MAINTENANCE_SESSION_ID,
        seq,
        event.hash,
        event.time,
      ]);
      return { sessionsRemoved: doomed.length, eventsRemoved };
    });
  }

  // ---- approvals -----------------------------------------------------------------------------------

  async createApproval(input: NewApproval): Promise<Approval> {
    for (let attempt = 0; ; attempt++) {
      const a: Approval = {
        ...input,
        id: newApprovalId(),
        state: 'pending',
        decisions: [],
        createdAt: input.createdAt ?? this.now().toISOString(),
        version: 1,
      };
      try {
        await this.q(
          `INSERT INTO approvals (id, session_id, resource, state, created_at, expires_at, version, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8);
          `.trim(),
          [a.id, a.sessionId, a.resource, a.state, a.createdAt, a.expiresAt, a.version, JSON.stringify(a)],
        );
        await this.q('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, a.id]);
        return a;
      } catch (err) {
        if ((err as { code?: string }).code === '23505' && attempt < 10) continue;
        throw err;
      }
    }
  }

  async getApproval(id: string): Promise<Approval | undefined> {
    const rows = await this.q('SELECT data FROM approvals WHERE id = $1', [normalizeApprovalId(id)]);
    return rows[0] === undefined ? undefined : (rows[0]['data'] as Approval);
  }

  async listApprovals(filter: { state?: ApprovalState } = {}): Promise<Approval[]> {
    const rows =
      filter.state === undefined
        ? await this.q('SELECT data FROM approvals ORDER BY created_at, id')
        : await this.q('SELECT data FROM approvals WHERE state = $1 ORDER BY created_at, id', [filter.state]);
    return rows.map((r) => r['data'] as Approval);
  }

  async updateApproval(id: string, mutate: ApprovalMutator): Promise<ApprovalUpdate> {
    const key = normalizeApprovalId(id);
    return this.tx(async (c) => {
      const r = (await c.query('SELECT data FROM approvals WHERE id = $1 FOR UPDATE', [key])).rows[0] as Row | undefined;
      if (r === undefined) throw new DlpctlError('STORE_NOT_FOUND', `no approval ${key}; list pending ones with \`dlpctl approvals\``);
      const current = r['data'] as Approval;
      const next = mutate(structuredClone(current));
      if (next === undefined) return { approval: current, changed: false };
      const stored: Approval = { ...next, id: current.id, version: current.version + 1 };
      await c.query('UPDATE approvals SET state = $2, expires_at = $3, version = $4, data = $5 WHERE id = $1', [
        key,
        stored.state,
        stored.expiresAt,
        stored.version,
        JSON.stringify(stored),
      ]);
      await c.query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, key]);
      return { approval: stored, changed: true };
    });
  }

  private ensureListener(): Promise<Client | undefined> {
    if (this.listenerReady) return this.listenerReady;
    this.listenerReady = (async () => {
      const client = new this.pg.Client({ connectionString: this.url, application_name: 'dlpctl-listen' });
      const reset = (): void => {
        if (this.listener === client) this.listener = undefined;
        this.listenerReady = undefined;
        client.end().catch(() => undefined);
        for (const set of this.waiters.values()) for (const w of set) w(); // wake everyone: they re-check
      };
      client.on('error', reset);
      client.on('end', reset);
      client.on('notification', (n) => {
        if (n.channel !== NOTIFY_CHANNEL || n.payload === undefined) return;
        const set = this.waiters.get(n.payload);
        if (set) for (const w of set) w();
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
        this.listener = client;
        return client;
      } catch {
        reset();
        return undefined; // fall back to polling
      }
    })();
    return this.listenerReady;
  }

  async waitForApprovalChange(id: string, signal?: AbortSignal, sinceVersion?: number): Promise<Approval> {
    const key = normalizeApprovalId(id);
    const listening = (await this.ensureListener()) !== undefined;
    let base = sinceVersion;
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      // Register before reading, so a change between the read and the wait still wakes us.
      let wake!: () => void;
      const woken = new Promise<void>((r) => (wake = r));
      let set = this.waiters.get(key);
      if (!set) this.waiters.set(key, (set = new Set()));
      set.add(wake);
      const timer = setTimeout(wake, listening ? 5000 : 250);
      const onAbort = (): void => wake();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const a = await this.getApproval(key);
        if (a === undefined) throw new DlpctlError('STORE_NOT_FOUND', `no approval ${key}`);
        if (base === undefined) base = a.version;
        else if (a.version > base) return a;
        await woken;
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        set.delete(wake);
        if (set.size === 0) this.waiters.delete(key);
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.lanes.some((l) => l.busy)) {
      await new Promise<void>((resolve) => {
        const f = (): void => {
          this.idle.delete(f);
          resolve();
        };
        this.idle.add(f);
      });
    }
    this.closed = true;
    const l = this.listener;
    this.listener = undefined;
    this.listenerReady = undefined;
    if (l) {
      l.removeAllListeners('end');
      l.removeAllListeners('error');
      l.on('error', () => undefined);
      await l.end().catch(() => undefined);
    }
    for (const set of this.waiters.values()) for (const w of set) w();
    await this.pool.end().catch(() => undefined);
  }
}
