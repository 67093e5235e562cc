/**
 * Values inside PostgreSQL's text forms: arrays (nested, quoted, with backslash escapes), composite
 * literals, hstore, JSON, XML, and COPY rows (tab-separated with `\n`/`\t` escapes, and CSV). Every entity
 * is found in every form, through maskText and through the byte path the PostgreSQL row masking takes
 * (cleanBytes, then maskText of the decoded cell), and masking replaces the value only: the form's braces,
 * quotes and separators stay. Near-misses in the same forms stay clear.
 */
import { describe, expect, it } from 'vitest';
import { createDlpEngine } from '../../src/dlp/index.js';

const engine = createDlpEngine();

function luhnComplete(partial: string): string {
  let sum = 0;
  let dbl = true;
  for (let i = partial.length - 1; i >= 0; i--) {
    let d = Number(partial[i]);
    if (dbl) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    dbl = !dbl;
  }
  return partial + String((10 - (sum % 10)) % 10);
}

/** [entity, value, text of the value that must not survive masking]. */
const VALUES: [string, string, string][] = [
  ['credit_card', '4222222222222', ''], // 13 digits
  ['credit_card', '378282246310005', ''], // 15, Amex
  ['credit_card', '3782 822463 10005', ''],
  ['credit_card', '4111111111111111', ''],
  ['credit_card', '5425-2334-3010-9903', ''],
  ['credit_card', '5425 2334 3010 9903', ''],
  ['credit_card', '6011000990139424', ''],
  ['credit_card', luhnComplete('400005665566555612'), ''], // 19 digits
  ['us_ssn', '078-51-1120', ''],
  ['us_ssn', '323 45 6781', ''],
  ['email', 'ada.lovelace@example.com', ''],
  ['phone', '(415) 555-2671', ''],
  ['phone', '415-555-2671', ''],
  ['phone', '415.555.2671', ''],
  ['phone', '+1 415 555 2671', ''],
  ['phone', '+44 20 7946 0958', ''],
  ['iban', 'DE89370400440532013000', ''],
  ['iban', 'GB82 WEST 1234 5698 7654 32', ''],
  ['ipv4', '203.0.113.7', ''],
  ['ipv6', '2001:db8::ff00:42:8329', ''],
  ['ipv6', 'fe80::1ff:fe23:4567:890a', ''],
  ['aws_access_key_id', 'AKIAZ3MSJV4GXBJZ7RQK', ''],
  ['github_token', 'ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5', ''],
  ['github_token', 'github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd', ''],
  ['gitlab_token', 'glpat-xY7zW9vU1tS3rQ5pO7nM', ''],
  ['openai_api_key', 'sk-proj-abcDEF123ghiJKL456mnoPQR789stuVWX012yzaBCD345', ''],
  ['anthropic_api_key', 'sk-ant-api03-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV0123456789-_abcd', ''],
  ['slack_token', 'xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx', ''],
  ['slack_webhook', 'https://hooks.slack.com/services/T0ABCDEFG/B0ABCDEFG/abcdefghijklmnopqrstuvwx', ''],
  ['stripe_key', 'sk_live_51HxYzAbCdEfGhIjKlMnOpQr', ''],
  ['stripe_key', 'rk_live_51HxYzAbCdEfGhIjKlMnOpQr', ''],
  ['google_api_key', 'AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q', ''],
  ['npm_token', 'npm_abcdefghijklmnopqrstuvwxyz0123456789', ''],
  ['jwt', 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U', ''],
  ['connection_string', 'postgres://app:S3cr3t-Pa55word@db.internal:5432/app', 'S3cr3t-Pa55word'],
];

/** Form name → the text with the value placed in it (`$` is the value). */
const FORMS: [string, string][] = [
  ['array, first element', '{$,x}'],
  ['array, first element before a number', '{$,3}'],
  ['array, middle element', '{1,$,2}'],
  ['array, last element', '{1,$}'],
  ['array, only element', '{$}'],
  ['array, two values', '{$,$}'],
  ['nested array', '{{$,a},{b,$}}'],
  ['array, quoted elements', '{"$","x y"}'],
  ['array, escaped quote and backslash around', '{"a\\"b","$","c\\\\"}'],
  ['array, after an escaped backslash', '{"x\\\\$"}'],
  ['composite', '(1,$,"a b")'],
  ['composite, first field', '($,1)'],
  ['composite, quoted field', '(1,"$")'],
  ['hstore value', '"k"=>"$"'],
  ['hstore, second pair', '"a"=>"1", "k"=>"$"'],
  ['hstore key', '"$"=>"1"'],
  ['JSON object', '{"k":"$"}'],
  ['JSON array', '["$","$"]'],
  ['JSON, nested', '{"a":[{"b":"$"}]}'],
  ['JSON, after a \\n escape', '{"k":"line\\n$"}'],
  ['XML element', '<k>$</k>'],
  ['XML attribute', '<x a="$"/>'],
  ['XML attribute, single quotes', "<x a='$' b=\"1\"/>"],
  ['COPY text row', '1\t$\tAda'],
  ['COPY text row, first column', '$\t1'],
  ['COPY text row, after an escaped line break', '1\tnote\\n$\tAda'],
  ['COPY text row, after an escaped tab', '1\tnote\\t$'],
  ['COPY text row, after an escaped carriage return', '1\tnote\\r$\tAda'],
  ['CSV row, quoted', '1,"$",Ada'],
  ['CSV row, bare', '1,$,Ada'],
  ['CSV row, first column', '$,1'],
];

/** What the PostgreSQL row masking does with a text cell (result-mask.ts): cleanBytes, then maskText. */
function maskCellBytes(text: string): string {
  const raw = Buffer.concat([Buffer.from('xx'), Buffer.from(text, 'utf8'), Buffer.from('yy')]);
  const start = 2;
  const end = raw.length - 2;
  if (engine.cleanBytes(raw, start, end)) return text;
  return engine.maskText(raw.toString('utf8', start, end)).text;
}

describe('every entity in every PostgreSQL text form', () => {
  for (const [form, shape] of FORMS) {
    it(form, () => {
      for (const [entity, value, inner] of VALUES) {
        const secret = inner || value;
        const text = shape.replaceAll('$', value);
        const r = engine.maskText(text);
        const label = `${entity} in ${JSON.stringify(text)} → ${JSON.stringify(r.text)}`;
        expect(r.findings.filter((f) => f.entity === entity).length, label).toBe(shape.split('$').length - 1);
        expect(r.text.includes(secret), label).toBe(false);
        // only the value is replaced: the form around it is the same text
        expect(r.text, label).toBe(shape.replaceAll('$', value.replace(secret, `[REDACTED:${entity}]`)));
        expect(maskCellBytes(text), label).toBe(r.text);
      }
    });
  }
});

describe('secret-named keys in the forms that carry keys', () => {
  const password = 'c0rrect horse';
  const aws = 'Zb8s/9xQ2w3E4r5T6y7U8i9O0pAaSsDdFfGgHhJj';
  it.each([
    ['{"password":"$"}', password, 'generic_secret'],
    ['"password"=>"$"', password, 'generic_secret'],
    ['<x password="$"/>', password, 'generic_secret'],
    ['<password>$</password>', password, 'generic_secret'],
    ['<db><api_key> $ </api_key></db>', 'Zx8Yq2Wv4Ut6Sr8Qp0On', 'generic_secret'],
    ['"aws_secret_access_key"=>"$"', aws, 'aws_secret_access_key'],
    ['<aws_secret_access_key>$</aws_secret_access_key>', aws, 'aws_secret_access_key'],
    ['(1,"token=$")', 'Zx8Yq2Wv4Ut6Sr8Qp0On', 'generic_secret'],
    ['1\tpassword=$', 'hunter22x', 'generic_secret'],
  ])('%s', (shape, value, entity) => {
    const text = shape.replace('$', value);
    const r = engine.maskText(text);
    expect(r.text).toBe(shape.replace('$', `[REDACTED:${entity}]`));
    expect(maskCellBytes(text)).toBe(r.text);
  });

  it('XML elements that are not secrets, or hold placeholders, stay', () => {
    for (const text of ['<password_hint>my dog</password_hint>', '<token>changeme</token>', '<password></password>', '<token_type>Bearer</token_type>', '<b>password</b>']) {
      expect(engine.maskText(text).text, text).toBe(text);
    }
  });

  it('an XML element split across stream chunks is held until its end tag', () => {
    const sm = engine.stream();
    let out = sm.push('<user><password>c0rrect ');
    out += sm.push('horse</password></user>');
    out += sm.end();
    expect(out).toBe('<user><password>[REDACTED:generic_secret]</password></user>');
  });
});

describe('escape letters', () => {
  it('a secret prefix that starts with an escape letter is still found after a lone backslash (a path)', () => {
    expect(engine.maskText('C:\\npm_abcdefghijklmnopqrstuvwxyz0123456789').text).toBe('C:\\[REDACTED:npm_token]');
    expect(engine.maskText('dir\\rk_live_51HxYzAbCdEfGhIjKlMnOpQr').text).toBe('dir\\[REDACTED:stripe_key]');
    expect(engine.maskText('x\\token=Zx8Yq2Wv4Ut6Sr8Qp0On').text).toBe('x\\token=[REDACTED:generic_secret]');
  });
  it('an email after an escape keeps the escape whole', () => {
    expect(engine.maskText('1\tnote\\nada@example.com').text).toBe('1\tnote\\n[REDACTED:email]');
  });
});

describe('near-misses in the same forms stay clear', () => {
  it.each([
    '{1,2,3}',
    '{{1,2},{3,4}}',
    '(1,2)',
    '(42,"a b",t)',
    '{1.2.3,2.0.1}',
    '{"version 1.2.3.4","v10.0.0.1"}',
    '{2024-01-15,2024-02-29}',
    '{"2024-01-15 10:30:00+00","2024-02-29 23:59:59"}',
    '{550e8400-e29b-41d4-a716-446655440000,6fa459ea-ee8a-3ca4-894e-db77e160355e}',
    '(550e8400-e29b-41d4-a716-446655440000,1700000000000)',
    '{4111111111111112,1234567812345670}', // Luhn fails; Luhn passes without an issuer
    '{1700000000,1700000000000}', // epoch seconds and milliseconds
    '{94107-1234,10001}', // ZIP+4
    '{123456789,987654321}', // 9 digits without SSN context
    '{078-05-1120}', // the Woolworth SSN
    '"k"=>"1", "n"=>"2"',
    '{"id":1,"qty":3,"price":19.99}',
    '[1,2,3,1700000000000]',
    '<v>1.2.3</v><n a="42"/>',
    '1\t2\t3\tAda\t2024-01-15',
    '1,2,3,"a, b",2024-01-15',
    '{3f786850e387550fdab836ed7e6dc881de23001b}',
    '1\tnote\\n2024-01-15\\t12:30',
    '{"a\\\\nb","c\\\\td"}',
  ])('%s', (text) => {
    expect(engine.detect(text), text).toEqual([]);
    expect(maskCellBytes(text)).toBe(text);
  });

  it('a decimal point after a number still continues it; a comma separates', () => {
    expect(engine.detect('{4111111111111111.5}')).toEqual([]);
    expect(engine.detect('{4111111111111111,5}').map((f) => f.entity)).toEqual(['credit_card']);
  });
});

describe('byte path', () => {
  it('cleanBytes never skips a cell of a text form (it says "scan" for any brace, quote or separator)', () => {
    for (const [, shape] of FORMS) expect(engine.cleanBytes(Buffer.from(shape.replaceAll('$', '4111111111111111')))).toBe(false);
    // and still skips the plain cells it was made for
    expect(engine.cleanBytes(Buffer.from('d41d8cd98f00b204e9800998ecf8427e'))).toBe(true);
  });
});
