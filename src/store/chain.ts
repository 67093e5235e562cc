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
import { createHash } from 'node:crypto';
import type { StoreEvent } from './types.js';

export const GENESIS_HASH = '0'.repeat(64);

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    return s === undefined ? 'null' : s;
  }
  if (Array.isArray(value)) {
    return `[${value.map((v) => (v === undefined || typeof v === 'function' ? 'null' : canonicalJson(v))).join(',')}]`;
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    return canonicalJson((value as { toJSON(): unknown }).toJSON());
  }
  const keys = Object.keys(value).sort();
  const parts: string[] = [];
  for (const k of keys) {
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined || typeof v === 'function') continue;
    parts.push(`${JSON.stringify(k)}:${canonicalJson(v)}`);
  }
  return `{${parts.join(',')}}`;
}

export function chainHash(prevHash: string, canonicalBody: string): string {
  return createHash('sha256').update(prevHash).update(canonicalBody).digest('hex');
}

/** The canonical body of an event: everything but `hash`. */
export function eventBody(event: Omit<StoreEvent, 'hash'> | StoreEvent): string {
  const { hash: _hash, ...rest } = event as StoreEvent;
  return canonicalJson(rest);
}

/** Builds the stored event for `body` following `prevHash`. */
export function sealEvent(prevHash: string, event: Omit<StoreEvent, 'hash'>): { event: StoreEvent; body: string } {
  const body = eventBody(event);
  const hash = chainHash(prevHash, body);
  return { event: { ...event, hash } as StoreEvent, body };
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
