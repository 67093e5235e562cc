/**
 * The HTTP tunnel engine. Node's HTTP/1.1 server parses what local clients send (keep-alive, chunked,
 * `Expect: 100-continue`); undici carries each request to the target. One TCP connection is one session.
 *
 * Per request, in order:
 *   1. tunnel token (`Authorization: Bearer` or `x-api-key`), else 401; the session record opens on the
 *      first authenticated request of a connection (no store, no session: 503)
 *   2. body: JSON, form and text bodies up to `inspectCapBytes` are read whole (decoded when compressed) so
 *      policy can look at them and masking can rewrite them; anything else streams through with backpressure
 *   3. policy (method, path, headers without credentials, body) → 413 maxBodyBytes, 429 ratePerMinute per
 *      identity, 403 deny (JSON naming the rule), approve holds until decided
 *   4. masking of the query string and body; the `http.request` event is durable before anything is forwarded
 *   5. upstream via undici, the token replaced by the injected headers; connect/headers/body timeouts → 504,
 *      other failures → 502 (JSON bodies that say what happened)
 *   6. the response: with masks, SSE event by event (sse-mask.ts), JSON/form whole, text streamed; decoded
 *      when compressed; the injected credentials scrubbed from textual bodies always. Binary bodies pass
 *      untouched. With `restore: true` the response is masked first (pseudonymize as redact, see
 *      responseMasks) and only then are placeholders restored, and only those this session's requests were
 *      given (ConnState.vault): what the upstream writes itself, placeholders it invents and placeholders of
 *      other sessions never come out as originals.
 *   7. a second `http.request` event (phase `response`): status, duration, headers, masked bodies, counts
 */
import { approvalRequest, auditLabel, decide, denialText, ruleNameOf, tunnelPolicyOf, type EngineBaseOptions, type TunnelPolicy } from '../decide.js';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { pipeline, Readable } from 'node:stream';
import tls from 'node:tls';
import { Pool } from 'undici';
import type { HttpResource } from '../../config/types.js';
import { createDlpEngine, PseudonymVault, type DlpEngine } from '../../dlp/index.js';
import { DlpctlError } from '../../errors.js';
import { MaskEngineCache, type Decision, type MaskDirective } from '../../policy/index.js';
import { requestApproval } from '../../approvals/request.js';
import type { HttpRequestBody } from '../../store/types.js';
import { SessionRecorder } from '../recorder.js';
import { LOGIN_GRACE_MS, type TunnelAddress, type TunnelEngine, type TunnelEvent, type TunnelSession } from '../tunnel.js';
import { bodyKind, codingOf, decoders, decodeSync, DECODABLE, UnsupportedCoding, type BodyKind } from './content.js';
import { readUpTo } from './read-body.js';
import { clientResponseHeaders, presentedToken, recordableHeaders, tokenMatches, upstreamHeaders, type HeaderMap } from './headers.js';
import { scrubText, SecretScrubber, secretValues, StreamRestorer } from './restore.js';
import { SseMasker } from './sse-mask.js';

export interface HttpEngineOptions extends EngineBaseOptions {
  resource: HttpResource;
  /** The injected headers, resolved (never print them). */
  headers: Readonly<Record<string, string>>;
  /** PEM CA bundle for the target, resolved. */
  ca?: string;
  /** TLS toward local clients (PEM), when configured. */
  serverTls?: { cert: string; key: string };
  /** Upstream timeouts in ms: connect (default 10 s), response headers and between body chunks (default 10 min). */
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  /** A new connection must bring its first request's headers within this (default LOGIN_GRACE_MS). */
  clientHeadersTimeoutMs?: number;
  /** Largest body held whole to inspect and mask (default 16 MiB). Larger text bodies are masked as streams. */
  inspectCapBytes?: number;
  /** Characters of each body kept, masked, in the recording (default 64 KiB). */
  recordBodyChars?: number;
  /** Clock for the rate limit (ms). */
  now?: () => number;
}

interface ConnState {
  socket: net.Socket;
  ctx: { secret: string; emit: (e: TunnelEvent) => void };
  clientAddr: string;
  recorder: Promise<SessionRecorder> | null;
  active: { abort: AbortController; res: http.ServerResponse } | null;
  terminated: string | null;
  outcome: 'ok' | 'error';
  /** Requests whose headers have arrived on this connection. */
  requests: number;
  /** The placeholders this session's requests were given: the only ones its responses get restored. */
  vault: PseudonymVault;
  /** Request-direction mask engines, pseudonymizing into `vault`. */
  masks: MaskEngineCache;
}

const NOT_A_PROXY =
  "dlpctl: the tunnel is not a forward proxy: point the client's base URL at the tunnel (for example OPENAI_BASE_URL=<tunnel URL>/v1) and send paths, not absolute URLs or CONNECT";

/** Writes a whole JSON error response on a socket the HTTP server cannot answer through, and ends it. */
function rawReply(socket: net.Socket, status: string, code: string, message: string): void {
  const body = JSON.stringify(errorBody(code, message));
  socket.end(`HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/** An answer dlpctl gives itself. */
class Reply extends Error {
  readonly status: number;
  readonly code: string;
  readonly rule: string | undefined;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, o: { rule?: string; headers?: Record<string, string> } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.rule = o.rule;
    this.headers = o.headers ?? {};
  }
}

const MiB = 1024 * 1024;
/** Responses up to this declared length are scrubbed whole and sent with a content-length (see passResponse). */
const SMALL_BODY = 64 * 1024;
/**
 * A response event recording this many characters of body or more commits at once instead of waiting for the
 * next write (see recordResponse): sealing it (canonical JSON and SHA-256 of the body) takes ~10 µs per KB, and
 * deferred it fell to the session's next request, whose record the client waits for (an SSE stream's 23 KB:
 * 0.15-0.45 ms added to the next request).
 */
const LARGE_RECORD_CHARS = 8 * 1024;

/** Sliding one-minute window per identity. */
class RateLimiter {
  private readonly hits = new Map<string, number[]>();
  take(key: string, perMinute: number, now: number): number | null {
    const list = (this.hits.get(key) ?? []).filter((t) => t > now - 60_000);
    if (list.length >= perMinute) {
      this.hits.set(key, list);
      return Math.max(1, Math.ceil((list[0]! + 60_000 - now) / 1000));
    }
    list.push(now);
    this.hits.set(key, list);
    return null;
  }
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

function errorBody(code: string, message: string, rule?: string): unknown {
  return { error: { message, type: 'dlpctl_error', code, ...(rule ? { rule } : {}) } };
}

async function write(res: http.ServerResponse, chunk: Buffer | string): Promise<void> {
  if (chunk.length === 0) return;
  if (res.destroyed) throw new Error('the client went away');
  if (!res.write(chunk)) {
    await Promise.race([once(res, 'drain'), once(res, 'close')]);
    if (res.destroyed && !res.writableFinished) throw new Error('the client went away');
  }
}

function upstreamFailure(err: unknown, origin: string, o: { connectMs: number; headersMs: number; bodyMs: number }): Reply {
  const e = err as { code?: string; cause?: { code?: string }; message?: string };
  const code = e.code ?? e.cause?.code ?? '';
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new Reply(504, 'upstream_timeout', `dlpctl: the upstream ${origin} did not accept a connection within ${o.connectMs / 1000}s`);
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new Reply(504, 'upstream_timeout', `dlpctl: the upstream ${origin} did not answer within ${o.headersMs / 1000}s`);
    case 'UND_ERR_BODY_TIMEOUT':
      return new Reply(504, 'upstream_timeout', `dlpctl: the upstream ${origin} stopped sending its response for ${o.bodyMs / 1000}s`);
    case 'ECONNREFUSED':
      return new Reply(502, 'upstream_unreachable', `dlpctl: cannot reach the upstream ${origin} (connection refused)`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new Reply(502, 'upstream_unreachable', `dlpctl: cannot resolve the upstream host of ${origin}`);
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
    case 'EPIPE':
      return new Reply(502, 'upstream_reset', `dlpctl: the upstream ${origin} closed the connection`);
    default: {
      if (/certificate|self.signed|CERT_|ERR_TLS/i.test(`${code} ${e.message ?? ''}`)) {
        return new Reply(502, 'upstream_tls', `dlpctl: TLS to the upstream ${origin} failed (${code || e.message}); check tls.ca / tls.verify of the resource`);
      }
      return new Reply(502, 'upstream_error', `dlpctl: the request to the upstream ${origin} failed (${code || e.message || 'unknown error'})`);
    }
  }
}

/**
 * The mask rules of a response. With `restore`, the response is masked first and only then are the session's
 * own placeholders put back, so what the upstream wrote itself never comes out restorable: a pseudonymize
 * rule masks it as redact (`[REDACTED:email]`). A placeholder would not do: a value the session also sent
 * has the session's own placeholder, which the restore step would turn straight back into the value, and
 * any other becomes the session's as soon as one of its requests carries that value. Without `restore`
 * nothing is put back, and pseudonymize gives the tunnel's placeholders as in requests (tunnel vault).
 */
function responseMasks(masks: readonly MaskDirective[], restore: boolean): readonly MaskDirective[] {
  if (!restore) return masks;
  return masks.map((m) => (m.with === 'pseudonymize' ? { ...m, with: 'redact' as const } : m));
}

function addCounts(into: Record<string, number>, c: Record<string, number>): void {
  for (const [k, n] of Object.entries(c)) into[k] = (into[k] ?? 0) + n;
}

let nextSessionNumber = 0;

export class HttpEngine implements TunnelEngine {
  private readonly o: HttpEngineOptions;
  private readonly server: http.Server;
  private readonly conns = new WeakMap<object, ConnState>();
  private readonly pool: Pool;
  private readonly origin: string;
  private readonly basePath: string;
  private readonly inject: Record<string, string>;
  private readonly secrets: string[];
  private readonly auditDlp: DlpEngine;
  /** Numbers placeholders for every session of the tunnel; restores nothing itself (see ConnState.vault). */
  readonly vault = new PseudonymVault();
  private readonly hashKey = randomBytes(32);
  /** Response-direction mask engines (see responseMasks). */
  private readonly masks: MaskEngineCache;
  private readonly tunnelPolicy: TunnelPolicy;
  private readonly bodyRules: boolean;
  private readonly rate = new RateLimiter();
  private readonly inspectCap: number;
  private readonly recordCap: number;
  private readonly timeouts: { connectMs: number; headersMs: number; bodyMs: number };
  private readonly secureContext: tls.SecureContext | null;

  constructor(o: HttpEngineOptions) {
    this.o = o;
    const target = new URL(o.resource.target);
    this.origin = target.origin;
    this.basePath = target.pathname.replace(/\/+$/, '');
    this.inject = Object.fromEntries(Object.entries(o.headers).map(([k, v]) => [k.toLowerCase(), v]));
    this.secrets = secretValues(Object.values(this.inject));
    this.timeouts = { connectMs: o.connectTimeoutMs ?? 10_000, headersMs: o.headersTimeoutMs ?? 600_000, bodyMs: o.bodyTimeoutMs ?? 600_000 };
    this.inspectCap = o.inspectCapBytes ?? 16 * MiB;
    this.recordCap = o.recordBodyChars ?? 64 * 1024;
    this.pool = new Pool(this.origin, {
      connections: 256,
      connectTimeout: this.timeouts.connectMs,
      headersTimeout: this.timeouts.headersMs,
      bodyTimeout: this.timeouts.bodyMs,
      keepAliveTimeout: 30_000,
      connect: {
        ...(o.ca ? { ca: o.ca } : {}),
        rejectUnauthorized: o.resource.tls?.verify !== false,
      },
    });
    this.auditDlp = createDlpEngine({ masker: 'redact', customDetectors: o.customDetectors ?? [] });
    this.masks = new MaskEngineCache({ customDetectors: o.customDetectors ?? [], hashKey: this.hashKey, vault: this.vault });
    this.tunnelPolicy = tunnelPolicyOf(o, this.auditDlp);
    this.bodyRules = o.policies.some((p) => p.rules.some((r) => r.when?.http?.text !== undefined || (r.when?.entities?.length ?? 0) > 0));
    this.secureContext = o.serverTls ? tls.createSecureContext({ cert: o.serverTls.cert, key: o.serverTls.key }) : null;
    this.server = http.createServer({ requestTimeout: 0, keepAliveTimeout: 65_000, noDelay: true }, (req, res) => {
      void this.handle(req, res);
    });
    // A client configured with the tunnel as a forward proxy (`curl -p -x`, HTTPS_PROXY) sends CONNECT.
    this.server.on('connect', (_req: http.IncomingMessage, socket: net.Socket) => {
      rawReply(socket, '405 Method Not Allowed', 'not_a_proxy', NOT_A_PROXY);
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
      if (!socket.writable || err.code === 'ECONNRESET') {
        socket.destroy();
        return;
      }
      if (err.code === 'HPE_HEADER_OVERFLOW') rawReply(socket, '431 Request Header Fields Too Large', 'headers_too_large', 'dlpctl: the request headers are too large (over 16 KiB)');
      else rawReply(socket, '400 Bad Request', 'bad_request', `dlpctl: malformed HTTP request (${err.code ?? err.message})`);
    });
  }

  url(a: TunnelAddress): string {
    const host = a.host.includes(':') ? `[${a.host}]` : a.host;
    return `${this.secureContext ? 'https' : 'http'}://${host}:${a.port}`;
  }

  /** The environment `connect -- cmd` gives the child: the resource's `env` with `{url}` and `{token}` filled in. */
  childEnv(a: TunnelAddress, secret: string): Record<string, string> {
    const url = this.url(a);
    const env: Record<string, string> = { DLPCTL_HTTP_URL: url, DLPCTL_HTTP_TOKEN: secret };
    for (const [k, v] of Object.entries(this.o.resource.env)) env[k] = v.replaceAll('{url}', url).replaceAll('{token}', secret);
    return env;
  }

  async close(): Promise<void> {
    await this.pool.destroy().catch(() => undefined);
  }

  accept(socket: net.Socket, ctx: { secret: string; emit: (e: TunnelEvent) => void }): TunnelSession {
    const id = `http-${process.pid}-${++nextSessionNumber}`;
    const conn: net.Socket = this.secureContext ? new tls.TLSSocket(socket, { isServer: true, secureContext: this.secureContext }) : socket;
    const vault = new PseudonymVault(this.vault);
    if (conn !== socket) conn.on('error', () => socket.destroy());
    const st: ConnState = {
      socket: conn,
      ctx,
      clientAddr: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`,
      recorder: null,
      active: null,
      terminated: null,
      outcome: 'ok',
      requests: 0,
      vault,
      masks: new MaskEngineCache({ customDetectors: this.o.customDetectors ?? [], hashKey: this.hashKey, vault }),
    };
    this.conns.set(conn, st);
    // The HTTP server is fed sockets and never listens itself, so Node's header timeout (which it starts on
    // 'listening') does not run: a connection must bring its first request's headers within the limit, or it
    // is answered 408 and closed. (Between requests, keepAliveTimeout closes an idle connection.)
    const limit = this.o.clientHeadersTimeoutMs ?? LOGIN_GRACE_MS;
    const firstRequest = setTimeout(() => {
      if (st.active !== null || st.requests > 0) return;
      rawReply(conn, '408 Request Timeout', 'request_timeout', `dlpctl: no complete request headers within ${limit / 1000} s; connection closed`);
      setTimeout(() => conn.destroy(), 1000).unref();
    }, limit);
    firstRequest.unref();
    const closed = new Promise<void>((resolve) =>
      socket.once('close', () => {
        clearTimeout(firstRequest);
        resolve();
      }),
    );
    this.server.emit('connection', conn);
    const done = closed.then(() => this.endSession(st));
    return {
      id,
      done,
      terminate: async (reason: string) => {
        // The client already closed its side: the session is ending on its own, not cut.
        if (socket.destroyed || socket.readableEnded) return;
        st.terminated = reason;
        const a = st.active;
        if (a) {
          if (!a.res.headersSent) sendJson(a.res, 503, errorBody('tunnel_closing', `dlpctl: ${reason}`), { connection: 'close' });
          a.abort.abort();
          setTimeout(() => conn.destroy(), 1000).unref();
        } else conn.end();
      },
    };
  }

  private async endSession(st: ConnState): Promise<void> {
    st.vault.clear();
    if (!st.recorder) return;
    let rec: SessionRecorder;
    try {
      rec = await st.recorder;
    } catch {
      return;
    }
    const outcome = st.terminated ? 'terminated' : st.outcome;
    await rec.end(outcome).catch((err: unknown) => st.ctx.emit({ type: 'error', resource: this.o.resource.name, sessionId: rec.id, message: String(err) }));
    st.ctx.emit({ type: 'session_end', resource: this.o.resource.name, sessionId: rec.id, outcome });
  }

  private recorderFor(st: ConnState): Promise<SessionRecorder> {
    if (!st.recorder) {
      const p = SessionRecorder.start(this.o.store, {
        resource: this.o.resource.name,
        kind: 'http',
        identity: this.o.identity,
        clientAddr: st.clientAddr,
        ...(this.o.reason ? { reason: this.o.reason } : {}),
      });
      st.recorder = p;
      p.then(
        (rec) => st.ctx.emit({ type: 'session_start', resource: this.o.resource.name, sessionId: rec.id, client: st.clientAddr }),
        () => (st.recorder = null),
      );
    }
    return st.recorder;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const st = this.conns.get(req.socket);
    if (!st) {
      res.destroy();
      return;
    }
    st.requests += 1;
    res.setHeader('via', '1.1 dlpctl');
    if (st.terminated) {
      sendJson(res, 503, errorBody('tunnel_closing', `dlpctl: ${st.terminated}`), { connection: 'close' });
      return;
    }
    if (!tokenMatches(presentedToken(req.headers), st.ctx.secret)) {
      req.resume();
      sendJson(
        res,
        401,
        errorBody('tunnel_token_required', 'dlpctl: this tunnel needs its token: send it as "Authorization: Bearer <token>" or "x-api-key: <token>" (`dlpctl connect … -- cmd` gives it to the command as {token})'),
        { 'www-authenticate': 'Bearer realm="dlpctl"' },
      );
      return;
    }
    if (/\bwebsocket\b/i.test(req.headers.upgrade ?? '')) {
      // The tunnel declines upgrades (the header is hop-by-hop and dropped, so an h2c offer just gets
      // HTTP/1.1). A WebSocket client cannot do without one, and upgraded bytes would bypass policy and
      // masking: it gets a reason instead of a bare 200, and nothing reaches the upstream.
      req.resume();
      sendJson(
        res,
        501,
        errorBody(
          'upgrade_unsupported',
          `dlpctl: the tunnel does not relay protocol upgrades (${String(req.headers.upgrade).slice(0, 40)}): every request and answer must pass policy and masking as HTTP; use the API's HTTP endpoints (for example chat completions rather than the Realtime WebSocket)`,
        ),
        { connection: 'close' },
      );
      return;
    }
    if (!req.url?.startsWith('/')) {
      req.resume();
      sendJson(res, 400, errorBody('not_a_proxy', NOT_A_PROXY), { connection: 'close' });
      return;
    }
    let rec: SessionRecorder;
    try {
      rec = await this.recorderFor(st);
    } catch (err) {
      req.resume();
      const msg = err instanceof Error ? err.message : String(err);
      sendJson(res, 503, errorBody('store_unavailable', `dlpctl: ${msg}`), { connection: 'close' });
      return;
    }
    const abort = new AbortController();
    st.active = { abort, res };
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    try {
      await this.exchange(req, res, rec, st, abort.signal);
    } catch (err) {
      // (the socket itself gone: an error of dlpctl's before the body was read is not the client's leaving)
      const gone = !(err instanceof Reply) && st.socket.destroyed && !st.terminated;
      if (gone) {
        // The client left mid-exchange: not a failure of dlpctl or the upstream, but the trail says so.
        const when = req.complete ? 'before its response was complete' : 'before its request body was complete';
        const message = scrubText(`${(req.method ?? 'GET').toUpperCase()} ${this.auditPath(req.url)}: the client closed the connection ${when}`, this.secrets);
        await rec.record({ type: 'error', code: 'CLIENT_GONE', message }).catch(() => undefined);
      }
      // A denial, a limit or a missing token is a decision the session goes on after (as a denied statement
      // is in PostgreSQL); the session's outcome is an error only when dlpctl or the upstream failed.
      else if (!(err instanceof Reply) || err.status >= 500) st.outcome = 'error';
      if (err instanceof Reply) sendJson(res, err.status, errorBody(err.code, err.message, err.rule), err.headers);
      else if (!res.headersSent) sendJson(res, 500, errorBody('internal', `dlpctl: ${err instanceof Error ? err.message : String(err)}`));
      else res.destroy();
    } finally {
      st.active = null;
      if (st.terminated) st.socket.end();
    }
  }

  /** One request/response through the tunnel (the numbered steps of the module doc). */
  private async exchange(req: http.IncomingMessage, res: http.ServerResponse, rec: SessionRecorder, st: ConnState, signal: AbortSignal): Promise<void> {
    const t0 = performance.now();
    const resource = this.o.resource;
    const method = (req.method ?? 'GET').toUpperCase();
    let target = req.url ?? '/';
    if (!target.startsWith('/')) {
      try {
        const u = new URL(target);
        target = `${u.pathname}${u.search}`;
      } catch {
        throw new Reply(400, 'bad_request', 'dlpctl: the request target must be a path');
      }
    }
    const declared = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : null;
    const hasBody = declared !== null ? declared > 0 : req.headers['transfer-encoding'] !== undefined;
    const reqKind: BodyKind = hasBody ? bodyKind(req.headers['content-type']) : 'binary';
    let reqCoding: ReturnType<typeof codingOf> = null;
    const closeAfter = { connection: 'close' };
    const early = async (status: number, code: string, message: string, decision: HttpRequestBody['decision'], rule?: string, headers: Record<string, string> = {}): Promise<never> => {
      if (!req.complete) Object.assign(headers, closeAfter);
      await this.recordOrFail(rec, {
        type: 'http.request',
        method,
        path: this.auditPath(target),
        decision,
        ...(rule ? { rule } : {}),
        status,
        message,
        durationMs: Math.round(performance.now() - t0),
        reqHeaders: this.scrubRecord(recordableHeaders(req.headers)),
      });
      throw new Reply(status, code, message, { ...(rule ? { rule } : {}), headers });
    };
    try {
      reqCoding = codingOf(req.headers['content-encoding']);
    } catch (err) {
      if (reqKind !== 'binary' && err instanceof UnsupportedCoding) {
        await early(415, 'unsupported_encoding', `dlpctl: the request body's ${err.message}; send it uncompressed or gzip/deflate/br`, 'deny');
      }
    }

    // 2. the body: whole when it can be inspected, else streamed
    let raw: Buffer | null = null;
    let bodyText: string | undefined;
    let source: AsyncIterable<Buffer> = req;
    const inspectable = hasBody && reqKind !== 'binary';
    if (inspectable && (declared === null || declared <= this.inspectCap)) {
      const r = await readUpTo(req, this.inspectCap);
      if (!r.complete) {
        source = r.rest;
        if (this.bodyRules || reqCoding) {
          await early(413, 'body_too_large', `dlpctl: the request body is larger than ${this.inspectCap} bytes, too large to inspect for this resource's policy`, 'deny');
        }
      } else {
        raw = r.body;
        let decoded = raw;
        if (reqCoding) {
          try {
            decoded = decodeSync(raw, reqCoding, this.inspectCap);
          } catch {
            await early(400, 'bad_encoding', 'dlpctl: the request body could not be decoded per its content-encoding (or decodes to more than the inspect cap)', 'deny');
          }
        }
        bodyText = decoded.toString('utf8');
      }
    } else if (inspectable && (this.bodyRules || reqCoding)) {
      await early(413, 'body_too_large', `dlpctl: the request body is larger than ${this.inspectCap} bytes, too large to inspect for this resource's policy`, 'deny');
    }

    // 3. policy
    const policyHeaders = this.scrubRecord(recordableHeaders(req.headers));
    const decision: Decision = decide(this.tunnelPolicy, { type: 'http', method, path: target, headers: policyHeaders, ...(bodyText !== undefined ? { body: bodyText } : {}) });
    const ruleName = ruleNameOf(decision);
    let label: HttpRequestBody['decision'] = auditLabel(decision);
    rec.counters.statements += 1;
    const size = raw ? raw.length : declared;
    // Observe only (enforce: false): a limit that would have refused the request is recorded as `observe`
    // (the request event's decision, and a decision event saying what would have happened) and not applied.
    const observing = !decision.enforced;
    let observedLimit: string | undefined;
    const maxBody = observing ? undefined : decision.limits.maxBodyBytes;
    const ls = decision.limitSources;
    if (decision.limits.maxBodyBytes !== undefined && size !== null && size > decision.limits.maxBodyBytes) {
      const r = ls.maxBodyBytes ? `${ls.maxBodyBytes.policy}/${ls.maxBodyBytes.rule}` : undefined;
      const text = `denied by ${r ? `rule ${r}` : 'limit'}: the request body has ${size} bytes, the limit is ${decision.limits.maxBodyBytes}`;
      if (observing) observedLimit = `would have been 413, ${text}`;
      else {
        rec.counters.denied += 1;
        await early(413, 'body_too_large', `dlpctl: ${text}`, 'deny', r);
      }
    }
    if (decision.limits.ratePerMinute !== undefined) {
      const wait = this.rate.take(`${this.o.identity.issuer}|${this.o.identity.subject}`, decision.limits.ratePerMinute, this.o.now?.() ?? Date.now());
      if (wait !== null) {
        const r = ls.ratePerMinute ? `${ls.ratePerMinute.policy}/${ls.ratePerMinute.rule}` : undefined;
        const text = `rate limit of ${decision.limits.ratePerMinute} requests per minute for ${this.o.identity.subject} reached${r ? ` (rule ${r})` : ''}`;
        if (observing) observedLimit = `would have been 429, ${text}`;
        else {
          rec.counters.denied += 1;
          await early(429, 'rate_limited', `dlpctl: ${text}; retry in ${wait}s`, 'deny', r, { 'retry-after': String(wait) });
        }
      }
    }
    if (observedLimit !== undefined) {
      label = 'observe';
      st.ctx.emit({ type: 'decision', resource: resource.name, sessionId: rec.id, action: 'observe', rule: ruleName ?? null, summary: `${method} ${this.auditPath(target)}: observe only, ${observedLimit}`.slice(0, 200) });
    }
    const emitDecision = (action: string): void =>
      st.ctx.emit({ type: 'decision', resource: resource.name, sessionId: rec.id, action, rule: ruleName ?? null, summary: `${method} ${this.auditPath(target)}`.slice(0, 200) });
    if (decision.action === 'deny') {
      rec.counters.denied += 1;
      emitDecision('deny');
      const where = ruleName ? `rule ${ruleName}` : decision.basis === 'fail_closed' ? 'fail-closed' : `resource ${resource.name} default`;
      await early(403, 'policy_denied', denialText(where, decision.message, decision.rule), 'deny', ruleName);
    }

    // 4. masking of what goes out
    const engine = st.masks.for(decision.masks);
    const restore = engine !== null && decision.masks.some((m) => m.restore && m.with === 'pseudonymize');
    const resEngine = engine === null ? null : this.masks.for(responseMasks(decision.masks, restore));
    const reqCounts: Record<string, number> = {};
    let upTarget = target;
    if (engine && target.includes('?')) {
      const r = engine.maskForm(target);
      if (r.changed) {
        upTarget = r.text;
        addCounts(reqCounts, r.counts);
      }
    }
    let outBody: Buffer | Readable | undefined;
    let rewritten = false;
    let recordText: string | undefined;
    let streamedCapture: { text: string; bytes: number } | null = null;
    if (bodyText !== undefined && raw) {
      let text = bodyText;
      if (engine) {
        const r = reqKind === 'json' ? engine.maskJson(text) : reqKind === 'form' ? engine.maskForm(text) : engine.maskText(text);
        if (r.changed) {
          text = r.text;
          addCounts(reqCounts, r.counts);
        }
      }
      rewritten = text !== bodyText || reqCoding !== null;
      outBody = rewritten ? Buffer.from(text) : raw;
      recordText = text;
    } else if (hasBody) {
      outBody = this.streamRequest(source, { maxBody, engine: inspectable ? engine : null, counts: reqCounts, capture: (streamedCapture = { text: '', bytes: 0 }) });
      rewritten = inspectable && engine !== null;
    }
    for (const [k, n] of Object.entries(reqCounts)) rec.masked(k, n);

    const requestEvent: HttpRequestBody = {
      type: 'http.request',
      phase: 'request',
      method,
      path: this.auditPath(upTarget),
      decision: label,
      ...(ruleName ? { rule: ruleName } : {}),
      reqHeaders: policyHeaders,
      ...(recordText !== undefined ? { reqBody: this.recordable(recordText, reqKind) } : {}),
      ...(size !== null ? { reqBodyBytes: size } : {}),
      ...(Object.keys(reqCounts).length ? { masked: reqCounts } : {}),
    };
    await this.recordOrFail(rec, requestEvent);

    if (decision.action === 'approve') {
      emitDecision('approve');
      const auditText = `${method} ${requestEvent.path}${recordText !== undefined ? `\n${requestEvent.reqBody ?? ''}` : ''}`;
      const outcome = await requestApproval(
        this.o.store,
        approvalRequest(decision, { sessionId: rec.id, resource: resource.name, exact: `${method} ${target}\n${bodyText ?? ''}`, maskedText: auditText, requester: this.o.identity, reason: this.o.reason }),
        {
          signal,
          onPending: (a) => {
            st.ctx.emit({ type: 'decision', resource: resource.name, sessionId: rec.id, action: 'approve', rule: ruleName ?? null, summary: `waiting for approval ${a.id}` });
            this.o.onApprovalPending?.(a.id, auditText);
          },
        },
      );
      await this.recordOrFail(rec, { type: 'approval.decided', approvalId: outcome.approval?.id ?? '', state: outcome.approval?.state ?? 'expired' });
      if (!outcome.approved) {
        rec.counters.denied += 1;
        emitDecision('deny');
        await early(403, 'approval_denied', `dlpctl: denied by rule ${ruleName ?? 'approve'}: ${outcome.message}`, 'deny', ruleName);
      }
      emitDecision('allow');
    } else emitDecision(label);

    // 5. upstream
    const scanResponse = resEngine !== null;
    const headers = upstreamHeaders(req.headers, { inject: this.inject, bodyRewritten: rewritten, acceptEncoding: scanResponse ? DECODABLE : null });
    let up: Awaited<ReturnType<Pool['request']>>;
    try {
      up = await this.pool.request({
        method: method as 'GET',
        path: `${this.basePath}${upTarget}`,
        headers: headers as Record<string, string>,
        ...(outBody !== undefined ? { body: outBody } : {}),
        signal,
      });
    } catch (err) {
      if (err instanceof Reply) throw err;
      const tooLarge = (err as { cause?: unknown }).cause instanceof Reply ? ((err as { cause: Reply }).cause) : null;
      const reply = tooLarge ?? (signal.aborted ? new Reply(499, 'client_closed', 'dlpctl: the client went away') : upstreamFailure(err, this.origin, this.timeouts));
      if (reply.status === 413) rec.counters.denied += 1;
      await this.recordResponse(rec, requestEvent, t0, { status: reply.status, message: reply.message }, st);
      throw reply;
    }

    // 6. the response
    const status = up.statusCode;
    const resKind = bodyKind(up.headers['content-type']);
    const noBody = method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
    let resCoding: ReturnType<typeof codingOf> = null;
    let codingOk = true;
    try {
      resCoding = codingOf(up.headers['content-encoding']);
    } catch {
      codingOk = false;
    }
    const textual = resKind !== 'binary' && !noBody;
    const mask = scanResponse && textual;
    const resCounts: Record<string, number> = {};
    const upHeaders = up.headers as Record<string, string | string[] | undefined>;
    const result: { status: number; resBody?: string; resBytes: number; message?: string; resHeaders?: Record<string, string> } = {
      status,
      resBytes: 0,
      resHeaders: this.scrubRecord(recordableHeaders(upHeaders, Object.keys(this.inject))),
    };
    try {
      if (mask && !codingOk) {
        up.body.destroy();
        throw new Reply(502, 'upstream_encoding', `dlpctl: the upstream answered with a content-encoding (${String(up.headers['content-encoding'])}) dlpctl cannot decode, so the response cannot be masked`);
      }
      if (noBody) {
        res.writeHead(status, clientResponseHeaders(upHeaders, false));
        res.end();
        up.body.resume();
      } else if (mask) {
        await this.maskedResponse(up, res, resKind, resCoding, { engine: resEngine, vault: restore ? st.vault : null, counts: resCounts, result, status, headers: upHeaders });
      } else {
        await this.passResponse(up, res, status, upHeaders, textual && resCoding === null, result);
      }
    } catch (err) {
      if (err instanceof Reply) {
        result.status = err.status;
        result.message = err.message;
        await this.recordResponse(rec, requestEvent, t0, result, st, resCounts, streamedCapture);
        throw err;
      }
      const reply = signal.aborted ? null : upstreamFailure(err, this.origin, this.timeouts);
      result.message = reply ? reply.message : 'the client went away';
      if (!res.headersSent && reply) {
        result.status = reply.status;
        await this.recordResponse(rec, requestEvent, t0, result, st, resCounts, streamedCapture);
        throw reply;
      }
      res.destroy();
      await this.recordResponse(rec, requestEvent, t0, result, st, resCounts, streamedCapture);
      return;
    }
    await this.recordResponse(rec, requestEvent, t0, result, st, resCounts, streamedCapture);
  }

  /** A streamed request body: counted against maxBodyBytes, masked as text when masking applies. */
  private streamRequest(
    req: AsyncIterable<Buffer>,
    o: { maxBody: number | undefined; engine: DlpEngine | null; counts: Record<string, number>; capture: { text: string; bytes: number } },
  ): Readable {
    const cap = this.recordCap;
    const sm = o.engine ? o.engine.byteStream() : null;
    const max = o.maxBody;
    async function* gen(): AsyncGenerator<Buffer> {
      for await (const b of req) {
        o.capture.bytes += b.length;
        if (max !== undefined && o.capture.bytes > max) {
          throw new Reply(413, 'body_too_large', `dlpctl: the request body exceeds the limit of ${max} bytes`);
        }
        const out = sm ? sm.push(b) : b;
        if (o.capture.text.length < cap) o.capture.text += out.toString('utf8', 0, Math.min(out.length, cap));
        if (out.length) yield out;
      }
      if (sm) {
        const tail = sm.end();
        addCounts(o.counts, sm.counts());
        if (o.capture.text.length < cap) o.capture.text += tail.toString('utf8');
        if (tail.length) yield tail;
      }
    }
    return Readable.from(gen(), { objectMode: false });
  }

  private async passResponse(
    up: Awaited<ReturnType<Pool['request']>>,
    res: http.ServerResponse,
    status: number,
    upHeaders: Record<string, string | string[] | undefined>,
    scrub: boolean,
    result: { resBody?: string; resBytes: number },
  ): Promise<void> {
    const scrubber = scrub ? new SecretScrubber(this.secrets) : null;
    const rewritten = scrubber?.active === true;
    const kind = bodyKind(upHeaders['content-type']);
    const cap = this.recordCap;
    let captured = '';
    const capture = scrub && cap > 0;
    const declared = Number(upHeaders['content-length']);
    let source: AsyncIterable<Buffer> = up.body as AsyncIterable<Buffer>;
    if (scrubber && (rewritten || capture) && kind !== 'sse' && Number.isSafeInteger(declared) && declared >= 0 && declared <= SMALL_BODY) {
      // A small body is read whole and goes out in one write, with its headers: scrubbed, with its new length
      // (streamed, it would be chunked, and the chunked terminator would cost a write of its own).
      const r = await readUpTo(up.body, SMALL_BODY);
      if (r.complete) {
        result.resBytes += r.body.length;
        const out = rewritten ? Buffer.concat([scrubber.push(r.body), scrubber.end()]) : r.body;
        res.writeHead(status, rewritten ? { ...this.scrubHeaders(clientResponseHeaders(upHeaders, true)), 'content-length': String(out.length) } : this.scrubHeaders(clientResponseHeaders(upHeaders, false)));
        res.end(out);
        if (capture) result.resBody = this.recordable(out.toString('utf8', 0, Math.min(out.length, cap)), kind);
        return;
      }
      source = r.rest; // longer than it said: streamed like any other
    }
    res.writeHead(status, this.scrubHeaders(clientResponseHeaders(upHeaders, rewritten)));
    if (kind === 'sse') res.flushHeaders();
    if (!rewritten && !capture) {
      up.body.on('data', (c: Buffer) => (result.resBytes += c.length));
      await new Promise<void>((resolve, reject) => pipeline(up.body, res, (err) => (err ? reject(err) : resolve())));
      return;
    }
    for await (const b of source) {
      result.resBytes += b.length;
      const out = scrubber ? scrubber.push(b) : b;
      if (capture && captured.length < cap) captured += out.toString('utf8', 0, Math.min(out.length, cap));
      await write(res, out);
    }
    if (scrubber) await write(res, scrubber.end());
    res.end();
    if (capture) result.resBody = this.recordable(captured, kind);
  }

  private async maskedResponse(
    up: Awaited<ReturnType<Pool['request']>>,
    res: http.ServerResponse,
    kind: BodyKind,
    coding: ReturnType<typeof codingOf>,
    o: {
      engine: DlpEngine | null;
      /** The session's vault when its placeholders are to be restored (after masking). */
      vault: PseudonymVault | null;
      counts: Record<string, number>;
      result: { resBody?: string; resBytes: number };
      status: number;
      headers: Record<string, string | string[] | undefined>;
    },
  ): Promise<void> {
    const { engine, vault, counts, result } = o;
    let source: Readable = up.body;
    if (coding) {
      const decs = decoders(coding);
      source = (pipeline as unknown as (...s: unknown[]) => Readable)(up.body, ...decs, () => undefined);
    }
    up.body.on('data', (c: Buffer) => (result.resBytes += c.length));
    const headers = this.scrubHeaders(clientResponseHeaders(o.headers, true));
    const dec = new TextDecoder('utf-8');

    if (kind === 'sse') {
      const sse = new SseMasker({ engine, vault, secrets: this.secrets, recordCap: this.recordCap });
      res.writeHead(o.status, headers);
      res.flushHeaders();
      for await (const c of source) {
        await write(res, sse.push(dec.decode(c as Buffer, { stream: true })));
        if (sse.held > this.inspectCap) throw new Error(`an SSE event larger than ${this.inspectCap} bytes`);
      }
      await write(res, sse.push(dec.decode()) + sse.end());
      res.end();
      addCounts(counts, sse.counts());
      result.resBody = sse.recorded();
      return;
    }

    // JSON and forms: whole when they fit, else as text streams (below), from what was read so far.
    if (kind === 'json' || kind === 'form') {
      const r = await readUpTo(source, this.inspectCap);
      if (r.complete) {
        const text = r.body.toString('utf8');
        const m = engine ? (kind === 'json' ? engine.maskJson(text) : engine.maskForm(text)) : null;
        let out = m ? m.text : text;
        if (m) addCounts(counts, m.counts);
        result.resBody = this.recordable(out, kind);
        if (vault) out = kind === 'json' ? vault.restoreJson(out) : vault.restore(out);
        out = scrubText(out, this.secrets);
        const body = Buffer.from(out);
        res.writeHead(o.status, { ...headers, 'content-length': String(body.length) });
        res.end(body);
        return;
      }
      source = Readable.from(r.rest);
    }

    // Text: streamed through the scanner (a value split across chunks never leaks in part).
    const sm = engine ? engine.stream() : null;
    const rs = vault ? new StreamRestorer(vault) : null;
    const scrub = new SecretScrubber(this.secrets);
    let captured = '';
    const emit = async (masked: string): Promise<void> => {
      if (captured.length < this.recordCap) captured += masked.slice(0, this.recordCap);
      const t = rs ? rs.push(masked) : masked;
      await write(res, scrub.push(Buffer.from(t)));
    };
    res.writeHead(o.status, headers);
    for await (const c of source) await emit(sm ? sm.push(dec.decode(c as Buffer, { stream: true })) : dec.decode(c as Buffer, { stream: true }));
    const last = dec.decode();
    await emit(sm ? sm.push(last) + sm.end() : last);
    if (rs) await write(res, scrub.push(Buffer.from(rs.end())));
    await write(res, scrub.end());
    res.end();
    if (sm) addCounts(counts, sm.counts());
    result.resBody = this.recordable(captured, kind);
  }

  private scrubRecord(h: Record<string, string>): Record<string, string> {
    if (this.secrets.length === 0) return h;
    for (const k of Object.keys(h)) h[k] = scrubText(h[k]!, this.secrets);
    return h;
  }

  private scrubHeaders(h: HeaderMap): HeaderMap {
    if (this.secrets.length === 0) return h;
    const out: HeaderMap = {};
    for (const [k, v] of Object.entries(h)) out[k] = Array.isArray(v) ? v.map((x) => scrubText(x, this.secrets)) : scrubText(v, this.secrets);
    return out;
  }

  /** The path as recorded: query values masked, credentials scrubbed. */
  private auditPath(target: string): string {
    const t = target.includes('?') ? this.auditDlp.maskForm(target).text : target;
    return scrubText(t, this.secrets);
  }

  /** A body as the recording keeps it: every detected value redacted, credentials scrubbed, capped. */
  private recordable(text: string, kind: BodyKind): string {
    const head = text.length > this.recordCap ? text.slice(0, this.recordCap + 512) : text;
    const m = kind === 'json' ? this.auditDlp.maskJson(head) : kind === 'form' ? this.auditDlp.maskForm(head) : this.auditDlp.maskText(head);
    const out = scrubText(m.text, this.secrets);
    return out.length > this.recordCap ? `${out.slice(0, this.recordCap)}…` : out;
  }

  private async recordOrFail(rec: SessionRecorder, body: Parameters<SessionRecorder['record']>[0]): Promise<void> {
    try {
      await rec.record(body);
    } catch (err) {
      const msg = err instanceof DlpctlError ? err.message : `the session store cannot record this (${String(err)}); denied to keep the audit trail complete`;
      throw new Reply(503, 'store_unavailable', `dlpctl: ${msg}`);
    }
  }

  private async recordResponse(
    rec: SessionRecorder,
    request: HttpRequestBody,
    t0: number,
    r: { status: number; resBody?: string; resBytes?: number; message?: string; resHeaders?: Record<string, string> },
    st: ConnState,
    counts: Record<string, number> = {},
    streamed: { text: string; bytes: number } | null = null,
  ): Promise<void> {
    for (const [k, n] of Object.entries(counts)) rec.masked(k, n);
    rec.counters.bytesOut += r.resBytes ?? 0;
    rec.counters.bytesIn += streamed?.bytes ?? request.reqBodyBytes ?? 0;
    const body: HttpRequestBody = {
      type: 'http.request',
      phase: 'response',
      method: request.method,
      path: request.path,
      decision: request.decision,
      ...(request.rule ? { rule: request.rule } : {}),
      status: r.status,
      durationMs: Math.round(performance.now() - t0),
      ...(r.message ? { message: scrubText(r.message, this.secrets) } : {}),
      ...(streamed ? { reqBody: this.recordable(streamed.text, 'text'), reqBodyBytes: streamed.bytes } : {}),
      ...(r.resHeaders ? { resHeaders: r.resHeaders } : {}),
      ...(r.resBody !== undefined ? { resBody: r.resBody } : {}),
      ...(r.resBytes !== undefined ? { resBodyBytes: r.resBytes } : {}),
      ...(Object.keys(counts).length ? { masked: counts } : {}),
    };
    try {
      // After the fact (the client has the response): both deferred, queued together in this order, so they
      // share one commit with the next writes (AppendOptions.defer) instead of waiting one after the other; a
      // large one commits now, with the summary after it, while the client has no request waiting on it.
      const large = (body.resBody?.length ?? 0) + (body.reqBody?.length ?? 0) >= LARGE_RECORD_CHARS;
      await Promise.all([rec.record(body, large ? undefined : { defer: true }), rec.flushMasks(request.rule)]);
    } catch (err) {
      st.ctx.emit({ type: 'error', resource: this.o.resource.name, sessionId: rec.id, message: err instanceof Error ? err.message : String(err) });
    }
  }
}
