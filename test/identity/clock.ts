import type { Clock } from '../../src/identity/clock.js';

/** A clock that moves only when the test says so; `sleep` records the wait, advances and yields briefly. */
export interface ManualClock extends Clock {
  advance(ms: number): void;
  sleeps: number[];
}

export function manualClock(start: number): ManualClock {
  let t = start;
  const timers: { at: number; fn: () => void }[] = [];
  const clock: ManualClock = {
    sleeps: [],
    now: () => t,
    async sleep(ms, signal) {
      if (signal?.aborted) throw signal.reason;
      clock.sleeps.push(ms);
      clock.advance(ms);
      await new Promise((r) => setTimeout(r, 20));
      if (signal?.aborted) throw signal.reason;
    },
    schedule(ms, fn) {
      const timer = { at: t + ms, fn };
      timers.push(timer);
      return () => {
        const i = timers.indexOf(timer);
        if (i >= 0) timers.splice(i, 1);
      };
    },
    advance(ms) {
      t += ms;
      for (;;) {
        timers.sort((a, b) => a.at - b.at);
        const next = timers[0];
        if (!next || next.at > t) break;
        timers.shift();
        next.fn();
      }
    },
  };
  return clock;
}
