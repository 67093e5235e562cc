/**
 * The write path of the SQLite store: group commit, the hash-chained appends, session start/end, prune and
 * the deferred full-text indexing. It owns one `DatabaseSync` connection and runs either on the store's
 * own thread (`SqliteStore`; a tunnel's commits run there) or on a worker thread (`sqlite-worker.ts`: a
 * `sync=full` tunnel's commits, so an fsync never stalls the traffic; and the maintenance thread's indexing).
 *
 * Group commit: `submit` queues a unit of work, and everything that arrived since the last commit runs on
 * the next `setImmediate` in ONE `BEGIN IMMEDIATE … COMMIT`. A deferred unit (AppendOptions.defer) does not
 * ask for a commit: it waits for the next one, or DEFER_WRITE_MS. A promise resolves only after its batch
 * committed: with `synchronous=NORMAL` (the default) that survives a crash of the process; with
 * `synchronous=FULL` the WAL is fsynced at every commit.
 *
 * One commit (see batch.ts, shared with the PostgreSQL store): under the write lock, drop the cached chain
 * heads if another connection committed since (`syncHeads`), read the heads the cache lacks, plan every
 * unit in memory (`planUnit`; a unit that fails, e.g. an unknown session, is answered alone and leaves
 * nothing behind, so no per-unit SAVEPOINT), then write the new sessions and the events in multi-row INSERTs
 * (into the events journal), and commit. A moved head is not written to its sessions row (schema 4; only a
 * session's end writes its row): the journal holds it until its rows move into events, which brings the rows
 * up to date (`ingestInTx`); a head read from the store takes the newer of the two (`readHead`). Units that
 * cannot join a batch (`isExclusive`: prune) commit alone, in queue order. A new op type adds a case to `sessionOf` and `planUnit` (or to `isExclusive`
 * and `applyExclusive`). Units carry their times (stamped by the caller), so the writer needs no clock and
 * its work is plain data that can cross to a worker.
 *
 * Several processes may write one file: `BEGIN IMMEDIATE` takes SQLite's write lock, and a head moved by
 * another process is noticed through `PRAGMA data_version`, so the chain is correct even when two
 * processes append to the same session (`dlpctl approve` appending to a tunnel's session).
 */
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { DlpctlError } from '../errors.js';
import { ChainBatch, type EventRow, type Head } from './batch.js';
import { GENESIS_HASH } from './chain.js';
import { buildCheckpoint } from './checkpoint.js';
import { countersFromEvents, DEFER_WRITE_MS, maintenanceSession, sessionRowValues, toMs, WatchedWrite, type StoreDeadlines } from './common.js';
import { MAINTENANCE_SESSION_ID, type CheckpointRecord, type Counters, type EventBody, type NewEvent, type Outcome, type PruneResult, type Session, type StoreEvent } from './types.js';

type Row = Record<string, unknown>;

/** One unit of write work; plain data (it may be posted to a worker). */
export type WriteOp =
  | { op: 'createSession'; session: Session }
  | { op: 'endSession'; id: string; outcome: Outcome; counters: Counters; time: string }
  /** `time`: of the events that carry none (the caller's clock, when it queued them). */
  | { op: 'append'; sessionId: string; events: NewEvent[]; time?: string }
  | { op: 'prune'; olderThanMs: number; now: string }
  | { op: 'checkpoint'; time: string; signingKey?: string; force?: boolean }
  | { op: 'closeCrashed'; ids: string[] };

export type WriteValue = Session | StoreEvent[] | PruneResult | CheckpointRecord | undefined | string[];

/** The session a batchable unit writes to (its head is read before planning when the cache lacks it). */
function sessionOf(op: WriteOp): string {
  switch (op.op) {
    case 'append':
      return op.sessionId;
    case 'createSession':
      return op.session.id;
    case 'endSession':
      return op.id;
    case 'prune':
    case 'checkpoint':
    case 'closeCrashed':
      return '';
  }
}

/** Units that do not join a group commit: they run alone in their own transaction, in queue order. */
function isExclusive(op: WriteOp): boolean {
  return op.op === 'prune' || op.op === 'checkpoint' || op.op === 'closeCrashed';
}

/** Rows per multi-row INSERT (8 parameters each; SQLite allows 32766). */
const ROWS_PER_INSERT = 200;

/**
 * WAL bounds. SQLite never shrinks the WAL file by itself, and a PASSIVE checkpoint beside a writer that
 * never pauses (a pipelining client) never finds the whole log copied, so the log never restarts and the
 * file only grows. So the writer itself, between two of its transactions, runs a RESTART checkpoint once
 * the WAL file has passed WAL_CHECKPOINT_BYTES: being the writer, it waits for no writer, only copies what the
 * maintenance thread's PASSIVE checkpoints have not yet copied, and has the next commit write the log from the
 * start of the file again; journal_size_limit (the same bound) cuts the file back to the bound then. The file so
 * stays at the bound and grows past it only when the log does. (A TRUNCATE checkpoint there, which empties the
 * file, cost a tenth more CPU per commit in a microbenchmark, freeing 16 MB of page cache and the file's blocks
 * to allocate them again as the log grows back, and 2.5 µs more per statement through the tunnel over six
 * fresh pairs. Opening and closing still TRUNCATE: nothing is left behind.)
 * A RESTART or TRUNCATE from the maintenance thread would instead wait for a pause of the writer while holding
 * the checkpoint lock, which a pipelining client never gives: the WAL reached 200 MB that way; the maintenance
 * thread leaves a WAL past the bound to the writer. It does not wait for a reader holding an old snapshot: the next commit
 * tries again, and only well past the bound waits, up to 250 ms.
 */
export const WAL_CHECKPOINT_BYTES = 16 * 1024 * 1024;
const JOURNAL_SIZE_LIMIT = WAL_CHECKPOINT_BYTES;

/**
 * Checkpoints the WAL if its file has grown past the bound, without waiting for anyone (busy_timeout 0,
 * restored to `busyMs` after): RESTART (the log starts over within the file) or TRUNCATE (the file is emptied).
 * False if a reader or another checkpoint kept it from finishing (try again later).
 */
export function checkpointWalIfLarge(db: DatabaseSync, file: string, busyMs: number, mode: 'RESTART' | 'TRUNCATE', bound = WAL_CHECKPOINT_BYTES): boolean {
  let size = 0;
  try {
    size = fs.statSync(`${file}-wal`).size;
  } catch {
    return true;
  }
  if (size <= bound) return true;
  try {
    // Well past the bound (a reader or checkpoint kept the last tries from finishing), wait a little for them.
    db.exec(`PRAGMA busy_timeout = ${size > bound + bound / 2 ? 250 : 0}`);
    const r = db.prepare(`PRAGMA wal_checkpoint(${mode})`).get() as Row;
    return Number(r['busy']) === 0;
  } catch {
    return false;
  } finally {
    db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(busyMs))}`);
  }
}

/** The connection settings both threads use. */
export interface SqliteConnectionOptions {
  busyMs: number;
  synchronous: 'full' | 'normal';
  /** Create the file (and its directory) when missing; false → STORE_NOT_FOUND. */
  create: boolean;
}

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

/** Opens a connection with the store's pragmas (WAL, the chosen durability, the busy timeout). */
export function openSqliteConnection(file: string, display: string, o: SqliteConnectionOptions): DatabaseSync {
  if (!fs.existsSync(file)) {
    if (!o.create) {
      throw new DlpctlError('STORE_NOT_FOUND', `no store at ${display}: nothing has been recorded there (a tunnel creates it on first use, as does \`dlpctl store migrate\`); check --store, DLPCTL_STORE or the config's store`);
    }
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
    } catch (err) {
      throw mapSqliteError(err, display, o.busyMs);
    }
  }
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(file);
  } catch (err) {
    throw mapSqliteError(err, display, o.busyMs);
  }
  try {
    db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(o.busyMs))}`);
    // WAL: readers never block the writer and vice versa; FULL: fsync the WAL at every commit (durable).
    db.exec('PRAGMA journal_mode = WAL');
    db.exec(`PRAGMA synchronous = ${o.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    db.exec('PRAGMA foreign_keys = OFF');
    db.exec(`PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
    // Touch the schema so a file that is not a database fails here, not on first use.
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    // A WAL left large (a process killed mid-burst) is copied back and emptied by the next opener.
    checkpointWalIfLarge(db, file, o.busyMs, 'TRUNCATE');
  } catch (err) {
    db.close();
    throw mapSqliteError(err, display, o.busyMs);
  }
  return db;
}

/** Prepares each SQL text once per connection (exec would compile it on every call). */
export function statementCache(db: DatabaseSync): { get(sql: string): StatementSync; clear(): void } {
  const stmts = new Map<string, StatementSync>();
  return {
    get(sql) {
      let s = stmts.get(sql);
      if (s === undefined) {
        s = db.prepare(sql);
        stmts.set(sql, s);
      }
      return s;
    },
    clear: () => stmts.clear(),
  };
}

/** One queued unit and its caller's promise (the unit still commits when its turn comes after a STORE_TIMEOUT, see withStoreTimeout). */
class Work extends WatchedWrite<WriteValue> {
  readonly op: WriteOp;

  constructor(op: WriteOp, res: (value: WriteValue) => void, rej: (err: unknown) => void, deadlines: StoreDeadlines | undefined) {
    super(res, rej, deadlines);
    this.op = op;
  }
}

export class SqliteWriter {
  private readonly db: DatabaseSync;
  private readonly display: string;
  private readonly busyMs: number;
  private readonly stmts: ReturnType<typeof statementCache>;
  private queue: Work[] = [];
  private flushScheduled = false;
  /** Set while only deferred units wait (AppendOptions.defer): commits them if nothing else comes first. */
  private deferTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private lockWaitSince: number | undefined;
  /** Events committed here that the full-text index may not hold yet. */
  private unindexed = 0;
  /** Chain heads of the sessions this connection wrote last (see batch.ts and `syncHeads`). */
  private readonly heads = new Map<string, Head>();
  private dataVersion = -1;
  private readonly inserts = new Map<number, StatementSync>();
  /** Whether the store has the events journal (schema 3); looked up on first use. */
  private journal: boolean | undefined;
  /** Whether session heads follow the journal (schema 4); looked up on first use. */
  private rowsFollow: boolean | undefined;
  /** `head_epoch` as of our last look (see `syncHeads`). */
  private epoch = -1;
  /** Events committed since the WAL's size was last looked at. */
  private sinceWalCheck = 0;
  private readonly file: string | undefined;
  private indexTimer: NodeJS.Timeout | undefined;
  private indexScheduled = false;
  /** Events committed here, counted for the maintenance thread (countCommitsInto). */
  private committed: Int32Array | undefined;

  static readonly MAX_BATCH = 2000;
  /** Turns of the loop a commit may wait for more units while they keep arriving (see `flushWhenQuiet`). */
  static readonly GATHER_TURNS = 4;
  static readonly MAX_HEADS = 10_000;
  /** Events between two looks at the WAL's size. */
  static readonly WAL_CHECK_EVERY = 250;
  static readonly INDEX_EVERY = 2000;
  static readonly INDEX_AFTER_MS = 1000;

  /** Whether commits schedule the full-text catch-up (off when a maintenance thread does it). */
  private indexing: boolean;

  /** `file`: the database file, whose WAL this writer keeps bounded (see WAL_CHECKPOINT_BYTES). */
  constructor(db: DatabaseSync, display: string, busyMs: number, opts: { indexing?: boolean; file?: string } = {}) {
    this.db = db;
    this.file = opts.file;
    this.display = display;
    this.busyMs = busyMs;
    this.stmts = statementCache(db);
    this.indexing = opts.indexing ?? true;
  }

  /**
   * From now on, adds the events of each commit to `counter[0]` (shared with the maintenance thread, which
   * checkpoints by how much was written: see CHECKPOINT_EVENTS in sqlite-worker.ts).
   */
  countCommitsInto(counter: Int32Array): void {
    this.committed = counter;
  }

  /** Leaves the full-text catch-up to another connection (a maintenance thread) from now on. */
  stopIndexing(): void {
    this.indexing = false;
    if (this.indexTimer !== undefined) clearTimeout(this.indexTimer);
    this.indexTimer = undefined;
  }

  /**
   * Queues one unit; resolves once the batch holding it has committed. A deferred unit waits up to
   * DEFER_WRITE_MS for a unit that is not, and commits with it: one commit instead of two. With `deadlines`,
   * the promise fails with STORE_TIMEOUT if the commit has not come by the store timeout.
   */
  submit(op: WriteOp, defer = false, deadlines?: StoreDeadlines): Promise<WriteValue> {
    if (this.closed) return Promise.reject(new Error('session store is closed'));
    return new Promise<WriteValue>((resolve, reject) => {
      const watch = deadlines?.active === true ? deadlines : undefined;
      const work = new Work(op, resolve, reject, watch);
      watch?.add(work);
      this.queue.push(work);
      if (!defer) this.schedule();
      else if (!this.flushScheduled && this.deferTimer === undefined) {
        // A commit that comes first does not cancel the timer: deferred units follow urgent ones statement after
        // statement, and arming and clearing a timer for each was a visible cost. Left running, it fires at most
        // once per DEFER_WRITE_MS and commits only what is still waiting (a unit may so wait less, never more).
        this.deferTimer = setTimeout(() => {
          this.deferTimer = undefined;
          if (this.queue.length > 0) this.schedule();
        }, DEFER_WRITE_MS);
      }
    });
  }

  /** Whether units are queued or a commit is scheduled. */
  get busy(): boolean {
    return this.queue.length > 0 || this.flushScheduled;
  }

  /** Commits every queued unit now (deferred ones too) and waits until they have committed (or failed). */
  async drain(): Promise<void> {
    while (this.busy) {
      if (this.queue.length > 0) this.schedule();
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  /** Drains, brings the full-text index up to date and stops; the caller closes the connection. */
  async close(): Promise<void> {
    await this.drain();
    // Leave nothing in the journal and nothing unindexed: the next reader finds the events table complete.
    while (this.indexNow() > 0);
    this.cancelDeferTimer();
    if (this.indexTimer !== undefined) clearTimeout(this.indexTimer);
    this.indexTimer = undefined;
    this.closed = true;
    this.stmts.clear();
    this.inserts.clear();
  }

  /** Everything queued commits on a coming turn (a deferred unit's wait ends: it goes with this commit). */
  private schedule(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      const seen = this.queue.length;
      setImmediate(() => this.flushWhenQuiet(seen, 0));
    }
  }

  /**
   * Commits on the first turn of the loop that brought no unit since the last look, or after GATHER_TURNS more
   * turns. A lone client's statement commits on the next turn, as before; while units keep arriving (several
   * clients, each waiting for its own statement's record) a turn more gathers the next ones into the same
   * commit. A commit costs about as much as the events in it (the locks, the WAL frames): under pgbench -S -c 8,
   * 3 statements per commit became 6 and more, and the tunnel's CPU per statement fell by a sixth (2 turns; 4 a
   * little better again, 8 no better), for a wait of a few microseconds per turn.
   */
  private flushWhenQuiet(seen: number, turns: number): void {
    const n = this.queue.length;
    if (this.flushScheduled && n > seen && turns < SqliteWriter.GATHER_TURNS && n < SqliteWriter.MAX_BATCH) {
      setImmediate(() => this.flushWhenQuiet(n, turns + 1));
      return;
    }
    this.flush();
  }

  private cancelDeferTimer(): void {
    if (this.deferTimer !== undefined) clearTimeout(this.deferTimer);
    this.deferTimer = undefined;
  }

  /** A statement of the group-commit path, prepared once (exec would compile it on every commit). */
  private run(sql: string): void {
    this.stmt(sql).run();
  }

  private stmt(sql: string): StatementSync {
    return this.stmts.get(sql);
  }

  private map(err: unknown): unknown {
    return mapSqliteError(err, this.display, this.busyMs);
  }

  /**
   * Takes SQLite's write lock without its busy handler (which backs off to 100 ms sleeps, so a process that
   * commits continuously starves the others): try once, and if another connection holds the lock, try again
   * in a millisecond or two without blocking the event loop, until the busy timeout has passed.
   */
  tryBeginImmediate(): boolean {
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

  /** Commits what is queued now (normally run on the next turn of the loop; see `schedule`). */
  flush(): void {
    this.flushScheduled = false;
    if (this.queue.length === 0 || this.closed) return;
    let locked: boolean;
    try {
      locked = this.tryBeginImmediate();
    } catch (err) {
      this.rejectAll(this.queue.splice(0), this.map(err));
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
      this.rejectAll(
        this.queue.splice(0),
        this.map(Object.assign(new Error('database is locked'), { code: 'ERR_SQLITE_ERROR', errcode: 5, errstr: 'database is locked' })),
      );
      return;
    }
    this.lockWaitSince = undefined;
    // Everything that arrived up to now, including while we waited for the lock, commits together (up to
    // MAX_BATCH units, so one commit never holds the lock and the event loop for long). A unit that does
    // not join batches (prune) commits alone, in order.
    let take = 0;
    if (isExclusive(this.queue[0]!.op)) take = 1;
    else while (take < this.queue.length && take < SqliteWriter.MAX_BATCH && !isExclusive(this.queue[take]!.op)) take++;
    const batch = this.queue.splice(0, take);
    if (this.queue.length > 0) this.schedule();
    try {
      this.syncHeads();
      if (take === 1 && isExclusive(batch[0]!.op)) {
        const value = this.applyExclusive(batch[0]!.op);
        this.run('COMMIT');
        this.heads.clear();
        batch[0]!.resolve(value);
        this.afterCommit(0);
        return;
      }
      this.commitBatch(batch);
    } catch (err) {
      try {
        this.db.exec('ROLLBACK');
      } catch {
        // the failed COMMIT may already have rolled back
      }
      this.heads.clear();
      this.epoch = -1;
      this.rejectAll(batch, this.map(err));
    }
  }

  /**
   * Under the write lock: if another connection committed since our last look (PRAGMA data_version moves
   * only for other connections' commits), a head we cache may be stale. From schema 4 on, only a commit that
   * appended to a session whose head it had to read (`dlpctl approve` appending to a tunnel's session), or
   * that removed sessions (prune), moves `head_epoch`, and only then does the cache go: the maintenance
   * thread's moves and other tunnels' commits to their own sessions leave it (a head read from the store then
   * means scanning the journal). Before schema 4, any other connection's commit empties it.
   */
  private syncHeads(): void {
    const v = Number((this.stmt('PRAGMA data_version').get() as Row)['data_version']);
    if (v === this.dataVersion) return;
    this.dataVersion = v;
    if (!this.headsInJournal()) {
      this.heads.clear();
      return;
    }
    // (a row removed by hand reads as NaN, never equal: the cache goes at every other connection's commit, as before schema 4)
    const epoch = Number((this.stmt('SELECT n FROM head_epoch WHERE id = 1').get() as Row | undefined)?.['n']);
    if (epoch !== this.epoch) {
      this.heads.clear();
      this.epoch = epoch;
    }
  }

  /**
   * In a transaction that appends after a head read from the store (not cached here): tells every other writer
   * to drop its cached heads (see `syncHeads`). Prune, which removes sessions, appends its record so (appendInTx).
   */
  private moveEpoch(): void {
    if (!this.headsInJournal()) return;
    this.epoch = Number((this.stmt('UPDATE head_epoch SET n = n + 1 WHERE id = 1 RETURNING n').get() as Row | undefined)?.['n']);
  }

  /**
   * One group commit of batchable units (see batch.ts): read the heads the cache lacks, plan every unit
   * in memory (a failing unit is answered alone), then write the sessions created, the events in
   * multi-row INSERTs and each moved head once, and commit.
   */
  private commitBatch(batch: Work[]): void {
    const known = new Map<string, Head | undefined>();
    let read = false;
    for (const w of batch) {
      const id = sessionOf(w.op);
      if (this.heads.has(id) || known.has(id)) continue;
      const head = this.readHead(id);
      known.set(id, head);
      if (head !== undefined) read = true;
    }
    // (a session created here is cached from its start; one whose head had to be read may be cached elsewhere)
    if (read) this.moveEpoch();
    const plan = new ChainBatch((id) => this.heads.get(id) ?? known.get(id), this.display, noClock);
    const finish: ((() => WriteValue) | { error: unknown })[] = [];
    for (const w of batch) {
      try {
        finish.push(plan.unit(() => this.planUnit(w.op, plan)));
      } catch (err) {
        finish.push({ error: this.map(err) });
      }
    }
    for (const s of plan.created) this.insertSession(s);
    this.insertRows(plan.rows);
    const move = this.stmt(
      `UPDATE sessions SET last_seq = ?, last_hash = ?, last_ms = max(last_ms, ?),
         ended_at = coalesce(?, ended_at), outcome = coalesce(?, outcome), counters = coalesce(?, counters) WHERE id = ?`,
    );
    // Schema 4: a head moves in the row only at a session's end; otherwise the journal holds it (see readHead).
    const rowsFollow = this.headsInJournal();
    for (const [id, h] of plan.moved) {
      if (rowsFollow && !h.end) continue;
      move.run(h.seq, h.hash, h.lastMs, h.end?.time ?? null, h.end?.outcome ?? null, h.end ? JSON.stringify(h.end.counters) : null, id);
    }
    // Values read back inside the transaction (endSession's row), before COMMIT.
    const results = finish.map((f) => (typeof f === 'function' ? { ok: true as const, value: f() } : { ok: false as const, value: f.error }));
    this.run('COMMIT');
    for (const [id, h] of plan.moved) {
      if (h.end) this.heads.delete(id);
      else this.heads.set(id, { seq: h.seq, hash: h.hash, subject: h.subject });
    }
    // A cache only of live sessions: a process that appends to many others' sessions starts over.
    if (this.heads.size > SqliteWriter.MAX_HEADS) this.heads.clear();
    batch.forEach((w, i) => {
      const r = results[i]!;
      if (r.ok) w.resolve(r.value);
      else w.reject(r.value);
    });
    this.afterCommit(plan.rows.length);
  }

  /**
   * A session's committed head, read under the write lock; undefined for an unknown session. The row holds it
   * as of the events table; a newer one is the session's newest event still in the journal (schema 4: commits
   * leave the row to the journal's move). The journal holds about a second of events, and a session that just
   * wrote is found within its last rows (scanned from the newest).
   */
  private readHead(id: string): Head | undefined {
    const r = this.stmt('SELECT last_seq, last_hash, subject FROM sessions WHERE id = ?').get(id) as Row | undefined;
    if (r === undefined) return undefined;
    const head: Head = { seq: Number(r['last_seq']), hash: r['last_hash'] as string, subject: r['subject'] as string };
    if (this.eventsTarget() === 'events_journal') {
      const j = this.stmt('SELECT seq, hash FROM events_journal WHERE session_id = ? ORDER BY id DESC LIMIT 1').get(id) as Row | undefined;
      if (j !== undefined && Number(j['seq']) > head.seq) {
        head.seq = Number(j['seq']);
        head.hash = j['hash'] as string;
      }
    }
    return head;
  }

  /** Stages one unit into the batch; returns what gives its value once the batch is written. */
  private planUnit(op: WriteOp, plan: ChainBatch): () => WriteValue {
    switch (op.op) {
      case 'append': {
        const events = plan.append(op.sessionId, op.events, op.time);
        return () => events;
      }
      case 'createSession':
        plan.start(op.session);
        return () => op.session;
      case 'endSession':
        plan.end(op.id, op.outcome, op.counters, op.time);
        return () => rowToSession(this.stmt('SELECT * FROM sessions WHERE id = ?').get(op.id) as Row);
      case 'prune':
      case 'checkpoint':
      case 'closeCrashed':
        throw new Error(`internal: ${op.op} does not join a batch`);
    }
  }

  private applyExclusive(op: WriteOp): WriteValue {
    switch (op.op) {
      case 'prune':
        return this.pruneInTx(op.olderThanMs, new Date(op.now));
      case 'checkpoint':
        return this.checkpointInTx(op.time, op.signingKey, op.force === true);
      case 'closeCrashed':
        return this.closeCrashedInTx(op.ids);
      default:
        throw new Error(`internal: ${op.op} joins batches`);
    }
  }

  /**
   * The events in multi-row INSERTs: ROWS_PER_INSERT at a time, the rest by powers of two, so a handful of
   * prepared statements cover every batch size.
   */
  private insertRows(rows: EventRow[]): void {
    let i = 0;
    while (i < rows.length) {
      const left = rows.length - i;
      const n = left >= ROWS_PER_INSERT ? ROWS_PER_INSERT : 2 ** Math.floor(Math.log2(left));
      const params: (string | number | null)[] = new Array(n * 8);
      for (let k = 0; k < n; k++) {
        const r = rows[i + k]!;
        const o = k * 8;
        params[o] = r.sessionId;
        params[o + 1] = r.seq;
        params[o + 2] = r.type;
        params[o + 3] = r.timeMs;
        params[o + 4] = r.decision;
        params[o + 5] = r.text;
        params[o + 6] = r.body;
        params[o + 7] = r.hash;
      }
      this.insertStmt(n).run(...params);
      i += n;
    }
  }

  /** Whether session heads follow the journal (schema 4): a commit then leaves the sessions row to ingestInTx. */
  private headsInJournal(): boolean {
    if (this.rowsFollow === undefined) {
      let version = 0;
      try {
        version = Number((this.stmt('SELECT coalesce(max(version), 0) AS v FROM schema_migrations').get() as Row)['v']);
      } catch {
        // no migrations table: an empty or foreign file, whose first write fails on its own
      }
      this.rowsFollow = version >= 4 && this.eventsTarget() === 'events_journal';
    }
    return this.rowsFollow;
  }

  private insertStmt(n: number): StatementSync {
    let s = this.inserts.get(n);
    if (s === undefined) {
      s = this.db.prepare(`INSERT INTO ${this.eventsTarget()} (session_id, seq, type, time_ms, decision, text, body, hash) VALUES ${Array.from({ length: n }, () => '(?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`);
      this.inserts.set(n, s);
    }
    return s;
  }

  private rejectAll(batch: Work[], err: unknown): void {
    for (const w of batch) w.reject(err);
  }

  /** See checkpoint.ts: the heads that moved since the previous checkpoint, chained to it (and signed). */
  private checkpointInTx(time: string, signingKey: string | undefined, force: boolean): CheckpointRecord | undefined {
    const prev = this.stmt('SELECT n, body, hash FROM checkpoints ORDER BY n DESC LIMIT 1').get() as Row | undefined;
    // The heads as readHead sees them: the row's, or the newest event still in the journal (read, not moved: a
    // checkpoint runs on the tunnel's thread, and the maintenance thread moves the journal).
    const moved = (
      this.eventsTarget() === 'events_journal'
        ? this.stmt(
          `SELECT id, last_seq, last_hash, last_ms FROM (
             SELECT s.id, s.checkpointed_seq, max(s.last_seq, coalesce(j.seq, 0)) AS last_seq, max(s.last_ms, coalesce(j.ms, 0)) AS last_ms,
               CASE WHEN coalesce(j.seq, 0) > s.last_seq THEN j.hash ELSE s.last_hash END AS last_hash
             FROM sessions s LEFT JOIN (${journalHeads('1')}) j ON j.session_id = s.id)
           WHERE last_seq <> checkpointed_seq ORDER BY id`,
        ).all()
        : this.stmt('SELECT id, last_seq, last_hash, last_ms FROM sessions WHERE last_seq <> checkpointed_seq ORDER BY id').all()
    ) as Row[];
    const record = buildCheckpoint(
      prev === undefined ? undefined : { n: Number(prev['n']), hash: prev['hash'] as string },
      moved.map((r) => ({ id: r['id'] as string, seq: Number(r['last_seq']), hash: r['last_hash'] as string, lastTime: new Date(Number(r['last_ms'])).toISOString() })),
      time,
      signingKey,
    );
    if (moved.length === 0 && prev !== undefined && !force && (JSON.parse(prev['body'] as string) as { key?: string }).key === (JSON.parse(record.body) as { key?: string }).key) {
      return undefined;
    }
    this.stmt('INSERT INTO checkpoints (n, time, body, hash, signature) VALUES (?, ?, ?, ?, ?)').run(record.n, record.time, record.body, record.hash, record.signature);
    const mark = this.stmt('UPDATE sessions SET checkpointed_seq = ? WHERE id = ?');
    for (const r of moved) mark.run(Number(r['last_seq']), r['id'] as string);
    return record;
  }

  /** Ends each still-open session as `crashed`, at its last event's time, with the counters its events show. */
  private closeCrashedInTx(ids: string[]): string[] {
    this.ingestInTx(Infinity);
    const closed: string[] = [];
    for (const id of ids) {
      const row = this.stmt('SELECT ended_at, last_ms FROM sessions WHERE id = ?').get(id) as Row | undefined;
      if (row === undefined || row['ended_at'] != null) continue;
      const bodies = (this.stmt('SELECT body FROM events WHERE session_id = ? ORDER BY seq').all(id) as Row[]).map((r) => JSON.parse(r['body'] as string) as EventBody);
      const counters = countersFromEvents(bodies);
      const time = new Date(Number(row['last_ms'])).toISOString();
      const [ev] = this.appendInTx(id, [{ type: 'session.end', outcome: 'crashed', counters, time }]);
      this.stmt('UPDATE sessions SET ended_at = ?, outcome = ?, counters = ? WHERE id = ?').run(ev!.time, 'crashed', JSON.stringify(counters), id);
      closed.push(id);
    }
    return closed;
  }

  insertSession(s: Session): void {
    this.stmt(
      `INSERT INTO sessions (id, resource, kind, subject, email, identity, client_addr, reason, started_at, counters, last_seq, last_hash, last_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
    ).run(...sessionRowValues(s), GENESIS_HASH, toMs(s.startedAt, 'startedAt'));
  }

  /** Appends to one session inside the current transaction, reading its head (prune's and closeCrashed's records). */
  private appendInTx(sessionId: string, inputs: NewEvent[]): StoreEvent[] {
    const head = this.readHead(sessionId);
    this.moveEpoch();
    const plan = new ChainBatch(() => head, this.display, noClock);
    const out = plan.append(sessionId, inputs);
    this.insertRows(plan.rows);
    const h = plan.moved.get(sessionId)!;
    this.stmt('UPDATE sessions SET last_seq = ?, last_hash = ?, last_ms = max(last_ms, ?) WHERE id = ?').run(h.seq, h.hash, h.lastMs, sessionId);
    return out;
  }

  private pruneInTx(olderThanMs: number, now: Date): PruneResult {
    this.ingestInTx(Infinity);
    const cutoff = now.getTime() - olderThanMs;
    const sel = `SELECT id FROM sessions WHERE last_ms < ? AND id != '${MAINTENANCE_SESSION_ID}'`;
    const sessionsRemoved = Number((this.db.prepare(`SELECT count(*) AS n FROM (${sel})`).get(cutoff) as Row)['n']);
    const eventsRemoved = Number((this.db.prepare(`SELECT count(*) AS n FROM events WHERE session_id IN (${sel})`).get(cutoff) as Row)['n']);
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
  }

  /** After each commit: the full-text catch-up, and now and then a look at the WAL's size. */
  private afterCommit(events: number): void {
    if (this.committed !== undefined && events > 0) Atomics.add(this.committed, 0, events);
    this.noteAppended(events);
    this.sinceWalCheck += events + 1;
    if (this.file !== undefined && this.sinceWalCheck >= SqliteWriter.WAL_CHECK_EVERY) {
      // Kept busy by a reader or the maintenance thread's checkpoint: look again after the next commit.
      this.sinceWalCheck = checkpointWalIfLarge(this.db, this.file, this.busyMs, 'RESTART') ? 0 : SqliteWriter.WAL_CHECK_EVERY;
    }
  }

  // ---- deferred full-text indexing -------------------------------------------------------------------

  private noteAppended(n: number): void {
    if (n === 0 || !this.indexing) return;
    this.unindexed += n;
    if (this.unindexed >= SqliteWriter.INDEX_EVERY) {
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
      }, SqliteWriter.INDEX_AFTER_MS);
      this.indexTimer.unref();
    }
  }

  /** The schema may have moved (a migration ran on this connection): look for the journal again. */
  schemaChanged(): void {
    this.journal = undefined;
    this.rowsFollow = undefined;
    this.inserts.clear();
  }

  /** Where a group commit writes its events: the journal (schema 3), or events itself in an older store. */
  private eventsTarget(): 'events_journal' | 'events' {
    this.journal ??= this.stmt("SELECT 1 AS j FROM sqlite_master WHERE type = 'table' AND name = 'events_journal'").get() !== undefined;
    return this.journal ? 'events_journal' : 'events';
  }

  /**
   * Inside the current write transaction: moves up to `maxRows` of the oldest journal rows into events, in
   * journal (commit) order, and returns how many it moved. A row that cannot move (the unique (session_id, seq)
   * key says the chain was written twice, which the write lock rules out) fails the transaction: the error
   * reaches the reader or the maintenance run, nothing is lost.
   */
  ingestInTx(maxRows: number): number {
    if (this.eventsTarget() !== 'events_journal') return 0;
    // min() alone is one b-tree descent; `min(id), max(id)` in one SELECT is a scan of the whole journal (SQLite's
    // min/max optimisation takes a lone aggregate only), and it ran once per chunk: the maintenance thread read
    // every journal page again for each 1,024 rows it moved. The bound needs no max: `id <= lo + maxRows - 1`.
    const lo = (this.stmt('SELECT min(id) AS lo FROM events_journal').get() as Row)['lo'];
    if (lo === null) return 0;
    const hi = Number.isFinite(maxRows) ? Number(lo) + maxRows - 1 : Number.MAX_SAFE_INTEGER;
    // The heads of the sessions whose rows move catch up (schema 4; a row a session's end moved further stays).
    this.stmt(
      `UPDATE sessions SET last_seq = max(last_seq, j.seq), last_hash = CASE WHEN j.seq > last_seq THEN j.hash ELSE last_hash END,
         last_ms = max(last_ms, j.ms)
       FROM (${journalHeads('id <= ?')}) AS j WHERE sessions.id = j.session_id`,
    ).run(hi);
    this.stmt(
      `INSERT INTO events (session_id, seq, type, time_ms, decision, text, body, hash)
       SELECT session_id, seq, type, time_ms, decision, text, body, hash FROM events_journal WHERE id <= ? ORDER BY id`,
    ).run(hi);
    return Number(this.stmt('DELETE FROM events_journal WHERE id <= ?').run(hi).changes);
  }

  /**
   * For a reader: moves the whole journal into events (waiting for the write lock up to the busy timeout), so
   * a query of events sees every committed event. Busy past the timeout or a read-only file: the reader reads
   * what events holds (the journal is emptied by the maintenance thread within about a second, and by
   * every store's close).
   */
  catchUp(): void {
    if (this.closed || this.eventsTarget() !== 'events_journal') return;
    if (this.stmt('SELECT EXISTS (SELECT 1 FROM events_journal) AS j').get()!['j'] === 0) return;
    try {
      this.run('BEGIN IMMEDIATE');
    } catch (err) {
      const code = ((err as { errcode?: number }).errcode ?? 0) & 0xff;
      if (code === 5 || code === 6 || code === 8) return; // busy, locked, read-only
      throw err;
    }
    this.finishTx(() => this.ingestInTx(Infinity));
  }

  /** With a write transaction begun: runs `fn` and commits, or rolls back and rethrows. */
  private finishTx<T>(fn: () => T): T {
    try {
      const value = fn();
      this.run('COMMIT');
      return value;
    } catch (err) {
      try {
        this.db.exec('ROLLBACK');
      } catch {
        // the failed statement may already have rolled back
      }
      throw err;
    }
  }

  /**
   * Adds committed events above the watermark to the full-text index, in one transaction. Idempotent and
   * safe from any connection (the watermark moves under the write lock). Errors are ignored: the rows stay
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
      // Never wait for the write lock here: if another connection holds it, try again later.
      if (!this.tryBeginImmediate()) {
        this.noteAppended(1);
        return 0;
      }
      return this.finishTx(() => {
        // The journal first (a bulk move keeps the events table's indexes off the commit path), then the index.
        const ingestMax = maxRows * 4;
        const ingested = this.ingestInTx(ingestMax);
        if (ingested === ingestMax) this.noteAppended(1);
        const upto = Number((this.stmt('SELECT indexed_upto AS u FROM fts_state WHERE id = 1').get() as Row)['u']);
        const max = Number((this.stmt('SELECT coalesce(max(id), 0) AS m FROM events').get() as Row)['m']);
        let added = 0;
        if (max > upto) {
          const hi = Math.min(max, upto + maxRows);
          this.stmt('INSERT INTO events_fts (rowid, text) SELECT id, text FROM events WHERE id > ? AND id <= ? AND text IS NOT NULL').run(upto, hi);
          this.stmt('UPDATE fts_state SET indexed_upto = ? WHERE id = 1').run(hi);
          added = hi - upto;
          if (hi < max) this.noteAppended(max - hi);
        }
        // (more journal left: the caller's `while (indexNow(n) === n)` goes round again)
        return ingested === ingestMax ? Math.max(added, maxRows) : added;
      });
    } catch {
      return 0;
    }
  }
}

/**
 * Each session's newest journal row among those `where` selects (session_id, seq, hash) with the newest event
 * time (ms). A session's rows are in the journal in seq order, so its largest id is its head.
 */
function journalHeads(where: string): string {
  return `SELECT e.session_id, e.seq, e.hash, g.ms FROM (
    SELECT max(id) AS last, max(time_ms) AS ms FROM events_journal WHERE ${where} GROUP BY session_id) AS g
    JOIN events_journal AS e ON e.id = g.last`;
}

/** Units carry their times; an event without one is a caller's bug. */
function noClock(): Date {
  throw new Error('internal: a store write unit without a time');
}

export function rowToSession(r: Row): Session {
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
