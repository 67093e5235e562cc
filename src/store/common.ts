/** Helpers shared by both engines: what to index, how to tokenise search text, limits. */
import { MAINTENANCE_SESSION_ID, zeroCounters, type Counters, type OpenSessionInfo, type EventBody, type NewEvent, type Session, type StoreEvent } from './types.js';

import { DlpctlError } from '../errors.js';

/** How long a deferred write (AppendOptions.defer) may wait for company before it commits alone. */
export const DEFER_WRITE_MS = 10;

/** OpenStoreOptions.timeoutMs by default. */
export const DEFAULT_STORE_TIMEOUT_MS = 5000;

/**
 * Fails a session write that has not committed within `ms` with STORE_TIMEOUT (fail closed, DESIGN §4):
 * the recorder throws, the tunnel denies the statement and the session goes on. The write itself is not
 * cancelled (a statement already sent to the database cannot be taken back) and may still commit later.
 * That late event is not the statement's record: its promise was already rejected, so the statement was
 * denied and never forwarded; the trail then holds one event more than what ran, never one less, and the
 * chain stays whole because the head moves only with what committed. `onTimeout` lets the engine drop
 * the unit if it has not been sent yet.
 */
export function withStoreTimeout<T>(p: Promise<T>, ms: number, display: string, onTimeout?: () => void): Promise<T> {
  return new StoreDeadlines(ms, display).watch(p, onTimeout);
}

/** A write a StoreDeadlines watches: `fail` is called (with `settled` set) when its deadline passes first. */
export interface Watched {
  deadline: number;
  settled: boolean;
  fail(): void;
}

/**
 * One queued write and its caller's promise, as both store writers keep them. With a StoreDeadlines it is
 * watched as it is (no second promise per write): the first answer wins, the commit's (`resolve`, `reject`)
 * or the deadline's (`fail`: STORE_TIMEOUT, and `abandoned` set, so a writer that has not sent it yet may
 * drop it). Without one, the commit's answer is the only one.
 */
export class WatchedWrite<T> implements Watched {
  deadline = 0;
  settled = false;
  /** The deadline failed it first. */
  abandoned = false;
  private readonly res: (value: T) => void;
  private readonly rej: (err: unknown) => void;
  private readonly deadlines: StoreDeadlines | undefined;

  constructor(res: (value: T) => void, rej: (err: unknown) => void, deadlines: StoreDeadlines | undefined) {
    this.res = res;
    this.rej = rej;
    this.deadlines = deadlines;
  }

  resolve(value: T): void {
    if (this.answered()) this.res(value);
  }

  reject(err: unknown): void {
    if (this.answered()) this.rej(err);
  }

  fail(): void {
    this.abandoned = true;
    this.rej(this.deadlines!.timeoutError());
  }

  /** Whether the commit's answer is the first (without a deadline it always is). */
  private answered(): boolean {
    return this.deadlines === undefined || this.deadlines.answer(this);
  }
}

/**
 * withStoreTimeout for a store's stream of writes: one timer, for the oldest write still waiting, instead of
 * one armed and cleared per write (a tunnel makes two writes per statement, and the timer pair was a visible
 * cost). Every write gets the same limit, so they time out in the order they were made: a queue, whose settled
 * head is dropped as writes commit. The timer is armed for the oldest waiting write and, once none waits, left
 * armed but unreferenced (it holds the process open exactly while a write is pending, as one timer per write
 * did): the next write references it again instead of arming a new one (a commit empties the queue every few
 * statements, and a setTimeout/clearTimeout pair per commit was a visible cost). A timer armed for an earlier
 * write fires no later than any later write's deadline; when it fires, it fails what has passed its deadline
 * and arms for the oldest write still waiting.
 */
export class StoreDeadlines {
  private readonly ms: number;
  private readonly display: string;
  private queue: Watched[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(ms: number, display: string) {
    this.ms = ms;
    this.display = display;
  }

  /** Whether writes have a deadline at all (a timeout of 0 or Infinity: none). */
  get active(): boolean {
    return Number.isFinite(this.ms) && this.ms > 0;
  }

  /** The error a write that passed its deadline fails with. */
  timeoutError(): DlpctlError {
    return new DlpctlError(
      'STORE_TIMEOUT',
      `the store ${this.display} did not answer in ${formatSeconds(this.ms)} s; check that its server or disk is responsive (the limit is the store URL's ?timeout=)`,
    );
  }

  watch<T>(p: Promise<T>, onTimeout?: () => void): Promise<T> {
    if (!this.active) return p;
    return new Promise<T>((resolve, reject) => {
      const w: Watched = {
        deadline: 0,
        settled: false,
        fail: () => {
          onTimeout?.();
          reject(this.timeoutError());
        },
      };
      this.add(w);
      p.then(
        (v) => this.answer(w) && resolve(v),
        (err: unknown) => this.answer(w) && reject(err),
      );
    });
  }

  /**
   * Watches `w` from now (when `active`): its deadline is set, and `fail` runs if it is still unsettled then. The
   * owner of `w` calls `answer` when the write's own answer comes. For a writer that holds its units anyway (the
   * SQLite writer), this is `watch` without a second promise per write.
   */
  add(w: Watched): void {
    w.deadline = performance.now() + this.ms;
    this.queue.push(w);
    this.arm();
  }

  /** The write's own answer came: true if it is the first (the deadline has not failed it), and it is settled now. */
  answer(w: Watched): boolean {
    if (w.settled) return false;
    w.settled = true;
    this.dropSettled();
    return true;
  }

  /** Writes still waiting (for tests). */
  get pending(): number {
    let n = 0;
    for (let i = this.head; i < this.queue.length; i++) if (!this.queue[i]!.settled) n++;
    return n;
  }

  private arm(): void {
    if (this.head >= this.queue.length) return;
    if (this.timer !== undefined) {
      this.timer.ref();
      return;
    }
    this.timer = setTimeout(() => this.expire(), Math.max(0, this.queue[this.head]!.deadline - performance.now()));
  }

  private dropSettled(): void {
    while (this.head < this.queue.length && this.queue[this.head]!.settled) this.head++;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
      this.timer?.unref();
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private expire(): void {
    this.timer = undefined;
    const now = performance.now();
    while (this.head < this.queue.length) {
      const w = this.queue[this.head]!;
      if (!w.settled) {
        if (w.deadline > now) break;
        w.settled = true;
        w.fail();
      }
      this.head++;
    }
    this.dropSettled();
    this.arm();
  }
}

function formatSeconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}

/** The searchable text of an event (statement, request line, command), or null. */
export function eventText(e: EventBody): string | null {
  switch (e.type) {
    case 'query':
      return e.sql;
    case 'http.request':
      return `${e.method} ${e.path}`;
    case 'ssh.command':
      return e.command;
    case 'ssh.channel':
      return e.target === undefined ? e.channel : `${e.channel} ${e.target}`;
    case 'execute':
      return e.params && e.params.length > 0 ? e.params.map((p) => p ?? 'NULL').join(' ') : null;
    case 'result':
      return e.sample && e.sample.length > 0 ? e.sample.map((r) => r.map((c) => c ?? 'NULL').join(' ')).join('\n') : null;
    default:
      return null;
  }
}

export function eventDecision(e: EventBody): string | null {
  switch (e.type) {
    case 'query':
    case 'execute':
    case 'http.request':
    case 'ssh.command':
    case 'ssh.channel':
      return e.decision;
    default:
      return null;
  }
}

/**
 * Search words: runs of letters and digits, lower-cased, accents removed. Both engines index the same way
 * (SQLite FTS5 unicode61, PostgreSQL `to_tsvector('simple', …)` over the text with non-alphanumerics replaced
 * by spaces), so `public.customers` and `customer_id` are found by `customers` and `customer`.
 */
export function words(text: string): string[] {
  return text.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

export interface SearchTerm {
  word: string;
  /** `word*` in the query: matches words that start with it. */
  prefix: boolean;
}

/**
 * Parses what a person typed: every word must match (AND); a word is matched whole unless followed by `*`.
 * (Whole-word matching keeps common words fast: a prefix query must gather every matching row first.)
 */
export function parseSearch(text: string): SearchTerm[] {
  const terms: SearchTerm[] = [];
  for (const chunk of text.split(/\s+/)) {
    const ws = words(chunk);
    ws.forEach((w, i) => terms.push({ word: w, prefix: i === ws.length - 1 && chunk.endsWith('*') }));
  }
  return terms.slice(0, 16);
}

/** Whether `text` matches every term (the index semantics, for rows not yet in the SQLite index). */
export function matchesTerms(text: string, terms: SearchTerm[]): boolean {
  const ws = words(text);
  return terms.every((t) => ws.some((w) => (t.prefix ? w.startsWith(t.word) : w === t.word)));
}

export const DEFAULT_SEARCH_LIMIT = 100;
export const MAX_LIMIT = 100_000;

export function clampLimit(limit: number | undefined, dflt: number): number {
  if (limit === undefined || !Number.isFinite(limit)) return dflt;
  return Math.max(1, Math.min(MAX_LIMIT, Math.floor(limit)));
}

/**
 * An event's time as stored: the ISO text of `ms`. Events come in thousands a second, and formatting (and
 * parsing, below) a time was a visible share of sealing one: the texts given out recently are kept with their
 * instants, so the time a unit was stamped with is neither parsed nor formatted again when it is sealed.
 */
const msByIso = new Map<string, number>();
const MAX_TIMES = 1024;
let isoMs = Number.NaN;
let isoText = '';
export function isoOf(ms: number): string {
  if (ms !== isoMs) {
    isoText = new Date(ms).toISOString();
    isoMs = ms;
    if (msByIso.size >= MAX_TIMES) msByIso.clear();
    msByIso.set(isoText, ms);
  }
  return isoText;
}

/** The instant of an ISO time (NaN when it is none). */
export function parseIso(iso: string): number {
  return msByIso.get(iso) ?? Date.parse(iso);
}

/** `time` in the stored form: one `isoOf` gave comes back as it is; any other is parsed (or rejected) and formatted. */
export function canonicalTime(time: string, what: string): string {
  return msByIso.has(time) ? time : isoOf(toMs(time, what));
}

export function toMs(iso: string, what: string): number {
  const ms = parseIso(iso);
  if (Number.isNaN(ms)) throw new TypeError(`${what} is not a valid time: ${iso}`);
  return ms;
}

/** Members of a stored event that the store sets, whatever the caller's event holds. */
const STORE_MEMBERS = new Set(['time', 'sessionId', 'seq', 'subject', 'hash']);

/** An event shape's members as the caller wrote them, and in the order the stored event takes them. */
interface MemberOrder {
  own: string[];
  sorted: string[];
}
const memberOrders: MemberOrder[] = [];
const MAX_MEMBER_ORDERS = 64;

/**
 * The stored event's members in sorted order: the caller's own (less the store's) and the store's four. Kept
 * for the shapes seen last (callers build each kind of event the same way; a tunnel writes a handful), found
 * by comparing the members one by one: no key string is built per event.
 */
function membersInOrder(input: object): string[] {
  const own = Object.keys(input);
  search: for (let i = 0; i < memberOrders.length; i++) {
    const known = memberOrders[i]!;
    if (known.own.length !== own.length) continue;
    for (let j = 0; j < own.length; j++) if (known.own[j] !== own[j]) continue search;
    return known.sorted;
  }
  const sorted = own.filter((k) => !STORE_MEMBERS.has(k));
  sorted.push('sessionId', 'seq', 'subject', 'time');
  sorted.sort();
  if (memberOrders.length >= MAX_MEMBER_ORDERS) memberOrders.pop();
  memberOrders.unshift({ own, sorted });
  return sorted;
}

/**
 * A member that is a plain object whose keys are not in sorted order (a header map in arrival order, entity
 * counts in the order found), as a copy with the same members in sorted order; any other value as it is.
 * One level: what events carry as maps is flat.
 */
function sortedMap(v: unknown): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.getPrototypeOf(v) !== Object.prototype) return v;
  let prev: string | undefined;
  for (const k in v) {
    if (prev !== undefined && !(prev < k)) {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v).sort()) out[key] = (v as Record<string, unknown>)[key];
      return out;
    }
    prev = k;
  }
  return v;
}

/**
 * Builds the event without its hash; the session head supplies seq and subject. Its members are written in
 * sorted order, and so are those of a member that is a flat map (sortedMap), so canonicalJson takes
 * JSON.stringify's native walk (chain.ts) for the events dlpctl writes: an HTTP request's header maps, in
 * arrival order, sent every one of them the general way (~11 µs of a request's ~255). A caller's sessionId,
 * seq, subject, time or hash never gets in (the store's own).
 */
export function buildEvent(
  sessionId: string,
  seq: number,
  subject: string,
  input: NewEvent,
  now: () => Date,
  /** The time of an input without one (else `now`). */
  time?: string,
): Omit<StoreEvent, 'hash'> {
  const own = input.time ?? time;
  const t = own === undefined ? isoOf(now().getTime()) : canonicalTime(own, 'event time');
  const event: Record<string, unknown> = {};
  for (const k of membersInOrder(input)) {
    switch (k) {
      case 'sessionId':
        event[k] = sessionId;
        break;
      case 'seq':
        event[k] = seq;
        break;
      case 'subject':
        event[k] = subject;
        break;
      case 'time':
        event[k] = t;
        break;
      default:
        event[k] = sortedMap((input as unknown as Record<string, unknown>)[k]);
    }
  }
  return event as unknown as Omit<StoreEvent, 'hash'>;
}

export function rowToEvent(body: string, hash: string): StoreEvent {
  return { ...(JSON.parse(body) as Omit<StoreEvent, 'hash'>), hash } as StoreEvent;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A session's row values in the column order both engines insert them: id, resource, kind, subject, email,
 * identity (JSON), client_addr, reason, started_at, counters (JSON).
 */
export function sessionRowValues(s: Session): [string, string, string, string, string | null, string, string, string | null, string, string] {
  return [s.id, s.resource, s.kind, s.identity.subject, s.identity.email ?? null, JSON.stringify(s.identity), s.clientAddr, s.reason ?? null, s.startedAt, JSON.stringify(s.counters)];
}

/** The session that records store maintenance (`store.prune`), created on first use. */
export function maintenanceSession(now: Date): Session {
  return {
    id: MAINTENANCE_SESSION_ID,
    resource: '(store)',
    kind: 'store',
    identity: { issuer: 'dlpctl', subject: 'dlpctl', groups: [], kind: 'machine', verified: false },
    clientAddr: '',
    startedAt: now.toISOString(),
    counters: zeroCounters(),
  };
}

/**
 * A session's counters as its events show them, for a session whose process died before it could write its
 * own (`closeCrashed`): statements and denials from the decided events, masked values from the summaries,
 * rows and bytes from results, channel closes and HTTP exchanges.
 */
export function countersFromEvents(events: Iterable<EventBody>): Counters {
  const c = zeroCounters();
  for (const e of events) {
    switch (e.type) {
      case 'query':
      case 'execute':
      case 'ssh.command':
        c.statements++;
        if (e.decision === 'deny') c.denied++;
        break;
      case 'http.request':
        if (e.phase !== 'response') {
          c.statements++;
          if (e.decision === 'deny') c.denied++;
          c.bytesIn += e.reqBodyBytes ?? 0;
        } else c.bytesOut += e.resBodyBytes ?? 0;
        for (const n of Object.values(e.masked ?? {})) c.masked += n;
        break;
      case 'ssh.channel':
        if (e.phase !== 'close' && e.decision === 'deny') c.denied++;
        c.bytesIn += e.bytesIn ?? 0;
        c.bytesOut += e.bytesOut ?? 0;
        break;
      case 'mask.summary':
        for (const n of Object.values(e.entities)) c.masked += n;
        break;
      case 'result':
        c.rows += e.rows;
        c.bytesOut += e.bytes;
        break;
      default:
        break;
    }
  }
  return c;
}

/** JSON text (SQLite) or an already parsed value (PostgreSQL jsonb); text that does not parse stays text. */
export function parseJson(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v) as unknown;
  } catch {
    return v;
  }
}

/** An open session and, from its `session.start` body, its owner. */
export function openSessionInfo(id: string, startedAt: string, startBody: string | null): OpenSessionInfo {
  const info: OpenSessionInfo = { id, startedAt };
  const start = startBody === null ? undefined : (parseJson(startBody) as { owner?: unknown } | undefined);
  const o = start?.owner as { pid?: unknown; host?: unknown; boot?: unknown; start?: unknown } | undefined;
  if (o && typeof o.pid === 'number' && typeof o.host === 'string') {
    info.owner = { pid: o.pid, host: o.host, ...(typeof o.boot === 'string' ? { boot: o.boot } : {}), ...(typeof o.start === 'number' ? { start: o.start } : {}) };
  }
  return info;
}
