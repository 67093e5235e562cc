/**
 * `with: pseudonymize, restore: true` (the README's LLM recipe) through the real tunnel: a response is masked
 * first and only then are placeholders restored, and only the ones this session's requests were given.
 * Personal data the upstream writes itself (an API's records, an address the model makes up) never reaches
 * the client or the store, whatever it stands next to; placeholders the upstream invents or that another
 * session was given stay as they are. Each session is one undici Client (one connection).
 */
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SseParser } from '../../../src/proxy/http/sse.js';
import { LLM_PII, openTunnel, startUpstream, storeBytes, tempStore, type TestTunnel, type Upstream } from './fixture.js';

const ALICE = 'alice.smith@example.com';
const BOB = 'bob.jones@example.org';
/** What only the upstream knows. */
const UP = { email: 'dana.upstream@example.com', card: '4012 8888 8888 1881', ssn: '536-22-8410' };
const UP_PARTS = ['dana', 'upstream@', '4012', '8888 1881', '536-22', '22-8410'];
/** A placeholder the tunnel never issues in this file (fewer than 77 emails are pseudonymized here). */
const INVENTED = '<EMAIL_77>';
/** What the fake model appends to its answers, as the client must read it. */
const MODEL_ADDS = ` Réponse: write to ${UP.email}, card ${UP.card}, SSN ${UP.ssn}, or ${INVENTED}.`;
const MODEL_ADDS_MASKED = ' Réponse: write to [REDACTED:email], card [REDACTED:credit_card], SSN [REDACTED:us_ssn], or <EMAIL_77>.';

let up: Upstream;
let t: TestTunnel;
let s: Awaited<ReturnType<typeof tempStore>>;
let closed = false;
const clients: Client[] = [];

beforeAll(async () => {
  up = await startUpstream();
  s = await tempStore();
  t = await openTunnel(up, { policies: LLM_PII, use: ['llm-pii'], store: s.store });
});
afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  if (!closed) {
    await t?.close();
    await s?.store.close().catch(() => undefined);
  }
  await up?.close();
});

/** One session: its own connection to the tunnel. */
function session() {
  const c = new Client(t.url);
  clients.push(c);
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await c.request({
      method,
      path,
      headers: { authorization: `Bearer ${t.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await r.body.text();
    return { status: r.statusCode, headers: r.headers, text };
  };
  return { get: (path: string) => call('GET', path), post: (path: string, body: unknown) => call('POST', path, body) };
}

/** The placeholder the upstream received for the request's `to`. */
function sentPlaceholder(): string {
  const got = up.received.at(-1)!.body;
  expect(got).not.toContain(ALICE);
  expect(got).not.toContain(BOB);
  const ph = (JSON.parse(got) as { to: string }).to;
  expect(ph).toMatch(/^<EMAIL_\d+>$/);
  return ph;
}

function expectNoUpstreamPii(text: string): void {
  for (const v of [UP.email, UP.card, UP.ssn, ...UP_PARTS]) expect(text).not.toContain(v);
}

function sseContent(text: string): string {
  let content = '';
  for (const e of new SseParser().push(text)) {
    if (e.data === '[DONE]') continue;
    const o = JSON.parse(e.data!) as { type?: string; delta?: string; choices?: { delta: { content?: string } }[] };
    if (o.choices) for (const c of o.choices) content += c.delta.content ?? '';
    if (o.type === 'response.output_text.delta') content += o.delta;
  }
  return content;
}

describe('responses under pseudonymize + restore', () => {
  it("an API's JSON records: the upstream's email, card and SSN are masked (redacted, never a placeholder)", async () => {
    up.hook = (_r, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ records: [{ name: 'Dana', email: UP.email, card: UP.card, ssn: UP.ssn }], note: `call ${UP.email}` }));
    };
    const r = await session().get('/hook/records');
    expect(r.status).toBe(200);
    expectNoUpstreamPii(r.text);
    expect(JSON.parse(r.text)).toEqual({
      records: [{ name: 'Dana', email: '[REDACTED:email]', card: '[REDACTED:credit_card]', ssn: '[REDACTED:us_ssn]' }],
      note: 'call [REDACTED:email]',
    });
  });

  it('the model echoes our placeholder: restored; what it writes itself: masked; a placeholder it invents: left as is', async () => {
    up.modelAdds = MODEL_ADDS;
    try {
      const r = await session().post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: `mail ${ALICE}` }] });
      expect(up.received.at(-1)!.body).not.toContain(ALICE);
      expect(up.received.at(-1)!.body).toMatch(/mail <EMAIL_\d+>/);
      const answer = (JSON.parse(r.text) as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
      expect(answer).toBe(`You said: mail ${ALICE}${MODEL_ADDS_MASKED}`);
      expectNoUpstreamPii(r.text);
    } finally {
      up.modelAdds = '';
    }
  });

  it('an upstream that puts raw PII next to our placeholder, or sends raw PII equal to what a placeholder restores to, gets it masked', async () => {
    let ph = '';
    // The upstream answers with the placeholder it was sent, glued to its own email, beside the original it
    // stands for, and JSON-escaped.
    const answer = () => `{"a":"${ph}${UP.email}","b":"${ph} ${ALICE}","c":"${ALICE}","d":"\\u003c${ph.slice(1, -1)}\\u003e","e":"${UP.card}${ph}"}`;
    up.hook = (_r, res) => {
      ph = sentPlaceholder();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(answer());
    };
    const c = session();
    const r = await c.post('/hook/json', { to: ALICE });
    expectNoUpstreamPii(r.text);
    expect(JSON.parse(r.text)).toEqual({
      a: `${ALICE}[REDACTED:email]`,
      b: `${ALICE} [REDACTED:email]`,
      c: '[REDACTED:email]',
      d: ALICE,
      e: `[REDACTED:credit_card]${ALICE}`,
    });
    // The same as chunked text in pieces of a few bytes: values and placeholders split across chunks.
    for (const size of [1, 2, 3, 5]) {
      up.hook = async (_r, res) => {
        ph = sentPlaceholder();
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        const all = Buffer.from(`<${ph}> ${ph}${UP.email} ${ph} ${ALICE} ${UP.card}${ph} ${UP.ssn}\n`);
        for (let i = 0; i < all.length; i += size) {
          res.write(all.subarray(i, i + size));
          await new Promise((resolve) => setImmediate(resolve));
        }
        res.end();
      };
      const x = await c.post('/hook/text', { to: ALICE });
      expect(x.headers['transfer-encoding']).toBe('chunked');
      expectNoUpstreamPii(x.text);
      expect(x.text).toBe(`<${ALICE}> ${ALICE}[REDACTED:email] ${ALICE} [REDACTED:email] [REDACTED:credit_card]${ALICE} [REDACTED:us_ssn]\n`);
    }
  });

  it("a placeholder another session was given is not restored; one this session's earlier request was given is", async () => {
    const a = session();
    const b = session();
    let phA = '';
    let phB = '';
    up.hook = (_r, res) => {
      phA = sentPlaceholder();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    };
    await a.post('/hook/a', { to: BOB });
    up.hook = (_r, res) => {
      phB = sentPlaceholder();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ text: `${phA} / ${phB}` }));
    };
    expect(JSON.parse((await b.post('/hook/b', { to: ALICE })).text)).toEqual({ text: `${phA} / ${ALICE}` });
    expect(phA).not.toBe(phB);
    // A's next request carries no PII: its answer still gets A's own placeholder back, not B's.
    up.hook = (_r, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ text: `${phA} / ${phB}` }));
    };
    expect(JSON.parse((await a.get('/hook/a2')).text)).toEqual({ text: `${BOB} / ${phB}` });
  });

  it('SSE (chat and responses) in pieces of a few bytes, deltas of 1-3 characters: the same answer as whole', async () => {
    up.modelAdds = MODEL_ADDS;
    const c = session();
    try {
      for (const [split, delta] of [
        [1, 3],
        [2, 1],
        [3, 2],
        [5, 3],
        [7, 1],
        [0, 3],
      ] as const) {
        up.splitBytes = split;
        up.deltaSize = delta;
        const chat = await c.post('/v1/chat/completions', { model: 'm', stream: true, messages: [{ role: 'user', content: `mail ${ALICE}` }] });
        expect(chat.headers['content-type']).toBe('text/event-stream');
        expect(up.received.at(-1)!.body).not.toContain(ALICE);
        expectNoUpstreamPii(chat.text);
        expect(sseContent(chat.text)).toBe(`You said: mail ${ALICE}${MODEL_ADDS_MASKED}`);
        const resp = await c.post('/v1/responses', { model: 'm', stream: true, input: `mail ${ALICE}` });
        expectNoUpstreamPii(resp.text);
        expect(sseContent(resp.text)).toBe(`You said: mail ${ALICE}${MODEL_ADDS_MASKED}`);
        // The closing events carry the whole text: masked, then restored, too.
        const done = new SseParser().push(resp.text).map((e) => JSON.parse(e.data!) as { type: string; text?: string }).find((o) => o.type === 'response.output_text.done');
        expect(done?.text).toBe(`You said: mail ${ALICE}${MODEL_ADDS_MASKED}`);
      }
    } finally {
      up.modelAdds = '';
      up.splitBytes = 0;
      up.deltaSize = 3;
    }
  });

  it("neither the upstream's values nor the originals are in the store, whose recorded answers are masked", async () => {
    expect(JSON.stringify(t.events)).not.toContain(UP.email);
    closed = true;
    await t.close();
    await s.store.close();
    const bytes = await storeBytes(s.file);
    expect(bytes).toContain('card [REDACTED:credit_card], SSN [REDACTED:us_ssn]');
    for (const v of [UP.email, UP.card, UP.ssn, '4012888888881881', ALICE, BOB]) expect(bytes).not.toContain(v);
  });
});
