/**
 * Checkers for the named string formats of `schema.ts`. Each returns null when the value is fine, or what is
 * wrong. Messages never quote the value: some formats (URLs) may carry credentials.
 *
 * For strings that may hold secret references the validator passes the value with every reference replaced
 * by `SECRET_PLACEHOLDER`, so a URL like `postgres://dlp:${env:PW}@db/x` can be checked as a URL.
 */
import type { StringFormat } from './schema.js';

export const SECRET_PLACEHOLDER = 'dlpctl-secret-ref';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return LOOPBACK_HOSTS.has(h) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function parseUrl(value: string): URL | null {
  try {
    return new URL(value);
  } catch {
    return null;
  }
}

const passwordIsOnlyRefs = (url: URL): boolean => decodeURIComponent(url.password).split(SECRET_PLACEHOLDER).join('') === '';

/** Splits `HOST:PORT` / `[V6]:PORT`; null when malformed. */
export function parseListen(value: string): { host: string; port: number } | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (m === null) return null;
  const port = Number(m[2]);
  if (port > 65535) return null;
  const host = (m[1] as string).startsWith('[') ? (m[1] as string).slice(1, -1) : (m[1] as string);
  return { host, port };
}

const KEY_TYPES = /^(ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com|rsa-sha2-(256|512))$/;

const checks: Record<StringFormat, (v: string) => string | null> = {
  name: (v) => (/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(v) ? null : 'must use letters, digits, `_`, `.` and `-`, starting with a letter or digit'),
  'non-empty': (v) => (v.trim() === '' ? 'must not be empty' : null),
  'issuer-url': (v) => {
    const u = parseUrl(v);
    if (u === null || (u.protocol !== 'https:' && u.protocol !== 'http:')) return 'must be an https:// URL';
    if (u.protocol === 'http:' && !isLoopbackHost(u.hostname)) return 'must be an https:// URL (http:// is only allowed for localhost, 127.0.0.1 and [::1])';
    if (u.username !== '' || u.password !== '') return 'must not contain credentials';
    if (u.search !== '' || u.hash !== '') return 'must not have a query or fragment';
    return null;
  },
  'postgres-url': (v) => {
    const u = parseUrl(v);
    if (u === null || (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') || u.hostname === '') {
      return 'must be postgres://USER@HOST[:PORT][/DATABASE]';
    }
    if (u.password !== '') return 'must not contain a password: remove it from the URL and write `password: ${env:…}` (or ${file:…}, ${keychain:…})';
    if (u.username === '') return 'must name the user dlpctl logs in as: postgres://USER@HOST[:PORT][/DATABASE]';
    return null;
  },
  'http-url': (v) => {
    const u = parseUrl(v);
    if (u === null || (u.protocol !== 'https:' && u.protocol !== 'http:') || u.hostname === '') return 'must be an http:// or https:// URL';
    if (u.password !== '' || u.username !== '') return 'must not contain credentials: inject them with `headers:` and a secret reference';
    return null;
  },
  'webhook-url': (v) => {
    // The whole URL may be a secret (Slack webhook URLs are): then it is checked when resolved.
    if (v.trim() === SECRET_PLACEHOLDER) return null;
    const u = parseUrl(v);
    if (u === null || (u.protocol !== 'https:' && u.protocol !== 'http:') || u.hostname === '') return 'must be an http:// or https:// URL';
    return null;
  },
  'ssh-url': (v) => {
    const u = parseUrl(v);
    if (u === null || u.protocol !== 'ssh:' || u.hostname === '') return 'must be ssh://USER@HOST[:PORT]';
    if (u.password !== '') return 'must not contain a password: write `password: ${env:…}` or `privateKey: ${file:…}`';
    if (u.username === '') return 'must name the user: ssh://USER@HOST[:PORT]';
    if ((u.pathname !== '' && u.pathname !== '/') || u.search !== '' || u.hash !== '') return 'must be ssh://USER@HOST[:PORT] without a path';
    return null;
  },
  'store-url': (v) => {
    if (v.startsWith('sqlite:')) return v.length > 'sqlite:'.length ? null : 'needs a path: sqlite:PATH';
    const u = parseUrl(v);
    if (u === null || (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') || u.hostname === '') {
      return 'must be sqlite:PATH or postgres://USER@HOST[:PORT]/DATABASE';
    }
    if (u.password !== '' && !passwordIsOnlyRefs(u)) return 'must not contain a literal password: write it as a secret reference, e.g. postgres://USER:${env:STORE_PASSWORD}@HOST/DB';
    return null;
  },
  listen: (v) => (parseListen(v) === null ? 'must be HOST:PORT, e.g. 127.0.0.1:5433 (port 0 picks a free port)' : null),
  principal: (v) => (/^(group|subject|user):\S.*$/.test(v) ? null : 'must be group:NAME, subject:SUB or user:NAME'),
  'host-key': (v) => {
    if (v.startsWith('SHA256:')) return /^SHA256:[A-Za-z0-9+/]{43}=?$/.test(v) ? null : 'must be SHA256: followed by 43 base64 characters (as `ssh-keygen -lf` prints)';
    const parts = v.trim().split(/\s+/);
    const at = parts.findIndex((p) => KEY_TYPES.test(p));
    if (at < 0 || at > 1 || !/^[A-Za-z0-9+/]+={0,2}$/.test(parts[at + 1] ?? '')) {
      return 'must be a SHA256:… fingerprint or a known_hosts line ([HOST ]KEYTYPE BASE64)';
    }
    return null;
  },
  'path-glob': (v) => (v.startsWith('/') ? null : 'must start with `/`'),
  'file-glob': (v) => (v.trim() === '' ? 'must not be empty' : v.includes('\0') ? 'must not contain NUL' : null),
  column: (v) => (/^(\*|[^.\s*]+)(\.(\*|[^.\s*]+)){0,2}$/.test(v) ? null : 'must be [SCHEMA.]TABLE.COLUMN (or a suffix of it), `*` for any one part'),
  'sql-name': (v) => (/^[^\s.]+(\.[^\s.]+)?$/.test(v) ? null : 'must be NAME or SCHEMA.NAME'),
  'env-name': (v) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(v) ? null : 'must be an environment variable name (letters, digits, `_`)'),
  'header-name': (v) => (/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(v) ? null : 'must be an HTTP header name'),
  'env-template': (v) => {
    if (/\$\{/.test(v)) return 'must not contain a secret reference: the command never receives secrets, use {token} for the tunnel secret';
    for (const m of v.matchAll(/\{([^{}]*)\}/g)) {
      if (m[1] !== 'url' && m[1] !== 'token') return `unknown placeholder \`{${(m[1] ?? '').slice(0, 20)}}\` (use {url} or {token})`;
    }
    return null;
  },
  'dotted-path': (v) => (v !== '' && v.split('.').every((s) => s !== '') ? null : 'must be a claim name or dotted path (no empty parts)'),
  entity: (v) => (/^[a-z][a-z0-9_]*$/.test(v) ? null : 'must be an entity name (lower-case letters, digits, `_`)'),
  'entity-name': (v) => (/^[a-z][a-z0-9_]*$/.test(v) ? null : 'must use lower-case letters, digits and `_`, starting with a letter'),
  'http-method': (v) => (/^[A-Z]+$/.test(v) ? null : 'must be an HTTP method such as GET or POST'),
};

export function checkFormat(format: StringFormat, value: string): string | null {
  return checks[format](value);
}
