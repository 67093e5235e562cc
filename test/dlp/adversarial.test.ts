import { describe, expect, it } from 'vitest';
import { createDlpEngine } from '../../src/dlp/index.js';

const e = createDlpEngine();

describe('adversarial inputs complete and give correct output', () => {
  it('100k-digit run is not a card, phone or SSN', () => {
    const s = '9'.repeat(100_000);
    expect(e.maskText(s).text).toBe(s);
    const t = `x ${'4111 '.repeat(50_000)}y`;
    expect(e.maskText(t).changed).toBe(false);
  });
  it('a@a@a@… ×100k', () => {
    const s = 'a@'.repeat(100_000);
    expect(e.maskText(s).text).toBe(s);
    const t = 'a@b.co@'.repeat(50_000);
    expect(e.maskText(t).changed).toBe(false);
  });
  it('many BEGIN lines without END, many keys without values, many prefixes', () => {
    const pem = '-----BEGIN RSA PRIVATE KEY-----\n'.repeat(20_000);
    expect(e.maskText(pem).counts.private_key).toBeGreaterThan(0);
    const kv = 'password='.repeat(100_000);
    expect(() => e.maskText(kv)).not.toThrow();
    const pre = 'ghp_ sk- AKIA eyJ xoxb- '.repeat(20_000);
    expect(e.maskText(pre).changed).toBe(false);
    const colons = ':'.repeat(200_000) + 'a:'.repeat(100_000);
    expect(e.maskText(colons).changed).toBe(false);
    const dots = '1.'.repeat(100_000);
    expect(e.maskText(dots).changed).toBe(false);
  });
  it('10 MB single line', () => {
    const unit = 'lorem ipsum dolor sit amet 12345 consectetur, adipiscing elit; id=42 ok. ';
    const s = unit.repeat(Math.ceil((10 * 1024 * 1024) / unit.length));
    const r = e.maskText(`${s}mail a@b.co`);
    expect(r.counts).toEqual({ email: 1 });
  });
  it('10k nested JSON levels', () => {
    const deep = '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000);
    expect(e.maskJson(deep).text).toBe(deep);
  });
  it('long escape-like and ANSI junk', () => {
    const s = '\x1b['.repeat(100_000) + '4111111111111111';
    expect(() => e.maskText(s)).not.toThrow();
    const t = '\x1b[31m'.repeat(100_000) + '4111111111111111';
    expect(e.maskText(t).counts).toEqual({ credit_card: 1 });
  });
});
