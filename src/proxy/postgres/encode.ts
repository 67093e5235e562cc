/**
 * Encoders for the messages the proxy synthesizes: toward the client (errors for policy denials, the
 * authentication exchange it runs itself, rows rebuilt after masking) and toward the server (startup
 * and authentication with injected credentials, cancel, simple queries). `encodeFrontend` and
 * `encodeBackend` cover every decoded shape so that decode(encode(m)) round-trips.
 */
import { ProtocolError } from './errors.js';
import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  PROTOCOL_3_0,
  SSL_REQUEST_CODE,
} from './framer.js';
import { AuthCode, BackendType, FrontendType } from './messages.js';
import type {
  BackendMessage,
  DescribeTarget,
  FieldDescription,
  FrontendMessage,
  TransactionStatus,
} from './messages.js';

/** A growable big-endian writer that builds one message: header, fields, then `finish` patches the length. */
class Writer {
  private buf: Buffer;
  private pos = 0;
  private lengthAt = 0;

  constructor(size = 64) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Starts a message: the type byte (typed) or nothing (startup packet), and a length placeholder. */
  start(type: number | null): this {
    if (type !== null) this.u8(type);
    this.lengthAt = this.pos;
    return this.i32(0);
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  i16(v: number): this {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }

  i32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** A NUL-terminated string. An embedded NUL would end the string early on the other side: refused. */
  cstring(s: string): this {
    if (s.includes('\0')) throw new ProtocolError('PG_ENCODE_INVALID', 'a string to encode contains a NUL character');
    const n = Buffer.byteLength(s, 'utf8');
    this.ensure(n + 1);
    this.buf.write(s, this.pos, 'utf8');
    this.pos += n;
    this.buf[this.pos++] = 0;
    return this;
  }

  /** Int32 length (-1 for null) and the bytes. */
  nullable(b: Uint8Array | null): this {
    if (b === null) return this.i32(-1);
    return this.i32(b.length).bytes(b);
  }

  i16List(values: readonly number[]): this {
    this.i16(count(values.length));
    for (const v of values) this.i16(v);
    return this;
  }

  finish(): Buffer {
    this.buf.writeInt32BE(this.pos - this.lengthAt, this.lengthAt);
    return this.buf.subarray(0, this.pos);
  }
}

function count(n: number): number {
  if (n > 0x7fff) throw new ProtocolError('PG_ENCODE_INVALID', `${n} elements do not fit an Int16 count`);
  return n;
}

function emptyTyped(type: number): Buffer {
  return Buffer.from([type, 0, 0, 0, 4]);
}

// ---------------------------------------------------------------- backend (toward the client)

/** Friendly names for the common ErrorResponse / NoticeResponse fields. */
export interface NoticeInput {
  /** 'ERROR', 'FATAL', 'PANIC', 'WARNING', 'NOTICE', 'DEBUG', 'INFO', 'LOG'. Written to both S and V. */
  readonly severity: string;
  /** SQLSTATE, e.g. '42501' insufficient_privilege for policy denials, '28P01' for a failed password. */
  readonly code: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
  /** Any further fields by their one-character code (e.g. { P: '15' }). */
  readonly extra?: Readonly<Record<string, string>>;
}

/** SQLSTATE of a policy denial: insufficient_privilege. */
export const SQLSTATE_POLICY_DENIED = '42501';

function noticeFieldsOf(input: NoticeInput): Array<[string, string]> {
  const fields: Array<[string, string]> = [
    ['S', input.severity],
    ['V', input.severity],
    ['C', input.code],
    ['M', input.message],
  ];
  if (input.detail !== undefined) fields.push(['D', input.detail]);
  if (input.hint !== undefined) fields.push(['H', input.hint]);
  for (const [k, v] of Object.entries(input.extra ?? {})) fields.push([k, v]);
  return fields;
}

function encodeNoticeFields(type: number, fields: Iterable<[string, string]>): Buffer {
  const w = new Writer(128).start(type);
  for (const [k, v] of fields) {
    if (k.length !== 1 || k === '\0' || k.charCodeAt(0) > 0x7f) {
      throw new ProtocolError('PG_ENCODE_INVALID', `notice field code must be one ASCII character, got ${JSON.stringify(k)}`);
    }
    w.u8(k.charCodeAt(0)).cstring(v);
  }
  return w.u8(0).finish();
}

export function encodeErrorResponse(input: NoticeInput): Buffer {
  return encodeNoticeFields(BackendType.ErrorResponse, noticeFieldsOf(input));
}

export function encodeNoticeResponse(input: NoticeInput): Buffer {
  return encodeNoticeFields(BackendType.NoticeResponse, noticeFieldsOf(input));
}

/** The ErrorResponse of a policy denial (SQLSTATE 42501); the session goes on. */
export function encodePolicyDenial(message: string, options: { detail?: string; hint?: string } = {}): Buffer {
  return encodeErrorResponse({ severity: 'ERROR', code: SQLSTATE_POLICY_DENIED, message, ...options });
}

export function encodeReadyForQuery(status: TransactionStatus): Buffer {
  return Buffer.from([BackendType.ReadyForQuery, 0, 0, 0, 5, status.charCodeAt(0)]);
}

export function encodeAuthenticationOk(): Buffer {
  return new Writer(9).start(BackendType.Authentication).i32(AuthCode.Ok).finish();
}

export function encodeAuthenticationCleartextPassword(): Buffer {
  return new Writer(9).start(BackendType.Authentication).i32(AuthCode.CleartextPassword).finish();
}

export function encodeAuthenticationMD5Password(salt: Uint8Array): Buffer {
  if (salt.length !== 4) throw new ProtocolError('PG_ENCODE_INVALID', 'an MD5 salt is 4 bytes');
  return new Writer(13).start(BackendType.Authentication).i32(AuthCode.MD5Password).bytes(salt).finish();
}

export function encodeAuthenticationSASL(mechanisms: readonly string[]): Buffer {
  const w = new Writer(32).start(BackendType.Authentication).i32(AuthCode.SASL);
  for (const m of mechanisms) {
    if (m === '') throw new ProtocolError('PG_ENCODE_INVALID', 'empty SASL mechanism name');
    w.cstring(m);
  }
  return w.u8(0).finish();
}

export function encodeAuthenticationSASLContinue(data: Uint8Array | string): Buffer {
  return new Writer(128).start(BackendType.Authentication).i32(AuthCode.SASLContinue).bytes(toBytes(data)).finish();
}

export function encodeAuthenticationSASLFinal(data: Uint8Array | string): Buffer {
  return new Writer(64).start(BackendType.Authentication).i32(AuthCode.SASLFinal).bytes(toBytes(data)).finish();
}

export function encodeParameterStatus(name: string, value: string): Buffer {
  return new Writer(64).start(BackendType.ParameterStatus).cstring(name).cstring(value).finish();
}

export function encodeBackendKeyData(processId: number, secretKey: Uint8Array): Buffer {
  if (secretKey.length < 4 || secretKey.length > 256) throw new ProtocolError('PG_ENCODE_INVALID', 'a secret key is 4 to 256 bytes');
  return new Writer(9 + secretKey.length).start(BackendType.BackendKeyData).i32(processId).bytes(secretKey).finish();
}

/** A DataRow rebuilt from its cells, e.g. after a masker changed one; strings are written as UTF-8. */
export function encodeDataRow(cells: readonly (Uint8Array | string | null)[]): Buffer {
  let size = 7;
  const bytes: (Uint8Array | null)[] = new Array<Uint8Array | null>(cells.length);
  for (let i = 0; i < cells.length; i++) {
    const c = cells[i] ?? null;
    const b = c === null ? null : toBytes(c);
    bytes[i] = b;
    size += 4 + (b === null ? 0 : b.length);
  }
  const w = new Writer(size).start(BackendType.DataRow).i16(count(cells.length));
  for (const b of bytes) w.nullable(b);
  return w.finish();
}

export function encodeCommandComplete(tag: string): Buffer {
  return new Writer(32).start(BackendType.CommandComplete).cstring(tag).finish();
}

export function encodeEmptyQueryResponse(): Buffer {
  return emptyTyped(BackendType.EmptyQueryResponse);
}

export function encodeRowDescription(fields: readonly FieldDescription[]): Buffer {
  const w = new Writer(16 + fields.length * 32).start(BackendType.RowDescription).i16(count(fields.length));
  for (const f of fields) {
    w.cstring(f.name).u32(f.tableOid).i16(f.columnAttr).u32(f.typeOid).i16(f.typeSize).i32(f.typeMod).i16(f.format);
  }
  return w.finish();
}

/** Any backend message, from its decoded shape. */
export function encodeBackend(m: BackendMessage): Buffer {
  switch (m.kind) {
    case 'AuthenticationOk':
      return encodeAuthenticationOk();
    case 'AuthenticationCleartextPassword':
      return encodeAuthenticationCleartextPassword();
    case 'AuthenticationMD5Password':
      return encodeAuthenticationMD5Password(m.salt);
    case 'AuthenticationSASL':
      return encodeAuthenticationSASL(m.mechanisms);
    case 'AuthenticationSASLContinue':
      return encodeAuthenticationSASLContinue(m.data);
    case 'AuthenticationSASLFinal':
      return encodeAuthenticationSASLFinal(m.data);
    case 'AuthenticationOther':
      return new Writer(16 + m.data.length).start(BackendType.Authentication).i32(m.code).bytes(m.data).finish();
    case 'ParameterStatus':
      return encodeParameterStatus(m.name, m.value);
    case 'BackendKeyData':
      return encodeBackendKeyData(m.processId, m.secretKey);
    case 'ReadyForQuery':
      return encodeReadyForQuery(m.status);
    case 'RowDescription':
      return encodeRowDescription(m.fields);
    case 'DataRow':
      return encodeDataRow(m.cells);
    case 'CommandComplete':
      return encodeCommandComplete(m.tag);
    case 'ErrorResponse':
      return encodeNoticeFields(BackendType.ErrorResponse, Object.entries(m.fields));
    case 'NoticeResponse':
      return encodeNoticeFields(BackendType.NoticeResponse, Object.entries(m.fields));
    case 'EmptyQueryResponse':
      return encodeEmptyQueryResponse();
    case 'ParseComplete':
      return emptyTyped(BackendType.ParseComplete);
    case 'BindComplete':
      return emptyTyped(BackendType.BindComplete);
    case 'CloseComplete':
      return emptyTyped(BackendType.CloseComplete);
    case 'NoData':
      return emptyTyped(BackendType.NoData);
    case 'PortalSuspended':
      return emptyTyped(BackendType.PortalSuspended);
    case 'CopyDone':
      return emptyTyped(BackendType.CopyDone);
    case 'CopyData':
      return encodeCopyData(m.data);
    case 'ParameterDescription': {
      const w = new Writer(7 + 4 * m.typeOids.length).start(BackendType.ParameterDescription).i16(count(m.typeOids.length));
      for (const oid of m.typeOids) w.u32(oid);
      return w.finish();
    }
    case 'CopyInResponse':
    case 'CopyOutResponse':
    case 'CopyBothResponse': {
      const type =
        m.kind === 'CopyInResponse' ? BackendType.CopyInResponse : m.kind === 'CopyOutResponse' ? BackendType.CopyOutResponse : BackendType.CopyBothResponse;
      return new Writer(8 + 2 * m.columnFormats.length).start(type).u8(m.format).i16List(m.columnFormats).finish();
    }
    case 'NotificationResponse':
      return new Writer(32).start(BackendType.NotificationResponse).i32(m.processId).cstring(m.channel).cstring(m.payload).finish();
    case 'NegotiateProtocolVersion': {
      const w = new Writer(32).start(BackendType.NegotiateProtocolVersion).i32(m.newestMinorVersion).i32(m.unrecognizedOptions.length);
      for (const o of m.unrecognizedOptions) w.cstring(o);
      return w.finish();
    }
    case 'FunctionCallResponse':
      return new Writer(16).start(BackendType.FunctionCallResponse).nullable(m.result).finish();
    case 'Unknown':
      return new Writer(5 + m.payload.length).start(m.type).bytes(m.payload).finish();
  }
}

// ---------------------------------------------------------------- frontend (toward the server)

/** StartupMessage with the given parameters (user is required; database defaults to user on the server). */
export function encodeStartupMessage(params: ReadonlyMap<string, string> | Readonly<Record<string, string>>, protocolVersion = PROTOCOL_3_0): Buffer {
  const w = new Writer(128).start(null).i32(protocolVersion);
  const entries = params instanceof Map ? params.entries() : Object.entries(params);
  for (const [k, v] of entries) {
    if (k === '') throw new ProtocolError('PG_ENCODE_INVALID', 'empty startup parameter name');
    w.cstring(k).cstring(v);
  }
  return w.u8(0).finish();
}

export function encodeSSLRequest(): Buffer {
  return new Writer(8).start(null).i32(SSL_REQUEST_CODE).finish();
}

export function encodeGSSENCRequest(): Buffer {
  return new Writer(8).start(null).i32(GSSENC_REQUEST_CODE).finish();
}

export function encodeCancelRequest(processId: number, secretKey: Uint8Array): Buffer {
  if (secretKey.length < 4 || secretKey.length > 256) throw new ProtocolError('PG_ENCODE_INVALID', 'a secret key is 4 to 256 bytes');
  return new Writer(12 + secretKey.length).start(null).i32(CANCEL_REQUEST_CODE).i32(processId).bytes(secretKey).finish();
}

/** PasswordMessage: a cleartext password or an `md5…` hash (see md5PasswordHash in scram.ts). */
export function encodePasswordMessage(password: string): Buffer {
  return new Writer(64).start(FrontendType.AuthenticationResponse).cstring(password).finish();
}

export function encodeSASLInitialResponse(mechanism: string, data: Uint8Array | string | null): Buffer {
  const w = new Writer(128).start(FrontendType.AuthenticationResponse).cstring(mechanism);
  return w.nullable(data === null ? null : toBytes(data)).finish();
}

export function encodeSASLResponse(data: Uint8Array | string): Buffer {
  return new Writer(128).start(FrontendType.AuthenticationResponse).bytes(toBytes(data)).finish();
}

export function encodeQuery(query: string): Buffer {
  return new Writer(Buffer.byteLength(query) + 6).start(FrontendType.Query).cstring(query).finish();
}

export function encodeTerminate(): Buffer {
  return emptyTyped(FrontendType.Terminate);
}

export function encodeSync(): Buffer {
  return emptyTyped(FrontendType.Sync);
}

export function encodeFlush(): Buffer {
  return emptyTyped(FrontendType.Flush);
}

export function encodeCopyData(data: Uint8Array): Buffer {
  return new Writer(5 + data.length).start(BackendType.CopyData).bytes(data).finish();
}

function describeLike(type: number, target: DescribeTarget, name: string): Buffer {
  return new Writer(16).start(type).u8(target.charCodeAt(0)).cstring(name).finish();
}

/** Any frontend message, from its decoded shape. */
export function encodeFrontend(m: FrontendMessage): Buffer {
  switch (m.kind) {
    case 'StartupMessage':
      return encodeStartupMessage(m.params, m.protocolVersion);
    case 'SSLRequest':
      return encodeSSLRequest();
    case 'GSSENCRequest':
      return encodeGSSENCRequest();
    case 'CancelRequest':
      return encodeCancelRequest(m.processId, m.secretKey);
    case 'AuthenticationResponse':
    case 'SASLResponse':
      return encodeSASLResponse(m.data);
    case 'PasswordMessage':
      return encodePasswordMessage(m.password);
    case 'SASLInitialResponse':
      return encodeSASLInitialResponse(m.mechanism, m.data);
    case 'Query':
      return encodeQuery(m.query);
    case 'Parse': {
      const w = new Writer(32 + Buffer.byteLength(m.query)).start(FrontendType.Parse).cstring(m.name).cstring(m.query);
      w.i16(count(m.paramTypes.length));
      for (const t of m.paramTypes) w.u32(t);
      return w.finish();
    }
    case 'Bind': {
      const w = new Writer(64).start(FrontendType.Bind).cstring(m.portal).cstring(m.statement).i16List(m.paramFormats);
      w.i16(count(m.params.length));
      for (const p of m.params) w.nullable(p);
      return w.i16List(m.resultFormats).finish();
    }
    case 'Describe':
      return describeLike(FrontendType.Describe, m.target, m.name);
    case 'Close':
      return describeLike(FrontendType.Close, m.target, m.name);
    case 'Execute':
      return new Writer(16).start(FrontendType.Execute).cstring(m.portal).i32(m.maxRows).finish();
    case 'Sync':
      return encodeSync();
    case 'Flush':
      return encodeFlush();
    case 'Terminate':
      return encodeTerminate();
    case 'CopyData':
      return encodeCopyData(m.data);
    case 'CopyDone':
      return emptyTyped(FrontendType.CopyDone);
    case 'CopyFail':
      return new Writer(32).start(FrontendType.CopyFail).cstring(m.message).finish();
    case 'FunctionCall': {
      const w = new Writer(64).start(FrontendType.FunctionCall).u32(m.functionOid).i16List(m.argFormats);
      w.i16(count(m.args.length));
      for (const a of m.args) w.nullable(a);
      return w.i16(m.resultFormat).finish();
    }
    case 'Unknown':
      return new Writer(5 + m.payload.length).start(m.type).bytes(m.payload).finish();
  }
}

function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}
