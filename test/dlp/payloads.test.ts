import { describe, expect, it } from 'vitest';
import { createDlpEngine } from '../../src/dlp/index.js';

const e = createDlpEngine();

/** Same shape: same structure and types, except masked leaves may become strings or null. */
function sameShape(a: unknown, b: unknown): boolean {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => sameShape(x, b[i]));
  if (a !== null && typeof a === 'object') {
    if (b === null || typeof b !== 'object' || Array.isArray(b)) return false;
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k, i) => sameShape((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[Object.keys(b)[i]!]));
  }
  return b === a || typeof b === 'string' || b === null;
}

describe('maskJson', () => {
  it('masks nested values, keeps shape and untouched bytes', () => {
    const input = '{ "user": { "name": "Jane", "email": "jane@corp.io", "tags": ["a", "call 415-555-2671"] }, "n": 1.50, "ok": true, "z": null }';
    const r = e.maskJson(input);
    expect(r.text).toBe('{ "user": { "name": "Jane", "email": "[REDACTED:email]", "tags": ["a", "call [REDACTED:phone]"] }, "n": 1.50, "ok": true, "z": null }');
    expect(sameShape(JSON.parse(input), JSON.parse(r.text))).toBe(true);
    expect(r.findings.map((f) => input.slice(f.start, f.end))).toEqual(['jane@corp.io', '415-555-2671']);
  });

  it('masks JSON embedded in a JSON string (tool-call arguments)', () => {
    const body = JSON.stringify({
      choices: [{ message: { tool_calls: [{ type: 'function', function: { name: 'refund', arguments: JSON.stringify({ card: '4111 1111 1111 1111', note: 'for bob@corp.com' }) } }] } }],
    });
    const r = e.maskJson(body);
    const parsed = JSON.parse(r.text) as { choices: { message: { tool_calls: { function: { arguments: string } }[] } }[] };
    const args = JSON.parse(parsed.choices[0]!.message.tool_calls[0]!.function.arguments) as Record<string, string>;
    expect(args).toEqual({ card: '[REDACTED:credit_card]', note: 'for [REDACTED:email]' });
    expect(r.counts).toEqual({ credit_card: 1, email: 1 });
  });

  it('decodes \\u0040 and other escapes before detection', () => {
    const input = '{"to":"bob\\u0040corp.com","k":"4111\\u002d1111-1111-1111"}';
    const r = e.maskJson(input);
    expect(JSON.parse(r.text)).toEqual({ to: '[REDACTED:email]', k: '[REDACTED:credit_card]' });
    expect(input.slice(r.findings[0]!.start, r.findings[0]!.end)).toBe('bob\\u0040corp.com');
  });

  it('keys are context', () => {
    const input = JSON.stringify({ password: 'p4ssw0rd!', api_key: 'Zx8Yq2Wv4Ut6Sr8Qp0On', ssn: '234567891', phone: 4155552671, card: 4111111111111111, id: 4155552671, secret_name: 'db-prod', max_tokens: 1000 });
    const r = e.maskJson(input);
    expect(JSON.parse(r.text)).toEqual({
      password: '[REDACTED:generic_secret]',
      api_key: '[REDACTED:generic_secret]',
      ssn: '[REDACTED:us_ssn]',
      phone: '[REDACTED:phone]',
      card: '[REDACTED:credit_card]',
      id: 4155552671,
      secret_name: 'db-prod',
      max_tokens: 1000,
    });
  });

  it('null masker turns a value holding a finding into JSON null', () => {
    expect(createDlpEngine({ masker: 'null' }).maskJson('{"a":"x a@b.co","b":[1,"ok"]}').text).toBe('{"a":null,"b":[1,"ok"]}');
  });

  it('invalid JSON falls back to text scanning', () => {
    expect(e.maskJson('{"a": "a@b.co", oops').text).toBe('{"a": "[REDACTED:email]", oops');
    expect(e.maskJson('data: {"a":"a@b.co"}\n\n').text).toBe('data: {"a":"[REDACTED:email]"}\n\n');
  });

  it('10k levels of nesting do not overflow the stack', () => {
    const deep = '['.repeat(10000) + '"a@b.co"' + ']'.repeat(10000);
    const r = e.maskJson(deep);
    expect(r.text).toBe('['.repeat(10000) + '"[REDACTED:email]"' + ']'.repeat(10000));
    const deepObj = '{"a":'.repeat(10000) + '"4111111111111111"' + '}'.repeat(10000);
    expect(e.maskJson(deepObj).counts).toEqual({ credit_card: 1 });
    const unbalanced = '['.repeat(10000) + '"a@b.co"';
    expect(e.maskJson(unbalanced).text).toBe('['.repeat(10000) + '"[REDACTED:email]"');
  });
});

describe('maskForm', () => {
  it('decodes, masks with the field name as context, re-encodes changed parts only', () => {
    const r = e.maskForm('email=john%40corp.com&password=hunter22x&q=hello+world&n=%E2%9C%93');
    expect(r.text).toBe('email=%5BREDACTED%3Aemail%5D&password=%5BREDACTED%3Ageneric_secret%5D&q=hello+world&n=%E2%9C%93');
    expect(r.counts).toEqual({ email: 1, generic_secret: 1 });
    expect('email=john%40corp.com'.slice(r.findings[0]!.start, r.findings[0]!.end)).toBe('john%40corp.com');
  });
  it('full URLs: path as text, query as form, fragment as text', () => {
    const r = e.maskForm('https://api.example.com/u/a@b.co?token=Zx8Yq2Wv4Ut6Sr8Qp0On&x=1#c@d.io');
    expect(r.text).toBe('https://api.example.com/u/[REDACTED:email]?token=%5BREDACTED%3Ageneric_secret%5D&x=1#[REDACTED:email]');
  });
  it('malformed escapes are left alone', () => {
    expect(e.maskForm('a=%ZZ&b=%E2%28').text).toBe('a=%ZZ&b=%E2%28');
  });
});

describe('terminal output (ANSI)', () => {
  it('detects across escape sequences and keeps them intact', () => {
    const text = 'paid \x1b[1;31m4111-1111\x1b[0m-1111-1111 by \x1b]8;;mailto:x\x07link\x1b]8;;\x07 jane@\x1b[4mcorp.io\x1b[24m!';
    const r = e.maskText(text);
    expect(r.text).toBe('paid \x1b[1;31m[REDACTED:credit_card]\x1b[0m by \x1b]8;;mailto:x\x07link\x1b]8;;\x07 [REDACTED:email]\x1b[4m\x1b[24m!');
  });
  it('escape sequences are not scanned as content', () => {
    // the parameters of an SGR sequence look like a number but are not one
    expect(e.maskText('\x1b[38;2;415;555;2671mtext\x1b[0m').text).toBe('\x1b[38;2;415;555;2671mtext\x1b[0m');
    expect(e.maskText('\x1b]0;a@b.co\x07title').text).toBe('\x1b]0;a@b.co\x07title');
  });
});
