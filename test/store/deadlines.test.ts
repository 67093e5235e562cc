/** The store timeout of a stream of writes: one timer for the oldest write still waiting (common.ts, StoreDeadlines). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { StoreDeadlines } from '../../src/store/common.js';

function deferred<T>(): { promise: Promise<T>; resolve(v: T): void; reject(e: unknown): void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => ((resolve = a), (reject = b)));
  return { promise, resolve, reject };
}

const settle = (p: Promise<unknown>) => p.then((v) => ({ ok: true, v }), (e: unknown) => ({ ok: false, e }));
const turn = () => new Promise((r) => setImmediate(r));

describe('StoreDeadlines', () => {
  afterEach(() => vi.useRealTimers());

  it('answers each write as it commits, and fails exactly those still waiting at their deadline, in order', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const d = new StoreDeadlines(1000, 'sqlite:store.db');
    const [a, b, c] = [deferred<number>(), deferred<number>(), deferred<number>()];
    const dropped: string[] = [];
    const pa = settle(d.watch(a.promise, () => dropped.push('a')));
    vi.advanceTimersByTime(400);
    const pb = settle(d.watch(b.promise, () => dropped.push('b')));
    vi.advanceTimersByTime(400);
    const pc = settle(d.watch(c.promise, () => dropped.push('c')));
    b.resolve(2);
    await vi.advanceTimersByTimeAsync(0);
    expect(await pb).toEqual({ ok: true, v: 2 });
    vi.advanceTimersByTime(199); // a's deadline is 1000 ms after it was watched
    expect(dropped).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(dropped).toEqual(['a']);
    expect(await pa).toMatchObject({ ok: false, e: { code: 'STORE_TIMEOUT', message: expect.stringContaining('did not answer in 1 s') } });
    a.resolve(1); // a late commit changes nothing for the one who already heard
    c.resolve(3);
    await vi.advanceTimersByTimeAsync(0);
    expect(await pc).toEqual({ ok: true, v: 3 });
    expect(dropped).toEqual(['a']);
    expect(d.pending).toBe(0);
  });

  it('a failing write fails with its own error, not the timeout', async () => {
    const d = new StoreDeadlines(50, 'x');
    const w = deferred<number>();
    const p = settle(d.watch(w.promise));
    w.reject(new Error('database is locked'));
    expect(await p).toMatchObject({ ok: false, e: { message: 'database is locked' } });
  });

  it('holds the process open only while a write waits: the timer lets go once every write has answered', async () => {
    const d = new StoreDeadlines(60_000, 'x');
    const ws = Array.from({ length: 3 }, () => deferred<number>());
    const ps = ws.map((w) => d.watch(w.promise));
    const timer = () => (d as unknown as { timer: NodeJS.Timeout | undefined }).timer;
    expect(timer()?.hasRef()).toBe(true);
    ws[1]!.resolve(1);
    await turn();
    expect(timer()?.hasRef()).toBe(true);
    ws[0]!.resolve(0);
    ws[2]!.resolve(2);
    await Promise.all(ps);
    expect(timer()?.hasRef() ?? false).toBe(false);
    expect(d.pending).toBe(0);
    // the next write holds the process open again, on the same timer
    const kept = timer();
    expect(kept).toBeDefined();
    const next = deferred<number>();
    const pn = d.watch(next.promise);
    expect(timer()?.hasRef()).toBe(true);
    expect(timer()).toBe(kept);
    next.resolve(4);
    expect(await pn).toBe(4);
    expect(timer()?.hasRef() ?? false).toBe(false);
  });

  it('a write made after the queue emptied still fails at its own deadline, not the earlier write\'s', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const d = new StoreDeadlines(1000, 'x');
    const a = deferred<number>();
    const pa = d.watch(a.promise);
    vi.advanceTimersByTime(100);
    a.resolve(1);
    await vi.advanceTimersByTimeAsync(0);
    expect(await pa).toBe(1);
    vi.advanceTimersByTime(400); // t = 500: b's deadline is t = 1500; the timer armed for a fires at t = 1000
    const b = deferred<number>();
    const dropped: string[] = [];
    const pb = settle(d.watch(b.promise, () => dropped.push('b')));
    await vi.advanceTimersByTimeAsync(999); // t = 1499
    expect(dropped).toEqual([]);
    await vi.advanceTimersByTimeAsync(1); // t = 1500
    expect(dropped).toEqual(['b']);
    expect(await pb).toMatchObject({ ok: false, e: { code: 'STORE_TIMEOUT' } });
  });

  it('many writes in flight use one timer between them', async () => {
    const set = vi.spyOn(globalThis, 'setTimeout');
    try {
      const d = new StoreDeadlines(60_000, 'x');
      const ws = Array.from({ length: 1000 }, () => deferred<number>());
      const ps = ws.map((w) => d.watch(w.promise));
      for (const [i, w] of ws.entries()) w.resolve(i);
      expect(await Promise.all(ps)).toEqual(ws.map((_, i) => i));
      expect(set.mock.calls.filter(([, ms]) => typeof ms === 'number' && ms > 1000).length).toBe(1);
    } finally {
      set.mockRestore();
    }
  });

  it('no limit (0 or not finite): the write as it is', async () => {
    const w = deferred<number>();
    const p = new StoreDeadlines(0, 'x').watch(w.promise);
    expect(p).toBe(w.promise);
  });
});
