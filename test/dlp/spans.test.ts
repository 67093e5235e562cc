import { describe, expect, it } from 'vitest';
import { resolve } from '../../src/dlp/scanner.js';
import { SpanList } from '../../src/dlp/spans.js';

type Span = [entity: string, start: number, end: number, prio: number];

function list(spans: readonly Span[]): SpanList {
  const l = new SpanList();
  for (const [e, a, b, p] of spans) l.push(e, a, b, p);
  return l;
}

function items(l: SpanList): Span[] {
  const out: Span[] = [];
  for (let k = 0; k < l.length; k++) out.push([l.entity(k), l.start(k), l.end(k), l.prio(k)]);
  return out;
}

describe('SpanList', () => {
  it('keeps every pushed span, across growth, with custom entity names', () => {
    const spans: Span[] = [];
    for (let k = 0; k < 1000; k++) spans.push([k % 3 === 0 ? 'email' : k % 3 === 1 ? 'credit_card' : 'my_custom_id', k * 10, k * 10 + 5, k % 11]);
    const l = list(spans);
    expect(l.length).toBe(1000);
    expect(items(l)).toEqual(spans);
    expect(l.counts()).toEqual({ email: 334, credit_card: 333, my_custom_id: 333 });
    expect(l.counts(3)).toEqual({ email: 1, credit_card: 1, my_custom_id: 1 });
  });

  it('moves, truncates and sets ranges in place', () => {
    const l = list([
      ['email', 0, 5, 7],
      ['phone', 10, 20, 4],
      ['ipv4', 30, 40, 4],
    ]);
    l.move(2, 1);
    l.setRange(0, 1, 6);
    l.truncate(2);
    expect(items(l)).toEqual([
      ['email', 1, 6, 7],
      ['ipv4', 30, 40, 4],
    ]);
  });
});

describe('resolve', () => {
  it('sorts by start, then the longer span, then the higher priority', () => {
    const l = list([
      ['ipv4', 50, 60, 4],
      ['phone', 0, 8, 4],
      ['us_ssn', 20, 31, 5],
      ['generic_secret', 0, 8, 1],
    ]);
    expect(items(resolve(l, 0))).toEqual([
      ['phone', 0, 8, 4],
      ['us_ssn', 20, 31, 5],
      ['ipv4', 50, 60, 4],
    ]);
  });

  it('an overlapping later span extends the kept one; spans before `from` are dropped', () => {
    const l = list([
      ['email', 0, 4, 7],
      ['email', 10, 20, 7],
      ['credit_card', 15, 30, 6],
      ['phone', 25, 28, 4],
      ['ipv4', 40, 50, 4],
    ]);
    expect(items(resolve(l, 5))).toEqual([
      ['email', 10, 30, 7],
      ['ipv4', 40, 50, 4],
    ]);
  });

  it('an empty list stays empty', () => {
    expect(resolve(new SpanList(), 0).length).toBe(0);
  });
});
