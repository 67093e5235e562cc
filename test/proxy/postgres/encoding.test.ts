import { describe, expect, it } from 'vitest';
import { optionSettings, refusedStartupParameter } from '../../../src/proxy/postgres/client-handshake.js';
import { canonicalEncoding, clientCodec, requestedClientEncoding } from '../../../src/proxy/postgres/encoding.js';
import { decodeFrontend, encodeQuery, Framer, isProtocolError } from '../../../src/proxy/postgres/protocol.js';

function frame(buf: Buffer) {
  const f = new Framer({ mode: 'typed' });
  f.push(buf);
  return f.next()!;
}

describe('client encodings', () => {
  it('PostgreSQL names and aliases are canonicalised', () => {
    expect(['latin9', 'ISO-8859-15', 'iso_8859_15'].map(canonicalEncoding)).toEqual(['LATIN9', 'LATIN9', 'LATIN9']);
    expect(['unicode', 'utf-8', 'win1252', 'cp1251', 'koi8', 'iso_8859_5'].map(canonicalEncoding)).toEqual(['UTF8', 'UTF8', 'WIN1252', 'WIN1251', 'KOI8R', 'ISO_8859_5']);
  });

  it('single-byte codecs decode and encode every defined byte exactly', () => {
    for (const name of ['LATIN1', 'LATIN2', 'LATIN5', 'LATIN9', 'WIN1251', 'WIN1252', 'KOI8R', 'ISO_8859_7', 'WIN866']) {
      const c = clientCodec(name)!;
      expect(c.utf8).toBe(false);
      for (let b = 0; b < 256; b += 1) {
        let text: string;
        try {
          text = c.decode(Buffer.from([b]));
        } catch (err) {
          expect(isProtocolError(err) && err.code).toBe('PG_INVALID_ENCODING');
          continue;
        }
        expect(c.encode(text)).toEqual(Buffer.from([b]));
      }
    }
    expect(clientCodec('LATIN9')!.decode(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xa4]))).toBe('café €');
    expect(clientCodec('LATIN1')!.decode(Buffer.from([0x80]))).toBe('\u0080'); // ISO-8859-1 proper, not windows-1252
    expect(clientCodec('LATIN9')!.encode('ж')).toEqual(Buffer.from('?'));
  });

  it('UTF8, SQL_ASCII on UTF8 are UTF-8; encodings with ASCII second bytes or no platform decoder are refused', () => {
    expect(clientCodec('UTF8')!.utf8).toBe(true);
    expect(clientCodec('SQL_ASCII', 'UTF8')!.utf8).toBe(true);
    expect(clientCodec('SQL_ASCII', 'LATIN1')).toBeNull();
    for (const n of ['SJIS', 'BIG5', 'GBK', 'UHC', 'GB18030', 'EUC_TW', 'EUC_JIS_2004', 'SHIFT_JIS_2004', 'JOHAB', 'MULE_INTERNAL']) expect(clientCodec(n), n).toBeNull();
  });

  it('EUC_JP, EUC_CN and EUC_KR decode and encode exactly, in every spelling', () => {
    const cases: [string, string, string][] = [
      ['EUC_JP', 'こんにちは、世界 ｶﾅ', 'a4b3a4f3a4cba4c1a4cfa1a2c0a4b3a6208eb68ec5'],
      ['EUC_JP', '丂', '8fb0a1'], // JIS X 0212, after SS3
      ['EUC_CN', '中文 abc', 'd6d0cec420616263'],
      ['EUC_KR', '한국어', 'c7d1b1b9beee'],
    ];
    for (const [name, text, hex] of cases) {
      const c = clientCodec(name)!;
      expect(c.encode(text).toString('hex'), `${name} ${text}`).toBe(hex);
      expect(c.decode(Buffer.from(hex, 'hex'))).toBe(text);
    }
    expect(clientCodec('eucjp')!.name).toBe('EUC_JP');
    expect(clientCodec('euc-kr')!.name).toBe('EUC_KR');
    // a character the encoding lacks becomes '?'; a truncated or invalid sequence is PG_INVALID_ENCODING
    expect(clientCodec('EUC_KR')!.encode('😀x')).toEqual(Buffer.from('?x'));
    expect(() => clientCodec('EUC_JP')!.decode(Buffer.from([0x61, 0xa4]))).toThrow(/invalid byte sequence for encoding "EUC_JP"/);
    expect(() => clientCodec('EUC_JP')!.decode(Buffer.from([0xa4, 0x27]))).toThrow(/invalid byte sequence/);
  });

  it('the EUC encoders write only bytes of their own ranges (never a UHC or GBK extension)', () => {
    // 갂 exists only in UHC (euc-kr's WHATWG superset): EUC_KR has no code for it
    expect(clientCodec('EUC_KR')!.encode('갂')).toEqual(Buffer.from('?'));
    // 丂 is a GBK extension outside GB 2312
    expect(clientCodec('EUC_CN')!.encode('丂')).toEqual(Buffer.from('?'));
    for (const name of ['EUC_JP', 'EUC_CN', 'EUC_KR']) {
      const bytes = clientCodec(name)!.encode('日本中文한국어テスト');
      for (const b of bytes) expect(b === 0x3f || b >= 0x80, `${name} ${b.toString(16)}`).toBe(true);
    }
  });

  it('a SET of the client encoding is recognised in its spellings', () => {
    expect(requestedClientEncoding(`SET client_encoding TO 'SJIS'`)).toBe('SJIS');
    expect(requestedClientEncoding(`set session client_encoding = latin9`)).toBe('latin9');
    expect(requestedClientEncoding(`SET NAMES "BIG5"`)).toBe('BIG5');
    expect(requestedClientEncoding(`SET client_encoding TO DEFAULT`)).toBeNull();
    expect(requestedClientEncoding(`select names from t`)).toBeNull();
  });

  it('frontend SQL text is decoded in the given codec; invalid bytes are PG_INVALID_ENCODING', () => {
    const q = Buffer.concat([Buffer.from('Q'), Buffer.from([0, 0, 0, 9]), Buffer.from([0x27, 0xe9, 0xa4, 0x27, 0])]);
    expect(decodeFrontend(frame(q), { codec: clientCodec('LATIN9') })).toEqual({ kind: 'Query', query: "'é€'" });
    expect(() => decodeFrontend(frame(q))).toThrow(/not valid UTF-8/);
    const bad = Buffer.concat([Buffer.from('Q'), Buffer.from([0, 0, 0, 6]), Buffer.from([0x98, 0])]);
    expect(() => decodeFrontend(frame(bad), { codec: clientCodec('LATIN9') })).not.toThrow();
    const undefinedInLatin3 = Buffer.concat([Buffer.from('Q'), Buffer.from([0, 0, 0, 6]), Buffer.from([0xa5, 0])]);
    expect(() => decodeFrontend(frame(undefinedInLatin3), { codec: clientCodec('LATIN3') })).toThrow(/invalid byte sequence for encoding "LATIN3": 0xa5/);
    // the shared reader does not keep the codec for the next message
    expect(() => decodeFrontend(frame(q))).toThrow(/not valid UTF-8/);
    expect(decodeFrontend(frame(encodeQuery('select 1')))).toEqual({ kind: 'Query', query: 'select 1' });
  });
});

describe('start-up parameters', () => {
  it('options are read as the server reads them', () => {
    expect(optionSettings('-c work_mem=7MB --lock-timeout=3s -cgeqo=off')).toEqual(['work_mem', 'lock-timeout', 'geqo']);
    expect(optionSettings('-c search_path=a\\ b -c role=x')).toEqual(['search_path', 'role']);
  });

  it('role and session_authorization are refused, directly or in options', () => {
    expect(refusedStartupParameter(new Map([['role', 'x']]))).toMatch(/"role" is not allowed/);
    expect(refusedStartupParameter(new Map([['options', '--session-authorization=x']]))).toMatch(/session-authorization/);
    expect(refusedStartupParameter(new Map([['options', '-c work_mem=1MB'], ['application_name', 'a']]))).toBeNull();
  });
});
