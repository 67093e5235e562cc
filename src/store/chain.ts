/**
 * The per-session hash chain (DESIGN §5), pure functions shared by both engines.
 *
 *   hash(n) = hex SHA-256( hash(n-1) ‖ canonical JSON of event n without its `hash` field )
 *   hash(0) = 64 zeros
 *
 * Canonical JSON: object keys sorted by UTF-16 code unit, recursively; no whitespace; `undefined` members
 * dropped (as JSON.stringify does). The stored `body` column holds exactly this text, so verification can
 * hash the stored bytes and also check that they are still canonical.
 */
import { hash } from 'node:crypto';
import type { StoreEvent } from './types.js';

export const GENESIS_HASH = '0'.repeat(64);

/** Quoted object keys with their colon, kept for the few dozen keys events use (JSON.stringify per key was a visible cost). */
const quotedKeys = new Map<string, string>();
const MAX_QUOTED_KEYS = 4096;

function quotedKey(k: string): string {
  let q = quotedKeys.get(k);
  if (q === undefined) {
    q = `${JSON.stringify(k)}:`;
    if (quotedKeys.size < MAX_QUOTED_KEYS) quotedKeys.set(k, q);
  }
  return q;
}

/**
 * Every event is canonicalised once when it is sealed and again when it is verified. A value that
 * `JSON.stringify` already writes canonically (see `inCanonicalOrder`; `buildEvent` makes events so) takes it,
 * a native walk; any other is built by string concatenation, each member again by `canonicalJson`.
 * test/store/chain.test.ts holds both paths to a plain reference implementation on random values.
 */
export function canonicalJson(value: unknown): string {
  if (typeof value === 'object' && value !== null && inCanonicalOrder(value)) return JSON.stringify(value);
  return generalCanonicalJson(value);
}

/**
 * Whether `JSON.stringify(value)` is its canonical JSON: arrays and plain objects (prototype Object.prototype
 * or null, no toJSON) whose members enumerate in sorted order, down to strings, numbers, booleans, null,
 * undefined and functions (which both drop from objects and write as null in arrays). Enumeration order is
 * the one JSON.stringify follows (integer-like keys first, then insertion order), so an object whose order is
 * not the sorted one, a symbol or bigint member, a Date, a class instance, goes the general way.
 */
function inCanonicalOrder(value: object): boolean {
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!canonicalMember(value[i])) return false;
    }
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  let prev: string | undefined;
  for (const k in value) {
    if (!Object.hasOwn(value, k)) return false;
    if (prev !== undefined && !(prev < k)) return false;
    prev = k;
    if (!canonicalMember((value as Record<string, unknown>)[k])) return false;
  }
  return true;
}

function canonicalMember(v: unknown): boolean {
  switch (typeof v) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'undefined':
    case 'function':
      return true;
    case 'object':
      return v === null || inCanonicalOrder(v);
    default:
      return false;
  }
}

function generalCanonicalJson(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    return s === undefined ? 'null' : s;
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (i > 0) out += ',';
      out += v === undefined || typeof v === 'function' ? 'null' : canonicalJson(v);
    }
    return `${out}]`;
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    return canonicalJson((value as { toJSON(): unknown }).toJSON());
  }
  const keys = Object.keys(value).sort();
  let out = '{';
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined || typeof v === 'function') continue;
    if (!first) out += ',';
    first = false;
    out += quotedKey(k) + canonicalJson(v);
  }
  return `${out}}`;
}

/** One-shot SHA-256 (no Hash object per event). */
export function chainHash(prevHash: string, canonicalBody: string): string {
  return hash('sha256', prevHash + canonicalBody, 'hex');
}

/**
 * Seals `event` (as buildEvent makes it: a fresh object without a hash) after `prevHash`: its canonical body,
 * and the event itself, which takes its hash in place rather than being copied.
 */
export function sealEvent(prevHash: string, event: Omit<StoreEvent, 'hash'>): { event: StoreEvent; body: string } {
  const body = canonicalJson(event);
  const sealed = event as StoreEvent;
  sealed.hash = chainHash(prevHash, body);
  return { event: sealed, body };
}

export interface StoredRow {
  sessionId: string;
  seq: number;
  body: string;
  hash: string;
}

/**
 * Checks one session's rows, fed in seq order. `check` returns a reason for the first bad row or undefined;
 * `finish` checks the session's recorded head (last seq and hash) against what was seen.
 */
export class ChainVerifier {
  private prev = GENESIS_HASH;
  private expectedSeq = 1;
  readonly sessionId: string;
  /** The parsed body of the last row `check` accepted. */
  lastEvent: StoreEvent | undefined;

  constructor(sessionId: string) {
    this.sessionId = sessionId;
  }

  get count(): number {
    return this.expectedSeq - 1;
  }

  check(row: StoredRow): { seq: number; reason: string } | undefined {
    if (row.seq !== this.expectedSeq) {
      return {
        seq: this.expectedSeq,
        reason:
          row.seq > this.expectedSeq
            ? `event ${this.expectedSeq}${row.seq - this.expectedSeq > 1 ? `..${row.seq - 1}` : ''} is missing`
            : `duplicate or out-of-order seq ${row.seq}`,
      };
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(row.body);
    } catch {
      return { seq: row.seq, reason: 'event body is not valid JSON' };
    }
    const p = parsed as Partial<StoreEvent> | null;
    if (p === null || typeof p !== 'object' || p.sessionId !== row.sessionId || p.seq !== row.seq) {
      return { seq: row.seq, reason: 'event body does not match its session or seq' };
    }
    if (canonicalJson(parsed) !== row.body) {
      return { seq: row.seq, reason: 'event body is not in canonical form (edited)' };
    }
    const expected = chainHash(this.prev, row.body);
    if (expected !== row.hash) {
      return { seq: row.seq, reason: 'hash does not match the event (edited) or the previous event' };
    }
    this.prev = row.hash;
    this.expectedSeq++;
    this.lastEvent = parsed as StoreEvent;
    return undefined;
  }

  finish(lastSeq: number, lastHash: string): { seq: number; reason: string } | undefined {
    if (lastSeq > this.count) {
      return { seq: this.count + 1, reason: `events ${this.count + 1}..${lastSeq} are missing (session records ${lastSeq})` };
    }
    if (lastSeq < this.count) {
      return { seq: lastSeq + 1, reason: `event ${lastSeq + 1} was added after the session's recorded head` };
    }
    if (lastHash !== this.prev) {
      return { seq: lastSeq, reason: "the session's recorded head hash does not match its last event" };
    }
    return undefined;
  }
}
