import { describe, expect, it } from 'vitest';
import {
  Framer,
  decodeBackend,
  decodeFrontend,
  frontendFramer,
  type Frame,
  type ProtocolErrorCode,
} from '../../../src/proxy/postgres/protocol.js';
import { expectProtocolError } from './helpers/expect.js';
import { cell, ch, i16, i32, str, typed, u8, untyped, utf8 } from './helpers/naive.js';

function frameOf(bytes: Buffer, mode: 'typed' | 'startup' = 'typed'): Frame {
  const f = new Framer({ mode }).frames(bytes).next();
  if (f.done) throw new Error('fixture did not frame');
  return f.value;
}

describe('framing errors', () => {
  it('length < 4', () => {
    for (const len of [0, 3, -1, -2147483648]) {
      const framer = new Framer();
      framer.push(Buffer.from([0x51, ...i32(len)]));
      expectProtocolError(() => framer.next(), 'PG_LENGTH_INVALID');
    }
  });

  it('length over the cap is refused from the header alone, before the body arrives', () => {
    const framer = new Framer({ maxMessageSize: 100 });
    framer.push(Buffer.from([0x44, ...i32(101)]));
    expectProtocolError(() => framer.next(), 'PG_MESSAGE_TOO_LARGE');
    const ok = new Framer({ maxMessageSize: 100 });
    ok.push(Buffer.from([0x44, ...i32(100)]));
    expect(ok.next()).toBeNull();
    const dflt = new Framer();
    dflt.push(Buffer.from([0x44, ...i32(64 * 1024 * 1024 + 1)]));
    expectProtocolError(() => dflt.next(), 'PG_MESSAGE_TOO_LARGE');
  });

  it('stays failed after an error', () => {
    const framer = new Framer();
    framer.push(Buffer.from([0x51, ...i32(2)]));
    const first = expectProtocolError(() => framer.next(), 'PG_LENGTH_INVALID');
    framer.push(typed('S'));
    expect(() => framer.next()).toThrow(first);
  });

  it('truncated stream: pending bytes, no message, no error', () => {
    const framer = new Framer();
    const msg = typed('Q', str('SELECT 1'));
    expect([...framer.frames(msg.subarray(0, msg.length - 1))]).toEqual([]);
    expect(framer.pendingBytes).toBe(msg.length - 1);
  });

  it('unknown typed message: framed with its type, decoded as Unknown', () => {
    const f = frameOf(typed(0xfe, [1, 2]));
    expect(f.type).toBe(0xfe);
    expect(decodeFrontend(f)).toEqual({ kind: 'Unknown', type: 0xfe, payload: Buffer.from([1, 2]) });
    expect(decodeBackend(f)).toEqual({ kind: 'Unknown', type: 0xfe, payload: Buffer.from([1, 2]) });
  });

  const startupCases: Array<[string, Buffer, ProtocolErrorCode]> = [
    ['length 7', Buffer.from([...i32(7), ...i32(196608)]), 'PG_STARTUP_LENGTH'],
    ['negative length', Buffer.from([...i32(-8), ...i32(196608)]), 'PG_STARTUP_LENGTH'],
    ['oversized startup packet', Buffer.from([...i32(10 * 1024 + 1), ...i32(196608)]), 'PG_STARTUP_TOO_LARGE'],
    ['protocol 2.0', untyped(i32(131072), str('user'), str('a'), u8(0)), 'PG_STARTUP_CODE'],
    ['protocol 4.0', untyped(i32(4 << 16), u8(0)), 'PG_STARTUP_CODE'],
    ['unknown 1234.5681 request', untyped(i32(80877105)), 'PG_STARTUP_CODE'],
    ['SSLRequest with a body', untyped(i32(80877103), i32(0)), 'PG_STARTUP_LENGTH'],
    ['GSSENCRequest with a body', untyped(i32(80877104), u8(0)), 'PG_STARTUP_LENGTH'],
    ['CancelRequest with a 2-byte key', untyped(i32(80877102), i32(1), [1, 2]), 'PG_STARTUP_LENGTH'],
    ['CancelRequest with a 257-byte key', untyped(i32(80877102), i32(1), new Array<number>(257).fill(1)), 'PG_STARTUP_LENGTH'],
  ];
  for (const [name, bytes, code] of startupCases) {
    it(`startup: ${name}`, () => {
      const framer = frontendFramer();
      framer.push(bytes);
      expectProtocolError(() => framer.next(), code);
    });
  }

  it('startup cap is configurable and typed messages after startup use their own cap', () => {
    const framer = frontendFramer({ maxStartupSize: 20, maxMessageSize: 10 });
    framer.push(untyped(i32(196608), str('user'), str('abcdefghij'), u8(0)));
    expectProtocolError(() => framer.next(), 'PG_STARTUP_TOO_LARGE');
    const f2 = frontendFramer({ maxMessageSize: 10 });
    f2.push(Buffer.concat([untyped(i32(196608), str('user'), str('a'), u8(0)), typed('Q', str('SELECT 1'))]));
    expect(f2.next()?.type).toBeNull();
    expectProtocolError(() => f2.next(), 'PG_MESSAGE_TOO_LARGE');
  });
});

describe('decoding errors', () => {
  const backendCases: Array<[string, Buffer, ProtocolErrorCode]> = [
    ['DataRow cell count beyond payload', typed('D', i16(3), cell(utf8('a'))), 'PG_TRUNCATED'],
    ['DataRow count 32767 with no cells', typed('D', i16(32767)), 'PG_TRUNCATED'],
    ['DataRow negative count', typed('D', i16(-1)), 'PG_BAD_VALUE'],
    ['DataRow cell length -2', typed('D', i16(1), i32(-2)), 'PG_NEGATIVE_LENGTH'],
    ['DataRow cell length beyond payload', typed('D', i16(1), i32(10), [1, 2]), 'PG_TRUNCATED'],
    ['DataRow trailing bytes', typed('D', i16(1), cell(null), [0]), 'PG_TRAILING_DATA'],
    ['DataRow shorter than its count', typed('D', [0]), 'PG_TRUNCATED'],
    ['ParameterStatus unterminated', typed('S', str('a'), utf8('b')), 'PG_UNTERMINATED_STRING'],
    ['CommandComplete unterminated', typed('C', utf8('SELECT 1')), 'PG_UNTERMINATED_STRING'],
    ['ErrorResponse unterminated value', typed('E', ch('M'), utf8('oops')), 'PG_UNTERMINATED_STRING'],
    ['ErrorResponse missing terminator', typed('E', ch('M'), str('oops')), 'PG_TRUNCATED'],
    ['RowDescription count beyond payload', typed('T', i16(2), str('a'), i32(0), i16(0), i32(23), i16(4), i32(-1), i16(0)), 'PG_TRUNCATED'],
    ['RowDescription field cut short', typed('T', i16(1), str('a'), i32(0)), 'PG_TRUNCATED'],
    ['ReadyForQuery bad status', typed('Z', ch('X')), 'PG_BAD_VALUE'],
    ['ReadyForQuery empty', typed('Z'), 'PG_TRUNCATED'],
    ['BackendKeyData 2-byte key', typed('K', i32(1), [1, 2]), 'PG_BAD_VALUE'],
    ['Authentication MD5 short salt', typed('R', i32(5), [1, 2]), 'PG_TRUNCATED'],
    ['Authentication empty', typed('R'), 'PG_TRUNCATED'],
    ['AuthenticationOk with trailing bytes', typed('R', i32(0), [0]), 'PG_TRAILING_DATA'],
    ['AuthenticationSASL unterminated list', typed('R', i32(10), str('SCRAM-SHA-256')), 'PG_UNTERMINATED_STRING'],
    ['ParseComplete with payload', typed('1', [0]), 'PG_TRAILING_DATA'],
    ['ParameterDescription count beyond payload', typed('t', i16(2), i32(23)), 'PG_TRUNCATED'],
    ['CopyOutResponse count beyond payload', typed('H', u8(0), i16(3), i16(0)), 'PG_TRUNCATED'],
    ['NegotiateProtocolVersion huge count', typed('v', i32(0), i32(0x7fffffff)), 'PG_TRUNCATED'],
    ['NegotiateProtocolVersion negative count', typed('v', i32(0), i32(-1)), 'PG_TRUNCATED'],
    ['FunctionCallResponse length -3', typed('V', i32(-3)), 'PG_NEGATIVE_LENGTH'],
  ];
  for (const [name, bytes, code] of backendCases) {
    it(`backend: ${name}`, () => expectProtocolError(() => decodeBackend(frameOf(bytes)), code));
  }

  const frontendCases: Array<[string, Buffer, ProtocolErrorCode]> = [
    ['Query unterminated', typed('Q', utf8('SELECT 1')), 'PG_UNTERMINATED_STRING'],
    ['Query with bytes after the NUL', typed('Q', str('SELECT 1'), utf8('; DROP TABLE x')), 'PG_TRAILING_DATA'],
    ['Query invalid UTF-8', typed('Q', [0x53, 0xff, 0xfe, 0]), 'PG_INVALID_UTF8'],
    ['Parse unterminated query', typed('P', str('s'), utf8('SELECT')), 'PG_UNTERMINATED_STRING'],
    ['Parse type count beyond payload', typed('P', str(''), str('SELECT $1'), i16(2), i32(23)), 'PG_TRUNCATED'],
    ['Bind param length -2', typed('B', str(''), str(''), i16(0), i16(1), i32(-2), i16(0)), 'PG_NEGATIVE_LENGTH'],
    ['Bind param count beyond payload', typed('B', str(''), str(''), i16(0), i16(5), cell(null), i16(0)), 'PG_TRUNCATED'],
    ['Bind missing result formats', typed('B', str(''), str(''), i16(0), i16(0)), 'PG_TRUNCATED'],
    ['Bind negative format count', typed('B', str(''), str(''), i16(-1)), 'PG_BAD_VALUE'],
    ['Describe bad target', typed('D', ch('X'), str('a')), 'PG_BAD_VALUE'],
    ['Close empty', typed('C'), 'PG_TRUNCATED'],
    ['Execute short', typed('E', str(''), [0, 0]), 'PG_TRUNCATED'],
    ['Sync with payload', typed('S', [0]), 'PG_TRAILING_DATA'],
    ['Terminate with payload', typed('X', [1]), 'PG_TRAILING_DATA'],
    ['FunctionCall arg length -2', typed('F', i32(1), i16(0), i16(1), i32(-2), i16(0)), 'PG_NEGATIVE_LENGTH'],
    ['CopyFail unterminated', typed('f', utf8('x')), 'PG_UNTERMINATED_STRING'],
  ];
  for (const [name, bytes, code] of frontendCases) {
    it(`frontend: ${name}`, () => expectProtocolError(() => decodeFrontend(frameOf(bytes)), code));
  }

  it('authentication responses by phase', () => {
    expectProtocolError(() => decodeFrontend(frameOf(typed('p', utf8('pw'))), { authPhase: 'password' }), 'PG_UNTERMINATED_STRING');
    expectProtocolError(() => decodeFrontend(frameOf(typed('p', str('SCRAM-SHA-256'), i32(10), [1])), { authPhase: 'sasl-initial' }), 'PG_TRUNCATED');
    expectProtocolError(() => decodeFrontend(frameOf(typed('p', str('SCRAM-SHA-256'), i32(-2))), { authPhase: 'sasl-initial' }), 'PG_NEGATIVE_LENGTH');
  });

  const startupDecodeCases: Array<[string, Buffer, ProtocolErrorCode]> = [
    ['StartupMessage without the final NUL', untyped(i32(196608), str('user'), str('a')), 'PG_UNTERMINATED_STRING'],
    ['StartupMessage unterminated value', untyped(i32(196608), str('user'), utf8('a')), 'PG_UNTERMINATED_STRING'],
    ['StartupMessage duplicate user', untyped(i32(196608), str('user'), str('a'), str('user'), str('b'), u8(0)), 'PG_DUPLICATE_PARAMETER'],
    ['StartupMessage bytes after the terminator', untyped(i32(196608), str('user'), str('a'), u8(0), [1]), 'PG_TRAILING_DATA'],
    ['StartupMessage invalid UTF-8', untyped(i32(196608), str('user'), [0xc3, 0x28, 0], u8(0)), 'PG_INVALID_UTF8'],
  ];
  for (const [name, bytes, code] of startupDecodeCases) {
    it(`startup: ${name}`, () => expectProtocolError(() => decodeFrontend(frameOf(bytes, 'startup')), code));
  }

  it('a startup frame is not a backend message, a typed frame not a startup packet', () => {
    expectProtocolError(() => decodeBackend(frameOf(untyped(i32(80877103)), 'startup')), 'PG_FRAMER_STATE');
  });
});
