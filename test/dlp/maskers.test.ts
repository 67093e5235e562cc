import { describe, expect, it } from 'vitest';
import { createDlpEngine, hashToken, partial, PseudonymVault } from '../../src/dlp/index.js';
import { partialBytes, partialInPlace } from '../../src/dlp/maskers.js';

describe('maskers', () => {
  it('redact', () => {
    expect(createDlpEngine().maskText('card 4111-1111-1111-1111').text).toBe('card [REDACTED:credit_card]');
  });

  it('partial keeps the last N and the separators', () => {
    const e = createDlpEngine({ masker: 'partial' });
    expect(e.maskText('card 4111-1111-1111-1111').text).toBe('card ****-****-****-1111');
    expect(e.maskText('ssn 234-56-7891').text).toBe('ssn ***-**-7891');
    expect(createDlpEngine({ masker: 'partial', keep: 2 }).maskText('4111 1111 1111 1111').text).toBe('**** **** **** **11');
  });

  it('partial and partialBytes agree with the character-by-character definition on random text', () => {
    // The definition: from the end, the first `keep` letters/digits stay, later ones become '*', all else stays.
    const reference = (value: string, keep: number): string => {
      // letters and digits: ASCII ones and every character beyond ASCII, one `*` each
      let kept = 0;
      const chars = Array.from(value);
      const out = [...chars];
      for (let i = chars.length - 1; i >= 0; i--) {
        if (/[0-9A-Za-z]/.test(chars[i]!) || chars[i]!.codePointAt(0)! >= 0x80) out[i] = kept++ < keep ? chars[i]! : '*';
      }
      return out.join('');
    };
    const alphabet = ['a', 'Z', '0', '9', '-', ' ', '.', '@', 'é', '日', '😀', '*', '_'];
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) % n);
    for (let k = 0; k < 3000; k++) {
      const len = rnd(24);
      let v = '';
      for (let i = 0; i < len; i++) v += alphabet[rnd(alphabet.length)]!;
      const keep = rnd(7) + (k % 5 === 0 ? 0.5 : 0);
      const want = reference(v, keep);
      expect(partial('phone', v, keep), `${JSON.stringify(v)} keep ${keep}`).toBe(want);
      expect(partialBytes(Buffer.from(v, 'utf8'), keep).toString('utf8'), `${JSON.stringify(v)} keep ${keep}`).toBe(want);
      // in place, inside a larger buffer: ASCII text is masked where it lies and nothing around it moves;
      // text beyond ASCII is left alone (false) for the caller to mask a copy
      const framed = Buffer.concat([Buffer.from('ab12'), Buffer.from(v, 'utf8'), Buffer.from('cd34')]);
      const ascii = !/[^\x00-\x7f]/.test(v);
      expect(partialInPlace(framed, keep, 4, framed.length - 4)).toBe(ascii);
      expect(framed.toString('utf8'), `${JSON.stringify(v)} keep ${keep}`).toBe(`ab12${ascii ? want : v}cd34`);
    }
    // a name beyond ASCII is masked like a Latin one (it used to pass whole: its letters counted as separators)
    expect(partial('name', 'Иван Петров', 3)).toBe('**** ***ров');
    expect(partialBytes(Buffer.from('山田太郎'), 2).toString('utf8')).toBe('**太郎');
    expect(partial('phone', '555-0100', -1)).toBe('***-0100');
    expect(partialBytes(Buffer.from('555-0100'), Number.NaN).toString()).toBe('***-0100');
    const input = Buffer.from('4111 1111');
    partialBytes(input, 2);
    expect(input.toString()).toBe('4111 1111'); // a copy: the cell it reads is not changed
  });

  it('partial on secrets keeps the tail only when it is at most a quarter of the value', () => {
    expect(partial('github_token', 'ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5')).toBe('****xY5'.replace('****', '****').replace('xY5', 'W3xY5'.slice(1)));
    expect(partial('generic_secret', 'hunter22')).toBe('[REDACTED:generic_secret]');
    expect(partial('generic_secret', 'abcdefghijklmnop')).toBe('****mnop');
    expect(partial('private_key', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----')).toBe('[REDACTED:private_key]');
  });

  it('hash is keyed and stable', () => {
    const a = createDlpEngine({ masker: 'hash', hashKey: 'k1' });
    const b = createDlpEngine({ masker: 'hash', hashKey: 'k2' });
    const t1 = a.maskText('x a@b.co').text;
    expect(t1).toMatch(/^x \[HASH:email:[0-9a-f]{8}\]$/);
    expect(a.maskText('y a@b.co').text.slice(2)).toBe(t1.slice(2));
    expect(b.maskText('x a@b.co').text).not.toBe(t1);
    expect(hashToken('email', 'a@b.co', 'k1')).toBe(t1.slice(2));
  });

  it('null: redact in text, null for a database cell, unchanged cell returned as is', () => {
    const e = createDlpEngine({ masker: 'null' });
    expect(e.maskText('a@b.co').text).toBe('[REDACTED:email]');
    expect(e.maskValue('a@b.co')).toBeNull();
    const cell = 'nothing to see';
    expect(e.maskValue(cell)).toBe(cell);
    expect(createDlpEngine().maskValue('ssn 234-56-7891')).toBe('ssn [REDACTED:us_ssn]');
    expect(createDlpEngine().maskValue('234567891', 'ssn')).toBe('[REDACTED:us_ssn]');
  });

  it('pseudonymize: stable placeholders per vault, restore round-trip', () => {
    const vault = new PseudonymVault();
    const e = createDlpEngine({ masker: 'pseudonymize', vault });
    const prompt = 'Email alice@corp.com and bob@corp.com, call 415-555-2671; cc alice@corp.com';
    const masked = e.maskText(prompt).text;
    expect(masked).toBe('Email <EMAIL_1> and <EMAIL_2>, call <PHONE_1>; cc <EMAIL_1>');
    expect(vault.restore(masked)).toBe(prompt);
    expect(vault.restore('I wrote to <EMAIL_2> and <EMAIL_9>')).toBe('I wrote to bob@corp.com and <EMAIL_9>');
    // JSON replies: escaped placeholders, originals JSON-escaped
    expect(vault.restoreJson('{"c":"hi \\u003cEMAIL_1\\u003e <PHONE_1>"}')).toBe('{"c":"hi alice@corp.com 415-555-2671"}');
    // each form, repeated, mixed escapes, and an original that JSON must escape
    const q = new PseudonymVault();
    q.placeholderFor('NAME', 'say "hi"\\n');
    expect(q.restoreJson('<NAME_1> \\u003cNAME_1\\u003e <NAME_1\\u003E \\u003CNAME_1> <NAME_1> <NAME_2>')).toBe(
      'say \\"hi\\"\\\\n say \\"hi\\"\\\\n say \\"hi\\"\\\\n say \\"hi\\"\\\\n say \\"hi\\"\\\\n <NAME_2>',
    );
    q.clear(); // forgets the originals, escaped ones included: the placeholder, issued again, is the new value's
    expect(q.restoreJson('<NAME_1>')).toBe('<NAME_1>');
    expect(q.placeholderFor('NAME', 'bob')).toBe('<NAME_1>');
    expect(q.restoreJson('<NAME_1> \\u003cNAME_1\\u003e')).toBe('bob bob');
    // another vault does not know these placeholders
    expect(new PseudonymVault().restore(masked)).toBe(masked);
    // same engine, later message: same placeholder
    expect(e.maskText('again bob@corp.com').text).toBe('again <EMAIL_2>');
  });

  it('pseudonymize: vaults numbered by a shared vault share placeholders but restore only their own', () => {
    const tunnel = new PseudonymVault();
    const a = new PseudonymVault(tunnel);
    const b = new PseudonymVault(tunnel);
    const ea = createDlpEngine({ masker: 'pseudonymize', vault: a });
    const eb = createDlpEngine({ masker: 'pseudonymize', vault: b });
    expect(ea.maskText('alice@corp.com').text).toBe('<EMAIL_1>');
    expect(eb.maskText('bob@corp.com alice@corp.com').text).toBe('<EMAIL_2> <EMAIL_1>');
    expect(a.restore('<EMAIL_1> <EMAIL_2>')).toBe('alice@corp.com <EMAIL_2>');
    expect(b.restore('<EMAIL_1> <EMAIL_2>')).toBe('alice@corp.com bob@corp.com');
    expect(a.restoreJson('"\\u003cEMAIL_2\\u003e"')).toBe('"\\u003cEMAIL_2\\u003e"');
    expect(b.restoreJson('"\\u003cEMAIL_2\\u003e"')).toBe('"bob@corp.com"');
    // the numbering vault issues, it is not asked to restore; clearing a session keeps the numbering
    a.clear();
    expect(a.restore('<EMAIL_1>')).toBe('<EMAIL_1>');
    expect(ea.maskText('carol@corp.com').text).toBe('<EMAIL_3>');
  });

  it('per-entity masker override (groups, default)', () => {
    const e = createDlpEngine({ masker: { email: 'hash', secrets: 'redact', credit_card: 'partial', default: 'pseudonymize' }, hashKey: 'k' });
    const out = e.maskText('a@b.co 4111111111111111 ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5 415-555-2671').text;
    expect(out).toMatch(/^\[HASH:email:[0-9a-f]{8}\] \*{12}1111 \[REDACTED:github_token\] <PHONE_1>$/);
    expect(e.maskerFor('jwt')).toBe('redact');
    expect(() => createDlpEngine({ masker: { nope: 'redact' } })).toThrow(/nope/);
  });

  it('findings carry spans and the masker, never the value; counts per entity', () => {
    const text = 'a@b.co, c@d.io and 4111111111111111';
    const r = createDlpEngine().maskText(text);
    expect(r.counts).toEqual({ email: 2, credit_card: 1 });
    expect(r.findings.map((f) => text.slice(f.start, f.end))).toEqual(['a@b.co', 'c@d.io', '4111111111111111']);
    for (const f of r.findings) expect(Object.keys(f).sort()).toEqual(['end', 'entity', 'masker', 'start']);
    const clean = 'nothing';
    const r2 = createDlpEngine().maskText(clean);
    expect(r2.text).toBe(clean);
    expect(r2.changed).toBe(false);
  });
});
