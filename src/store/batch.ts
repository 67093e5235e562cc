/**
 * The write path both engines share (DESIGN §5): one group commit is planned in memory by a `ChainBatch`,
 * then written by the engine in one transaction (SQLite: multi-row INSERTs into the events journal, the heads
 * left to the journal until it is moved into events; PostgreSQL: one statement).
 *
 * Chain heads (last seq, last hash, subject) live in memory in the writing process: a session it created
 * or appended to is sealed from the cached head, without reading its row. A head it does not hold (another
 * process's session, e.g. `dlpctl approve` appending `approval.decided` to a tunnel's session, or a cold
 * start) is read once by the engine before planning (`need`). Each engine says how it notices that another
 * process moved a head it caches: SQLite asks `PRAGMA data_version` under the write lock (any commit by
 * another connection drops the cache); PostgreSQL lets the unique (session_id, seq) key reject the batch,
 * then re-reads the heads and plans again.
 *
 * Planning is all-or-nothing per unit: `unit(fn)` stages what `fn` adds, and drops it if `fn` throws (an
 * unknown session, an invalid time), so one bad unit fails alone and the rest of the batch commits — no
 * per-unit savepoint in the database. A new write op plugs in by staging through `append`, `start` and `end`
 * (or an engine statement) inside `unit`.
 */
import { DlpctlError } from '../errors.js';
import { GENESIS_HASH, sealEvent } from './chain.js';
import { buildEvent, eventDecision, eventText, parseIso } from './common.js';
import type { Counters, NewEvent, Outcome, Session, StoreEvent } from './types.js';

/** A session's chain head. */
export interface Head {
  seq: number;
  hash: string;
  subject: string;
}

/** One event as both engines store it. */
export interface EventRow {
  sessionId: string;
  seq: number;
  type: string;
  /** Milliseconds since the epoch, and the same instant as ISO text (the event's `time`). */
  timeMs: number;
  time: string;
  subject: string;
  decision: string | null;
  text: string | null;
  body: string;
  hash: string;
}

/** A head this batch moved, with what the session row takes from it. */
export interface MovedHead extends Head {
  /** Newest event time written in this batch (ms; ISO in `lastTime`). */
  lastMs: number;
  lastTime: string;
  end?: { outcome: Outcome; counters: Counters; time: string };
}

/** The session.start event of a new session. */
export function startEvent(s: Session): NewEvent {
  return {
    type: 'session.start',
    resource: s.resource,
    kind: s.kind,
    clientAddr: s.clientAddr,
    identity: s.identity,
    time: s.startedAt,
    ...(s.reason === undefined ? {} : { reason: s.reason }),
    ...(s.owner === undefined ? {} : { owner: s.owner }),
  };
}

export class ChainBatch {
  readonly rows: EventRow[] = [];
  readonly moved = new Map<string, MovedHead>();
  /** Sessions this batch creates (their rows are inserted before the heads move). */
  readonly created: Session[] = [];
  private undo: Map<string, MovedHead | undefined> | undefined;
  private readonly headOf: (sessionId: string) => Head | undefined;
  private readonly display: string;
  private readonly now: () => Date;

  /**
   * `headOf`: the committed head of a session, or undefined when it does not exist. `display` names the
   * store in errors; `now` stamps events that carry no time.
   */
  constructor(headOf: (sessionId: string) => Head | undefined, display: string, now: () => Date) {
    this.headOf = headOf;
    this.display = display;
    this.now = now;
  }

  /** The head as this batch has moved it so far. */
  head(sessionId: string): Head | undefined {
    return this.moved.get(sessionId) ?? this.headOf(sessionId);
  }

  /** Stages what `fn` adds as one unit: if it throws, nothing it staged stays, and the error goes to its caller. */
  unit<T>(fn: () => T): T {
    const rows = this.rows.length;
    const created = this.created.length;
    const undo = new Map<string, MovedHead | undefined>();
    this.undo = undo;
    try {
      return fn();
    } catch (err) {
      this.rows.length = rows;
      this.created.length = created;
      for (const [id, h] of undo) {
        if (h === undefined) this.moved.delete(id);
        else this.moved.set(id, h);
      }
      throw err;
    } finally {
      this.undo = undefined;
    }
  }

  private move(sessionId: string, h: MovedHead): void {
    if (this.undo !== undefined && !this.undo.has(sessionId)) this.undo.set(sessionId, this.moved.get(sessionId));
    this.moved.set(sessionId, h);
  }

  /** Seals `inputs` after the session's head and stages their rows; `time` stamps those without one (else the clock). */
  append(sessionId: string, inputs: NewEvent[], time?: string): StoreEvent[] {
    const head = this.head(sessionId);
    if (head === undefined) throw new DlpctlError('STORE_NOT_FOUND', `session ${sessionId} does not exist in ${this.display}`);
    const prior = this.moved.get(sessionId);
    let { seq, hash } = head;
    let lastMs = prior?.lastMs ?? 0;
    let lastTime = prior?.lastTime ?? '';
    const out: StoreEvent[] = [];
    const staged: EventRow[] = [];
    for (const input of inputs) {
      seq++;
      const { event, body } = sealEvent(hash, buildEvent(sessionId, seq, head.subject, input, this.now, time));
      const timeMs = parseIso(event.time);
      staged.push({
        sessionId,
        seq,
        type: event.type,
        timeMs,
        time: event.time,
        subject: head.subject,
        decision: eventDecision(event),
        text: eventText(event),
        body,
        hash: event.hash,
      });
      if (timeMs > lastMs) {
        lastMs = timeMs;
        lastTime = event.time;
      }
      hash = event.hash;
      out.push(event);
    }
    for (const r of staged) this.rows.push(r);
    this.move(sessionId, { seq, hash, subject: head.subject, lastMs, lastTime, ...(prior?.end ? { end: prior.end } : {}) });
    return out;
  }

  /** Stages a new session and its session.start event (seq 1). */
  start(session: Session): StoreEvent {
    if (this.head(session.id) !== undefined) {
      throw new DlpctlError('STORE_CONFLICT', `session ${session.id} already exists in ${this.display}; start a new session`);
    }
    this.created.push(session);
    this.move(session.id, { seq: 0, hash: GENESIS_HASH, subject: session.identity.subject, lastMs: 0, lastTime: '' });
    return this.append(session.id, [startEvent(session)])[0]!;
  }

  /** Stages the session.end event and the session's outcome and counters. */
  end(sessionId: string, outcome: Outcome, counters: Counters, time: string): StoreEvent {
    const ev = this.append(sessionId, [{ type: 'session.end', outcome, counters, time }])[0]!;
    const h = this.moved.get(sessionId)!;
    this.moved.set(sessionId, { ...h, end: { outcome, counters, time: ev.time } });
    return ev;
  }
}
