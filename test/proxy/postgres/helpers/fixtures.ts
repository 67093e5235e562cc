/** Fixture messages: bytes from the naive encoder, and the decoded value we expect. */
import type { AuthPhase, BackendMessage, FrontendMessage } from '../../../../src/proxy/postgres/protocol.js';
import { cell, ch, i16, i32, raw, str, typed, u8, untyped, utf8 } from './naive.js';

export interface FrontendFixture {
  readonly name: string;
  readonly bytes: Buffer;
  readonly expected: FrontendMessage;
  readonly authPhase?: AuthPhase;
}

export interface BackendFixture {
  readonly name: string;
  readonly bytes: Buffer;
  readonly expected: BackendMessage;
}

const b = (s: string): Buffer => Buffer.from(s, 'utf8');
const key32 = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff));

/** Startup-phase packets, in an order the framer accepts as one stream (cancel/SSL/GSS keep it in startup mode). */
export const startupFixtures: FrontendFixture[] = [
  {
    name: 'CancelRequest 3.0 (4-byte key)',
    bytes: untyped(i32(80877102), i32(4242), [1, 2, 3, 4]),
    expected: { kind: 'CancelRequest', processId: 4242, secretKey: Buffer.from([1, 2, 3, 4]) },
  },
  {
    name: 'CancelRequest 3.2 (32-byte key)',
    bytes: untyped(i32(80877102), i32(-5), raw(key32)),
    expected: { kind: 'CancelRequest', processId: -5, secretKey: key32 },
  },
  { name: 'GSSENCRequest', bytes: untyped(i32(80877104)), expected: { kind: 'GSSENCRequest' } },
  { name: 'SSLRequest', bytes: untyped(i32(80877103)), expected: { kind: 'SSLRequest' } },
  {
    name: 'StartupMessage 3.0',
    bytes: untyped(i32(196608), str('user'), str('alice'), str('database'), str('app'), str('application_name'), str('psql ✓'), str('options'), str('-c search_path=x'), u8(0)),
    expected: {
      kind: 'StartupMessage',
      protocolVersion: 196608,
      params: new Map([
        ['user', 'alice'],
        ['database', 'app'],
        ['application_name', 'psql ✓'],
        ['options', '-c search_path=x'],
      ]),
    },
  },
];

export const startupMessage32: FrontendFixture = {
  name: 'StartupMessage 3.2 with _pq_ option',
  bytes: untyped(i32(196610), str('user'), str('bob'), str('_pq_.x'), str('1'), u8(0)),
  expected: { kind: 'StartupMessage', protocolVersion: 196610, params: new Map([['user', 'bob'], ['_pq_.x', '1']]) },
};

export const typedFrontendFixtures: FrontendFixture[] = [
  { name: 'PasswordMessage', bytes: typed('p', str('s3cret')), expected: { kind: 'PasswordMessage', password: 's3cret' }, authPhase: 'password' },
  {
    name: 'SASLInitialResponse',
    bytes: typed('p', str('SCRAM-SHA-256'), i32(20), utf8('n,,n=,r=abcdefghijkl')),
    expected: { kind: 'SASLInitialResponse', mechanism: 'SCRAM-SHA-256', data: b('n,,n=,r=abcdefghijkl') },
    authPhase: 'sasl-initial',
  },
  {
    name: 'SASLInitialResponse without data',
    bytes: typed('p', str('SCRAM-SHA-256'), i32(-1)),
    expected: { kind: 'SASLInitialResponse', mechanism: 'SCRAM-SHA-256', data: null },
    authPhase: 'sasl-initial',
  },
  { name: 'SASLResponse', bytes: typed('p', utf8('c=biws,r=x,p=y')), expected: { kind: 'SASLResponse', data: b('c=biws,r=x,p=y') }, authPhase: 'sasl-continue' },
  { name: "'p' without context", bytes: typed('p', utf8('opaque')), expected: { kind: 'AuthenticationResponse', data: b('opaque') } },
  { name: 'Query', bytes: typed('Q', str('SELECT 1; SELECT \'é\'')), expected: { kind: 'Query', query: "SELECT 1; SELECT 'é'" } },
  { name: 'Query empty', bytes: typed('Q', str('')), expected: { kind: 'Query', query: '' } },
  {
    name: 'Parse',
    bytes: typed('P', str('s1'), str('SELECT $1::int, $2'), i16(2), i32(23), i32(0xfffffffe)),
    expected: { kind: 'Parse', name: 's1', query: 'SELECT $1::int, $2', paramTypes: [23, 0xfffffffe] },
  },
  { name: 'Parse unnamed, no types', bytes: typed('P', str(''), str('SELECT 1'), i16(0)), expected: { kind: 'Parse', name: '', query: 'SELECT 1', paramTypes: [] } },
  {
    name: 'Bind',
    bytes: typed('B', str('p1'), str('s1'), i16(2), i16(0), i16(1), i16(3), cell(utf8('42')), cell(null), cell([]), i16(1), i16(1)),
    expected: { kind: 'Bind', portal: 'p1', statement: 's1', paramFormats: [0, 1], params: [b('42'), null, Buffer.alloc(0)], resultFormats: [1] },
  },
  {
    name: 'Bind no params',
    bytes: typed('B', str(''), str(''), i16(0), i16(0), i16(0)),
    expected: { kind: 'Bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] },
  },
  { name: 'Describe statement', bytes: typed('D', ch('S'), str('s1')), expected: { kind: 'Describe', target: 'S', name: 's1' } },
  { name: 'Describe portal', bytes: typed('D', ch('P'), str('')), expected: { kind: 'Describe', target: 'P', name: '' } },
  { name: 'Execute', bytes: typed('E', str('p1'), i32(100)), expected: { kind: 'Execute', portal: 'p1', maxRows: 100 } },
  { name: 'Close', bytes: typed('C', ch('S'), str('s1')), expected: { kind: 'Close', target: 'S', name: 's1' } },
  { name: 'Sync', bytes: typed('S'), expected: { kind: 'Sync' } },
  { name: 'Flush', bytes: typed('H'), expected: { kind: 'Flush' } },
  { name: 'CopyData', bytes: typed('d', utf8('1\tfoo\n')), expected: { kind: 'CopyData', data: b('1\tfoo\n') } },
  { name: 'CopyData empty', bytes: typed('d'), expected: { kind: 'CopyData', data: Buffer.alloc(0) } },
  { name: 'CopyDone', bytes: typed('c'), expected: { kind: 'CopyDone' } },
  { name: 'CopyFail', bytes: typed('f', str('client aborted')), expected: { kind: 'CopyFail', message: 'client aborted' } },
  {
    name: 'FunctionCall',
    bytes: typed('F', i32(1598), i16(1), i16(1), i16(2), cell([0, 0, 0, 7]), cell(null), i16(1)),
    expected: { kind: 'FunctionCall', functionOid: 1598, argFormats: [1], args: [Buffer.from([0, 0, 0, 7]), null], resultFormat: 1 },
  },
  { name: 'unknown type', bytes: typed('!', [1, 2, 3]), expected: { kind: 'Unknown', type: 0x21, payload: Buffer.from([1, 2, 3]) } },
  { name: 'Terminate', bytes: typed('X'), expected: { kind: 'Terminate' } },
];

export const backendFixtures: BackendFixture[] = [
  { name: 'AuthenticationCleartextPassword', bytes: typed('R', i32(3)), expected: { kind: 'AuthenticationCleartextPassword' } },
  { name: 'AuthenticationMD5Password', bytes: typed('R', i32(5), [0xde, 0xad, 0xbe, 0xef]), expected: { kind: 'AuthenticationMD5Password', salt: Buffer.from([0xde, 0xad, 0xbe, 0xef]) } },
  {
    name: 'AuthenticationSASL',
    bytes: typed('R', i32(10), str('SCRAM-SHA-256-PLUS'), str('SCRAM-SHA-256'), u8(0)),
    expected: { kind: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] },
  },
  { name: 'AuthenticationSASLContinue', bytes: typed('R', i32(11), utf8('r=abc,s=c2FsdA==,i=4096')), expected: { kind: 'AuthenticationSASLContinue', data: b('r=abc,s=c2FsdA==,i=4096') } },
  { name: 'AuthenticationSASLFinal', bytes: typed('R', i32(12), utf8('v=c2ln')), expected: { kind: 'AuthenticationSASLFinal', data: b('v=c2ln') } },
  { name: 'AuthenticationGSS (other)', bytes: typed('R', i32(7)), expected: { kind: 'AuthenticationOther', code: 7, data: Buffer.alloc(0) } },
  { name: 'AuthenticationOk', bytes: typed('R', i32(0)), expected: { kind: 'AuthenticationOk' } },
  { name: 'NegotiateProtocolVersion', bytes: typed('v', i32(0), i32(2), str('_pq_.a'), str('_pq_.b')), expected: { kind: 'NegotiateProtocolVersion', newestMinorVersion: 0, unrecognizedOptions: ['_pq_.a', '_pq_.b'] } },
  { name: 'ParameterStatus', bytes: typed('S', str('server_version'), str('18.1')), expected: { kind: 'ParameterStatus', name: 'server_version', value: '18.1' } },
  { name: 'BackendKeyData 3.0', bytes: typed('K', i32(1234), [9, 8, 7, 6]), expected: { kind: 'BackendKeyData', processId: 1234, secretKey: Buffer.from([9, 8, 7, 6]) } },
  { name: 'BackendKeyData 3.2', bytes: typed('K', i32(99), raw(key32)), expected: { kind: 'BackendKeyData', processId: 99, secretKey: key32 } },
  { name: 'ReadyForQuery idle', bytes: typed('Z', ch('I')), expected: { kind: 'ReadyForQuery', status: 'I' } },
  {
    name: 'RowDescription',
    bytes: typed('T', i16(2), str('id'), i32(16384), i16(1), i32(23), i16(4), i32(-1), i16(0), str('email'), i32(0xfffffff0), i16(2), i32(25), i16(-1), i32(-1), i16(1)),
    expected: {
      kind: 'RowDescription',
      fields: [
        { name: 'id', tableOid: 16384, columnAttr: 1, typeOid: 23, typeSize: 4, typeMod: -1, format: 0 },
        { name: 'email', tableOid: 0xfffffff0, columnAttr: 2, typeOid: 25, typeSize: -1, typeMod: -1, format: 1 },
      ],
    },
  },
  {
    name: 'DataRow',
    bytes: typed('D', i16(4), cell(utf8('1')), cell(null), cell([]), cell(utf8('bob@example.com'))),
    expected: { kind: 'DataRow', cells: [b('1'), null, Buffer.alloc(0), b('bob@example.com')] },
  },
  { name: 'DataRow no columns', bytes: typed('D', i16(0)), expected: { kind: 'DataRow', cells: [] } },
  { name: 'CommandComplete', bytes: typed('C', str('SELECT 2')), expected: { kind: 'CommandComplete', tag: 'SELECT 2' } },
  {
    name: 'ErrorResponse',
    bytes: typed('E', ch('S'), str('ERROR'), ch('V'), str('ERROR'), ch('C'), str('42P01'), ch('M'), str('relation "x" does not exist'), ch('P'), str('15'), u8(0)),
    expected: {
      kind: 'ErrorResponse',
      fields: { S: 'ERROR', V: 'ERROR', C: '42P01', M: 'relation "x" does not exist', P: '15' },
      severity: 'ERROR',
      code: '42P01',
      message: 'relation "x" does not exist',
    },
  },
  {
    name: 'NoticeResponse',
    bytes: typed('N', ch('S'), str('NOTICE'), ch('C'), str('00000'), ch('M'), str('hi'), u8(0)),
    expected: { kind: 'NoticeResponse', fields: { S: 'NOTICE', C: '00000', M: 'hi' }, severity: 'NOTICE', code: '00000', message: 'hi' },
  },
  { name: 'EmptyQueryResponse', bytes: typed('I'), expected: { kind: 'EmptyQueryResponse' } },
  { name: 'ParseComplete', bytes: typed('1'), expected: { kind: 'ParseComplete' } },
  { name: 'BindComplete', bytes: typed('2'), expected: { kind: 'BindComplete' } },
  { name: 'CloseComplete', bytes: typed('3'), expected: { kind: 'CloseComplete' } },
  { name: 'NoData', bytes: typed('n'), expected: { kind: 'NoData' } },
  { name: 'PortalSuspended', bytes: typed('s'), expected: { kind: 'PortalSuspended' } },
  { name: 'ParameterDescription', bytes: typed('t', i16(2), i32(23), i32(25)), expected: { kind: 'ParameterDescription', typeOids: [23, 25] } },
  { name: 'CopyInResponse', bytes: typed('G', u8(0), i16(2), i16(0), i16(0)), expected: { kind: 'CopyInResponse', format: 0, columnFormats: [0, 0] } },
  { name: 'CopyOutResponse', bytes: typed('H', u8(1), i16(1), i16(1)), expected: { kind: 'CopyOutResponse', format: 1, columnFormats: [1] } },
  { name: 'CopyBothResponse', bytes: typed('W', u8(0), i16(0)), expected: { kind: 'CopyBothResponse', format: 0, columnFormats: [] } },
  { name: 'CopyData', bytes: typed('d', [0, 1, 2, 255]), expected: { kind: 'CopyData', data: Buffer.from([0, 1, 2, 255]) } },
  { name: 'CopyDone', bytes: typed('c'), expected: { kind: 'CopyDone' } },
  { name: 'NotificationResponse', bytes: typed('A', i32(77), str('chan'), str('payload')), expected: { kind: 'NotificationResponse', processId: 77, channel: 'chan', payload: 'payload' } },
  { name: 'FunctionCallResponse', bytes: typed('V', cell([0, 0, 0, 1])), expected: { kind: 'FunctionCallResponse', result: Buffer.from([0, 0, 0, 1]) } },
  { name: 'FunctionCallResponse NULL', bytes: typed('V', cell(null)), expected: { kind: 'FunctionCallResponse', result: null } },
  { name: 'unknown type', bytes: typed('?', [7]), expected: { kind: 'Unknown', type: 0x3f, payload: Buffer.from([7]) } },
  { name: 'ReadyForQuery in failed tx', bytes: typed('Z', ch('E')), expected: { kind: 'ReadyForQuery', status: 'E' } },
];
