/** `--since 24h` / `--until 2025-01-02T03:00:00Z`: a duration ago, or an ISO time / date. */
import { tryParseDuration } from '../config/units.js';
import { DlpctlError } from '../errors.js';

export function parseTimeArg(value: string, now: Date, flag: string): string {
  const v = value.trim();
  const d = tryParseDuration(v);
  if (d !== null) return new Date(now.getTime() - d).toISOString();
  if (/^\d{4}-\d{2}-\d{2}/.test(v)) {
    const ms = Date.parse(v);
    if (!Number.isNaN(ms)) return new Date(ms).toISOString();
  }
  throw new DlpctlError('USAGE', `${flag} ${value}: expected a duration ago (30m, 24h, 7d) or an ISO time (2025-01-02, 2025-01-02T15:04:05Z)`);
}
