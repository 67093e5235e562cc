/** Proxying: the tunnel token, the injected credential, HTTP/1.1 semantics, streaming, upstream failures. */
import { createHash } from 'node:crypto';
import net from 'node:net';
import { Readable } from 'node:stream';
import { Client, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppendOptions, NewEvent, SessionStore } from '../../../src/store/types.js';
import { curl, openTunnel, REAL_KEY, startUpstream, tempStore, type TestTunnel, type Upstream } from './fixture.js';

let up: Upstream;
let t: TestTunnel;

beforeAll(async () => {
  up = await startUpstream();
  t = await openTunnel(up);
});
afterAll(async () => {
  await t?.close();
  await up?.close();
});


function rawRequest(url: string, text: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname, () => s.write(text));
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.on('end', () => resolve(Buffer.concat(parts).toString('latin1')));
    s.on('error', reject);
  });
}

const auth = () => ({ authorization: `Bearer ${t.token}` });

describe('tunnel token and injected credential', () => {
  it('without the token: 401 with a JSON body saying how to authenticate; nothing reaches the upstream', async () => {
    const before = up.received.length;
    const r = await request(`${t.url}/v1/models`);
    expect(r.statusCode).toBe(401);
    expect(r.headers['www-authenticate']).toContain('Bearer');
    const body = (await r.body.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('tunnel_token_required');
    expect(body.error.message).toContain('Authorization: Bearer');
    const wrong = await request(`${t.url}/v1/models`, { headers: { authorization: 'Bearer not-the-token' } });
    expect(wrong.statusCode).toBe(401);
    await wrong.body.dump();
    const wrongKey = await request(`${t.url}/v1/models`, { headers: { 'x-api-key': REAL_KEY } });
    expect(wrongKey.statusCode).toBe(401);
    await wrongKey.body.dump();
    expect(up.received.length).toBe(before);
  });

  it('Bearer or x-api-key: the token is removed and the real credential injected upstream only', async () => {
    for (const headers of [auth(), { 'x-api-key': t.token }]) {
      const r = await request(`${t.url}/echo/1`, { headers });
      expect(r.statusCode).toBe(200);
      const text = await r.body.text();
      const got = up.received.at(-1)!;
      expect(got.headers['authorization']).toBe(`Bearer ${REAL_KEY}`);
      expect(got.headers['x-api-key']).toBeUndefined();
      expect(JSON.stringify(got.headers)).not.toContain(t.token);
      // The echo body contains the injected header: the client must not see the real key.
      expect(text).not.toContain(REAL_KEY);
      expect(text).toContain('[REDACTED:dlpctl-credential]');
    }
  });

  it('an upstream that echoes the key in its body and headers: scrubbed before the client sees it', async () => {
    for (const path of ['/echo-auth', '/echo-auth?sized']) {
      const r = await request(`${t.url}${path}`, { headers: auth() });
      expect(r.statusCode).toBe(401);
      const text = await r.body.text();
      expect(text).toContain('Incorrect API key provided');
      expect(text).toContain('[REDACTED:dlpctl-credential]');
      expect(text).not.toContain(REAL_KEY);
      expect(JSON.stringify(r.headers)).not.toContain(REAL_KEY);
      if (path.endsWith('sized')) {
        // a small body of declared length is scrubbed whole and sent with its new length, not chunked
        expect(r.headers['transfer-encoding']).toBeUndefined();
        expect(r.headers['content-length']).toBe(String(Buffer.byteLength(text)));
      } else expect(r.headers['transfer-encoding']).toBe('chunked');
    }
  });

  it('curl as a plain client, and the URL/env the child gets', async () => {
    expect(t.childEnv['OPENAI_BASE_URL']).toBe(`${t.url}/v1`);
    expect(t.childEnv['OPENAI_API_KEY']).toBe(t.token);
    expect(JSON.stringify(t.childEnv)).not.toContain(REAL_KEY);
    const r = await curl(['-H', `Authorization: Bearer ${t.token}`, `${t.childEnv['OPENAI_BASE_URL']}/models`]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ object: 'list', data: [{ id: 'gpt-test', object: 'model' }] });
    const denied = await curl(['-o', '/dev/null', '-w', '%{http_code}', `${t.url}/v1/models`]);
    expect(denied.stdout).toBe('401');
  });
});

describe('recording', () => {
  it('a response event is deferred to the next write, but one with a large body commits at once (its sealing would fall on the next request)', async () => {
    const { store } = await tempStore();
    // The store as the tunnel uses it, noting how each response event was appended.
    const deferred = new Map<number, boolean>();
    const spy = new Proxy(store, {
      get(target, key, receiver) {
        if (key !== 'append') return Reflect.get(target, key, receiver) as unknown;
        return (id: string, e: NewEvent, options?: AppendOptions) => {
          const r = e as { phase?: string; resBodyBytes?: number };
          if (r.phase === 'response' && r.resBodyBytes !== undefined) deferred.set(r.resBodyBytes, options?.defer === true);
          return target.append(id, e, options);
        };
      },
    }) as SessionStore;
    const tt = await openTunnel(up, { store: spy });
    try {
      for (const size of [1000, 20_000]) {
        up.hook = (_r, res) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ text: 'y'.repeat(size - 11) }));
        };
        const r = await request(`${tt.url}/hook/size${size}`, { headers: { authorization: `Bearer ${tt.token}` } });
        expect((await r.body.text()).length).toBe(size);
      }
      for (let i = 0; i < 50 && deferred.size < 2; i++) await new Promise((r) => setTimeout(r, 20));
      expect(deferred.get(1000)).toBe(true);
      expect(deferred.get(20_000)).toBe(false);
    } finally {
      up.hook = null;
      await tt.close();
      await store.close();
    }
  });
});

describe('HTTP/1.1 semantics', () => {
  it('keep-alive: many requests on one client connection are one session', async () => {
    const before = t.events.filter((e) => e.type === 'session_start').length;
    const c = new Client(t.url, { pipelining: 1 });
    for (let i = 0; i < 5; i++) {
      const r = await c.request({ method: 'GET', path: `/echo/ka${i}`, headers: auth() });
      expect(r.statusCode).toBe(200);
      await r.body.dump();
    }
    await c.close();
    const after = t.events.filter((e) => e.type === 'session_start').length;
    expect(after - before).toBe(1);
  });

  it('hop-by-hop headers are dropped both ways (RFC 9110 §7.6.1), Host is the target’s, end-to-end ones kept', async () => {
    // A raw request: HTTP clients rewrite Connection themselves.
    const raw = await rawRequest(
      t.url,
      `GET /status?code=202 HTTP/1.1\r\nHost: tunnel.local\r\nAuthorization: Bearer ${t.token}\r\nConnection: close, X-Private\r\nX-Private: secret-hop\r\nTE: trailers\r\nUpgrade: h2c\r\nX-End: kept\r\n\r\n`,
    );
    expect(raw).toMatch(/^HTTP\/1\.1 202 /);
    expect(raw).toMatch(/\r\nx-custom: kept\r\n/i);
    expect(raw).not.toMatch(/\r\nx-hop:/i);
    expect(raw).not.toMatch(/keep-alive: timeout=5/i);
    expect(raw).toMatch(/\r\nvia: 1\.1 dlpctl\r\n/i);
    const got = up.received.at(-1)!;
    expect(got.headers['x-private']).toBeUndefined();
    expect(got.headers['te']).toBeUndefined();
    expect(got.headers['upgrade']).toBeUndefined();
    expect(got.headers['x-end']).toBe('kept');
    expect(got.headers['host']).toBe(`127.0.0.1:${up.port}`);
  });

  it('a chunked request body (no length) arrives whole', async () => {
    const parts = ['{"a":', '"b",', '"n":', '1}'];
    const r = await request(`${t.url}/echo/chunked`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: Readable.from(parts.map((p) => Buffer.from(p))),
    });
    expect(r.statusCode).toBe(200);
    const echo = (await r.body.json()) as { body: string };
    expect(echo.body).toBe('{"a":"b","n":1}');
  });

  it('a 64 MB upload streams through (bytes and digest intact)', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const h = createHash('sha256');
    for (let i = 0; i < 64; i++) h.update(chunk);
    const r = await request(`${t.url}/upload`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/octet-stream' },
      body: Readable.from((function* () {
        for (let i = 0; i < 64; i++) yield chunk;
      })()),
    });
    expect(r.statusCode).toBe(200);
    expect(await r.body.json()).toEqual({ bytes: 64 * 1024 * 1024, sha256: h.digest('hex') });
  });

  it('a 100 MB download streams through with backpressure', async () => {
    const r = await request(`${t.url}/big?mb=100`, { headers: auth() });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-length']).toBe(String(100 * 1024 * 1024));
    let n = 0;
    for await (const c of r.body) n += (c as Buffer).length;
    expect(n).toBe(100 * 1024 * 1024);
  });

  it('SSE pass-through: events arrive as they are sent, byte for byte', async () => {
    up.script = ['data: {"n":1}\n\n', ': ping\n\n', 'event: x\ndata: two\ndata: lines\n\n', 'data: [DONE]\n\n'];
    const r = await request(`${t.url}/sse-script`, { headers: auth() });
    expect(r.headers['content-type']).toBe('text/event-stream');
    expect(await r.body.text()).toBe(up.script.join(''));
  });
});

describe('upstream failures', () => {
  it('an unreachable upstream: 502 with a JSON body naming it', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const down = await openTunnel(up, { target: `http://127.0.0.1:${port}` });
    const r = await request(`${down.url}/v1/models`, { headers: { authorization: `Bearer ${down.token}` } });
    expect(r.statusCode).toBe(502);
    const body = (await r.body.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('upstream_unreachable');
    expect(body.error.message).toContain(`127.0.0.1:${port}`);
    expect(body.error.message).toContain('connection refused');
    expect(JSON.stringify(body)).not.toContain(REAL_KEY);
    await down.close();
  });

  it('an upstream that does not answer: 504', async () => {
    const slow = await openTunnel(up, { tuning: { headersTimeoutMs: 300 } });
    const r = await request(`${slow.url}/slow`, { headers: { authorization: `Bearer ${slow.token}` } });
    expect(r.statusCode).toBe(504);
    const body = (await r.body.json()) as { error: { code: string } };
    expect(body.error.code).toBe('upstream_timeout');
    await slow.close();
  });

  it('an upstream that drops mid-body: a small body (scrubbed whole) gets a 502 that says so, a large one ends early; the tunnel goes on', async () => {
    const small = await request(`${t.url}/drop`, { headers: auth() });
    expect(small.statusCode).toBe(502);
    expect(((await small.body.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'upstream_reset', message: expect.stringContaining('closed the connection') });
    const large = await request(`${t.url}/drop?length=${1024 * 1024}`, { headers: auth() });
    expect(large.statusCode).toBe(200);
    await expect(large.body.text()).rejects.toThrow();
    const ok = await request(`${t.url}/echo/after-drop`, { headers: auth() });
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
  });
});

describe('a client that goes away mid-request', () => {
  /** Sends `raw` on a connection of its own, leaves after `ms`, and waits for the tunnel to end that session. */
  async function sendAndLeave(raw: string, ms: number): Promise<void> {
    const ended = t.events.filter((e) => e.type === 'session_end').length;
    const u = new URL(t.url);
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(Number(u.port), u.hostname, () => {
        s.write(raw);
        setTimeout(() => {
          s.destroy();
          resolve();
        }, ms);
      });
      s.on('error', reject);
    });
    for (let i = 0; i < 300 && t.events.filter((e) => e.type === 'session_end').length === ended; i++) await new Promise((r) => setTimeout(r, 50));
    expect(t.events.filter((e) => e.type === 'session_end').length).toBe(ended + 1);
  }

  it('a JSON body cut short: nothing reaches the upstream, the trail says the client left, the session ends (ok), the tunnel goes on', async () => {
    const before = up.received.length;
    await sendAndLeave(`POST /echo/cut-short HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"messages": [`, 100);
    // (that the body read then fails rather than hangs: read-body.test.ts)
    expect(up.received.slice(before).some((r) => r.path.includes('cut-short'))).toBe(false);
    // Recorded before the session's end; leaving is not an error of dlpctl or the upstream, so the outcome stays ok.
    const gone = (await t.storedEvents()).filter((e) => e.type === 'error' && e.code === 'CLIENT_GONE');
    expect(gone).toHaveLength(1);
    expect(gone[0]).toMatchObject({ message: 'POST /echo/cut-short: the client closed the connection before its request body was complete' });
    const session = await t.store.listEvents(gone[0]!.sessionId);
    expect(session.at(-1)).toMatchObject({ type: 'session.end', outcome: 'ok' });
    expect(session.at(-2)).toMatchObject({ type: 'error', code: 'CLIENT_GONE' });
    const ok = await request(`${t.url}/echo/after-cut`, { headers: auth() });
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
  });

  it('a client that leaves while the upstream has not answered: the exchange is given up (499) and recorded before the session ends', async () => {
    await sendAndLeave(`GET /slow?token=tok-${'x'.repeat(8)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.token}\r\n\r\n`, 300);
    const cut = (await t.storedEvents()).filter((e) => e.type === 'http.request' && e.phase === 'response' && e.path.startsWith('/slow'));
    expect(cut).toHaveLength(1);
    expect(cut[0]).toMatchObject({ status: 499, message: 'dlpctl: the client went away' });
    const session = await t.store.listEvents(cut[0]!.sessionId);
    expect(session.map((e) => e.type).slice(-3)).toEqual(['http.request', 'http.request', 'session.end']);
    expect(session.at(-2)).toMatchObject({ phase: 'response', status: 499 });
    expect(session.at(-1)).toMatchObject({ outcome: 'ok' });
  });
});

describe('requests the tunnel refuses with an explanation, reaching nothing', () => {
  it('a WebSocket upgrade: 501 upgrade_unsupported (upgraded bytes would bypass policy and masking)', async () => {
    const before = up.received.length;
    const r = await curl(['-i', '--max-time', '10', '-H', `Authorization: Bearer ${t.token}`, '-H', 'Connection: Upgrade', '-H', 'Upgrade: websocket', '-H', 'Sec-WebSocket-Version: 13', '-H', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', `${t.url}/v1/realtime`]);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 501 /);
    expect(r.stdout).toContain('"code":"upgrade_unsupported"');
    expect(r.stdout).toContain('does not relay protocol upgrades (websocket)');
    expect(up.received.length).toBe(before);
    // without the token it is the usual 401
    const anon = await curl(['-i', '--max-time', '10', '-H', 'Connection: Upgrade', '-H', 'Upgrade: websocket', `${t.url}/v1/realtime`]);
    expect(anon.stdout).toMatch(/^HTTP\/1\.1 401 /);
  });

  it('used as a forward proxy: CONNECT gets 405 and an absolute URL 400, both not_a_proxy', async () => {
    const before = up.received.length;
    const connect = await curl(['-i', '--max-time', '10', '-X', 'CONNECT', '--request-target', 'example.com:443', t.url]);
    expect(connect.stdout).toMatch(/^HTTP\/1\.1 405 /);
    expect(connect.stdout).toContain('"code":"not_a_proxy"');
    const absolute = await curl(['-i', '--max-time', '10', '-x', t.url, '-H', `Authorization: Bearer ${t.token}`, 'http://example.com/v1/models']);
    expect(absolute.stdout).toMatch(/^HTTP\/1\.1 400 /);
    expect(absolute.stdout).toContain("point the client's base URL at the tunnel");
    expect(up.received.length).toBe(before);
    // the tunnel goes on serving
    const ok = await request(`${t.url}/v1/models`, { headers: auth() });
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
  });
});

describe('clients that do not send a proper request', () => {
  it('a connection that stays silent gets 408 after the header timeout; oversized headers get 431', async () => {
    const tt = await openTunnel(up, { tuning: { clientHeadersTimeoutMs: 400 } });
    try {
      const silent = await rawRequest(tt.url, '');
      expect(silent).toMatch(/^HTTP\/1\.1 408 /);
      expect(silent).toContain('"code":"request_timeout"');
      const half = await rawRequest(tt.url, `GET /v1/models HTTP/1.1\r\nAuthorization: Bearer ${tt.token}\r\n`);
      expect(half).toMatch(/^HTTP\/1\.1 408 /);
      const big = await rawRequest(tt.url, `GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
      expect(big).toMatch(/^HTTP\/1\.1 431 /);
      expect(big).toContain('"code":"headers_too_large"');
      const ok = await request(`${tt.url}/v1/models`, { headers: { authorization: `Bearer ${tt.token}` } });
      expect(ok.statusCode).toBe(200);
      await ok.body.dump();
    } finally {
      await tt.close();
    }
  });
});
