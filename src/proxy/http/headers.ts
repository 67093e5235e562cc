/**
 * Header handling per RFC 9110 §7.6: hop-by-hop fields (those of §7.6.1 and every field named in
 * `Connection`) are never forwarded; `Host` is the target's (undici sets it from the origin); the client's
 * tunnel token is removed and the resource's injected headers (the real credentials) are added upstream only.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer',
  'transfer-encoding', 'upgrade',
]);

/** Fields that carry credentials: removed from recordings. */
const CREDENTIAL = /^(authorization|proxy-authorization|x-api-key|api-key|cookie|set-cookie|x-auth-token|x-goog-api-key)$|token|secret|passw|api[-_]?key|session/i;

export type HeaderMap = Record<string, string | string[]>;

function connectionTokens(v: string | string[] | undefined): Set<string> {
  const out = new Set<string>();
  if (v === undefined) return out;
  for (const part of (Array.isArray(v) ? v.join(',') : v).split(',')) {
    const t = part.trim().toLowerCase();
    if (t) out.add(t);
  }
  return out;
}

/** Drops hop-by-hop fields and those named in `Connection`. */
export function endToEnd(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): HeaderMap {
  const named = connectionTokens(headers['connection']);
  const out: HeaderMap = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    const lk = k.toLowerCase();
    if (HOP_BY_HOP.has(lk) || named.has(lk)) continue;
    out[lk] = v;
  }
  return out;
}

/** The tunnel token the client presented (`Authorization: Bearer …` or `x-api-key`), if any. */
export function presentedToken(h: IncomingHttpHeaders): string | undefined {
  const auth = h['authorization'];
  if (typeof auth === 'string') {
    const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const key = h['x-api-key'];
  if (typeof key === 'string' && key.trim()) return key.trim();
  return undefined;
}

export function tokenMatches(presented: string | undefined, secret: string): boolean {
  if (presented === undefined) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface UpstreamHeaderOptions {
  /** The resolved injected headers (lower-case names). */
  inject: Readonly<Record<string, string>>;
  /** The body was rewritten: drop the client's length and encoding, the caller sets what it sends. */
  bodyRewritten: boolean;
  /** Content codings the response may use (null: keep the client's `accept-encoding`). */
  acceptEncoding: string | null;
}

/** The headers sent upstream: end-to-end fields minus the tunnel token, plus the injected ones. */
export function upstreamHeaders(client: IncomingHttpHeaders, o: UpstreamHeaderOptions): HeaderMap {
  const h = endToEnd(client);
  delete h['host'];
  delete h['authorization'];
  delete h['x-api-key'];
  delete h['expect'];
  if (o.bodyRewritten) {
    delete h['content-length'];
    delete h['content-encoding'];
  }
  if (o.acceptEncoding !== null) h['accept-encoding'] = o.acceptEncoding;
  for (const [k, v] of Object.entries(o.inject)) h[k.toLowerCase()] = v;
  return h;
}

/** Response headers for the client: end-to-end fields; when the body was rewritten, no length/encoding/validators. */
export function clientResponseHeaders(upstream: Record<string, string | string[] | undefined>, bodyRewritten: boolean): HeaderMap {
  const h = endToEnd(upstream);
  if (bodyRewritten) {
    delete h['content-length'];
    delete h['content-encoding'];
    delete h['etag'];
    delete h['content-md5'];
    delete h['digest'];
    delete h['content-digest'];
    delete h['repr-digest'];
  }
  return h;
}

/** For recordings: one string per field, credentials replaced by `[removed]`. */
export function recordableHeaders(h: Record<string, string | string[] | undefined>, extraCredentialNames: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  const extra = new Set(extraCredentialNames.map((n) => n.toLowerCase()));
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    const lk = k.toLowerCase();
    out[lk] = CREDENTIAL.test(lk) || extra.has(lk) ? '[removed]' : Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}
