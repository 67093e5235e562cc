/** Reading whole sessions and enumerating sessions, in pages, from any store. */
import type { SearchQuery, Session, SessionStore, StoreEvent } from '../store/types.js';

const PAGE = 10_000;

/** Every event of a session in seq order, read in pages. */
export async function* sessionEvents(store: SessionStore, sessionId: string): AsyncGenerator<StoreEvent> {
  let after = 0;
  for (;;) {
    const page = await store.listEvents(sessionId, { afterSeq: after, limit: PAGE });
    for (const e of page) yield e;
    if (page.length < PAGE) return;
    after = page[page.length - 1]!.seq;
  }
}

export async function allSessionEvents(store: SessionStore, sessionId: string): Promise<StoreEvent[]> {
  const out: StoreEvent[] = [];
  for await (const e of sessionEvents(store, sessionId)) out.push(e);
  return out;
}

/**
 * The sessions with at least one event matching the filter (resource, identity, time), oldest first.
 * The store has no session listing, so this pages through `search` newest first with `until`.
 */
export async function findSessions(store: SessionStore, filter: Omit<SearchQuery, 'text' | 'limit' | 'decision'>): Promise<Session[]> {
  const sessions = new Map<string, Session>();
  const seen = new Set<string>();
  let until = filter.until;
  for (let round = 0; round < 10_000; round++) {
    const hits = await store.search({ ...filter, ...(until !== undefined ? { until } : {}), limit: PAGE });
    let fresh = 0;
    let oldest: string | undefined;
    for (const h of hits) {
      const key = `${h.event.sessionId}:${h.event.seq}`;
      if (seen.has(key)) continue;
      seen.add(key);
      fresh++;
      if (oldest === undefined || h.event.time < oldest) oldest = h.event.time;
      if (!sessions.has(h.session.id)) sessions.set(h.session.id, h.session);
    }
    if (hits.length < PAGE || oldest === undefined) break;
    until = fresh === 0 ? oldest : new Date(Date.parse(oldest) + 1).toISOString();
    // Keep the dedupe set small: only keys at the boundary millisecond can come back.
    if (seen.size > 4 * PAGE) {
      const keepFrom = oldest;
      for (const h of hits) if (h.event.time < keepFrom) seen.delete(`${h.event.sessionId}:${h.event.seq}`);
    }
  }
  return [...sessions.values()].sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : a.id < b.id ? -1 : 1));
}
