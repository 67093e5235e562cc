import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration, parseSize, tryParseDuration, tryParseSize } from '../../src/config/index.js';

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['15m', 900_000],
    ['90d', 90 * 86_400_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['2w', 14 * 86_400_000],
    ['0s', 0],
    ['1m30s250ms', 90_250],
  ])('%s = %d ms', (text, ms) => {
    expect(tryParseDuration(text)).toBe(ms);
    expect(parseDuration(text)).toBe(ms);
  });
  it.each(['', '15', '15 m', 'm', '1x', '30m1h', '1h1h', '-5m', '1.m'])('%j is not a duration', (text) => {
    expect(tryParseDuration(text)).toBeNull();
    expect(() => parseDuration(text)).toThrow(/not a duration/);
  });
  it('formats', () => {
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(500)).toBe('500ms');
  });
});

describe('sizes', () => {
  it.each<[string | number, number]>([
    ['512', 512],
    [512, 512],
    ['50MB', 50_000_000],
    ['1KiB', 1024],
    ['1kib', 1024],
    ['64KB', 64_000],
    ['1.5MiB', 1_572_864],
    ['2GiB', 2 * 1024 ** 3],
    ['10B', 10],
  ])('%j = %d bytes', (text, bytes) => {
    expect(tryParseSize(text)).toBe(bytes);
  });
  it.each<string | number>(['', 'MB', '-1', '1 megabyte', '5XB', 1.5, -1])('%j is not a size', (v) => {
    expect(tryParseSize(v)).toBeNull();
    expect(() => parseSize(v)).toThrow(/not a size/);
  });
});
