import { describe, expect, it } from 'vitest';
import { createDlpEngine, ENTITY_NAMES, expandEntities, SECRET_ENTITIES } from '../../src/dlp/index.js';
import { DlpctlError } from '../../src/errors.js';

const engine = createDlpEngine();

/** Entities found in `text`, with the matched substrings. */
function found(text: string, eng = engine): [string, string][] {
  return eng.detect(text).map((f) => [f.entity, text.slice(f.start, f.end)]);
}
function expectFound(entity: string, text: string, value: string, eng = engine): void {
  expect(found(text, eng), text).toContainEqual([entity, value]);
}
function expectNone(text: string, eng = engine): void {
  expect(found(text, eng), text).toEqual([]);
}

describe('entity list', () => {
  it('exports names and groups; secrets expands; unknown names are named in the error', () => {
    expect(ENTITY_NAMES).toContain('credit_card');
    expect(SECRET_ENTITIES).toContain('github_token');
    expect(expandEntities(['email', 'secrets'])).toEqual(['email', ...SECRET_ENTITIES]);
    expect(() => expandEntities(['email', 'passport'])).toThrow(/passport/);
    try {
      expandEntities(['nope']);
    } catch (e) {
      expect(e).toBeInstanceOf(DlpctlError);
    }
  });
});

describe('credit_card', () => {
  it.each([
    ['Visa 4111111111111111.', '4111111111111111'],
    ['card: 4111-1111-1111-1111', '4111-1111-1111-1111'],
    ['card 4111 1111 1111 1111 exp 12/29', '4111 1111 1111 1111'],
    ['Amex 3782 822463 10005', '3782 822463 10005'],
    ['MC 5555555555554444', '5555555555554444'],
    ['MC2 2223000048400011', '2223000048400011'],
    ['Discover 6011-1111-1111-1117', '6011-1111-1111-1117'],
    ['JCB 3530111333300000', '3530111333300000'],
    ['visa13 4222222222222', '4222222222222'],
  ])('%s', (text, value) => expectFound('credit_card', text, value));

  it.each([
    'order id 4111111111111112 (Luhn fails)',
    'id 1234567812345670 passes Luhn but has no issuer prefix',
    'tracking 9400111899223344556677',
    'epoch ms 1700000000000',
    'mixed separators 4111-1111 1111-1111',
    'account 41111111111111111111111 too long',
    'hex a4111111111111111',
  ])('not a card: %s', (text) => expect(found(text).filter(([e]) => e === 'credit_card')).toEqual([]));
});

describe('us_ssn', () => {
  it.each([
    ['SSN 234-56-7891', '234-56-7891'],
    ['ssn 234 56 7891', '234 56 7891'],
    ['SSN: 234567891', '234567891'],
    ['social security number 536-90-4399.', '536-90-4399'],
  ])('%s', (text, value) => expectFound('us_ssn', text, value));
  it.each([
    'area 000-12-3456',
    'area 666-12-3456',
    'area 900-12-3456',
    'group 234-00-3456',
    'serial 234-56-0000',
    'mixed 234-56 7891',
    'no context 234567891',
    'the Woolworth 078-05-1120',
    'zip 94107-1234',
    'phone-like 234-567-8910',
  ])('not an SSN: %s', (text) => expect(found(text).filter(([e]) => e === 'us_ssn')).toEqual([]));
});

describe('email', () => {
  it.each([
    ['mail john.doe@example.com now', 'john.doe@example.com'],
    ['<Jane_O+tag@sub.corp.co.uk>', 'Jane_O+tag@sub.corp.co.uk'],
    ['end a.b@c-d.io.', 'a.b@c-d.io'],
  ])('%s', (text, value) => expectFound('email', text, value));
  it.each(['@types/node', 'npm i foo@1.2.3', 'user@localhost', 'a@a@a@a', 'ssh git@', 'price @ 5.00'])('not an email: %s', (text) =>
    expect(found(text).filter(([e]) => e === 'email')).toEqual([]),
  );
});

describe('phone', () => {
  it.each([
    ['call (415) 555-2671', '(415) 555-2671'],
    ['call 415-555-2671', '415-555-2671'],
    ['call 415.555.2671', '415.555.2671'],
    ['call 415 555 2671', '415 555 2671'],
    ['call +1 415 555 2671', '+1 415 555 2671'],
    ['call +1 (415) 555-2671', '+1 (415) 555-2671'],
    ['call 1-800-555-0199', '1-800-555-0199'],
    ['UK +44 20 7946 0958', '+44 20 7946 0958'],
    ['DE +49 30 901820', '+49 30 901820'],
    ['FR +33 1 23 45 67 89', '+33 1 23 45 67 89'],
    ['phone: 4155552671', '4155552671'],
  ])('%s', (text, value) => expectFound('phone', text, value));
  it.each([
    'epoch 1700000000',
    'id 4155552671 without context',
    'area 123-456-7890 (area starts with 1)',
    'exchange 415-155-2671',
    'N11 area 911-555-2671',
    'mixed 415-555.2671',
    'math +3 points',
    'ids 12-34-56-78',
    'date 2024-01-15 10:30:00',
  ])('not a phone: %s', (text) => expect(found(text).filter(([e]) => e === 'phone')).toEqual([]));
});

describe('iban', () => {
  it.each([
    ['IBAN GB82WEST12345698765432', 'GB82WEST12345698765432'],
    ['IBAN GB82 WEST 1234 5698 7654 32.', 'GB82 WEST 1234 5698 7654 32'],
    ['DE89370400440532013000', 'DE89370400440532013000'],
    ['FR1420041010050500013M02606', 'FR1420041010050500013M02606'],
  ])('%s', (text, value) => expectFound('iban', text, value));
  it.each(['GB83WEST12345698765432 (bad check)', 'XX82WEST12345698765432', 'GB82WEST1234569876543 (short)', 'SKU AB12 CD34'])('not an IBAN: %s', (text) =>
    expect(found(text).filter(([e]) => e === 'iban')).toEqual([]),
  );
});

describe('ipv4 / ipv6', () => {
  it.each([
    ['from 203.0.113.7:443', 'ipv4', '203.0.113.7'],
    ['host 8.8.8.8.', 'ipv4', '8.8.8.8'],
    ['lan 192.168.1.10', 'ipv4', '192.168.1.10'],
    ['v6 2001:db8::ff00:42:8329', 'ipv6', '2001:db8::ff00:42:8329'],
    ['full 2001:0db8:85a3:0000:0000:8a2e:0370:7334', 'ipv6', '2001:0db8:85a3:0000:0000:8a2e:0370:7334'],
    ['ll fe80::1ff:fe23:4567:890a', 'ipv6', 'fe80::1ff:fe23:4567:890a'],
    ['mapped ::ffff:203.0.113.7', 'ipv6', '::ffff:203.0.113.7'],
  ])('%s', (text, entity, value) => expectFound(entity, text, value));

  // Decision: a bare dotted quad IS reported as an IPv4 address (it is one syntactically, and masking it is
  // the safe side). It is a version string, and not reported, when it follows `v`/`version`/`ver`/`release`/
  // `build`/`firmware`, or has more than four parts.
  it.each(['version 1.2.3.4', 'v1.2.3.4', 'release: 10.0.0.1', 'x 1.2.3.4.5', '256.1.1.1', '01.2.3.4', 'time 12:30:45', 'mac 00:1a:2b:3c:4d:5e', 'std::vector', 'uuid 550e8400-e29b-41d4-a716-446655440000'])(
    'not an IP: %s',
    (text) => expect(found(text).filter(([e]) => e === 'ipv4' || e === 'ipv6')).toEqual([]),
  );
  it('a bare dotted quad is reported', () => expectFound('ipv4', 'ip 1.2.3.4', '1.2.3.4'));
  it('allowPrivateIps skips private, loopback and link-local addresses', () => {
    const eng = createDlpEngine({ allowPrivateIps: true });
    expect(found('10.1.2.3 127.0.0.1 192.168.0.1 172.16.5.4 169.254.1.1 ::1 fe80::1 fd00::5', eng)).toEqual([]);
    expectFound('ipv4', 'pub 203.0.113.7', '203.0.113.7', eng);
  });
});

describe('secrets', () => {
  it.each([
    ['aws_access_key_id', 'id AKIAZ3MSJV4GXBJZ7RQK,', 'AKIAZ3MSJV4GXBJZ7RQK'],
    ['aws_secret_access_key', 'aws_secret_access_key = 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', 'Zb8s/9xQ2w3E4r5T6y7U8i9O0pAaSsDdFfGgHhJj'],
    ['github_token', 'ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5', 'ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5'],
    ['github_token', 'token gho_16C7e42F292c6912E7710c838347Ae178B4a', 'gho_16C7e42F292c6912E7710c838347Ae178B4a'],
    ['github_token', 'github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd', 'github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd'],
    ['gitlab_token', 'glpat-xY7zW9vU1tS3rQ5pO7nM', 'glpat-xY7zW9vU1tS3rQ5pO7nM'],
    ['openai_api_key', 'sk-proj-abcDEF123ghiJKL456mnoPQR789stuVWX012yzaBCD345', 'sk-proj-abcDEF123ghiJKL456mnoPQR789stuVWX012yzaBCD345'],
    ['openai_api_key', 'k=sk-abcdefghij0123456789T3BlbkFJabcdefghij0123456789', 'sk-abcdefghij0123456789T3BlbkFJabcdefghij0123456789'],
    ['openai_api_key', 'sk-aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5zA7bC9dE1fG3', 'sk-aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5zA7bC9dE1fG3'],
    ['anthropic_api_key', 'sk-ant-api03-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV0123456789-_abcd', 'sk-ant-api03-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV0123456789-_abcd'],
    ['slack_token', 'xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx', 'xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx'],
    ['slack_webhook', 'post https://hooks.slack.com/services/T0ABCDEFG/B0ABCDEFG/abcdefghijklmnopqrstuvwx now', 'https://hooks.slack.com/services/T0ABCDEFG/B0ABCDEFG/abcdefghijklmnopqrstuvwx'],
    ['stripe_key', 'sk_live_51HxYzAbCdEfGhIjKlMnOpQr', 'sk_live_51HxYzAbCdEfGhIjKlMnOpQr'],
    ['stripe_key', 'rk_test_51HxYzAbCdEfGhIjKlMnOpQr', 'rk_test_51HxYzAbCdEfGhIjKlMnOpQr'],
    ['google_api_key', 'AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q', 'AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q'],
    ['npm_token', '//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789', 'npm_abcdefghijklmnopqrstuvwxyz0123456789'],
    ['connection_string', 'postgres://app:S3cr3t-Pa55word@db.internal:5432/app', 'S3cr3t-Pa55word'],
    ['connection_string', 'mongodb+srv://admin:hunter2xyz@cluster0.mongodb.net/db', 'hunter2xyz'],
    ['jwt', 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U', 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'],
    ['private_key', 'k: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----', '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----'],
    ['generic_secret', 'password=hunter22', 'hunter22'],
    ['generic_secret', 'DB_PASSWORD: "c0rrect horse"', 'c0rrect horse'],
    ['generic_secret', 'client_secret = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"', '9f8e7d6c5b4a39281706f5e4d3c2b1a0'],
    ['generic_secret', '"apiKey": "Zx8Yq2Wv4Ut6Sr8Qp0On"', 'Zx8Yq2Wv4Ut6Sr8Qp0On'],
    ['generic_secret', 'Authorization: Bearer abcdef0123456789ABCDEFxyz', 'abcdef0123456789ABCDEFxyz'],
  ])('%s in %s', (entity, text, value) => expectFound(entity, text, value));

  it.each([
    'AKIAIOSFODNN7EXAMPLE',
    'aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    'OPENAI_API_KEY=sk-...xxxx',
    'api_key: ${OPENAI_API_KEY}',
    'api_key = "your-api-key-here"',
    'token: <token>',
    'password: xxxxxxxx',
    'password: changeme',
    'password = os.environ["DB_PASSWORD"]',
    'password=process.env.DB_PASSWORD',
    'token: ${{ secrets.GITHUB_TOKEN }}',
    'max_tokens: 1000',
    'token_type: "Bearer"',
    'public_key: ssh-ed25519AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl',
    'postgres://user:password@localhost/db',
    'commit 3f786850e387550fdab836ed7e6dc881de23001b',
    'sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    'https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX',
    'xoxb-your-token-here',
    'the task-list and desk-lamp',
    'author: John Smith',
  ])('not a secret: %s', (text) => expectNone(text));

  it('a secret prefix in a secret key value is labelled with the specific entity', () => {
    expect(found('GITHUB_TOKEN=ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5')).toEqual([['github_token', 'ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5']]);
  });
});

describe('entity selection', () => {
  it('only detects the configured entities', () => {
    const eng = createDlpEngine({ entities: ['email'] });
    expect(found('a@b.co 4111111111111111 ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5', eng)).toEqual([['email', 'a@b.co']]);
    const sec = createDlpEngine({ entities: ['secrets'] });
    expect(found('a@b.co ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5', sec)).toEqual([['github_token', 'ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5']]);
  });
  it('containsAny and entitiesIn', () => {
    expect(engine.containsAny('nothing here, 42 apples')).toBe(false);
    expect(engine.containsAny('mail a@b.co')).toBe(true);
    expect([...engine.entitiesIn('a@b.co and 4111111111111111')].sort()).toEqual(['credit_card', 'email']);
  });
});

describe('private keys larger than the scan bound', () => {
  it('redact the whole block, tail included, in whole-text masking', () => {
    const line = 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk';
    const body = Array.from({ length: 600 }, (_, i) => line + String(i % 10)).join('\n');
    const pem = `-----BEGIN RSA PRIVATE KEY-----\n${body}\n-----END RSA PRIVATE KEY-----`;
    expect(pem.length).toBeGreaterThan(16 * 1024 * 3);
    const r = createDlpEngine().maskText(`key:\n${pem}\nafter`);
    expect(r.text).toBe('key:\n[REDACTED:private_key]\nafter');
    const truncated = createDlpEngine().maskText(`-----BEGIN PRIVATE KEY-----\n${body}\n(cut) rest`);
    expect(truncated.text).not.toContain(line.slice(0, 20));
    expect(truncated.text.endsWith('(cut) rest')).toBe(true);
  });
});
