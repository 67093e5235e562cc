/** Store URLs: `sqlite:PATH` or `postgres://…` / `postgresql://…`. */
import path from 'node:path';
import { tryParseDuration } from '../config/units.js';
import { DlpctlError } from '../errors.js';

/**
 * `timeout`: how long a write may take to commit before the statement it records is denied (`?timeout=5s`
 * on either engine; see OpenStoreOptions.timeoutMs).
 */
export type ParsedStoreUrl =
  | { engine: 'sqlite'; path: string; display: string; synchronous?: 'full' | 'normal'; timeoutMs?: number }
  | { engine: 'postgres'; url: string; display: string; timeoutMs?: number };

/** The store write timeout of `?timeout=`: a duration with its unit (`5s`, `500ms`, `1m`). */
function parseTimeout(v: string): number {
  const ms = tryParseDuration(v);
  if (ms === null || ms <= 0) {
    throw new DlpctlError('STORE_URL', `store URL parameter "timeout=${v}" is not a duration; write e.g. ?timeout=5s or ?timeout=500ms`);
  }
  return ms;
}

/** `$XDG_DATA_HOME/dlpctl/store.db` (XDG default `~/.local/share`). */
export function defaultStoreUrl(env: Record<string, string | undefined>, homedir: string): string {
  const data = env['XDG_DATA_HOME'] && path.isAbsolute(env['XDG_DATA_HOME']) ? env['XDG_DATA_HOME'] : path.join(homedir, '.local', 'share');
  return `sqlite:${path.join(data, 'dlpctl', 'store.db')}`;
}

/** The URL with its password (and any password-like query parameter) removed. */
export function redactStoreUrl(raw: string): string {
  let out = raw;
  try {
    const u = new URL(raw);
    if (u.password !== '' || [...u.searchParams.keys()].some((k) => /pass|secret|token|key/i.test(k))) {
      u.password = '';
      for (const k of [...u.searchParams.keys()]) {
        if (/pass|secret|token|key/i.test(k)) u.searchParams.set(k, 'REDACTED');
      }
      out = u.toString();
    }
  } catch {
    // not a URL: fall through to the textual redaction below
  }
  return out.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1@').replace(/((?:pass|secret|token|key)\w*=)[^&\s]*/gi, '$1REDACTED');
}

export function parseStoreUrl(raw: string, homedir: string): ParsedStoreUrl {
  const url = raw.trim();
  if (url.startsWith('sqlite:')) {
    let p = url.slice('sqlite:'.length);
    let synchronous: 'full' | 'normal' | undefined;
    let timeoutMs: number | undefined;
    let timeoutText = '';
    const q = p.indexOf('?');
    if (q !== -1) {
      const params = new URLSearchParams(p.slice(q + 1));
      p = p.slice(0, q);
      for (const [k, v] of params) {
        if (k === 'sync' && (v === 'full' || v === 'normal')) synchronous = v;
        else if (k === 'timeout') {
          timeoutMs = parseTimeout(v);
          timeoutText = v;
        } else throw new DlpctlError('STORE_URL', `store URL parameter "${k}=${v}" is not known; sqlite URLs take ?sync=full or ?sync=normal, and ?timeout=5s`);
      }
    }
    if (p.startsWith('//')) p = p.slice(2); // sqlite:///abs/path
    if (p === '' ) throw new DlpctlError('STORE_URL', 'store URL "sqlite:" has no path; use sqlite:PATH, e.g. sqlite:~/.local/share/dlpctl/store.db');
    if (/^(sqlite|postgres(ql)?):/i.test(p)) {
      throw new DlpctlError('STORE_URL', `store URL "${redactStoreUrl(url)}" has its scheme twice; use sqlite:PATH`);
    }
    if (p === '~' || p.startsWith('~/')) p = path.join(homedir, p.slice(1));
    p = path.resolve(p);
    const query = [...(synchronous ? [`sync=${synchronous}`] : []), ...(timeoutMs !== undefined ? [`timeout=${timeoutText}`] : [])].join('&');
    return {
      engine: 'sqlite',
      path: p,
      display: `sqlite:${p}${query ? `?${query}` : ''}`,
      ...(synchronous ? { synchronous } : {}),
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    };
  }
  if (/^postgres(ql)?:\/\//i.test(url)) {
    let u: URL;
    try {
      u = new URL(url);
      if (!u.hostname && !u.searchParams.get('host')) throw new Error('no host');
    } catch {
      throw new DlpctlError('STORE_URL', `store URL ${redactStoreUrl(url)} is not a valid PostgreSQL URL; use postgres://USER@HOST:PORT/DATABASE`);
    }
    // `timeout` is dlpctl's, not libpq's: taken out before the URL reaches the driver.
    const t = u.searchParams.get('timeout');
    if (t === null) return { engine: 'postgres', url, display: redactStoreUrl(url) };
    u.searchParams.delete('timeout');
    return { engine: 'postgres', url: u.toString(), display: redactStoreUrl(url), timeoutMs: parseTimeout(t) };
  }
  throw new DlpctlError(
    'STORE_URL',
    `unsupported store URL "${redactStoreUrl(url)}"; use sqlite:PATH or postgres://USER@HOST:PORT/DATABASE`,
  );
}
