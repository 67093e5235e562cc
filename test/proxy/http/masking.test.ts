/** Masking both ways through the tunnel: JSON (OpenAI shapes), forms, query strings, text, compressed, SSE; restore. */
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CUSTOMERS, LLM_PII, openTunnel, ORIGINALS, REDACT_PII, startUpstream, type TestTunnel, type Upstream } from './fixture.js';
import { SseParser } from '../../../src/proxy/http/sse.js';

let up: Upstream;
let red: TestTunnel;
let pseudo: TestTunnel;

beforeAll(async () => {
  up = await startUpstream();
  red = await openTunnel(up, { policies: REDACT_PII, use: ['redact-pii'] });
  pseudo = await openTunnel(up, { policies: LLM_PII, use: ['llm-pii'] });
});
afterAll(async () => {
  await red?.close();
  await pseudo?.close();
  await up?.close();
});

async function post(t: TestTunnel, path: string, body: unknown, headers: Record<string, string> = {}) {
  const r = await request(`${t.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  return { status: r.statusCode, headers: r.headers, text: await r.body.text() };
}

function expectNoOriginals(s: string): void {
  for (const o of ORIGINALS) expect(s).not.toContain(o);
}

const rows = JSON.stringify(CUSTOMERS);

describe('requests', () => {
  it('chat-completions shapes: string and part contents, tool-call arguments (JSON in a string), tool outputs', async () => {
    const body = {
      model: 'gpt-test',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: [{ type: 'text', text: 'mail alice.smith@example.com please' }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'send', arguments: JSON.stringify({ to: 'bob.jones@example.org', card: '5555555555554444' }) } }] },
        { role: 'tool', tool_call_id: 'c1', content: rows },
        { role: 'user', content: 'card 4111 1111 1111 1111' },
      ],
    };
    const r = await post(red, '/v1/chat/completions', body);
    expect(r.status).toBe(200);
    const got = up.received.at(-1)!;
    expectNoOriginals(got.body);
    const sent = JSON.parse(got.body) as typeof body;
    expect(sent.messages[1]!.content).toEqual([{ type: 'text', text: 'mail [REDACTED:email] please' }]);
    expect(JSON.parse(sent.messages[2]!.tool_calls![0]!.function.arguments)).toEqual({ to: '[REDACTED:email]', card: '[REDACTED:credit_card]' });
    expect(sent.messages[0]!.content).toBe('be brief');
    expect(got.headers['content-length']).toBe(String(Buffer.byteLength(got.body)));
  });

  it('responses shape: input items and function_call_output', async () => {
    const r = await post(red, '/v1/responses', {
      model: 'gpt-test',
      input: [
        { role: 'user', content: [{ type: 'input_text', text: 'who is carol.white@example.net?' }] },
        { type: 'function_call_output', call_id: 'c', output: rows },
      ],
    });
    expect(r.status).toBe(200);
    expectNoOriginals(up.received.at(-1)!.body);
    // The model echoes the (masked) tool output; the response is masked too and is valid JSON.
    const out = JSON.parse(r.text) as { output: { content: { text: string }[] }[] };
    expect(out.output[0]!.content[0]!.text).toContain('[REDACTED:email]');
  });

  it('forms, query strings and text bodies', async () => {
    const form = await request(`${red.url}/echo/form?email=alice.smith%40example.com&q=ok`, {
      method: 'POST',
      headers: { authorization: `Bearer ${red.token}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=Bob&email=bob.jones%40example.org&card=4111+1111+1111+1111',
    });
    expect(form.statusCode).toBe(200);
    await form.body.dump();
    const got = up.received.at(-1)!;
    expect(decodeURIComponent(got.path)).toBe('/echo/form?email=[REDACTED:email]&q=ok');
    expect(decodeURIComponent(got.body.replace(/\+/g, ' '))).toBe('name=Bob&email=[REDACTED:email]&card=[REDACTED:credit_card]');
    const text = await request(`${red.url}/echo/text`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${red.token}`, 'content-type': 'text/plain' },
      body: 'notes: carol.white@example.net',
    });
    await text.body.dump();
    expect(up.received.at(-1)!.body).toBe('notes: [REDACTED:email]');
  });

  it('a gzip-compressed JSON request is decoded, masked and sent uncompressed', async () => {
    const r = await post(red, '/echo/gz', zlib.gzipSync(JSON.stringify({ email: 'alice.smith@example.com' })), { 'content-encoding': 'gzip' });
    expect(r.status).toBe(200);
    const got = up.received.at(-1)!;
    expect(got.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(got.body)).toEqual({ email: '[REDACTED:email]' });
  });

  it('binary bodies are not rewritten', async () => {
    const bin = Buffer.from('alice.smith@example.com\u0000\u0001');
    const r = await request(`${red.url}/echo/bin`, { method: 'POST', headers: { authorization: `Bearer ${red.token}`, 'content-type': 'application/octet-stream' }, body: bin });
    await r.body.dump();
    expect(up.received.at(-1)!.body).toBe(bin.toString());
  });
});

describe('responses', () => {
  it('JSON responses are masked value by value', async () => {
    const r = await request(`${red.url}/customers`, { headers: { authorization: `Bearer ${red.token}` } });
    const text = await r.body.text();
    expectNoOriginals(text);
    const o = JSON.parse(text) as { customers: { email: string; name: string }[] };
    expect(o.customers[0]).toMatchObject({ name: 'Alice Smith', email: '[REDACTED:email]' });
    expect(r.headers['content-length']).toBe(String(Buffer.byteLength(text)));
  });

  it('gzip, br and deflate responses are decoded to be masked (content-encoding and etag dropped)', async () => {
    for (const enc of ['gzip', 'br', 'deflate']) {
      const r = await request(`${red.url}/${enc}`, { headers: { authorization: `Bearer ${red.token}`, 'accept-encoding': 'gzip, br, deflate' } });
      expect(r.headers['content-encoding']).toBeUndefined();
      expect(r.headers['etag']).toBeUndefined();
      const text = await r.body.text();
      expectNoOriginals(text);
      expect((JSON.parse(text) as { customers: unknown[] }).customers).toHaveLength(3);
    }
  });

  it('a text response in 7-byte pieces is masked as a stream: no value leaks in part', async () => {
    const r = await request(`${red.url}/text`, { headers: { authorization: `Bearer ${red.token}` } });
    const text = await r.body.text();
    expectNoOriginals(text);
    for (const part of ['alice.smith', 'example.', '1111 1111', 'Q8zT3vN1']) expect(text).not.toContain(part);
    expect(text).toContain('Alice Smith <[REDACTED:email]> [REDACTED:credit_card]');
  });

  it('SSE chat stream: values split across 3-char deltas are masked, events keep their framing', async () => {
    const r = await post(red, '/v1/chat/completions', { model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }, { role: 'tool', content: rows }] });
    expect(r.headers['content-type']).toBe('text/event-stream');
    expectNoOriginals(r.text);
    for (const part of ['alice', 'example.', '4111', '5555', 'Q8zT3vN1']) expect(r.text).not.toContain(part);
    const evs = new SseParser().push(r.text);
    expect(evs.at(-1)!.data).toBe('[DONE]');
    let content = '';
    for (const e of evs.slice(0, -1)) {
      const o = JSON.parse(e.data!) as { object: string; choices: { delta: { content?: string } }[] };
      expect(o.object).toBe('chat.completion.chunk');
      for (const c of o.choices) content += c.delta.content ?? '';
    }
    // The tool output was masked on the way up; the model echoed it.
    expect(content).toContain('"email":"[REDACTED:email]"');
  });
});

describe('pseudonymize with restore: true', () => {
  it('non-streamed: the upstream sees placeholders, the client reads the originals', async () => {
    const r = await post(pseudo, '/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'list' }, { role: 'tool', tool_call_id: 'c', content: rows }] });
    const sent = up.received.at(-1)!.body;
    expectNoOriginals(sent);
    expect(sent).toContain('<EMAIL_1>');
    expect(sent).toContain('<CREDIT_CARD_1>');
    const o = JSON.parse(r.text) as { choices: { message: { content: string } }[] };
    const answer = o.choices[0]!.message.content;
    for (const v of ORIGINALS) expect(answer).toContain(v);
  });

  it('streamed (chat and responses): placeholders split across deltas are restored', async () => {
    for (const size of [2, 3, 5]) {
      up.deltaSize = size;
      const chat = await post(pseudo, '/v1/chat/completions', { model: 'm', stream: true, messages: [{ role: 'tool', tool_call_id: 'c', content: rows }] });
      expectNoOriginals(up.received.at(-1)!.body);
      let content = '';
      for (const e of new SseParser().push(chat.text)) {
        if (e.data === '[DONE]') continue;
        for (const c of (JSON.parse(e.data!) as { choices: { delta: { content?: string } }[] }).choices) content += c.delta.content ?? '';
      }
      expect(content).toBe(`Here are the customers: ${rows}`);
      const resp = await post(pseudo, '/v1/responses', { model: 'm', stream: true, input: [{ type: 'function_call_output', call_id: 'c', output: rows }] });
      expectNoOriginals(up.received.at(-1)!.body);
      let text = '';
      let done = '';
      for (const e of new SseParser().push(resp.text)) {
        const o = JSON.parse(e.data!) as { type: string; delta?: string; text?: string };
        if (o.type === 'response.output_text.delta') text += o.delta;
        if (o.type === 'response.output_text.done') done = o.text!;
      }
      expect(text).toBe(`Here are the customers: ${rows}`);
      expect(done).toBe(text);
    }
    up.deltaSize = 3;
  });

  it('the same value gets the same placeholder across requests and connections', async () => {
    await post(pseudo, '/echo/a', { e: 'alice.smith@example.com' });
    const a = up.received.at(-1)!.body;
    await post(pseudo, '/echo/b', { other: 'zed@example.com', e: 'alice.smith@example.com' });
    const b = up.received.at(-1)!.body;
    const ph = (JSON.parse(a) as { e: string }).e;
    expect(ph).toMatch(/^<EMAIL_\d+>$/);
    expect((JSON.parse(b) as { e: string }).e).toBe(ph);
  });
});

describe('bodies past the inspect cap (read whole up to it, then streamed from what was read)', () => {
  let small: TestTunnel;
  beforeAll(async () => {
    small = await openTunnel(up, { policies: REDACT_PII, use: ['redact-pii'], tuning: { inspectCapBytes: 64 } });
  });
  afterAll(async () => {
    await small?.close();
  });

  it('a JSON response longer than the cap is masked as a stream, whole and in order', async () => {
    const direct = JSON.parse(await (await request(`${up.url}/customers`)).body.text()) as { customers: typeof CUSTOMERS };
    const r = await request(`${small.url}/customers`, { headers: { authorization: `Bearer ${small.token}` } });
    const text = await r.body.text();
    expect(r.statusCode).toBe(200);
    expectNoOriginals(text);
    const o = JSON.parse(text) as { customers: { id: number; name: string; email: string }[] };
    expect(o.customers.map((c) => [c.id, c.name])).toEqual(direct.customers.map((c) => [c.id, c.name]));
    expect(o.customers[2]!.email).toBe('[REDACTED:email]');
  });

  it('a chunked JSON request longer than the cap is masked as a stream and reaches the upstream whole', async () => {
    const body = { messages: CUSTOMERS.map((c) => ({ role: 'user', content: `${c.name} <${c.email}> pays with ${c.card}` })), tail: 'x'.repeat(300) };
    const text = JSON.stringify(body);
    // no content-length: read up to the cap before the tunnel knows it is longer
    const r = await request(`${small.url}/echo/long`, {
      method: 'POST',
      headers: { authorization: `Bearer ${small.token}`, 'content-type': 'application/json' },
      body: Readable.from([text.slice(0, 40), text.slice(40, 100), text.slice(100)].map((p) => Buffer.from(p))),
    });
    await r.body.dump();
    expect(r.statusCode).toBe(200);
    expect(up.received.at(-1)!.headers['content-length']).toBeUndefined();
    const got = up.received.at(-1)!.body;
    expectNoOriginals(got);
    const sent = JSON.parse(got) as typeof body;
    expect(sent.tail).toBe(body.tail);
    expect(sent.messages.map((m) => m.content.split(' <')[0])).toEqual(CUSTOMERS.map((c) => c.name));
  });
});
