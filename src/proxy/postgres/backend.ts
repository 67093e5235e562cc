/**
 * Decoders for backend (server→client) messages. Strings from the server are decoded leniently (invalid
 * UTF-8 is replaced, e.g. a message in the server's encoding); structure is checked strictly.
 */
import { ProtocolError } from './errors.js';
import type { Frame } from './framer.js';
import { AuthCode, BackendType } from './messages.js';
import type {
  BackendMessage,
  CopyResponse,
  DataRow,
  ErrorResponse,
  FieldDescription,
  NoticeFields,
  NoticeResponse,
  RowDescription,
} from './messages.js';
import { Reader } from './reader.js';

const reader = new Reader();

export function decodeBackend(frame: Frame): BackendMessage {
  if (frame.type === null) throw new ProtocolError('PG_FRAMER_STATE', 'backend messages are always typed');
  const r = reader;
  const p = frame.payload;
  switch (frame.type) {
    case BackendType.Authentication:
      return decodeAuthentication(p);
    case BackendType.ParameterStatus: {
      // ParameterStatus: String name, String value
      r.reset(p, 'ParameterStatus');
      const name = r.cstring('name', false);
      const value = r.cstring('value', false);
      r.end();
      return { kind: 'ParameterStatus', name, value };
    }
    case BackendType.BackendKeyData: {
      // BackendKeyData: Int32 process id, Byte[n] secret key (4 bytes in 3.0, up to 256 in 3.2)
      r.reset(p, 'BackendKeyData');
      const processId = r.int32('process id');
      const secretKey = r.rest();
      if (secretKey.length < 4 || secretKey.length > 256) {
        throw new ProtocolError('PG_BAD_VALUE', `BackendKeyData: secret key of ${secretKey.length} bytes`);
      }
      return { kind: 'BackendKeyData', processId, secretKey };
    }
    case BackendType.ReadyForQuery: {
      // ReadyForQuery: Byte1 status 'I' | 'T' | 'E'
      r.reset(p, 'ReadyForQuery');
      const b = r.uint8('status');
      r.end();
      if (b !== 0x49 && b !== 0x54 && b !== 0x45) throw new ProtocolError('PG_BAD_VALUE', `ReadyForQuery: bad status byte ${b}`);
      return { kind: 'ReadyForQuery', status: String.fromCharCode(b) as 'I' | 'T' | 'E' };
    }
    case BackendType.RowDescription:
      return decodeRowDescription(p);
    case BackendType.DataRow:
      return decodeDataRow(p);
    case BackendType.CommandComplete: {
      // CommandComplete: String tag
      r.reset(p, 'CommandComplete');
      const tag = r.cstring('tag', false);
      r.end();
      return { kind: 'CommandComplete', tag };
    }
    case BackendType.ErrorResponse:
      return decodeNotice(p, 'ErrorResponse');
    case BackendType.NoticeResponse:
      return decodeNotice(p, 'NoticeResponse');
    case BackendType.EmptyQueryResponse:
      return empty(p, 'EmptyQueryResponse');
    case BackendType.ParseComplete:
      return empty(p, 'ParseComplete');
    case BackendType.BindComplete:
      return empty(p, 'BindComplete');
    case BackendType.CloseComplete:
      return empty(p, 'CloseComplete');
    case BackendType.NoData:
      return empty(p, 'NoData');
    case BackendType.PortalSuspended:
      return empty(p, 'PortalSuspended');
    case BackendType.CopyDone:
      return empty(p, 'CopyDone');
    case BackendType.CopyData:
      return { kind: 'CopyData', data: p };
    case BackendType.ParameterDescription: {
      // ParameterDescription: Int16 n, Int32 type OID × n
      r.reset(p, 'ParameterDescription');
      const n = r.count('parameter count', 4);
      const typeOids: number[] = new Array<number>(n);
      for (let i = 0; i < n; i++) typeOids[i] = r.uint32('type oid');
      r.end();
      return { kind: 'ParameterDescription', typeOids };
    }
    case BackendType.CopyInResponse:
      return decodeCopyResponse(p, 'CopyInResponse');
    case BackendType.CopyOutResponse:
      return decodeCopyResponse(p, 'CopyOutResponse');
    case BackendType.CopyBothResponse:
      return decodeCopyResponse(p, 'CopyBothResponse');
    case BackendType.NotificationResponse: {
      // NotificationResponse: Int32 process id, String channel, String payload
      r.reset(p, 'NotificationResponse');
      const processId = r.int32('process id');
      const channel = r.cstring('channel', false);
      const payload = r.cstring('payload', false);
      r.end();
      return { kind: 'NotificationResponse', processId, channel, payload };
    }
    case BackendType.NegotiateProtocolVersion: {
      // NegotiateProtocolVersion: Int32 newest minor version, Int32 n, String option × n
      r.reset(p, 'NegotiateProtocolVersion');
      const newestMinorVersion = r.int32('newest minor version');
      const n = r.int32('option count');
      if (n < 0 || n > r.remaining) throw new ProtocolError('PG_TRUNCATED', `NegotiateProtocolVersion: option count ${n}`);
      const unrecognizedOptions: string[] = [];
      for (let i = 0; i < n; i++) unrecognizedOptions.push(r.cstring('option name', false));
      r.end();
      return { kind: 'NegotiateProtocolVersion', newestMinorVersion, unrecognizedOptions };
    }
    case BackendType.FunctionCallResponse: {
      // FunctionCallResponse: Int32 len (-1 NULL), Byte[len]
      r.reset(p, 'FunctionCallResponse');
      const result = r.nullableBytes('result');
      r.end();
      return { kind: 'FunctionCallResponse', result };
    }
    default:
      return { kind: 'Unknown', type: frame.type, payload: p };
  }
}

/**
 * Authentication: Int32 code, then
 *   0 ok, 3 cleartext, 7 GSS, 9 SSPI, 2 Kerberos: nothing;  5 MD5: Byte4 salt;
 *   10 SASL: (String mechanism)* Byte1 0;  11 SASLContinue, 12 SASLFinal, 8 GSSContinue: Byte[n] data.
 */
function decodeAuthentication(p: Buffer): BackendMessage {
  const r = reader.reset(p, 'Authentication');
  const code = r.int32('authentication code');
  switch (code) {
    case AuthCode.Ok:
      r.end();
      return { kind: 'AuthenticationOk' };
    case AuthCode.CleartextPassword:
      r.end();
      return { kind: 'AuthenticationCleartextPassword' };
    case AuthCode.MD5Password: {
      const salt = r.bytes(4, 'salt');
      r.end();
      return { kind: 'AuthenticationMD5Password', salt };
    }
    case AuthCode.SASL: {
      const mechanisms: string[] = [];
      for (;;) {
        const m = r.cstring('mechanism', false);
        if (m === '') break;
        mechanisms.push(m);
      }
      r.end();
      return { kind: 'AuthenticationSASL', mechanisms };
    }
    case AuthCode.SASLContinue:
      return { kind: 'AuthenticationSASLContinue', data: r.rest() };
    case AuthCode.SASLFinal:
      return { kind: 'AuthenticationSASLFinal', data: r.rest() };
    default:
      return { kind: 'AuthenticationOther', code, data: r.rest() };
  }
}

/**
 * RowDescription: Int16 n, then per field: String name, Int32 table OID, Int16 column attribute number,
 * Int32 type OID, Int16 type size, Int32 type modifier, Int16 format code.
 */
export function decodeRowDescription(p: Buffer): RowDescription {
  const r = reader.reset(p, 'RowDescription');
  const n = r.count('field count', 19);
  const fields: FieldDescription[] = new Array<FieldDescription>(n);
  for (let i = 0; i < n; i++) {
    const name = r.cstring('field name', false);
    const tableOid = r.uint32('table oid');
    const columnAttr = r.int16('column attribute');
    const typeOid = r.uint32('type oid');
    const typeSize = r.int16('type size');
    const typeMod = r.int32('type modifier');
    const format = r.int16('format');
    fields[i] = { name, tableOid, columnAttr, typeOid, typeSize, typeMod, format };
  }
  r.end();
  return { kind: 'RowDescription', fields };
}

/**
 * DataRow: Int16 n, (Int32 len (-1 NULL), Byte[len]) × n. The cells are views into the frame: decoding
 * a row allocates one array and n small Buffer views, copying no data.
 */
export function decodeDataRow(p: Buffer): DataRow {
  const r = reader.reset(p, 'DataRow');
  const n = r.count('column count', 4);
  const cells: (Buffer | null)[] = new Array<Buffer | null>(n);
  for (let i = 0; i < n; i++) cells[i] = r.nullableBytes('column', i + 1);
  r.end();
  return { kind: 'DataRow', cells };
}

/** ErrorResponse / NoticeResponse: (Byte1 field code, String value)* Byte1 0 */
function decodeNotice<K extends 'ErrorResponse' | 'NoticeResponse'>(p: Buffer, kind: K): ErrorResponse | NoticeResponse {
  const r = reader.reset(p, kind);
  const fields: Record<string, string> = {};
  for (;;) {
    const code = r.uint8('field code');
    if (code === 0) break;
    fields[String.fromCharCode(code)] = r.cstring('field value', false);
  }
  r.end();
  return noticeOf(kind, fields);
}

function noticeOf(kind: 'ErrorResponse' | 'NoticeResponse', fields: NoticeFields): ErrorResponse | NoticeResponse {
  return { kind, fields, severity: fields['V'] ?? fields['S'] ?? '', code: fields['C'] ?? '', message: fields['M'] ?? '' };
}

/** Copy{In,Out,Both}Response: Int8 overall format, Int16 n, Int16 column format × n */
function decodeCopyResponse(p: Buffer, kind: CopyResponse['kind']): CopyResponse {
  const r = reader.reset(p, kind);
  const format = r.uint8('format');
  const n = r.count('column count', 2);
  const columnFormats: number[] = new Array<number>(n);
  for (let i = 0; i < n; i++) columnFormats[i] = r.int16('column format');
  r.end();
  return { kind, format, columnFormats };
}

type EmptyKind =
  | 'EmptyQueryResponse'
  | 'ParseComplete'
  | 'BindComplete'
  | 'CloseComplete'
  | 'NoData'
  | 'PortalSuspended'
  | 'CopyDone';

function empty<K extends EmptyKind>(p: Buffer, kind: K): { readonly kind: K } {
  if (p.length !== 0) throw new ProtocolError('PG_TRAILING_DATA', `${kind}: expected an empty payload, got ${p.length} byte(s)`);
  return { kind };
}
