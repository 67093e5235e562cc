import { describe, expect, it } from 'vitest';
import { canonicalTime, isoOf, parseIso } from '../../src/store/common.js';

describe('event times', () => {
  it('isoOf formats like toISOString, and parseIso reads back the same instant, for times seen and not', () => {
    for (const ms of [0, 1, 1_733_363_400_123, 1_733_363_400_123, 1_733_363_400_124, -1, 253_402_300_799_999]) {
      expect(isoOf(ms)).toBe(new Date(ms).toISOString());
      expect(parseIso(isoOf(ms))).toBe(ms);
    }
    expect(parseIso('2025-01-01T00:00:00Z')).toBe(Date.UTC(2025, 0, 1));
    expect(parseIso('not a time')).toBeNaN();
  });

  it('canonicalTime keeps a time it gave out, and formats any other one; a time that is none is refused', () => {
    const t = isoOf(Date.UTC(2026, 11, 5, 1, 2, 3, 4));
    expect(canonicalTime(t, 'x')).toBe(t);
    expect(canonicalTime('2025-01-01T00:00:00Z', 'event time')).toBe('2025-01-01T00:00:00.000Z');
    expect(canonicalTime('2025-01-01T01:00:00+01:00', 'event time')).toBe('2025-01-01T00:00:00.000Z');
    expect(() => canonicalTime('yesterday-ish', 'event time')).toThrow(/event time is not a valid time/);
  });
});
