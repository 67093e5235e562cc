/** The sans-I/O parts: SSE framing, the SSE masker, the streaming restorer and the credential scrubber. */
import { describe, expect, it } from 'vitest';
import { createDlpEngine, PseudonymVault } from '../../../src/dlp/index.js';
import { SseParser } from '../../../src/proxy/http/sse.js';
import { SseMasker } from '../../../src/proxy/http/sse-mask.js';
import { SecretScrubber, StreamRestorer } from '../../../src/proxy/http/restore.js';

function feedAll(p: SseParser, parts: string[]): string[] {
  const out: string[] = [];
  for (const part of parts) for (const e of p.push(part)) out.push(e.raw);
  return out;
}

describe('SseParser', () => {
  const stream = 'data: a\n\n: comment\nevent: x\r\ndata: {"k":1}\r\ndata: two\r\n\r\nid: 7\rdata: cr\r\rdata: last\n\n';
  const whole = feedAll(new SseParser(), [stream]);

  it('frames LF, CRLF and CR events, keeping each event’s exact text', () => {
    expect(whole).toEqual(['data: a\n\n', ': comment\nevent: x\r\ndata: {"k":1}\r\ndata: two\r\n\r\n', 'id: 7\rdata: cr\r\r', 'data: last\n\n']);
    const p = new SseParser();
    const evs = p.push(stream);
    expect(evs.map((e) => e.data)).toEqual(['a', '{"k":1}\ntwo', 'cr', 'last']);
  });

  it('gives the same events for the stream split at every offset (and in two places)', () => {
    for (let i = 0; i <= stream.length; i++) {
      expect(feedAll(new SseParser(), [stream.slice(0, i), stream.slice(i)])).toEqual(whole);
      for (let j = i; j <= stream.length; j += 5) {
        expect(feedAll(new SseParser(), [stream.slice(0, i), stream.slice(i, j), stream.slice(j)])).toEqual(whole);
      }
    }
  });

  it('an unfinished event at the end is returned by end()', () => {
    const p = new SseParser();
    expect(p.push('data: x\n\ndata: partial')).toHaveLength(1);
    expect(p.end()).toBe('data: partial');
  });
});

const EMAIL = 'alice.smith@example.com';
const KEY = 'sk-proj-Q8zT3vN1mK7pL2xR9wY4bH6cJ0dF5gA1sE8uI3oP';

function chatStream(text: string, size: number): string {
  const ev = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
  const base = { id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm' };
  let s = ev({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
  for (let i = 0; i < text.length; i += size) s += ev({ ...base, choices: [{ index: 0, delta: { content: text.slice(i, i + size) }, finish_reason: null }] });
  s += ev({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
  return `${s}data: [DONE]\n\n`;
}

/** What a client assembles from a chat stream: the content, and the event count. */
function assemble(sse: string): { content: string; events: number; done: boolean } {
  const evs = new SseParser().push(sse);
  let content = '';
  let done = false;
  for (const e of evs) {
    if (e.data === '[DONE]') {
      done = true;
      continue;
    }
    const o = JSON.parse(e.data!) as { choices: { delta: { content?: string } }[] };
    for (const c of o.choices) content += c.delta.content ?? '';
  }
  return { content, events: evs.length, done };
}

describe('SseMasker', () => {
  const text = `Contact ${EMAIL} or use key ${KEY} for card 4111 1111 1111 1111. Thanks!`;

  it('masks values split across deltas, never leaking a part; framing and [DONE] kept', () => {
    for (const size of [1, 2, 3, 5, 8, 40]) {
      const engine = createDlpEngine({ entities: ['email', 'credit_card', 'secrets'], masker: 'redact' });
      const m = new SseMasker({ engine, vault: null, secrets: [], recordCap: 10_000 });
      const input = chatStream(text, size);
      const out = m.push(input) + m.end();
      const got = assemble(out);
      expect(got.content).toBe(engine.maskText(text).text);
      expect(got.done).toBe(true);
      expect(got.events).toBeGreaterThanOrEqual(assemble(input).events);
      for (const piece of ['alice.smith', 'example.com', 'Q8zT3vN1', '1111 1111']) expect(out).not.toContain(piece);
      expect(m.counts()).toEqual({ email: 1, openai_api_key: 1, credit_card: 1 });
    }
  });

  it('the same output for the upstream bytes split at every offset', () => {
    const engine = createDlpEngine({ entities: ['email', 'secrets'], masker: 'redact' });
    const input = chatStream(text, 4);
    const ref = assemble((() => {
      const m = new SseMasker({ engine, vault: null, secrets: [], recordCap: 100 });
      return m.push(input) + m.end();
    })()).content;
    for (let i = 0; i <= input.length; i += 3) {
      const m = new SseMasker({ engine, vault: null, secrets: [], recordCap: 100 });
      const out = m.push(input.slice(0, i)) + m.push(input.slice(i)) + m.end();
      expect(assemble(out).content).toBe(ref);
    }
  });

  it('pseudonymize + restore: placeholders split across deltas come back as the originals', () => {
    const vault = new PseudonymVault();
    const engine = createDlpEngine({ entities: ['email'], masker: 'pseudonymize', vault });
    const ph = engine.maskText(EMAIL).text; // the prompt was pseudonymized earlier
    expect(ph).toBe('<EMAIL_1>');
    for (const size of [1, 2, 3, 4, 7]) {
      const m = new SseMasker({ engine, vault, secrets: [], recordCap: 1000 });
      const out = m.push(chatStream(`Write to ${ph} today, ${ph}!`, size)) + m.end();
      expect(assemble(out).content).toBe(`Write to ${EMAIL} today, ${EMAIL}!`);
      // The recording keeps the masked form.
      expect(m.recorded()).toContain('<EMAIL_1>');
      expect(m.recorded()).not.toContain(EMAIL);
    }
  });

  it('responses API events: per-item delta channels, flushed before the .done event', () => {
    const engine = createDlpEngine({ entities: ['email'], masker: 'redact' });
    const m = new SseMasker({ engine, vault: null, secrets: [], recordCap: 1000 });
    const ev = (type: string, o: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...o })}\n\n`;
    const full = `mail ${EMAIL} now`;
    let s = ev('response.created', { response: { id: 'r' } });
    for (let i = 0; i < full.length; i += 3) s += ev('response.output_text.delta', { item_id: 'm1', output_index: 0, content_index: 0, delta: full.slice(i, i + 3) });
    s += ev('response.output_text.done', { item_id: 'm1', output_index: 0, content_index: 0, text: full });
    s += ev('response.completed', { response: { output: [{ content: [{ text: full }] }] } });
    const out = m.push(s) + m.end();
    const evs = new SseParser().push(out);
    const types = evs.map((e) => (JSON.parse(e.data!) as { type: string }).type);
    const deltas = evs.filter((e) => e.raw.startsWith('event: response.output_text.delta')).map((e) => (JSON.parse(e.data!) as { delta: string }).delta).join('');
    expect(deltas).toBe('mail [REDACTED:email] now');
    expect(types.indexOf('response.output_text.done')).toBeGreaterThan(types.lastIndexOf('response.output_text.delta'));
    expect(out).not.toContain('alice');
    expect(out.match(/\[REDACTED:email\]/g)).toHaveLength(3);
  });
});

describe('StreamRestorer and SecretScrubber', () => {
  it('restores placeholders split at every offset', () => {
    const vault = new PseudonymVault();
    const a = vault.placeholderFor('email', 'a@b.co');
    const b = vault.placeholderFor('credit_card', '4111111111111111');
    const text = `x ${a}${b} <NOT_1> < y <EMAIL_9>`;
    const want = `x a@b.co4111111111111111 <NOT_1> < y <EMAIL_9>`;
    for (let i = 0; i <= text.length; i++) {
      for (let j = i; j <= text.length; j++) {
        const r = new StreamRestorer(vault);
        expect(r.push(text.slice(0, i)) + r.push(text.slice(i, j)) + r.push(text.slice(j)) + r.end()).toBe(want);
      }
    }
  });

  it('scrubs a credential split at every offset, holding only a possible prefix', () => {
    const secret = 'sk-upstream-REAL-0123456789';
    const text = Buffer.from(`a ${secret} b sk-up c ${secret}`);
    for (let i = 0; i <= text.length; i++) {
      const s = new SecretScrubber([secret]);
      const out = Buffer.concat([s.push(text.subarray(0, i)), s.push(text.subarray(i)), s.end()]).toString();
      expect(out).toBe('a [REDACTED:dlpctl-credential] b sk-up c [REDACTED:dlpctl-credential]');
    }
    const s = new SecretScrubber([secret]);
    expect(s.push(Buffer.from('data: x\n\n')).toString()).toBe('data: x\n\n');
    // Only the longest tail that can still become the secret is held back; everything before it goes out.
    expect(s.push(Buffer.from('sk-a sk-upstream-RE')).toString()).toBe('sk-a ');
    expect(s.push(Buffer.from('st')).toString()).toBe('sk-upstream-REst');
    expect(s.push(Buffer.from('s')).toString()).toBe('');
    expect(s.end().toString()).toBe('s');
  });
});
