/** Reading whole sessions and enumerating sessions, in pages, from any store. */
import type { SearchHit, SearchQuery, Session, SessionStore, StoreEvent } from '../store/types.js';

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
 * Every hit of `query`, newest first, across as many store pages as it takes. The store's `until` is
 * exclusive only at millisecond resolution, so each page steps back to just after the oldest millisecond
 * seen and hits are deduplicated by (session, seq). `page` doubles up to `maxPage` for callers that filter
 * hits themselves (and so may need many to fill a screen).
 */
export async function* searchAll(
  store: SessionStore,
  query: Omit<SearchQuery, 'limit'>,
  opts: { page: number; maxPage?: number; maxRounds?: number },
): AsyncGenerator<SearchHit> {
  const seen = new Set<string>();
  let until = query.until;
  let page = opts.page;
  for (let round = 0; round < (opts.maxRounds ?? 10_000); round++) {
    const hits = await store.search({ ...query, ...(until !== undefined ? { until } : {}), limit: page });
    let fresh = 0;
    let oldest: string | undefined;
    for (const h of hits) {
      const key = `${h.event.sessionId}:${h.event.seq}`;
      if (seen.has(key)) continue;
      seen.add(key);
      fresh++;
      if (oldest === undefined || h.event.time < oldest) oldest = h.event.time;
      yield h;
    }
    if (hits.length < page || oldest === undefined) return;
    // Step back to just after the oldest millisecond seen; if a whole page sat in that millisecond, skip it.
    const next = fresh === 0 ? oldest : new Date(Date.parse(oldest) + 1).toISOString();
    if (until !== undefined && next >= until && fresh === 0) return;
    until = next;
    // Keep the dedupe set small: only keys at the boundary millisecond can come back.
    if (seen.size > 4 * page) for (const h of hits) if (h.event.time < oldest) seen.delete(`${h.event.sessionId}:${h.event.seq}`);
    page = Math.min(opts.maxPage ?? page, page * 2);
  }
}

/**
 * The sessions with at least one event matching the filter (resource, identity, time), oldest first.
 * The store has no session listing, so this pages through `search` newest first with `until`.
 */
export async function findSessions(store: SessionStore, filter: Omit<SearchQuery, 'text' | 'limit' | 'decision'>): Promise<Session[]> {
  const sessions = new Map<string, Session>();
  for await (const h of searchAll(store, filter, { page: PAGE })) if (!sessions.has(h.session.id)) sessions.set(h.session.id, h.session);
  return [...sessions.values()].sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : a.id < b.id ? -1 : 1));
}
