/**
 * The hand-written trigger (src/dlp/trigger.ts) against its specification, the combined regex it
 * replaced (trigger-spec.ts): the same match positions and lengths on the evaluation corpus, on
 * log/JSON/prose corpora, on random text built from the characters and words the alternatives look for
 * (ASCII and not, short and long, so both ways of loading a text run), for several entity sets, and
 * through one trigger reused across texts of different lengths.
 */
import { faker } from '@faker-js/faker';
import { describe, expect, it } from 'vitest';
import { ENTITY_GROUPS, ENTITY_NAMES } from '../../src/dlp/entities.js';
import { retainedTriggerBytes, Trigger } from '../../src/dlp/trigger.js';
import { generateCorpus } from '../dlp-eval/corpus.js';
import { buildTriggerRegex } from './trigger-spec.js';

function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

/** [index, length] of every match, scanning on after each match as the scanner does. */
function viaRegex(re: RegExp, s: string): number[] {
  const out: number[] = [];
  re.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) out.push(m.index, m[0].length);
  return out;
}
function viaTrigger(t: Trigger, s: string): number[] {
  const out: number[] = [];
  t.start(s);
  for (let at = 0; ; ) {
    const p = t.next(at);
    if (p < 0) break;
    out.push(p, t.length);
    at = p + t.length;
  }
  return out;
}

const CHARS = [...'0123459afgkeyJAKISZGR:=-_.@%\\u/+() \t"\'pswdtonhxblcmBEN\n40'];
const NON_ASCII = ['é', 'ſ', 'K', '\u00a0', '日本', '😀', '\ud800', 'İ'];
const WORDS = [
  'key', 'pass', 'secret', 'token', 'auth', 'credential', 'pwd', 'PASSWORD', 'Api_Key', 'sk', 'glpat', 'glagent', 'xoxb', 'ghp',
  'github', 'npm', 'rk', 'eyJ', 'AKIA', 'ASIA', 'AIza', '----BEGIN ', '-----BEGIN RSA PRIVATE KEY-----', 'hooks.slack.com/',
  '://', 'u0040', '%40', '::', 'GR1348941', 'DE89', '2024-01-', '+1', '555-', '(415) ', '1234:ab::', 'fe80::1', 'abc:def:',
  'fa:', '_id', '4111111111111111', '2125550143', '12125550143', '123456789', '1234567890123', '"password": "', "token='",
];

function randomText(r: () => number, max: number, nonAscii: boolean): string {
  const n = 1 + Math.floor(r() * max);
  let s = '';
  while (s.length < n) {
    const x = r();
    if (x < 0.25) s += WORDS[Math.floor(r() * WORDS.length)];
    else if (nonAscii && x < 0.3) s += NON_ASCII[Math.floor(r() * NON_ASCII.length)];
    else s += CHARS[Math.floor(r() * CHARS.length)];
  }
  return s;
}

function expectSame(entities: ReadonlySet<string>, texts: Iterable<string>): number {
  const re = buildTriggerRegex(entities);
  const t = new Trigger(entities);
  let matches = 0;
  for (const s of texts) {
    const want = viaRegex(re, s);
    matches += want.length / 2;
    const got = viaTrigger(t, s);
    if (got.join() !== want.join()) expect({ text: s, got }).toEqual({ text: s, got: want });
  }
  return matches;
}

const ALL = new Set(ENTITY_NAMES);

describe('trigger: the same matches as its specification regex', () => {
  it('on the evaluation corpus, whole samples and all of them joined', () => {
    const texts = generateCorpus(11).map((x) => x.text);
    expect(expectSame(ALL, [...texts, texts.join('\n')])).toBeGreaterThan(2000);
  });

  it('on logs, JSON API payloads, prose and PII-dense lines', () => {
    faker.seed(3);
    const lines: string[] = [];
    for (let i = 0; i < 300; i++) {
      lines.push(
        `${faker.date.recent().toISOString()} INFO [${faker.hacker.noun()}] request_id=${faker.string.uuid()} path=/${faker.lorem.word()}/${faker.number.int(9999)} status=${faker.internet.httpStatusCode()}`,
        JSON.stringify({ id: faker.string.uuid(), created: faker.date.recent().getTime(), usage: { prompt_tokens: faker.number.int(900) }, content: faker.lorem.sentences(2), version: faker.system.semver() }),
        faker.lorem.paragraph(),
        `${faker.person.fullName()} <${faker.internet.email()}> ${faker.finance.creditCardNumber()} ${faker.internet.ipv4()} ${faker.internet.ipv6()} ${faker.finance.iban()} token=${faker.string.alphanumeric(32)}`,
      );
    }
    expect(expectSame(ALL, [...lines, lines.join('\n')])).toBeGreaterThan(1500);
  });

  it('on random text from the characters and words the alternatives look for, ASCII and not, short and long', () => {
    const r = rng(17);
    const texts: string[] = [];
    for (let i = 0; i < 20000; i++) texts.push(randomText(r, i % 10 === 0 ? 400 : 40, i % 3 === 0));
    expect(expectSame(ALL, texts)).toBeGreaterThan(20000);
  });

  it('for entity sets that leave alternatives out', () => {
    const sets: string[][] = [
      ['email'],
      ['credit_card'],
      ['ipv6'],
      ['private_key'],
      ['iban'],
      ['generic_secret'],
      ['connection_string'],
      [...ENTITY_GROUPS.secrets!],
      ENTITY_NAMES.filter((e) => e !== 'ipv6' && e !== 'private_key' && e !== 'gitlab_token' && e !== 'iban'),
    ];
    const r = rng(23);
    const texts: string[] = [];
    for (let i = 0; i < 3000; i++) texts.push(randomText(r, 60, i % 4 === 0));
    for (const set of sets) expectSame(new Set(set), texts);
  });

  it('in a text larger than the reused buffer, and in short texts after it (no stale bytes past the end)', () => {
    const r = rng(29);
    let big = '';
    while (big.length < 17 * 1024 * 1024) big += randomText(r, 4000, false) + '\n';
    const tail = ['1234', '4111 1111', 'x=', 'fe80:', 'eyJ', 'sk-', ''];
    expect(expectSame(ALL, [big.slice(0, 600_000), ...tail, big, ...tail])).toBeGreaterThan(1000);
  });
});

describe('trigger buffer', () => {
  it('keeps the buffer of a large text only while large texts keep coming', () => {
    const t = new Trigger(ALL);
    const large = 'x=1 '.repeat(1 << 20); // 4 MiB
    t.start(large);
    expect(retainedTriggerBytes()).toBeGreaterThan(4 << 20);
    for (let i = 0; i < 63; i++) t.start('a short text 4111 1111 1111 1111');
    expect(retainedTriggerBytes()).toBeGreaterThan(4 << 20);
    t.start('one more');
    expect(retainedTriggerBytes()).toBeLessThanOrEqual(1 << 20);
    // and it still finds what it should
    expect(viaTrigger(t, 'card 4111 1111 1111 1111')).toEqual(viaRegex(buildTriggerRegex(ALL), 'card 4111 1111 1111 1111'));
  });
});
