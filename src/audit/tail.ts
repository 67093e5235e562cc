/**
 * `audit tail`: new events from every session as they are recorded. The store has no change feed for
 * events, so this polls `search` with `since` = the newest time seen minus a look-back window (writers
 * stamp events with their own clocks, and group commits land slightly out of time order), dropping events
 * already printed. Events stamped more than `lookbackMs` in the past when they land are missed.
 */
import type { SearchQuery, SearchHit, SessionStore } from '../store/types.js';
import { sleep } from '../store/common.js';

export interface TailOptions {
  filter?: Omit<SearchQuery, 'since' | 'until' | 'limit' | 'text'>;
  /** Start here (default: now, i.e. only new events). */
  since?: string;
  intervalMs?: number;
  lookbackMs?: number;
  signal: AbortSignal;
  now?: () => Date;
  onHit: (hit: SearchHit) => void | Promise<void>;
  /** Called once the starting point is fixed: events recorded from now on will be printed. */
  onReady?: () => void;
}

export async function tailEvents(store: SessionStore, o: TailOptions): Promise<void> {
  const now = o.now ?? (() => new Date());
  const lookback = o.lookbackMs ?? 5000;
  let cursor = o.since ?? now().toISOString();
  // key → event time, for events at or after the look-back edge
  const seen = new Map<string, string>();
  const first = o.since === undefined;
  if (first) {
    // Do not print what is already in the look-back window.
    const from = new Date(Date.parse(cursor) - lookback).toISOString();
    for (const h of await store.search({ ...o.filter, since: from, limit: 100_000 })) seen.set(`${h.event.sessionId}:${h.event.seq}`, h.event.time);
  }
  o.onReady?.();
  while (!o.signal.aborted) {
    const from = new Date(Date.parse(cursor) - lookback).toISOString();
    const hits = await store.search({ ...o.filter, since: from, limit: 100_000 });
    hits.sort((a, b) => (a.event.time < b.event.time ? -1 : a.event.time > b.event.time ? 1 : a.event.sessionId === b.event.sessionId ? a.event.seq - b.event.seq : a.event.sessionId < b.event.sessionId ? -1 : 1));
    for (const h of hits) {
      const key = `${h.event.sessionId}:${h.event.seq}`;
      if (seen.has(key)) continue;
      seen.set(key, h.event.time);
      if (h.event.time > cursor) cursor = h.event.time;
      await o.onHit(h);
    }
    const edge = new Date(Date.parse(cursor) - lookback).toISOString();
    for (const [k, t] of seen) if (t < edge) seen.delete(k);
    try {
      await sleep(o.intervalMs ?? 500, o.signal);
    } catch {
      return;
    }
  }
}
