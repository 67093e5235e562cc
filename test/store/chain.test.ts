import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson, chainHash, ChainVerifier, GENESIS_HASH, sealEvent } from '../../src/store/chain.js';
import { newApprovalId, newSessionId, APPROVAL_ID_ALPHABET } from '../../src/store/ids.js';
import { redactStoreUrl, parseStoreUrl } from '../../src/store/url.js';
import { buildEvent } from '../../src/store/common.js';
import type { NewEvent, StoreEvent } from '../../src/store/types.js';

describe('canonical JSON', () => {
  it('sorts keys recursively, drops undefined, no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: undefined, x: 'é' }], c: null }, u: undefined })).toBe('{"a":{"c":null,"d":[3,{"x":"é","z":1}]},"b":1}');
    expect(canonicalJson([undefined, 1])).toBe('[null,1]');
    expect(canonicalJson('a"b\n')).toBe('"a\\"b\\n"');
    expect(canonicalJson(1.5)).toBe('1.5');
    expect(canonicalJson(Number.NaN)).toBe('null');
    expect(canonicalJson({ '10': 1, '9': 2, B: 3, a: 4 })).toBe('{"10":1,"9":2,"B":3,"a":4}');
  });

  it('matches a plain reference implementation on random values (key order, escapes, undefined, toJSON)', () => {
    // The definition, written as plainly as possible: what every stored body was hashed as.
    const reference = (v: unknown): string => {
      if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
      if (Array.isArray(v)) return `[${v.map((x) => (x === undefined || typeof x === 'function' ? 'null' : reference(x))).join(',')}]`;
      if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return reference((v as { toJSON(): unknown }).toJSON());
      const parts: string[] = [];
      for (const k of Object.keys(v).sort()) {
        const x = (v as Record<string, unknown>)[k];
        if (x === undefined || typeof x === 'function') continue;
        parts.push(`${JSON.stringify(k)}:${reference(x)}`);
      }
      return `{${parts.join(',')}}`;
    };
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const keys = ['a', 'B', 'z', '10', '9', 'é', 'k"q', 'line\n', '\u2028', 'sessionId', 'seq', ''];
    const strings = ['', 'x', 'é', '"quoted"', 'tab\t', '\u0000', '\ud800', '😀', 'Иван', '</script>'];
    const gen = (depth: number): unknown => {
      switch (rand(depth > 3 ? 6 : 9)) {
        case 0: return strings[rand(strings.length)];
        case 1: return rand(1000) - 500 + (rand(2) ? 0.25 : 0);
        case 2: return [null, true, false, undefined, Number.NaN, Number.POSITIVE_INFINITY, -0][rand(7)];
        case 3: return () => 1;
        case 4: return new Date(rand(2_000_000_000_000));
        case 5: {
          // boxed primitives, an array with a toJSON member, an object whose toJSON gives unsorted members
          const specials = [new String('ab'), new Number(3), Object(true), Object.assign([1, 2], { toJSON: () => 'x' }), { toJSON: () => ({ b: 1, a: [2] }) }, 'plain'];
          return specials[rand(specials.length)];
        }
        case 6: return Array.from({ length: rand(4) }, () => gen(depth + 1));
        default: {
          const o: Record<string, unknown> = {};
          for (let i = rand(6); i > 0; i--) o[keys[rand(keys.length)]!] = gen(depth + 1);
          if (sorted && rand(20) === 0) o['m'] = Symbol('s');
          if (sorted && rand(30) === 0) o['n'] = 10n ** 3n;
          if (!sorted || rand(8) === 0) return o;
          // members inserted in sorted order, as buildEvent writes events (JSON.stringify's own path), now and
          // then in a null-prototype object, or with a symbol or bigint member (which take the general path)
          const s: Record<string, unknown> = rand(4) === 0 ? Object.create(null) as Record<string, unknown> : {};
          for (const k of Object.keys(o).sort()) s[k] = o[k];
          return s;
        }
      }
    };
    let sorted = false;
    for (let i = 0; i < 6000; i++) {
      sorted = i >= 3000;
      const v = gen(0);
      const outcome = (f: (x: unknown) => string): string => {
        try {
          return f(v);
        } catch (err) {
          return `throws ${(err as Error).name}`; // a bigint, as JSON.stringify does
        }
      };
      expect(outcome(canonicalJson)).toBe(outcome(reference));
    }
  });

  it('buildEvent writes flat map members (headers, counts) in sorted order, and the body stays the canonical one', () => {
    const input = {
      type: 'http.request',
      method: 'POST',
      path: '/v1/chat',
      decision: 'allow',
      reqHeaders: { host: 'h', connection: 'keep-alive', 'content-type': 'application/json', accept: '*/*' },
      masked: { email: 2, credit_card: 1 },
      tags: ['b', 'a'],
    } as unknown as NewEvent;
    const event = buildEvent('S', 2, 'alice', input, () => new Date(0), '2025-01-01T00:00:00.000Z') as unknown as Record<string, unknown>;
    expect(Object.keys(event['reqHeaders'] as object)).toEqual(['accept', 'connection', 'content-type', 'host']);
    expect(Object.keys(event['masked'] as object)).toEqual(['credit_card', 'email']);
    expect(event['tags']).toEqual(['b', 'a']); // arrays keep their order: it is their content
    // Nothing but the order changed: the same canonical body as the caller's unsorted maps give.
    expect(JSON.stringify(event)).toBe(canonicalJson({ ...input, sessionId: 'S', seq: 2, subject: 'alice', time: '2025-01-01T00:00:00.000Z' }));
    expect((input as unknown as { reqHeaders: object }).reqHeaders).toEqual({ host: 'h', connection: 'keep-alive', 'content-type': 'application/json', accept: '*/*' });
    const sortedAlready = { a: 1, b: 2 };
    expect((buildEvent('S', 3, 'alice', { type: 'mask.summary', entities: sortedAlready } as unknown as NewEvent, () => new Date(0)) as unknown as { entities: object }).entities).toBe(sortedAlready);
  });

  it('chains SHA-256(previous hex hash ‖ canonical body)', () => {
    const body = canonicalJson({ seq: 1 });
    expect(chainHash(GENESIS_HASH, body)).toBe(createHash('sha256').update(`${'0'.repeat(64)}{"seq":1}`).digest('hex'));
  });

  it('ChainVerifier accepts a good chain and names the first bad event', () => {
    let prev = GENESIS_HASH;
    const rows = [1, 2, 3].map((seq) => {
      const { event, body } = sealEvent(prev, { type: 'error', message: `m${seq}`, sessionId: 'S', seq, time: '2025-01-01T00:00:00.000Z', subject: 'a' } as Omit<StoreEvent, 'hash'>);
      prev = event.hash;
      return { sessionId: 'S', seq, body, hash: event.hash };
    });
    const ok = new ChainVerifier('S');
    for (const r of rows) expect(ok.check(r)).toBeUndefined();
    expect(ok.finish(3, prev)).toBeUndefined();
    expect(ok.finish(4, prev)?.reason).toMatch(/missing/);

    const edited = new ChainVerifier('S');
    expect(edited.check(rows[0]!)).toBeUndefined();
    expect(edited.check({ ...rows[1]!, body: rows[1]!.body.replace('m2', 'mX') })).toMatchObject({ seq: 2 });
    const gap = new ChainVerifier('S');
    expect(gap.check(rows[0]!)).toBeUndefined();
    expect(gap.check(rows[2]!)).toMatchObject({ seq: 2, reason: 'event 2 is missing' });
    const reordered = new ChainVerifier('S');
    expect(reordered.check({ ...rows[0]!, body: ' ' + rows[0]!.body })).toMatchObject({ seq: 1, reason: expect.stringMatching(/canonical/) });
  });
});

describe('ids and URLs', () => {
  it('session ids are 26-char ULIDs sortable by time; approval ids are 6 unambiguous chars', () => {
    const a = newSessionId(new Date('2025-01-01T00:00:00Z'));
    const b = newSessionId(new Date('2025-01-01T00:00:00.001Z'));
    expect(a).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(a < b).toBe(true);
    for (let i = 0; i < 200; i++) expect(newApprovalId()).toMatch(new RegExp(`^[${APPROVAL_ID_ALPHABET}]{6}$`));
    expect(APPROVAL_ID_ALPHABET).not.toMatch(/[01ILOU]/);
  });

  it('parses store URLs and removes passwords', () => {
    expect(parseStoreUrl('sqlite:~/s.db', '/home/u')).toEqual({ engine: 'sqlite', path: '/home/u/s.db', display: 'sqlite:/home/u/s.db' });
    expect(parseStoreUrl('postgresql://dlp:pw@db:5432/x', '/h')).toEqual({ engine: 'postgres', url: 'postgresql://dlp:pw@db:5432/x', display: 'postgresql://dlp@db:5432/x' });
    expect(redactStoreUrl('postgres://u:p%40ss@h/db')).toBe('postgres://u@h/db');
    expect(redactStoreUrl('weird://u:secret@h')).not.toContain('secret');
  });
});
