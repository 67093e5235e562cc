/**
 * `verify` for both engines (DESIGN §5): everything the audit commands show or search must be the hashed
 * record or be checked against it.
 *
 *   events     the chain (seq, body, hash), and every column derived from the body: type, time, decision,
 *              the search text, the subject
 *   sessions   each row against its chain: identity, resource, kind, client address, reason and start time
 *              against `session.start`; end time, outcome and counters against the last `session.end` (or
 *              none, zero counters); the recorded head against the last event
 *   the set    events without a session row, and the checkpoint chain: every head it holds must still be
 *              there (a deleted session or a rolled-back head is caught), and with a public key, every
 *              checkpoint from the first signed one on must carry a valid signature, so that a consistent
 *              rewrite up to the last checkpoint is caught; an external copy of the checkpoints catches a
 *              store cut back to an older checkpoint, or replaced
 *
 * The engines supply rows through `IntegritySource`; the checks here are pure.
 */
import { ChainVerifier, canonicalJson } from './chain.js';
import { checkSignature, keyIdOf, loadPublicKey, parseCheckpoint } from './checkpoint.js';
import { eventDecision, eventText, maintenanceSession, parseJson } from './common.js';
import {
  MAINTENANCE_SESSION_ID,
  zeroCounters,
  type CheckpointRecord,
  type CheckpointSummary,
  type SessionEndBody,
  type SessionStartBody,
  type StoreEvent,
  type StorePruneBody,
  type VerifyOptions,
  type VerifyResult,
} from './types.js';

export interface RawSessionRow {
  id: string;
  resource: string;
  kind: string;
  subject: string;
  email: string | null;
  /** Parsed JSON. */
  identity: unknown;
  clientAddr: string;
  reason: string | null;
  startedAtMs: number;
  endedAtMs: number | null;
  outcome: string | null;
  /** Parsed JSON. */
  counters: unknown;
  lastSeq: number;
  lastHash: string;
}

export interface RawEventRow {
  seq: number;
  type: string;
  timeMs: number;
  decision: string | null;
  text: string | null;
  /** PostgreSQL keeps the subject in a column too. */
  subject?: string;
  body: string;
  hash: string;
}

/**
 * A `sessions` row as both backends store it, in the shape verify compares: `time` turns each backend's time
 * column (an ISO string in SQLite, a Date in PostgreSQL) into milliseconds.
 */
export function rawSessionRow(r: Record<string, unknown>, time: (v: unknown) => number): RawSessionRow {
  return {
    id: r['id'] as string,
    resource: r['resource'] as string,
    kind: r['kind'] as string,
    subject: r['subject'] as string,
    email: (r['email'] as string | null) ?? null,
    identity: parseJson(r['identity']),
    clientAddr: r['client_addr'] as string,
    reason: (r['reason'] as string | null) ?? null,
    startedAtMs: time(r['started_at']),
    endedAtMs: r['ended_at'] == null ? null : time(r['ended_at']),
    outcome: (r['outcome'] as string | null) ?? null,
    counters: parseJson(r['counters']),
    lastSeq: Number(r['last_seq']),
    lastHash: r['last_hash'] as string,
  };
}

export interface IntegritySource {
  sessions(id?: string): Promise<RawSessionRow[]>;
  /** One session's events in seq order, a page at a time (an await per row would double the cost). */
  events(sessionId: string): AsyncIterable<RawEventRow[]>;
  /** Session ids that have events but no session row. */
  orphans(): Promise<string[]>;
  checkpoints(): Promise<CheckpointRecord[]>;
}

interface Bad {
  sessionId: string;
  seq: number;
  reason: string;
}

const CHECKPOINTS = '(checkpoints)';

function eq(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** The first column of an event row that disagrees with its (hash-checked) body. */
function columnMismatch(row: RawEventRow, e: StoreEvent, subject: string): string | undefined {
  if (row.type !== e.type) return `the type column says ${row.type} but the event is ${e.type} (edited)`;
  if (row.timeMs !== Date.parse(e.time)) return `the time column says ${new Date(row.timeMs).toISOString()} but the event was recorded at ${e.time} (edited)`;
  if (row.decision !== eventDecision(e)) return `the decision column says ${row.decision ?? 'none'} but the event says ${eventDecision(e) ?? 'none'} (edited)`;
  if (row.text !== eventText(e)) return 'the search text column does not match the event (edited)';
  if (row.subject !== undefined && row.subject !== e.subject) return 'the subject column does not match the event (edited)';
  if (e.subject !== subject) return `the event names subject ${e.subject} but its session row says ${subject}`;
  return undefined;
}

function rowMismatch(s: RawSessionRow, start: { body: SessionStartBody; time: string } | undefined, end: { body: SessionEndBody; time: string } | undefined): string | undefined {
  if (s.id === MAINTENANCE_SESSION_ID) {
    const m = maintenanceSession(new Date(0));
    if (s.resource !== m.resource || s.kind !== m.kind || s.clientAddr !== m.clientAddr || !eq(s.identity, m.identity) || s.subject !== m.identity.subject) {
      return 'the maintenance session row was edited';
    }
  } else {
    if (!start) return 'the session has no session.start event';
    const b = start.body;
    const id = b.identity;
    if (!eq(s.identity, id) || s.subject !== id.subject || s.email !== (id.email ?? null)) return "the session row's identity does not match its session.start event (edited)";
    if (s.resource !== b.resource) return "the session row's resource does not match its session.start event (edited)";
    if (s.kind !== b.kind) return "the session row's kind does not match its session.start event (edited)";
    if (s.clientAddr !== b.clientAddr) return "the session row's client address does not match its session.start event (edited)";
    if (s.reason !== (b.reason ?? null)) return "the session row's reason does not match its session.start event (edited)";
    if (s.startedAtMs !== Date.parse(start.time)) return "the session row's start time does not match its session.start event (edited)";
  }
  if (end) {
    if (s.endedAtMs !== Date.parse(end.time)) return "the session row's end time does not match its session.end event (edited)";
    if (s.outcome !== end.body.outcome) return `the session row's outcome says ${s.outcome ?? 'none'} but its session.end event says ${end.body.outcome} (edited)`;
    if (!eq(s.counters, end.body.counters)) return "the session row's counters do not match its session.end event (edited)";
  } else {
    if (s.endedAtMs !== null || s.outcome !== null) return 'the session row says it ended, but it has no session.end event (removed?)';
    if (!eq(s.counters, zeroCounters())) return 'the session row has counters but no session.end event (edited)';
  }
  return undefined;
}

interface Expected {
  seq: number;
  hash: string;
  lastTime: string;
  n: number;
}

/** Checks the checkpoint chain (and the external copy, and signatures); returns the heads it holds. */
function checkCheckpoints(
  chain: CheckpointRecord[],
  o: VerifyOptions,
): { bad?: Bad; expected: Map<string, Expected>; summary: CheckpointSummary } {
  const summary: CheckpointSummary = { count: chain.length, signed: 0, external: 0, eventsAfter: 0 };
  const expected = new Map<string, Expected>();
  const key = o.publicKey === undefined ? undefined : loadPublicKey(o.publicKey);
  const keyId = key ? keyIdOf(key) : undefined;
  if (keyId) summary.keyId = keyId;
  let prevHash = '0'.repeat(64);
  let signing = false;
  for (let i = 0; i < chain.length; i++) {
    const r = chain[i]!;
    if (r.n !== i + 1) {
      return { expected, summary, bad: { sessionId: CHECKPOINTS, seq: i + 1, reason: r.n > i + 1 ? `checkpoint ${i + 1}${r.n - 1 > i + 1 ? `..${r.n - 1}` : ''} is missing (history truncated?)` : `duplicate checkpoint ${r.n}` } };
    }
    const p = parseCheckpoint(r);
    if ('reason' in p) return { expected, summary, bad: { sessionId: CHECKPOINTS, seq: r.n, reason: p.reason } };
    if (p.body.prev !== prevHash) return { expected, summary, bad: { sessionId: CHECKPOINTS, seq: r.n, reason: 'checkpoint does not follow the previous one (rewritten or removed)' } };
    prevHash = r.hash;
    if (key) {
      if (p.body.key === keyId) signing = true;
      if (signing) {
        if (p.body.key !== keyId) {
          return { expected, summary, bad: { sessionId: CHECKPOINTS, seq: r.n, reason: `checkpoint is not signed by key ${keyId}, though earlier ones are (rewritten after checkpoint ${summary.vouchedCheckpoint ?? 0}?)` } };
        }
        if (!checkSignature(r, key)) return { expected, summary, bad: { sessionId: CHECKPOINTS, seq: r.n, reason: `the signature does not verify with key ${keyId} (forged or rewritten)` } };
        summary.signed++;
        summary.vouchedCheckpoint = r.n;
        summary.vouchedUntil = r.time;
      }
    }
    for (const [id, seq, hash, lastTime] of p.body.heads) expected.set(id, { seq, hash, lastTime, n: r.n });
  }
  for (const ext of o.externalCheckpoints ?? []) {
    const p = parseCheckpoint(ext);
    if ('reason' in p) return { expected, summary, bad: { sessionId: CHECKPOINTS, seq: ext.n, reason: `external copy: ${p.reason}` } };
    if (key && !checkSignature(ext, key)) return { expected, summary, bad: { sessionId: CHECKPOINTS, seq: ext.n, reason: `external copy: the signature does not verify with key ${keyId}` } };
    const mine = chain[ext.n - 1];
    if (!mine) {
      return {
        expected,
        summary,
        bad: { sessionId: CHECKPOINTS, seq: ext.n, reason: `the store ${chain.length === 0 ? 'has no checkpoints' : `ends at checkpoint ${chain.length}`}, but the external copy holds checkpoint ${ext.n} of ${ext.time}: history was truncated or the store replaced` },
      };
    }
    if (mine.hash !== ext.hash) return { expected, summary, bad: { sessionId: CHECKPOINTS, seq: ext.n, reason: `checkpoint ${ext.n} differs from the external copy (rewritten)` } };
    summary.external++;
    if (key && (summary.vouchedCheckpoint ?? 0) < ext.n) {
      summary.vouchedCheckpoint = ext.n;
      summary.vouchedUntil = ext.time;
    }
  }
  if (key && summary.vouchedCheckpoint === undefined) {
    return {
      expected,
      summary,
      bad: {
        sessionId: CHECKPOINTS,
        seq: 0,
        reason: `no checkpoint is signed by key ${keyId}: nothing in this store can be vouched for (replaced, rewritten, or never signed: set audit.signingKey)`,
      },
    };
  }
  return { expected, summary };
}

export async function verifyIntegrity(src: IntegritySource, o: VerifyOptions, notFound: (id: string) => Error): Promise<VerifyResult> {
  const result: VerifyResult = { ok: true, sessionsChecked: 0, eventsChecked: 0 };
  const fail = (bad: Bad): VerifyResult => {
    result.ok = false;
    result.firstBad = bad;
    return result;
  };
  const cp = checkCheckpoints(await src.checkpoints(), o);
  result.checkpoints = cp.summary;
  if (cp.bad) return fail(cp.bad);
  const only = o.sessionId;
  const orphans = (await src.orphans()).filter((id) => only === undefined || id === only);
  if (orphans.length > 0) return fail({ sessionId: orphans[0]!, seq: 0, reason: 'events without a session row (the row was deleted)' });
  const rows = await src.sessions(only);
  if (only !== undefined && rows.length === 0 && !cp.expected.has(only)) throw notFound(only);
  const prunes: { seq: number; cutoffMs: number }[] = [];
  let eventsAfter = 0;
  for (const s of rows) {
    result.sessionsChecked++;
    const v = new ChainVerifier(s.id);
    const want = cp.expected.get(s.id);
    let start: { body: SessionStartBody; time: string } | undefined;
    let end: { body: SessionEndBody; time: string } | undefined;
    let bad: { seq: number; reason: string } | undefined;
    pages: for await (const page of src.events(s.id)) {
      for (const r of page) {
        result.eventsChecked++;
        bad = v.check({ sessionId: s.id, seq: r.seq, body: r.body, hash: r.hash });
        if (bad) break pages;
        const e = v.lastEvent!;
        const col = columnMismatch(r, e, s.subject);
        if (col) {
          bad = { seq: r.seq, reason: col };
          break pages;
        }
        if (want && r.seq === want.seq && r.hash !== want.hash) {
          bad = { seq: r.seq, reason: `the event differs from the head checkpoint ${want.n} holds (rewritten, with its hashes recomputed)` };
          break pages;
        }
        if (e.type === 'session.start' && r.seq === 1) start = { body: e, time: e.time };
        else if (e.type === 'session.end') end = { body: e, time: e.time };
        else if (e.type === 'store.prune' && s.id === MAINTENANCE_SESSION_ID) prunes.push({ seq: r.seq, cutoffMs: Date.parse((e as StorePruneBody).cutoff) });
      }
    }
    bad ??= v.finish(s.lastSeq, s.lastHash);
    if (!bad && want && v.count < want.seq) {
      bad = { seq: v.count + 1, reason: `events ${v.count + 1}..${want.seq} were removed: checkpoint ${want.n} holds the head at event ${want.seq}` };
    }
    if (!bad) {
      const why = rowMismatch(s, start, end);
      if (why) bad = { seq: 0, reason: why };
    }
    if (bad) return fail({ sessionId: s.id, ...bad });
    eventsAfter += v.count - (want?.seq ?? 0);
  }
  cp.summary.eventsAfter = eventsAfter;
  const present = new Set(rows.map((r) => r.id));
  // A prune vouches for a missing session only if it is itself covered by a checkpoint when a key is in play.
  const maintenance = cp.expected.get(MAINTENANCE_SESSION_ID);
  const trusted = o.publicKey === undefined ? prunes : prunes.filter((p) => maintenance !== undefined && p.seq <= maintenance.seq);
  for (const [id, want] of cp.expected) {
    if (present.has(id) || (only !== undefined && id !== only)) continue;
    if (trusted.some((p) => Date.parse(want.lastTime) < p.cutoffMs)) continue;
    return fail({ sessionId: id, seq: want.seq, reason: `the session is missing (deleted): checkpoint ${want.n} holds its head at event ${want.seq}` });
  }
  return result;
}
