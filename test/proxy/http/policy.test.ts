/** Policy per request (deny, approve, limits, body conditions, fail closed) and recording. */
import { Client, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTunnel, REAL_KEY, startUpstream, storeBytes, tempStore, type TestTunnel, type Upstream } from './fixture.js';
import type { HttpRequestBody, SessionStore, StoreEvent } from '../../../src/store/types.js';
import { Readable } from 'node:stream';

const POLICIES = `  guard:
    - name: no-file-deletes
      when: { http: { methods: [DELETE], paths: ["/v1/files/**"] } }
      action: deny
      message: files are kept
    - name: no-sql-in-prompts
      when: { http: { text: "DROP TABLE" } }
      action: deny
    - name: fine-tuning-needs-approval
      when: { http: { paths: ["/v1/fine_tuning/**"] } }
      action: approve
      approvers: ['group:ml-leads']
      timeout: 2s
    - name: body-size
      action: limit
      maxBodyBytes: 4096
    - name: pii
      action: mask
      entities: [email, credit_card]
      with: redact`;

let up: Upstream;
let t: TestTunnel;
let clock = 1_000_000;
let storeFile: string;
let store: SessionStore;

beforeAll(async () => {
  up = await startUpstream();
  const s = await tempStore();
  store = s.store;
  storeFile = s.file;
  t = await openTunnel(up, { policies: POLICIES, use: ['guard'], store, tuning: { now: () => clock, recordBodyChars: 200 } });
});
afterAll(async () => {
  await t?.close();
  await store?.close();
  await up?.close();
});

const auth = () => ({ authorization: `Bearer ${t.token}` });

async function call(method: string, path: string, body?: string | Buffer | Readable, headers: Record<string, string> = {}, tt: TestTunnel = t) {
  const r = await request(`${tt.url}${path}`, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${tt.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body } : {}),
  });
  return { status: r.statusCode, headers: r.headers, text: await r.body.text() };
}

async function waitFor<T>(f: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const v = await f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function httpEvents(): Promise<(StoreEvent & HttpRequestBody)[]> {
  return (await t.storedEvents()).filter((e): e is StoreEvent & HttpRequestBody => e.type === 'http.request');
}

describe('policy per request', () => {
  it('deny: 403 with a JSON body naming the rule; nothing upstream; the connection goes on', async () => {
    const before = up.received.length;
    const r = await call('DELETE', '/v1/files/abc');
    expect(r.status).toBe(403);
    const body = JSON.parse(r.text) as { error: { code: string; rule: string; message: string } };
    expect(body.error).toMatchObject({ code: 'policy_denied', rule: 'guard/no-file-deletes' });
    expect(body.error.message).toContain('files are kept');
    expect(up.received.length).toBe(before);
    expect((await call('GET', '/v1/files/abc')).status).toBe(200);
  });

  it('a deny rule without a message: the denial names the rule once', async () => {
    const r = await call('POST', '/v1/chat/completions', JSON.stringify({ prompt: 'please DROP TABLE users' }));
    expect(r.status).toBe(403);
    const body = JSON.parse(r.text) as { error: { message: string } };
    expect(body.error.message).toBe('dlpctl: denied by policy guard rule no-sql-in-prompts');
    expect(body.error.message.split('no-sql-in-prompts')).toHaveLength(2);
  });

  it('enforce: false: a body over maxBodyBytes and a rate over ratePerMinute pass, recorded as observe', async () => {
    const obs = await openTunnel(up, {
      policies: `  caps:\n    - name: small\n      action: limit\n      maxBodyBytes: 100\n      ratePerMinute: 1`,
      use: ['caps'],
      resource: '    enforce: false',
    });
    try {
      const big = JSON.stringify({ prompt: 'x'.repeat(500) });
      const first = await call('POST', '/v1/chat/completions', big, {}, obs);
      const second = await call('POST', '/v1/chat/completions', '{}', {}, obs);
      expect([first.status, second.status]).toEqual([200, 200]);
      const reqs = (await obs.storedEvents()).filter((e): e is StoreEvent & HttpRequestBody => e.type === 'http.request' && e.phase === 'request');
      expect(reqs.map((e) => e.decision)).toEqual(['observe', 'observe']);
      const observed = obs.events.filter((e) => e.type === 'decision' && e.action === 'observe').map((e) => (e.type === 'decision' ? e.summary : '')).filter((t) => t.includes('observe only'));
      expect(observed[0]).toContain('would have been 413');
      expect(observed[1]).toContain('would have been 429');
    } finally {
      await obs.close();
    }
  });

  it('a connection whose only request was denied ends ok: a denial is a decision, not an error of the session', async () => {
    const c = new Client(t.url);
    const r = await c.request({ method: 'DELETE', path: '/v1/files/only-denied', headers: auth() });
    await r.body.dump();
    expect(r.statusCode).toBe(403);
    await c.close();
    const end = await waitFor(async () => {
      const all = await t.storedEvents();
      const req = all.find((e) => e.type === 'http.request' && (e as StoreEvent & HttpRequestBody).path === '/v1/files/only-denied');
      return req ? all.find((e) => e.sessionId === req.sessionId && e.type === 'session.end') : undefined;
    }, 'the session to end');
    expect(end).toMatchObject({ type: 'session.end', outcome: 'ok' });
  });

  it('a body condition (http.text) sees the body', async () => {
    const r = await call('POST', '/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'please DROP TABLE customers' }] }));
    expect(r.status).toBe(403);
    expect(r.text).toContain('guard/no-sql-in-prompts');
  });

  it('maxBodyBytes: 413 by length, and for a chunked body that grows past it', async () => {
    const big = JSON.stringify({ pad: 'x'.repeat(5000) });
    const r = await call('POST', '/echo/big', big);
    expect(r.status).toBe(413);
    expect(JSON.parse(r.text)).toMatchObject({ error: { code: 'body_too_large', rule: 'guard/body-size' } });
    const bin = await call('POST', '/upload', Readable.from([Buffer.alloc(3000), Buffer.alloc(3000)]), { 'content-type': 'application/octet-stream' });
    expect(bin.status).toBe(413);
    expect((await call('POST', '/echo/small', '{"ok":true}')).status).toBe(200);
  });

  it('approve: the request waits; approved → forwarded once; denied → 403 naming the approver', async () => {
    const pending = call('POST', '/v1/fine_tuning/jobs', '{"model":"m","note":"job-approve-1"}');
    const a = await waitFor(async () => (await store.listApprovals({ state: 'pending' })).find((x) => x.maskedText.includes('job-approve-1')), 'a pending approval');
    expect(a.rule).toBe('guard/fine-tuning-needs-approval');
    expect(a.approvers).toEqual(['group:ml-leads']);
    expect(up.received.some((x) => x.body.includes('job-approve-1'))).toBe(false);
    await store.updateApproval(a.id, (cur) => ({ ...cur, state: 'approved', decisions: [...cur.decisions, { by: 'lead', groups: ['ml-leads'], decision: 'approve', at: new Date().toISOString() }] }));
    expect((await pending).status).toBe(200);
    expect(up.received.filter((x) => x.body.includes('job-approve-1'))).toHaveLength(1);

    const denied = call('POST', '/v1/fine_tuning/jobs', '{"note":"job-deny-2"}');
    const d = await waitFor(async () => (await store.listApprovals({ state: 'pending' })).find((x) => x.maskedText.includes('job-deny-2')), 'a pending approval');
    await store.updateApproval(d.id, (cur) => ({ ...cur, state: 'denied', decisions: [...cur.decisions, { by: 'lead', groups: ['ml-leads'], decision: 'deny', comment: 'not now', at: new Date().toISOString() }] }));
    const r = await denied;
    expect(r.status).toBe(403);
    expect(r.text).toContain(`approval ${d.id} was denied by lead: not now`);
    expect(up.received.some((x) => x.body.includes('job-deny-2'))).toBe(false);
  });

  it('approve with nobody deciding: 403 after the rule’s timeout', async () => {
    const r = await call('POST', '/v1/fine_tuning/jobs', '{"note":"job-timeout-3"}');
    expect(r.status).toBe(403);
    expect(r.text).toContain('timed out');
  });

  it('ratePerMinute per identity: 429 with Retry-After, again allowed when the minute has passed', async () => {
    const rl = await openTunnel(up, {
      policies: `  rate:\n    - name: per-minute\n      action: limit\n      ratePerMinute: 3`,
      use: ['rate'],
      tuning: { now: () => clock },
    });
    for (let i = 0; i < 3; i++) expect((await call('GET', '/echo/r', undefined, {}, rl)).status).toBe(200);
    const r = await call('GET', '/echo/r', undefined, {}, rl);
    expect(r.status).toBe(429);
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    expect(JSON.parse(r.text)).toMatchObject({ error: { code: 'rate_limited', rule: 'rate/per-minute' } });
    clock += 61_000;
    expect((await call('GET', '/echo/r', undefined, {}, rl)).status).toBe(200);
    await rl.close();
  });

  it('fail closed: when the store cannot record, 503 and nothing is forwarded', async () => {
    const s = await tempStore();
    const ft = await openTunnel(up, { store: s.store });
    expect((await call('GET', '/echo/fc1', undefined, {}, ft)).status).toBe(200);
    await s.store.close();
    const before = up.received.length;
    const r = await call('GET', '/echo/fc2', undefined, {}, ft);
    expect(r.status).toBe(503);
    expect(JSON.parse(r.text)).toMatchObject({ error: { code: 'store_unavailable' } });
    expect(up.received.length).toBe(before);
    await ft.close();
  });
});

describe('recording', () => {
  it('per request: method, path, status, duration, decision, rule, mask counts, headers without credentials, masked bodies', async () => {
    const r = await call('POST', '/echo/rec?email=alice.smith%40example.com', JSON.stringify({ to: 'bob.jones@example.org', card: '4111 1111 1111 1111', pad: 'y'.repeat(400) }), { 'x-trace': 'abc', cookie: 'sid=secret-cookie' });
    expect(r.status).toBe(200);
    const evs = await waitFor(async () => {
      const all = await httpEvents();
      const res = all.filter((e) => e.path.startsWith('/echo/rec'));
      return res.length === 2 ? res : undefined;
    }, 'request and response events');
    const [req, res] = evs as [StoreEvent & HttpRequestBody, StoreEvent & HttpRequestBody];
    expect(req).toMatchObject({ phase: 'request', method: 'POST', decision: 'allow' });
    expect(decodeURIComponent(req.path)).toBe('/echo/rec?email=[REDACTED:email]');
    expect(req.masked).toEqual({ email: 2, credit_card: 1 });
    expect(req.reqHeaders?.['authorization']).toBe('[removed]');
    expect(req.reqHeaders?.['cookie']).toBe('[removed]');
    expect(req.reqHeaders?.['x-trace']).toBe('abc');
    expect(req.reqBody).toContain('[REDACTED:email]');
    expect(req.reqBody!.length).toBeLessThanOrEqual(201);
    expect(res).toMatchObject({ phase: 'response', status: 200 });
    expect(typeof res.durationMs).toBe('number');
    expect(res.resHeaders?.['content-type']).toContain('application/json');
    expect(res.resBody).toBeDefined();
    const denied = (await httpEvents()).find((e) => e.path === '/v1/files/abc' && e.decision === 'deny');
    expect(denied).toMatchObject({ status: 403, rule: 'guard/no-file-deletes', method: 'DELETE' });
    const summary = await waitFor(async () => (await t.storedEvents()).find((e) => e.type === 'mask.summary' && e.seq === res.seq + 1), 'the mask summary');
    expect(summary).toMatchObject({ entities: { email: 2, credit_card: 1 } });
  });

  it('SSE responses are recorded assembled and masked', async () => {
    const r = await call('POST', '/v1/chat/completions', JSON.stringify({ stream: true, messages: [{ role: 'user', content: 'hi carol.white@example.net' }] }));
    expect(r.status).toBe(200);
    const ev = await waitFor(async () => (await httpEvents()).find((e) => e.phase === 'response' && e.resBody?.includes('You said')), 'the SSE response event');
    expect(ev.resBody).toContain('You said: hi [REDACTED:email]');
  });

  it('the real key and the tunnel token are in no event, store byte or tunnel event', async () => {
    await call('GET', '/echo-auth');
    const all = JSON.stringify(await t.storedEvents());
    expect(all).not.toContain(REAL_KEY);
    expect(all).not.toContain(t.token);
    expect(all).not.toContain('alice.smith@example.com');
    const bytes = await storeBytes(storeFile);
    expect(bytes.length).toBeGreaterThan(1000);
    expect(bytes).not.toContain(REAL_KEY);
    expect(bytes).not.toContain(t.token);
    expect(JSON.stringify(t.events)).not.toContain(REAL_KEY);
    expect(t.events.some((e) => e.type === 'decision' && e.rule === 'guard/no-file-deletes')).toBe(true);
  });
});
