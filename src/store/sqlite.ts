/**
 * The embedded SQLite session store (`node:sqlite`, synchronous).
 *
 * Writes go through one group-commit queue per process: `append`, `createSession`, `endSession`, `prune`
 * enqueue a unit of work and the queue runs everything that arrived since the last commit, on the next
 * `setImmediate`, in ONE `BEGIN IMMEDIATE … COMMIT`, each unit inside its own SAVEPOINT so one bad unit
 * fails alone. A promise resolves only after its batch committed: with `synchronous=NORMAL` (the default)
 * that survives a crash of the process; with `synchronous=FULL` (`?sync=full`) the WAL is fsynced at every
 * commit, so "append returned" means "on disk" even across power loss.
 *
 * Several processes may write one file: `BEGIN IMMEDIATE` takes SQLite's write lock (waiting up to
 * `busy_timeout`), and each unit reads its session's head (last seq and hash) inside the transaction, so
 * the chain is correct even when two processes append to the same session.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { DlpctlError } from '../errors.js';
import { ChainVerifier, GENESIS_HASH, sealEvent } from './chain.js';
import {
  buildEvent,
  clampLimit,
  DEFAULT_SEARCH_LIMIT,
  eventDecision,
  eventText,
  maintenanceSession,
  rowToEvent,
  matchesTerms,
  parseSearch,
  sleep,
  toMs,
} from './common.js';
import { newApprovalId, newSessionId, normalizeApprovalId } from './ids.js';
import { SQLITE_MIGRATIONS } from './sqlite-migrations.js';
import {
  MAINTENANCE_SESSION_ID,
  zeroCounters,
  type Approval,
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

interface Work {
  run(): unknown;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

export const SQLITE_SCHEMA_VERSION = SQLITE_MIGRATIONS[SQLITE_MIGRATIONS.length - 1]!.version;

/** Translates a node:sqlite / fs error into a DlpctlError with the fix in the message. */
export function mapSqliteError(err: unknown, display: string, busyMs = 5000): unknown {
  if (err instanceof DlpctlError) return err;
  const e = err as { code?: string; errcode?: number; errstr?: string; message?: string };
  if (e.code === 'ERR_SQLITE_ERROR' && typeof e.errcode === 'number') {
    const primary = e.errcode & 0xff;
    const what = e.errstr ?? e.message ?? 'error';
    switch (primary) {
      case 5: // SQLITE_BUSY
      case 6: // SQLITE_LOCKED
        return new DlpctlError(
          'STORE_LOCKED',
          `the store ${display} stayed locked by another process for ${busyMs / 1000} s; retry, or look for a stuck dlpctl process`,
          { cause: err },
        );
      case 11: // SQLITE_CORRUPT
      case 26: // SQLITE_NOTADB
        return new DlpctlError(
          'STORE_CORRUPT',
          `the store ${display} is not a dlpctl database or is corrupt (${what}); move the file aside and run \`dlpctl store migrate\` to start a new store`,
          { cause: err },
        );
      case 8: // SQLITE_READONLY
      case 14: // SQLITE_CANTOPEN
      case 3: // SQLITE_PERM
        return new DlpctlError(
          'STORE_READONLY',
          `cannot write the store ${display} (${what}); check the permissions of the file and its directory, or choose another store with --store`,
          { cause: err },
        );
      default:
        return err;
    }
  }
  if (e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS') {
    return new DlpctlError(
      'STORE_READONLY',
      `cannot create the store ${display} (${e.code}: permission denied or read-only file system); choose a writable path with --store`,
      { cause: err },
    );
  }
  return err;
}

function rowToSession(r: Row): Session {
  const s: Session = {
    id: r['id'] as string,
    resource: r['resource'] as string,
    kind: r['kind'] as Session['kind'],
    identity: JSON.parse(r['identity'] as string) as Session['identity'],
    clientAddr: r['client_addr'] as string,
    startedAt: r['started_at'] as string,
    counters: JSON.parse(r['counters'] as string) as Counters,
  };
  if (r['reason'] != null) s.reason = r['reason'] as string;
  if (r['ended_at'] != null) s.endedAt = r['ended_at'] as string;
  if (r['outcome'] != null) s.outcome = r['outcome'] as Outcome;
  return s;
}

export class SqliteStore implements SessionStore {
  readonly engine = 'sqlite' as const;
  readonly path: string;
  readonly display: string;
  private readonly db: DatabaseSync;
  private readonly now: () => Date;
  private readonly busyMs: number;
  private readonly pollMs: number;
  private queue: Work[] = [];
  private flushScheduled = false;
  private closed = false;
  private readonly stmts = new Map<string, StatementSync>();
  /** Events this process committed that the full-text index may not hold yet. */
  private unindexed = 0;
  private batchEvents = 0;
  private indexTimer: NodeJS.Timeout | undefined;
  private indexScheduled = false;

  private constructor(file: string, display: string, db: DatabaseSync, opts: OpenStoreOptions) {
    this.path = file;
    this.display = display;
    this.db = db;
    this.now = opts.now ?? (() => new Date());
    this.busyMs = opts.busyTimeoutMs ?? 5000;
    this.pollMs = opts.pollIntervalMs ?? 250;
  }

  static open(file: string, display: string, opts: OpenStoreOptions = {}): SqliteStore {
    const busyMs = opts.busyTimeoutMs ?? 5000;
    if (!fs.existsSync(file)) {
      if (opts.create === false) {
        throw new DlpctlError('STORE_NOT_FOUND', `no store at ${display}; run \`dlpctl store migrate\` to create it, or check --store`);
      }
      try {
        fs.mkdirSync(path.dirname(file), { recursive: true });
      } catch (err) {
        throw mapSqliteError(err, display, busyMs);
      }
    }
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(file);
    } catch (err) {
      throw mapSqliteError(err, display, busyMs);
    }
    try {
      db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(busyMs))}`);
      // WAL: readers never block the writer and vice versa; FULL: fsync the WAL at every commit (durable).
      db.exec('PRAGMA journal_mode = WAL');
      db.exec(`PRAGMA synchronous = ${opts.sqliteSynchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      db.exec('PRAGMA foreign_keys = OFF');
      // Touch the schema so a file that is not a database fails here, not on first use.
      db.prepare('SELECT count(*) FROM sqlite_master').get();
    } catch (err) {
      db.close();
      throw mapSqliteError(err, display, busyMs);
    }
    return new SqliteStore(file, display, db, opts);
  }

  /** A statement of the group-commit path, prepared once (exec would compile it on every commit). */
  private run(sql: string): void {
    this.stmt(sql).run();
  }

  private stmt(sql: string): StatementSync {
    let s = this.stmts.get(sql);
    if (s === undefined) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  private map(err: unknown): unknown {
    return mapSqliteError(err, this.display, this.busyMs);
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('session store is closed');
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

  // ---- group commit -------------------------------------------------------------------------------

  private enqueue<T>(run: () => T): Promise<T> {
    this.checkOpen();
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * Takes SQLite's write lock without its busy handler (which backs off to 100 ms sleeps, so a process that
   * commits continuously starves the others): try once, and if another process holds the lock, try again
   * in a millisecond or two without blocking the event loop, until the busy timeout has passed.
   */
  private tryBeginImmediate(): boolean {
    this.run('PRAGMA busy_timeout = 0');
    try {
      this.run('BEGIN IMMEDIATE');
      return true;
    } catch (err) {
      if (((err as { errcode?: number }).errcode ?? 0) % 256 === 5) return false;
      throw err;
    } finally {
      this.run(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(this.busyMs))}`);
    }
  }

  private lockWaitSince: number | undefined;

  private flush(): void {
    this.flushScheduled = false;
    if (this.queue.length === 0 || this.closed) return;
    let locked: boolean;
    try {
      locked = this.tryBeginImmediate();
    } catch (err) {
      const batch = this.queue;
      this.queue = [];
      const mapped = this.map(err);
      for (const w of batch) w.reject(mapped);
      return;
    }
    if (!locked) {
      const now = Date.now();
      this.lockWaitSince ??= now;
      if (now - this.lockWaitSince < this.busyMs) {
        this.flushScheduled = true;
        setTimeout(() => this.flush(), 1 + Math.floor(Math.random() * 2));
        return;
      }
      this.lockWaitSince = undefined;
      const batch = this.queue;
      this.queue = [];
      const mapped = this.map(Object.assign(new Error('database is locked'), { code: 'ERR_SQLITE_ERROR', errcode: 5, errstr: 'database is locked' }));
      for (const w of batch) w.reject(mapped);
      return;
    }
    this.lockWaitSince = undefined;
    // Everything that arrived up to now, including while we waited for the lock, commits together (up to
    // MAX_BATCH units, so one commit never holds the lock and the event loop for long).
    const batch = this.queue.splice(0, SqliteStore.MAX_BATCH);
    if (this.queue.length > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    const results: { ok: boolean; value: unknown }[] = [];
    this.batchEvents = 0;
    try {
      for (const w of batch) {
        this.run('SAVEPOINT unit');
        try {
          results.push({ ok: true, value: w.run() });
          this.run('RELEASE unit');
        } catch (err) {
          this.run('ROLLBACK TO unit');
          this.run('RELEASE unit');
          results.push({ ok: false, value: this.map(err) });
        }
      }
      this.run('COMMIT');
    } catch (err) {
      try {
        this.db.exec('ROLLBACK');
      } catch {
        // the failed COMMIT may already have rolled back
      }
      const mapped = this.map(err);
      for (const w of batch) w.reject(mapped);
      return;
    }
    this.noteAppended(this.batchEvents);
    batch.forEach((w, i) => {
      const r = results[i]!;
      if (r.ok) w.resolve(r.value);
      else w.reject(r.value);
    });
  }

  // ---- deferred full-text indexing -------------------------------------------------------------------

  private static readonly MAX_BATCH = 2000;
  private static readonly INDEX_EVERY = 2000;
  private static readonly INDEX_AFTER_MS = 1000;

  private noteAppended(n: number): void {
    if (n === 0) return;
    this.unindexed += n;
    if (this.unindexed >= SqliteStore.INDEX_EVERY) {
      if (!this.indexScheduled) {
        this.indexScheduled = true;
        setImmediate(() => {
          this.indexScheduled = false;
          this.indexNow();
        });
      }
    } else if (this.indexTimer === undefined) {
      this.indexTimer = setTimeout(() => {
        this.indexTimer = undefined;
        this.indexNow();
      }, SqliteStore.INDEX_AFTER_MS);
      this.indexTimer.unref();
    }
  }

  /**
   * Adds committed events above the watermark to the full-text index, in one transaction. Idempotent and
   * safe from any process (the watermark moves under the write lock). Errors are ignored: the rows stay
   * searchable through the unindexed-tail scan and the next run retries.
   */
  indexNow(maxRows = 20_000): number {
    if (this.closed) return 0;
    if (this.indexTimer !== undefined) {
      clearTimeout(this.indexTimer);
      this.indexTimer = undefined;
    }
    this.unindexed = 0;
    try {
      // Never wait for the write lock here: if another process holds it, try again later.
      if (!this.tryBeginImmediate()) {
        this.noteAppended(1);
        return 0;
      }
      return this.tx(() => {
        const upto = Number((this.stmt('SELECT indexed_upto AS u FROM fts_state WHERE id = 1').get() as Row)['u']);
        const max = Number((this.stmt('SELECT coalesce(max(id), 0) AS m FROM events').get() as Row)['m']);
        if (max <= upto) return 0;
        const hi = Math.min(max, upto + maxRows);
        this.stmt('INSERT INTO events_fts (rowid, text) SELECT id, text FROM events WHERE id > ? AND id <= ? AND text IS NOT NULL').run(upto, hi);
        this.stmt('UPDATE fts_state SET indexed_upto = ? WHERE id = 1').run(hi);
        if (hi < max) this.noteAppended(max - hi);
        return hi - upto;
      }, true);
    } catch {
      return 0;
    }
  }

  // ---- schema ------------------------------------------------------------------------------------

  async migrate(): Promise<{ from: number; to: number }> {
    this.checkOpen();
    return this.tx(() => {
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
  }

  private schemaVersion(): number {
    try {
      return Number((this.stmt('SELECT coalesce(max(version), 0) AS v FROM schema_migrations').get() as Row)['v']);
    } catch {
      return 0;
    }
  }

  async info(): Promise<StoreInfo> {
    this.checkOpen();
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

  private insertSession(s: Session): void {
    this.stmt(
      `INSERT INTO sessions (id, resource, kind, subject, email, identity, client_addr, reason, started_at, counters, last_seq, last_hash, last_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
    ).run(
      s.id,
      s.resource,
      s.kind,
      s.identity.subject,
      s.identity.email ?? null,
      JSON.stringify(s.identity),
      s.clientAddr,
      s.reason ?? null,
      s.startedAt,
      JSON.stringify(s.counters),
      GENESIS_HASH,
      toMs(s.startedAt, 'startedAt'),
    );
  }

  /** Appends events to a session inside the current transaction, reading its head from the row. */
  private appendInTx(sessionId: string, inputs: NewEvent[]): StoreEvent[] {
    const head = this.stmt('SELECT last_seq, last_hash, subject FROM sessions WHERE id = ?').get(sessionId) as Row | undefined;
    if (head === undefined) {
      throw new DlpctlError('STORE_NOT_FOUND', `session ${sessionId} does not exist in ${this.display}`);
    }
    let seq = Number(head['last_seq']);
    let prev = head['last_hash'] as string;
    const subject = head['subject'] as string;
    const ins = this.stmt(
      'INSERT INTO events (session_id, seq, type, time_ms, decision, text, body, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const out: StoreEvent[] = [];
    let lastMs = 0;
    for (const input of inputs) {
      seq++;
      const { event, body } = sealEvent(prev, buildEvent(sessionId, seq, subject, input, this.now));
      lastMs = Date.parse(event.time);
      ins.run(sessionId, seq, event.type, lastMs, eventDecision(event), eventText(event), body, event.hash);
      prev = event.hash;
      out.push(event);
    }
    this.stmt('UPDATE sessions SET last_seq = ?, last_hash = ?, last_ms = max(last_ms, ?) WHERE id = ?').run(seq, prev, lastMs, sessionId);
    this.batchEvents += out.length;
    return out;
  }

  async createSession(input: NewSession): Promise<Session> {
    const startedAt = input.startedAt ?? this.now().toISOString();
    const session: Session = {
      ...input,
      id: input.id ?? newSessionId(new Date(startedAt)),
      startedAt,
      counters: zeroCounters(),
    };
    return this.enqueue(() => {
      this.insertSession(session);
      const start: NewEvent = {
        type: 'session.start',
        resource: session.resource,
        kind: session.kind,
        clientAddr: session.clientAddr,
        identity: session.identity,
        time: startedAt,
        ...(session.reason === undefined ? {} : { reason: session.reason }),
      };
      this.appendInTx(session.id, [start]);
      return session;
    });
  }

  async endSession(id: string, outcome: Outcome, counters: Counters): Promise<Session> {
    return this.enqueue(() => {
      const [ev] = this.appendInTx(id, [{ type: 'session.end', outcome, counters }]);
      this.stmt('UPDATE sessions SET ended_at = ?, outcome = ?, counters = ? WHERE id = ?').run(
        ev!.time,
        outcome,
        JSON.stringify(counters),
        id,
      );
      return rowToSession(this.stmt('SELECT * FROM sessions WHERE id = ?').get(id) as Row);
    });
  }

  async append(sessionId: string, event: NewEvent): Promise<StoreEvent> {
    const [e] = await this.enqueue(() => this.appendInTx(sessionId, [event]));
    return e!;
  }

  async appendMany(sessionId: string, events: NewEvent[]): Promise<StoreEvent[]> {
    if (events.length === 0) return [];
    return this.enqueue(() => this.appendInTx(sessionId, events));
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
    this.checkOpen();
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
    this.checkOpen();
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
      if (Number(gap['n']) > 5 * SqliteStore.INDEX_EVERY) while (this.indexNow() > 0);
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

  async verify(sessionId?: string): Promise<VerifyResult> {
    this.checkOpen();
    const result: VerifyResult = { ok: true, sessionsChecked: 0, eventsChecked: 0 };
    try {
      const heads = (
        sessionId === undefined
          ? this.db.prepare('SELECT id, last_seq, last_hash FROM sessions ORDER BY id').all()
          : this.db.prepare('SELECT id, last_seq, last_hash FROM sessions WHERE id = ?').all(sessionId)
      ) as Row[];
      if (sessionId !== undefined && heads.length === 0) {
        throw new DlpctlError('STORE_NOT_FOUND', `session ${sessionId} does not exist in ${this.display}`);
      }
      const rowsStmt = this.db.prepare('SELECT seq, body, hash FROM events WHERE session_id = ? ORDER BY seq');
      for (const h of heads) {
        const id = h['id'] as string;
        const v = new ChainVerifier(id);
        result.sessionsChecked++;
        let bad: { seq: number; reason: string } | undefined;
        for (const r of rowsStmt.iterate(id) as Iterable<Row>) {
          result.eventsChecked++;
          bad = v.check({ sessionId: id, seq: Number(r['seq']), body: r['body'] as string, hash: r['hash'] as string });
          if (bad) break;
        }
        bad ??= v.finish(Number(h['last_seq']), h['last_hash'] as string);
        if (bad) {
          result.ok = false;
          result.firstBad = { sessionId: id, ...bad };
          return result;
        }
      }
      return result;
    } catch (err) {
      throw this.map(err);
    }
  }

  async prune(olderThanMs: number, now: Date = this.now()): Promise<PruneResult> {
    const cutoff = now.getTime() - olderThanMs;
    return this.enqueue(() => {
      const sel = `SELECT id FROM sessions WHERE last_ms < ? AND id != '${MAINTENANCE_SESSION_ID}'`;
      const sessionsRemoved = Number((this.db.prepare(`SELECT count(*) AS n FROM (${sel})`).get(cutoff) as Row)['n']);
      const eventsRemoved = Number(
        (this.db.prepare(`SELECT count(*) AS n FROM events WHERE session_id IN (${sel})`).get(cutoff) as Row)['n'],
      );
      this.db.prepare(`DELETE FROM events WHERE session_id IN (${sel})`).run(cutoff);
      this.db.prepare(`DELETE FROM approvals WHERE session_id IN (${sel})`).run(cutoff);
      this.db.prepare(`DELETE FROM sessions WHERE id IN (${sel})`).run(cutoff);
      if (this.stmt('SELECT 1 FROM sessions WHERE id = ?').get(MAINTENANCE_SESSION_ID) === undefined) {
        this.insertSession(maintenanceSession(now));
      }
      this.appendInTx(MAINTENANCE_SESSION_ID, [
        { type: 'store.prune', olderThanMs, cutoff: new Date(cutoff).toISOString(), sessionsRemoved, eventsRemoved, time: now.toISOString() },
      ]);
      return { sessionsRemoved, eventsRemoved };
    });
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
    // Let queued writes commit first.
    while (this.queue.length > 0 || this.flushScheduled) {
      await new Promise<void>((r) => setImmediate(r));
    }
    if (this.unindexed > 0) while (this.indexNow() > 0);
    if (this.indexTimer !== undefined) clearTimeout(this.indexTimer);
    this.closed = true;
    this.stmts.clear();
    this.db.close();
  }
}
