/**
 * `audit search`: the statements, requests and commands that match, newest first, with their session.
 * The store does the text, resource, identity, time and decision filtering (indexed); here we keep only
 * action events (without TEXT the store returns every event type), one per HTTP request (see
 * `isResponseRecord`), and apply `--kind` (the resource kind).
 * When filtering here leaves fewer than `limit`, we page on with `until` = the oldest time seen, deduplicating
 * by (session, seq) since `until` is exclusive only at millisecond resolution.
 */
import type { Decision, SearchHit, SessionKind, SessionStore, StoreEvent } from '../store/types.js';
import { actionText, isAction } from './describe.js';
import { searchAll } from './events.js';

export interface AuditSearchOptions {
  text?: string;
  resource?: string;
  identity?: string;
  since?: string;
  until?: string;
  decision?: Decision;
  kind?: SessionKind;
  limit?: number;
}

export interface AuditHitJson {
  id: string;
  sessionId: string;
  seq: number;
  time: string;
  resource: string;
  kind: SessionKind;
  identity: string;
  verified: boolean;
  type: StoreEvent['type'];
  text: string;
  decision: string;
  rule: string | null;
}

export async function auditSearch(store: SessionStore, o: AuditSearchOptions): Promise<SearchHit[]> {
  const limit = Math.max(1, Math.min(100_000, Math.floor(o.limit ?? 100)));
  const base = {
    ...(o.text !== undefined && o.text.trim() !== '' ? { text: o.text } : {}),
    ...(o.resource !== undefined ? { resource: o.resource } : {}),
    ...(o.identity !== undefined ? { identity: o.identity } : {}),
    ...(o.since !== undefined ? { since: o.since } : {}),
    ...(o.decision !== undefined ? { decision: o.decision } : {}),
  };
  const keep = (h: SearchHit): boolean => isAction(h.event) && !isResponseRecord(h.event) && (o.kind === undefined || h.session.kind === o.kind);
  const out: SearchHit[] = [];
  // Fetch a few times more than needed when we filter here, so one round usually suffices.
  const filtersHere = (base.text === undefined && base.decision === undefined) || o.kind !== undefined;
  const page = filtersHere ? Math.min(100_000, limit * 4) : limit;
  for await (const h of searchAll(store, { ...base, ...(o.until !== undefined ? { until: o.until } : {}) }, { page, maxPage: 100_000, maxRounds: 50 })) {
    if (!keep(h)) continue;
    out.push(h);
    if (out.length >= limit) break;
  }
  return out;
}

/**
 * The record the HTTP tunnel adds once a response has ended (phase `response`) repeats its request's line and
 * decision: the request's own record (written before forwarding) is the hit, so each request is listed once.
 */
function isResponseRecord(e: StoreEvent): boolean {
  return e.type === 'http.request' && e.phase === 'response';
}

export function hitJson(h: SearchHit): AuditHitJson {
  const e = h.event;
  const d = isAction(e) ? e : undefined;
  return {
    id: `${e.sessionId}:${e.seq}`,
    sessionId: e.sessionId,
    seq: e.seq,
    time: e.time,
    resource: h.session.resource,
    kind: h.session.kind,
    identity: h.session.identity.subject,
    verified: h.session.identity.verified,
    type: e.type,
    text: actionText(e) ?? '',
    decision: d?.decision ?? '',
    rule: d?.rule ?? null,
  };
}
