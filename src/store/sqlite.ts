/**
 * The embedded SQLite session store (`node:sqlite`, synchronous).
 *
 * Reads run on this thread's connection. Writes (`append`, `createSession`, `endSession`, `prune`) go
 * through the group-commit writer of sqlite-writer.ts: on this thread, or on a worker thread with its own
 * connection (`threads: 'writer'`). A tunnel (`threads: 'tunnel'`) commits on its own thread and leaves WAL
 * checkpoints and the full-text catch-up to a maintenance thread; with `sync=full` it commits on a writer
 * thread, so that an fsync never stalls the thread that relays traffic. Approvals and migrations are short
 * transactions on this thread's connection. Every event carries a time stamped here, with this store's clock.
 */
import fs from 'node:fs';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { DlpctlError } from '../errors.js';
import { rawSessionRow, verifyIntegrity, type IntegritySource, type RawEventRow } from './integrity.js';
import {
  clampLimit,
  DEFAULT_SEARCH_LIMIT,
  isoOf,
  openSessionInfo,
  DEFAULT_STORE_TIMEOUT_MS,
  rowToEvent,
  matchesTerms,
  parseSearch,
  sleep,
  toMs,
  StoreDeadlines,
} from './common.js';
import { newApprovalId, newSessionId, normalizeApprovalId } from './ids.js';
import { SQLITE_MIGRATIONS } from './sqlite-migrations.js';
import { checkpointWalIfLarge, mapSqliteError, openSqliteConnection, rowToSession, SqliteWriter, statementCache, type SqliteConnectionOptions, type WriteOp, type WriteValue } from './sqlite-writer.js';
import { SqliteMaintenanceThread, SqliteWriterThread } from './sqlite-threads.js';
import {
  MAINTENANCE_SESSION_ID,
  zeroCounters,
  type AppendOptions,
  type Approval,
  type CheckpointOptions,
  type CheckpointRecord,
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

type Row = Record<string, unknown>;

export const SQLITE_SCHEMA_VERSION = SQLITE_MIGRATIONS[SQLITE_MIGRATIONS.length - 1]!.version;

export { mapSqliteError };

export class SqliteStore implements SessionStore {
  readonly engine = 'sqlite' as const;
  readonly path: string;
  readonly display: string;
  private readonly db: DatabaseSync;
  private readonly now: () => Date;
  private readonly busyMs: number;
  private readonly pollMs: number;
  /** The store timeout of session writes (one timer for all of them). */
  private readonly deadlines: StoreDeadlines;
  private closed = false;
  private readonly stmts: ReturnType<typeof statementCache>;
  /** The group-commit writer on this thread's connection (all writes, unless a writer thread takes them). */
  private readonly local: SqliteWriter;
  private thread: SqliteWriterThread | null = null;
  private maintenance: SqliteMaintenanceThread | null = null;
  private readonly connection: SqliteConnectionOptions;

  private constructor(file: string, display: string, db: DatabaseSync, opts: OpenStoreOptions, connection: SqliteConnectionOptions) {
    this.path = file;
    this.display = display;
    this.db = db;
    this.now = opts.now ?? (() => new Date());
    this.busyMs = connection.busyMs;
    this.pollMs = opts.pollIntervalMs ?? 250;
    this.deadlines = new StoreDeadlines(opts.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS, display);
    this.connection = connection;
    this.local = new SqliteWriter(db, display, this.busyMs, { file });
    this.stmts = statementCache(db);
  }

  static open(file: string, display: string, opts: OpenStoreOptions = {}): SqliteStore {
    const connection: SqliteConnectionOptions = {
      busyMs: opts.busyTimeoutMs ?? 5000,
      synchronous: opts.sqliteSynchronous === 'normal' ? 'normal' : 'full',
      create: opts.create !== false,
    };
    return new SqliteStore(file, display, openSqliteConnection(file, display, connection), opts, connection);
  }

  /** The threads a long-running tunnel uses (see the header and `threads` in OpenStoreOptions). */
  async startThreads(threads: 'writer' | 'tunnel'): Promise<void> {
    if (threads === 'writer' || this.connection.synchronous === 'full') await this.startWriterThread();
    else await this.startMaintenanceThread();
  }

  /** Moves the writes to a worker thread with its own connection, beside a maintenance thread (call once). */
  async startWriterThread(): Promise<void> {
    this.checkOpen();
    if (this.thread || this.maintenance) return;
    await this.local.drain();
    this.thread = await SqliteWriterThread.start(this.path, this.display, this.connection);
  }

  /**
   * Keeps the commits on this thread and moves WAL checkpoints and the full-text catch-up to a maintenance
   * thread (call once). Both would otherwise stall a commit for milliseconds now and then. Cheaper than a
   * writer thread when commits do not fsync: no structured clone of each event and no two thread wake-ups
   * per commit (in the PostgreSQL tunnel's pgbench run, 280 → 200 µs of CPU per statement, +30% TPS).
   */
  async startMaintenanceThread(): Promise<void> {
    this.checkOpen();
    if (this.thread || this.maintenance) return;
    await this.local.drain();
    this.maintenance = await SqliteMaintenanceThread.start(this.path, this.display, this.connection);
    this.db.exec('PRAGMA wal_autocheckpoint = 0');
    this.local.stopIndexing();
    this.local.countCommitsInto(this.maintenance.committed);
  }

  /** A unit to the writer; session writes (everything but prune) fail closed after the store timeout. */
  private write(op: WriteOp, defer = false): Promise<WriteValue> {
    if (this.closed) return Promise.reject(new Error('session store is closed'));
    if (this.thread) {
      const p = this.thread.submit(op, defer);
      return op.op === 'prune' ? p : this.deadlines.watch(p);
    }
    return this.local.submit(op, defer, op.op === 'prune' ? undefined : this.deadlines);
  }

  private stmt(sql: string): StatementSync {
    return this.stmts.get(sql);
  }

  private map(err: unknown): unknown {
    return mapSqliteError(err, this.display, this.busyMs);
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('session store is closed');
  }

  /** Before a read of events: open, and the events journal moved into events (SqliteWriter.catchUp). */
  private readable(): void {
    this.checkOpen();
    try {
      this.local.catchUp();
    } catch (err) {
      throw this.map(err);
    }
  }

  /** Runs `fn` in its own immediate transaction, now (used for reads-modify-writes outside the queue). */
  private tx<T>(fn: () => T, alreadyBegun = false): T {
    try {
      if (!alreadyBegun) this.db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      throw this.map(err);
    }
    try {
      const r = fn();
      this.db.exec('COMMIT');
      return r;
    } catch (err) {
      try {
        this.db.exec('ROLLBACK');
      } catch {
        // already rolled back
      }
      throw this.map(err);
    }
  }

  /**
   * Adds committed events above the watermark to the full-text index (see SqliteWriter.indexNow); returns how
   * many rows it indexed.
   */
  indexNow(maxRows = 20_000): number {
    if (this.closed) return 0;
    return this.local.indexNow(maxRows);
  }

  // ---- schema ------------------------------------------------------------------------------------

  async migrate(): Promise<{ from: number; to: number }> {
    this.checkOpen();
    const result = this.tx(() => {
      this.db.exec(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
      );
      const cur = Number((this.db.prepare('SELECT coalesce(max(version), 0) AS v FROM schema_migrations').get() as Row)['v']);
      if (cur > SQLITE_SCHEMA_VERSION) {
        throw new DlpctlError(
          'STORE_TOO_NEW',
          `this store was migrated by a newer dlpctl (schema ${cur}, this binary knows ${SQLITE_SCHEMA_VERSION}); upgrade dlpctl`,
        );
      }
      const ins = this.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
      for (const m of SQLITE_MIGRATIONS) {
        if (m.version <= cur) continue;
        this.db.exec(m.sql);
        ins.run(m.version, m.name, this.now().toISOString());
      }
      return { from: cur, to: Math.max(cur, SQLITE_SCHEMA_VERSION) };
    });
    this.local.schemaChanged();
    return result;
  }

  private schemaVersion(): number {
    try {
      return Number((this.stmt('SELECT coalesce(max(version), 0) AS v FROM schema_migrations').get() as Row)['v']);
    } catch {
      return 0;
    }
  }

  async info(): Promise<StoreInfo> {
    this.readable();
    try {
      const n = (sql: string): number => Number((this.db.prepare(sql).get() as Row)['n']);
      const version = this.schemaVersion();
      const pageCount = Number((this.db.prepare('PRAGMA page_count').get() as Row)['page_count']);
      const pageSize = Number((this.db.prepare('PRAGMA page_size').get() as Row)['page_size']);
      let wal = 0;
      try {
        wal = fs.statSync(`${this.path}-wal`).size;
      } catch {
        // no WAL file right now
      }
      return {
        engine: 'sqlite',
        url: this.display,
        schemaVersion: version,
        binaryVersion: SQLITE_SCHEMA_VERSION,
        sessions: version ? n(`SELECT count(*) AS n FROM sessions WHERE id != '${MAINTENANCE_SESSION_ID}'`) : 0,
        events: version ? n('SELECT count(*) AS n FROM events') : 0,
        approvals: version ? n('SELECT count(*) AS n FROM approvals') : 0,
        sizeBytes: pageCount * pageSize + wal,
      };
    } catch (err) {
      throw this.map(err);
    }
  }

  // ---- sessions and events -----------------------------------------------------------------------

  async createSession(input: NewSession): Promise<Session> {
    const startedAt = input.startedAt ?? this.now().toISOString();
    const session: Session = {
      ...input,
      id: input.id ?? newSessionId(new Date(startedAt)),
      startedAt,
      counters: zeroCounters(),
    };
    return (await this.write({ op: 'createSession', session })) as Session;
  }

  async endSession(id: string, outcome: Outcome, counters: Counters): Promise<Session> {
    return (await this.write({ op: 'endSession', id, outcome, counters, time: this.now().toISOString() })) as Session;
  }

  async append(sessionId: string, event: NewEvent, options: AppendOptions = {}): Promise<StoreEvent> {
    const [e] = (await this.write({ op: 'append', sessionId, events: [event], time: this.stamp() }, options.defer)) as StoreEvent[];
    return e!;
  }

  async appendMany(sessionId: string, events: NewEvent[], options: AppendOptions = {}): Promise<StoreEvent[]> {
    if (events.length === 0) return [];
    return (await this.write({ op: 'append', sessionId, events, time: this.stamp() }, options.defer)) as StoreEvent[];
  }

  /**
   * Now by this store's clock, for the events of an append that carry no time of their own (it goes beside
   * them in the unit: a copy of each event just to stamp it was a visible cost).
   */
  private stamp(): string {
    return isoOf(this.now().getTime());
  }

  async getSession(id: string): Promise<Session | undefined> {
    this.checkOpen();
    try {
      const r = this.stmt('SELECT * FROM sessions WHERE id = ?').get(id) as Row | undefined;
      return r === undefined ? undefined : rowToSession(r);
    } catch (err) {
      throw this.map(err);
    }
  }

  async listEvents(sessionId: string, options: ListEventsOptions = {}): Promise<StoreEvent[]> {
    this.readable();
    try {
      const rows = this.stmt('SELECT body, hash FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?').all(
        sessionId,
        options.afterSeq ?? 0,
        clampLimit(options.limit, 100_000),
      ) as Row[];
      return rows.map((r) => rowToEvent(r['body'] as string, r['hash'] as string));
    } catch (err) {
      throw this.map(err);
    }
  }

  async search(q: SearchQuery): Promise<SearchHit[]> {
    this.readable();
    const where: string[] = [];
    const params: (string | number)[] = [];
    const tokens = q.text === undefined ? [] : parseSearch(q.text);
    if (q.text !== undefined && q.text.trim() !== '' && tokens.length === 0) return [];
    if (q.resource !== undefined) {
      where.push('s.resource = ?');
      params.push(q.resource);
    }
    if (q.identity !== undefined) {
      where.push('(s.subject = ? OR s.email = ?)');
      params.push(q.identity, q.identity);
    }
    if (q.since !== undefined) {
      where.push('e.time_ms >= ?');
      params.push(toMs(q.since, 'since'));
    }
    if (q.until !== undefined) {
      where.push('e.time_ms < ?');
      params.push(toMs(q.until, 'until'));
    }
    if (q.decision !== undefined) {
      where.push('e.decision = ?');
      params.push(q.decision);
    }
    const limit = clampLimit(q.limit, DEFAULT_SEARCH_LIMIT);
    const cols = 'e.body AS e_body, e.hash AS e_hash, e.text AS e_text, s.*';
    const sessions = new Map<string, Session>();
    const toHit = (r: Row): SearchHit => {
      const id = r['id'] as string;
      let s = sessions.get(id);
      if (s === undefined) {
        s = rowToSession(r);
        sessions.set(id, s);
      }
      return { event: rowToEvent(r['e_body'] as string, r['e_hash'] as string), session: s };
    };
    try {
      if (tokens.length === 0) {
        const rows = this.db
          .prepare(`SELECT ${cols} FROM events e JOIN sessions s ON s.id = e.session_id ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY e.id DESC LIMIT ?`)
          .all(...params, limit) as Row[];
        return rows.map(toHit);
      }
      // A long unindexed tail (e.g. left by a process that exited) is indexed first, if we may write.
      const gap = this.stmt('SELECT (SELECT coalesce(max(id), 0) FROM events) - indexed_upto AS n FROM fts_state WHERE id = 1').get() as Row;
      if (Number(gap['n']) > 5 * SqliteWriter.INDEX_EVERY) while (this.indexNow() > 0);
      // One read snapshot: the rows above the watermark (matched here) and the index below it.
      this.db.exec('BEGIN');
      try {
        const upto = Number((this.stmt('SELECT indexed_upto AS u FROM fts_state WHERE id = 1').get() as Row)['u']);
        const tail = (
          this.db
            .prepare(`SELECT ${cols} FROM events e JOIN sessions s ON s.id = e.session_id WHERE e.id > ? AND e.text IS NOT NULL ${where.map((w) => `AND ${w}`).join(' ')} ORDER BY e.id DESC`)
            .all(upto, ...params) as Row[]
        ).filter((r) => matchesTerms(r['e_text'] as string, tokens));
        const hits = tail.slice(0, limit).map(toHit);
        if (hits.length < limit) {
          const rows = this.db
            .prepare(
              `SELECT ${cols} FROM events_fts f JOIN events e ON e.id = f.rowid JOIN sessions s ON s.id = e.session_id
               WHERE events_fts MATCH ? ${where.map((w) => `AND ${w}`).join(' ')} ORDER BY f.rowid DESC LIMIT ?`,
            )
            .all(tokens.map((t) => `"${t.word}"${t.prefix ? '*' : ''}`).join(' '), ...params, limit - hits.length) as Row[];
          for (const r of rows) hits.push(toHit(r));
        }
        return hits;
      } finally {
        this.db.exec('COMMIT');
      }
    } catch (err) {
      throw this.map(err);
    }
  }

  async verify(options: string | VerifyOptions = {}): Promise<VerifyResult> {
    this.readable();
    const o: VerifyOptions = typeof options === 'string' ? { sessionId: options } : options;
    const db = this.db;
    const source: IntegritySource = {
      sessions: async (id) =>
        (
          (id === undefined ? db.prepare('SELECT * FROM sessions ORDER BY id').all() : db.prepare('SELECT * FROM sessions WHERE id = ?').all(id)) as Row[]
        ).map((r) => rawSessionRow(r, (v) => Date.parse(v as string))),
      events: async function* (id) {
        let page: RawEventRow[] = [];
        for (const r of db.prepare('SELECT seq, type, time_ms, decision, text, body, hash FROM events WHERE session_id = ? ORDER BY seq').iterate(id) as Iterable<Row>) {
          page.push({
            seq: Number(r['seq']),
            type: r['type'] as string,
            timeMs: Number(r['time_ms']),
            decision: (r['decision'] as string | null) ?? null,
            text: (r['text'] as string | null) ?? null,
            body: r['body'] as string,
            hash: r['hash'] as string,
          });
          if (page.length === 5000) {
            yield page;
            page = [];
          }
        }
        if (page.length > 0) yield page;
      },
      orphans: async () =>
        (db.prepare('SELECT DISTINCT session_id AS id FROM events WHERE session_id NOT IN (SELECT id FROM sessions) ORDER BY 1').all() as Row[]).map((r) => r['id'] as string),
      checkpoints: () => this.listCheckpoints(),
    };
    try {
      // One read snapshot for the whole check.
      db.exec('BEGIN');
      try {
        return await verifyIntegrity(source, o, (id) => new DlpctlError('STORE_NOT_FOUND', `session ${id} does not exist in ${this.display}`));
      } finally {
        db.exec('COMMIT');
      }
    } catch (err) {
      throw this.map(err);
    }
  }

  async checkpoint(options: CheckpointOptions = {}): Promise<CheckpointRecord | undefined> {
    return (await this.write({
      op: 'checkpoint',
      time: options.time ?? this.now().toISOString(),
      ...(options.signingKey !== undefined ? { signingKey: options.signingKey } : {}),
      ...(options.force ? { force: true } : {}),
    })) as CheckpointRecord | undefined;
  }

  async listCheckpoints(): Promise<CheckpointRecord[]> {
    this.checkOpen();
    try {
      return (this.stmt('SELECT n, time, body, hash, signature FROM checkpoints ORDER BY n').all() as Row[]).map((r) => ({
        n: Number(r['n']),
        time: r['time'] as string,
        body: r['body'] as string,
        hash: r['hash'] as string,
        signature: (r['signature'] as string | null) ?? null,
      }));
    } catch (err) {
      throw this.map(err);
    }
  }

  async openSessions(): Promise<OpenSessionInfo[]> {
    this.readable();
    try {
      const rows = this.stmt(
        "SELECT s.id, s.started_at, e.body FROM sessions s LEFT JOIN events e ON e.session_id = s.id AND e.seq = 1 WHERE s.ended_at IS NULL AND s.id <> ? ORDER BY s.id",
      ).all(MAINTENANCE_SESSION_ID) as Row[];
      return rows.map((r) => openSessionInfo(r['id'] as string, r['started_at'] as string, r['body'] as string | null));
    } catch (err) {
      throw this.map(err);
    }
  }

  async closeCrashed(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    return (await this.write({ op: 'closeCrashed', ids })) as string[];
  }

  async prune(olderThanMs: number, now: Date = this.now()): Promise<PruneResult> {
    return (await this.write({ op: 'prune', olderThanMs, now: now.toISOString() })) as PruneResult;
  }

  // ---- approvals -----------------------------------------------------------------------------------

  private writeApproval(a: Approval, insert: boolean): void {
    if (insert) {
      this.stmt(
        'INSERT INTO approvals (id, session_id, resource, state, created_at, expires_at, version, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(a.id, a.sessionId, a.resource, a.state, a.createdAt, a.expiresAt, a.version, JSON.stringify(a));
    } else {
      this.stmt('UPDATE approvals SET state = ?, expires_at = ?, version = ?, data = ? WHERE id = ?').run(
        a.state,
        a.expiresAt,
        a.version,
        JSON.stringify(a),
        a.id,
      );
    }
  }

  async createApproval(input: NewApproval): Promise<Approval> {
    this.checkOpen();
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
        this.tx(() => this.writeApproval(a, true));
        return a;
      } catch (err) {
        const e = err as { errcode?: number; cause?: { errcode?: number } };
        const code = e.errcode ?? e.cause?.errcode;
        if (code === 1555 || code === 2067) {
          if (attempt < 10) continue; // id collision: draw another
        }
        throw err;
      }
    }
  }

  async getApproval(id: string): Promise<Approval | undefined> {
    this.checkOpen();
    try {
      const r = this.stmt('SELECT data FROM approvals WHERE id = ?').get(normalizeApprovalId(id)) as Row | undefined;
      return r === undefined ? undefined : (JSON.parse(r['data'] as string) as Approval);
    } catch (err) {
      throw this.map(err);
    }
  }

  async listApprovals(filter: { state?: ApprovalState } = {}): Promise<Approval[]> {
    this.checkOpen();
    try {
      const rows = (
        filter.state === undefined
          ? this.stmt('SELECT data FROM approvals ORDER BY created_at, id').all()
          : this.stmt('SELECT data FROM approvals WHERE state = ? ORDER BY created_at, id').all(filter.state)
      ) as Row[];
      return rows.map((r) => JSON.parse(r['data'] as string) as Approval);
    } catch (err) {
      throw this.map(err);
    }
  }

  async updateApproval(id: string, mutate: ApprovalMutator): Promise<ApprovalUpdate> {
    this.checkOpen();
    const key = normalizeApprovalId(id);
    return this.tx(() => {
      const r = this.stmt('SELECT data FROM approvals WHERE id = ?').get(key) as Row | undefined;
      if (r === undefined) throw new DlpctlError('STORE_NOT_FOUND', `no approval ${key}; list pending ones with \`dlpctl approvals\``);
      const current = JSON.parse(r['data'] as string) as Approval;
      const next = mutate(structuredClone(current));
      if (next === undefined) return { approval: current, changed: false };
      const stored: Approval = { ...next, id: current.id, version: current.version + 1 };
      this.writeApproval(stored, false);
      return { approval: stored, changed: true };
    });
  }

  async waitForApprovalChange(id: string, signal?: AbortSignal, sinceVersion?: number): Promise<Approval> {
    let base = sinceVersion;
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      const a = await this.getApproval(id);
      if (a === undefined) throw new DlpctlError('STORE_NOT_FOUND', `no approval ${normalizeApprovalId(id)}`);
      if (base === undefined) base = a.version;
      else if (a.version > base) return a;
      await sleep(this.pollMs, signal);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Let queued writes commit first, and the full-text index catch up.
    if (this.thread) await this.thread.close();
    await this.local.close();
    if (this.maintenance) await this.maintenance.close();
    this.closed = true;
    this.stmts.clear();
    // Leave no large WAL behind, even when another process keeps the file open (it would not be deleted).
    checkpointWalIfLarge(this.db, this.path, this.busyMs, 'TRUNCATE', 0);
    this.db.close();
  }
}
