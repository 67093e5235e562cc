/**
 * Durations (`500ms`, `15m`, `1h30m`, `90d`) and byte sizes (`512`, `50MB`, `1KiB`) as written in
 * dlpctl.yaml and on the command line (`--since 24h`, `prune --older-than 90d`).
 */
import { DlpctlError } from '../errors.js';
import type { ByteSize, Duration } from './types.js';

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};
/** Units in the order a compound duration must use them (`1h30m`, not `30m1h`). */
const DURATION_ORDER = ['w', 'd', 'h', 'm', 's', 'ms'];

/**
 * Parses a duration into milliseconds. Components are a number and a unit (ms s m h d w), largest unit
 * first, each unit at most once: `500ms`, `15m`, `1h30m`, `1.5h`, `90d`. A bare number is rejected: a
 * unit-less timeout is a guess. Returns null when the text is not a duration.
 */
export function tryParseDuration(text: string): Duration | null {
  const s = text.trim();
  if (s === '') return null;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y;
  let total = 0;
  let lastRank = -1;
  let index = 0;
  while (index < s.length) {
    re.lastIndex = index;
    const m = re.exec(s);
    if (m === null) return null;
    const unit = m[2] as string;
    const rank = DURATION_ORDER.indexOf(unit);
    if (rank <= lastRank) return null;
    lastRank = rank;
    total += Number(m[1]) * (DURATION_UNITS[unit] as number);
    index = re.lastIndex;
  }
  return Math.round(total);
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/**
 * Parses a byte size: a plain non-negative integer is bytes; otherwise a number and a unit, case-insensitive:
 * B, KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024). `1.5MB` is allowed and rounded to whole
 * bytes. Returns null when the value is not a size.
 */
export function tryParseSize(value: string | number): ByteSize | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : null;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?$/i.exec(value.trim());
  if (m === null) return null;
  const unit = (m[2] ?? 'b').toLowerCase();
  const bytes = Math.round(Number(m[1]) * (SIZE_UNITS[unit] as number));
  return Number.isSafeInteger(bytes) ? bytes : null;
}

/** Like `tryParseDuration`, but a malformed duration is a `USAGE` error (for command-line flags). */
export function parseDuration(text: string): Duration {
  const ms = tryParseDuration(text);
  if (ms === null) throw new DlpctlError('USAGE', `"${text}" is not a duration: use a number with a unit (ms, s, m, h, d, w), e.g. 500ms, 15m, 1h30m, 90d`);
  return ms;
}

/** Like `tryParseSize`, but a malformed size is a `USAGE` error (for command-line flags). */
export function parseSize(value: string | number): ByteSize {
  const bytes = tryParseSize(value);
  if (bytes === null) throw new DlpctlError('USAGE', `"${value}" is not a size: use bytes or a number with a unit, e.g. 512, 64KB, 1KiB, 50MB`);
  return bytes;
}

/** The shortest exact rendering of a duration: 5400000 → `1h30m`, 500 → `500ms`, 0 → `0s`. */
export function formatDuration(ms: Duration): string {
  if (ms === 0) return '0s';
  let rest = Math.round(ms);
  let out = '';
  for (const unit of DURATION_ORDER) {
    const size = DURATION_UNITS[unit] as number;
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}

/** A human rendering of a byte size in binary units: 1536 → `1.5KiB`, 512 → `512B`. */
export function formatSize(bytes: ByteSize): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const n = i === 0 ? String(v) : String(Math.round(v * 10) / 10);
  return `${n}${units[i] as string}`;
}
