import { describe, expect, it } from 'vitest';
import { createDlpEngine } from '../../src/dlp/index.js';
import type { DlpEngineOptions } from '../../src/dlp/index.js';
import { generateCorpus } from '../dlp-eval/corpus.js';

const PEM = `-----BEGIN OPENSSH PRIVATE KEY-----\n${'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n'.repeat(6)}-----END OPENSSH PRIVATE KEY-----`;
const JWT = `eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.${'eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiYWRtaW4iOnRydWV9'.repeat(5)}.${'Sflk'.repeat(60)}`;

/** Inputs with the secrets each contains (for the no-fragment check). */
const CASES: { name: string; text: string; secrets: string[] }[] = [
  {
    name: 'prose with PII',
    text: 'Hi, I am Jane (jane.doe@example.org), card 4111 1111 1111 1111, SSN 234-56-7891, call +1 (415) 555-2671. IBAN GB82 WEST 1234 5698 7654 32 from 203.0.113.7.',
    secrets: ['jane.doe@example.org', '4111 1111 1111 1111', '234-56-7891', '(415) 555-2671', 'GB82 WEST 1234 5698 7654 32', '203.0.113.7'],
  },
  {
    name: 'env file with secrets',
    text: 'AWS_ACCESS_KEY_ID=AKIAZ3MSJV4GXBJZ7RQK\nAWS_SECRET_ACCESS_KEY=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\nGITHUB_TOKEN=ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5\nDATABASE_URL=postgres://app:S3cr3t-Pa55word@db.internal:5432/app\nOPENAI_API_KEY=sk-proj-abcDEF123ghiJKL456mnoPQR789stuVWX012yzaBCD345\n',
    secrets: ['AKIAZ3MSJV4GXBJZ7RQK', 'Zb8s/9xQ2w3E4r5T6y7U8i9O0pAaSsDdFfGgHhJj', 'ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5', 'S3cr3t-Pa55word', 'sk-proj-abcDEF123ghiJKL456mnoPQR789stuVWX012yzaBCD345'],
  },
  { name: 'PEM block', text: `key:\n${PEM}\ndone 4111111111111111`, secrets: [PEM, '4111111111111111'] },
  { name: 'long JWT', text: `Authorization: Bearer ${JWT}\r\nHost: x`, secrets: [JWT] },
  {
    name: 'ANSI coloured output',
    text: 'user \x1b[1;32mjane@corp.io\x1b[0m paid with 5555\x1b[31m 5555 5555\x1b[0m 4444 and token=\x1b[33mZx8Yq2Wv4Ut6Sr8Qp0On\x1b[0m\n',
    secrets: ['jane@corp.io', 'Zx8Yq2Wv4Ut6Sr8Qp0On'],
  },
  {
    name: 'json line with secrets',
    text: '{"password":"c0rrect-h0rse-battery","api_key":"sk-ant-api03-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV0123456789-_abcd","slack":"xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"}',
    secrets: ['c0rrect-h0rse-battery', 'sk-ant-api03-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV0123456789-_abcd', 'xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx'],
  },
];

function fragments(secret: string): string[] {
  const compact = secret.replace(/\s+/g, '');
  const out: string[] = [];
  for (let i = 0; i + 8 <= compact.length; i++) out.push(compact.slice(i, i + 8));
  return out;
}

function runChunks(opts: DlpEngineOptions, chunks: string[]): { pieces: string[]; out: string } {
  const sm = createDlpEngine(opts).stream();
  const pieces = chunks.map((c) => sm.push(c));
  pieces.push(sm.end());
  return { pieces, out: pieces.join('') };
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('stream masker', () => {
  for (const masker of ['redact', 'partial', 'pseudonymize'] as const) {
    for (const c of CASES) {
      it(`${c.name} (${masker}): output equals whole-input masking for every split offset`, () => {
        const opts: DlpEngineOptions = { masker, hashKey: 'k' };
        const whole = createDlpEngine(opts).maskText(c.text).text;
        // every secret is masked in the whole output
        for (const sec of c.secrets) expect(whole).not.toContain(sec);
        // Every 8-character fragment of every secret, looked up for each 8-character window of each piece.
        const secretFragments = new Set(c.secrets.flatMap(fragments));
        for (let k = 0; k <= c.text.length; k++) {
          const { pieces, out } = runChunks(opts, [c.text.slice(0, k), c.text.slice(k)]);
          expect(out, `split at ${k}`).toBe(whole);
          for (const p of pieces) {
            const compact = p.replace(/\s+/g, '');
            for (let i = 0; i + 8 <= compact.length; i++) {
              const f = compact.slice(i, i + 8);
              if (secretFragments.has(f)) expect.fail(`fragment ${f} of a secret leaked in a piece at split ${k}`);
            }
          }
        }
      });
    }
  }

  it('random multi-splits equal whole-input masking', () => {
    const r = rng(42);
    const all = CASES.map((c) => c.text).join('\n');
    const whole = createDlpEngine().maskText(all).text;
    for (let t = 0; t < 300; t++) {
      const chunks: string[] = [];
      let i = 0;
      while (i < all.length) {
        const n = 1 + Math.floor(r() * (r() < 0.5 ? 8 : 400));
        chunks.push(all.slice(i, i + n));
        i += n;
      }
      expect(runChunks({}, chunks).out).toBe(whole);
    }
  });

  it('every document of the evaluation corpus (all entities and near-misses, all formats): word-sized and random chunks equal whole-input masking', () => {
    const engine = createDlpEngine({ masker: 'partial' });
    const r = rng(7);
    const docs = generateCorpus(11, 12, 6);
    expect(docs.length).toBeGreaterThan(200);
    for (const d of docs) {
      const whole = engine.maskText(d.text).text;
      // LLM-like deltas: 1–6 characters; and a few coarser random splits.
      for (const maxLen of [6, 40]) {
        const chunks: string[] = [];
        for (let i = 0; i < d.text.length; ) {
          const n = 1 + Math.floor(r() * maxLen);
          chunks.push(d.text.slice(i, i + n));
          i += n;
        }
        const sm = engine.stream();
        const out = chunks.map((c) => sm.push(c)).join('') + sm.end();
        expect(out, `${d.format}: ${JSON.stringify(d.text.slice(0, 80))}`).toBe(whole);
      }
    }
  });

  it('releases clean prose word by word: the window is an upper bound, not a delay', () => {
    const sm = createDlpEngine().stream();
    const words = 'The quarterly report is ready and the numbers look fine overall for the team this time'.split(' ');
    let released = '';
    let sent = '';
    for (const w of words) {
      sent += `${w} `;
      released += sm.push(`${w} `);
      // Everything but the word being written may go out at once.
      expect(sent.length - released.length).toBeLessThanOrEqual(w.length + 1);
    }
    expect(released + sm.end()).toBe(sent);
  });

  it('still holds a value whose start arrived first: an email, a card and a phone number split at a blank', () => {
    for (const [head, tail, secret] of [
      ['write to alice', '.smith@example.com today. ', 'alice'],
      ['card 4111 1111 ', '1111 1111 please. ', '4111 1111'],
      ['call +1 (415) ', '555-2671 now. ', '(415)'],
      ['IBAN GB82 WEST ', '1234 5698 7654 32 ok. ', 'GB82 WEST'],
    ] as const) {
      const sm = createDlpEngine({ masker: 'redact' }).stream();
      const first = sm.push(head);
      expect(first).not.toContain(secret);
      const out = first + sm.push(tail) + sm.end();
      expect(out).not.toContain(secret);
      expect(out).toBe(createDlpEngine({ masker: 'redact' }).maskText(head + tail).text);
    }
  });

  it('character-by-character', () => {
    for (const c of CASES) {
      const whole = createDlpEngine().maskText(c.text).text;
      expect(runChunks({}, [...c.text]).out).toBe(whole);
    }
  });

  it('holds back at most the window for ordinary text', () => {
    const sm = createDlpEngine().stream();
    let maxHeld = 0;
    const line = 'plain log line with nothing secret in it, request took 12ms\n';
    for (let i = 0; i < 200; i++) {
      sm.push(line);
      maxHeld = Math.max(maxHeld, sm.held);
    }
    expect(maxHeld).toBeLessThanOrEqual(256);
    sm.end();
  });

  it('an unterminated PEM block is held up to its bound, then redacted rather than leaked', () => {
    const sm = createDlpEngine().stream();
    let out = sm.push('-----BEGIN RSA PRIVATE KEY-----\n');
    const body = 'MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0\n';
    for (let i = 0; i < 400; i++) out += sm.push(body);
    out += sm.end();
    // the whole block is replaced, the body past the 16 KiB bound too; equal to whole-input masking
    const input = '-----BEGIN RSA PRIVATE KEY-----\n' + body.repeat(400);
    expect(out).toBe('[REDACTED:private_key]');
    expect(out).toBe(createDlpEngine().maskText(input).text);
    const tailed = `${input}-----END RSA PRIVATE KEY-----\nafter`;
    for (const size of [1, 7, 100, 4096]) {
      const s2 = createDlpEngine().stream();
      let o2 = '';
      for (let i = 0; i < tailed.length; i += size) o2 += s2.push(tailed.slice(i, i + size));
      o2 += s2.end();
      expect(o2, `chunk ${size}`).toBe('[REDACTED:private_key]\nafter');
    }
    expect(createDlpEngine().maskText(tailed).text).toBe('[REDACTED:private_key]\nafter');
  });

  it('a complete PEM block longer than the window is masked whole', () => {
    const body = 'MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0\n'.repeat(40);
    const text = `x -----BEGIN EC PRIVATE KEY-----\n${body}-----END EC PRIVATE KEY----- y`;
    const sm = createDlpEngine().stream();
    let out = '';
    for (let i = 0; i < text.length; i += 100) out += sm.push(text.slice(i, i + 100));
    out += sm.end();
    expect(out).toBe('x [REDACTED:private_key] y');
  });

  it('byte stream reassembles UTF-8 split across chunks', () => {
    const text = 'héllo wörld 🎉 mail jürgen@exämple.de, ok é@corp.com 4111 1111 1111 1111 — fin';
    const whole = createDlpEngine().maskText(text).text;
    const bytes = Buffer.from(text, 'utf8');
    for (let k = 0; k <= bytes.length; k++) {
      const bs = createDlpEngine().byteStream();
      const out = Buffer.concat([bs.push(bytes.subarray(0, k)), bs.push(bytes.subarray(k)), bs.end()]).toString('utf8');
      expect(out).toBe(whole);
    }
  });
});
