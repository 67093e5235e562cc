import { describe, expect, it } from 'vitest';
import * as pg from '../../../src/proxy/postgres/protocol.js';
import { Framer, decodeBackend, decodeFrontend, type BackendMessage, type Frame } from '../../../src/proxy/postgres/protocol.js';
import { expectProtocolError } from './helpers/expect.js';
import { backendFixtures, startupFixtures, startupMessage32, typedFrontendFixtures } from './helpers/fixtures.js';
import { ch, i32, str, typed, u8, untyped } from './helpers/naive.js';

function frame(bytes: Buffer, mode: 'typed' | 'startup' = 'typed'): Frame {
  const framer = new Framer({ mode });
  const frames = [...framer.frames(bytes)];
  expect(frames).toHaveLength(1);
  expect(framer.pendingBytes).toBe(0);
  return frames[0]!;
}

const backend = (bytes: Buffer): BackendMessage => decodeBackend(frame(bytes));

describe('encoders agree byte for byte with the naive fixture encoder', () => {
  for (const f of [...startupFixtures, startupMessage32]) {
    it(`frontend ${f.name}`, () => {
      const bytes = pg.encodeFrontend(f.expected);
      expect(bytes.equals(f.bytes)).toBe(true);
      expect(decodeFrontend(frame(bytes, 'startup'))).toEqual(f.expected);
    });
  }
  for (const f of typedFrontendFixtures) {
    it(`frontend ${f.name}`, () => {
      const bytes = pg.encodeFrontend(f.expected);
      expect(bytes.equals(f.bytes)).toBe(true);
      expect(decodeFrontend(frame(bytes), f.authPhase === undefined ? {} : { authPhase: f.authPhase })).toEqual(f.expected);
    });
  }
  for (const f of backendFixtures) {
    it(`backend ${f.name}`, () => {
      const bytes = pg.encodeBackend(f.expected);
      expect(bytes.equals(f.bytes)).toBe(true);
      expect(backend(bytes)).toEqual(f.expected);
    });
  }
});

describe('named encoders', () => {
  it('ErrorResponse carries severity, SQLSTATE, message, detail, hint and extra fields', () => {
    const bytes = pg.encodeErrorResponse({ severity: 'ERROR', code: '42501', message: 'denied', detail: 'rule no-ddl', hint: 'use migrations', extra: { P: '3' } });
    expect(bytes.equals(typed('E', ch('S'), str('ERROR'), ch('V'), str('ERROR'), ch('C'), str('42501'), ch('M'), str('denied'), ch('D'), str('rule no-ddl'), ch('H'), str('use migrations'), ch('P'), str('3'), u8(0)))).toBe(true);
    expect(backend(bytes)).toEqual({
      kind: 'ErrorResponse',
      fields: { S: 'ERROR', V: 'ERROR', C: '42501', M: 'denied', D: 'rule no-ddl', H: 'use migrations', P: '3' },
      severity: 'ERROR',
      code: '42501',
      message: 'denied',
    });
  });

  it('policy denial is an ERROR with SQLSTATE 42501', () => {
    const m = backend(pg.encodePolicyDenial('no-ddl: schema changes go through migrations', { hint: 'ask a DBA' }));
    expect(m).toMatchObject({ kind: 'ErrorResponse', severity: 'ERROR', code: '42501', message: 'no-ddl: schema changes go through migrations', fields: { H: 'ask a DBA' } });
    expect(pg.SQLSTATE_POLICY_DENIED).toBe('42501');
  });

  it('NoticeResponse', () => {
    expect(backend(pg.encodeNoticeResponse({ severity: 'WARNING', code: '01000', message: 'masked 3 values' }))).toMatchObject({
      kind: 'NoticeResponse',
      severity: 'WARNING',
      message: 'masked 3 values',
    });
  });

  it('backend helpers round-trip', () => {
    expect(backend(pg.encodeReadyForQuery('T'))).toEqual({ kind: 'ReadyForQuery', status: 'T' });
    expect(backend(pg.encodeAuthenticationOk())).toEqual({ kind: 'AuthenticationOk' });
    expect(backend(pg.encodeAuthenticationCleartextPassword())).toEqual({ kind: 'AuthenticationCleartextPassword' });
    expect(backend(pg.encodeAuthenticationSASL(['SCRAM-SHA-256']))).toEqual({ kind: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256'] });
    expect(backend(pg.encodeAuthenticationSASLContinue('r=a,s=b,i=1'))).toEqual({ kind: 'AuthenticationSASLContinue', data: Buffer.from('r=a,s=b,i=1') });
    expect(backend(pg.encodeAuthenticationSASLFinal('v=x'))).toEqual({ kind: 'AuthenticationSASLFinal', data: Buffer.from('v=x') });
    expect(backend(pg.encodeParameterStatus('client_encoding', 'UTF8'))).toEqual({ kind: 'ParameterStatus', name: 'client_encoding', value: 'UTF8' });
    expect(backend(pg.encodeBackendKeyData(7, Buffer.from([1, 2, 3, 4])))).toEqual({ kind: 'BackendKeyData', processId: 7, secretKey: Buffer.from([1, 2, 3, 4]) });
    expect(backend(pg.encodeCommandComplete('INSERT 0 1'))).toEqual({ kind: 'CommandComplete', tag: 'INSERT 0 1' });
    expect(backend(pg.encodeEmptyQueryResponse())).toEqual({ kind: 'EmptyQueryResponse' });
  });

  it('DataRow rebuilt from masked cells', () => {
    const original = backend(typed('D', [0, 3], i32(3), [0x61, 0x62, 0x63], i32(-1), i32(11), Array.from(Buffer.from('123-45-6789'))));
    if (original.kind !== 'DataRow') throw new Error('not a DataRow');
    const masked = original.cells.map((c, i) => (i === 2 ? '***-**-6789' : c));
    expect(backend(pg.encodeDataRow(masked))).toEqual({ kind: 'DataRow', cells: [Buffer.from('abc'), null, Buffer.from('***-**-6789')] });
    expect(pg.encodeDataRow(original.cells).equals(pg.encodeBackend(original))).toBe(true);
  });

  it('frontend helpers round-trip', () => {
    const startup = decodeFrontend(frame(pg.encodeStartupMessage({ user: 'app_reader', database: 'app' }), 'startup'));
    expect(startup).toEqual({ kind: 'StartupMessage', protocolVersion: 196608, params: new Map([['user', 'app_reader'], ['database', 'app']]) });
    expect(decodeFrontend(frame(pg.encodeSSLRequest(), 'startup'))).toEqual({ kind: 'SSLRequest' });
    expect(decodeFrontend(frame(pg.encodeCancelRequest(5, Buffer.alloc(32, 9)), 'startup'))).toEqual({ kind: 'CancelRequest', processId: 5, secretKey: Buffer.alloc(32, 9) });
    expect(pg.encodeCancelRequest(5, Buffer.from([1, 2, 3, 4])).equals(untyped(i32(80877102), i32(5), [1, 2, 3, 4]))).toBe(true);
    expect(decodeFrontend(frame(pg.encodePasswordMessage('md5abc')), { authPhase: 'password' })).toEqual({ kind: 'PasswordMessage', password: 'md5abc' });
    expect(decodeFrontend(frame(pg.encodeSASLInitialResponse('SCRAM-SHA-256', 'n,,n=,r=x')), { authPhase: 'sasl-initial' })).toEqual({
      kind: 'SASLInitialResponse',
      mechanism: 'SCRAM-SHA-256',
      data: Buffer.from('n,,n=,r=x'),
    });
    expect(decodeFrontend(frame(pg.encodeSASLResponse('c=biws')), { authPhase: 'sasl-continue' })).toEqual({ kind: 'SASLResponse', data: Buffer.from('c=biws') });
    expect(decodeFrontend(frame(pg.encodeQuery('SELECT 1')))).toEqual({ kind: 'Query', query: 'SELECT 1' });
    expect(decodeFrontend(frame(pg.encodeTerminate()))).toEqual({ kind: 'Terminate' });
    expect(decodeFrontend(frame(pg.encodeSync()))).toEqual({ kind: 'Sync' });
  });

  it('refuses what it cannot encode faithfully', () => {
    expectProtocolError(() => pg.encodeQuery('SELECT 1\0; DROP TABLE x'), 'PG_ENCODE_INVALID');
    expectProtocolError(() => pg.encodeStartupMessage({ user: 'a\0b' }), 'PG_ENCODE_INVALID');
    expectProtocolError(() => pg.encodeAuthenticationMD5Password(Buffer.alloc(3)), 'PG_ENCODE_INVALID');
    expectProtocolError(() => pg.encodeBackendKeyData(1, Buffer.alloc(2)), 'PG_ENCODE_INVALID');
    expectProtocolError(() => pg.encodeDataRow(new Array<null>(40000).fill(null)), 'PG_ENCODE_INVALID');
    expectProtocolError(() => pg.encodeErrorResponse({ severity: 'ERROR', code: 'XX000', message: 'x', extra: { MM: 'y' } }), 'PG_ENCODE_INVALID');
  });

  it('grows its buffer for large messages', () => {
    const q = 'SELECT '.padEnd(100_000, 'x');
    expect(decodeFrontend(frame(pg.encodeQuery(q)))).toEqual({ kind: 'Query', query: q });
    const cells = [Buffer.alloc(70_000, 1), 'é'.repeat(1000), null];
    expect(backend(pg.encodeDataRow(cells))).toEqual({ kind: 'DataRow', cells: [cells[0], Buffer.from(cells[1] as string), null] });
  });
});
