import { describe, expect, it } from 'vitest';
import { Lru } from '../../src/policy/sql/lru.js';

describe('Lru', () => {
  it('holds at most its bound, whatever is inserted', () => {
    const c = new Lru<string, number>(100);
    for (let i = 0; i < 10_000; i++) {
      c.set(`k${i}`, i);
      expect(c.size).toBeLessThanOrEqual(100);
    }
    expect(c.size).toBeGreaterThanOrEqual(50);
  });

  it('returns what was set last for a key, and nothing for a key never set', () => {
    const c = new Lru<string, number>(10);
    c.set('a', 1);
    c.set('a', 2);
    expect(c.get('a')).toBe(2);
    for (let i = 0; i < 4; i++) c.set(`x${i}`, i);
    c.set('a', 3); // a is in the old generation now, or the young one: either way the newest value wins
    expect(c.get('a')).toBe(3);
    expect(c.get('never')).toBeUndefined();
  });

  it('keeps an entry that is used while many others come and go, and lets an unused one go', () => {
    const c = new Lru<string, string>(100);
    c.set('hot', 'H');
    c.set('cold', 'C');
    for (let i = 0; i < 5_000; i++) {
      c.set(`n${i}`, 'x');
      if (i % 25 === 0) expect(c.get('hot')).toBe('H');
    }
    expect(c.get('hot')).toBe('H');
    expect(c.get('cold')).toBeUndefined();
  });

  it('a cleared cache is empty', () => {
    const c = new Lru<number, number>(4);
    for (let i = 0; i < 4; i++) c.set(i, i);
    c.clear();
    expect(c.size).toBe(0);
    expect(c.get(1)).toBeUndefined();
  });
});
