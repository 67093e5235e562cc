/**
 * Decoders for frontend (client→server) messages. Each takes a framer `Frame` and validates the whole
 * payload: malformed input is a `ProtocolError`, trailing bytes included (the server would reject them
 * too, and a proxy must not read a message differently from the server).
 */
import { ProtocolError } from './errors.js';
import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MAX_CANCEL_KEY_LENGTH,
  MIN_CANCEL_KEY_LENGTH,
  SSL_REQUEST_CODE,
  type Frame,
} from './framer.js';
import { FrontendType } from './messages.js';
import type {
  AuthenticationResponse,
  Bind,
  CancelRequest,
  DescribeTarget,
  FrontendMessage,
  FunctionCall,
  Parse,
  PasswordMessage,
  SASLInitialResponse,
  SASLResponse,
  StartupPacket,
} from './messages.js';
import { Reader } from './reader.js';
import type { TextCodec } from './encoding.js';

const reader = new Reader();

/**
 * Which message a 'p' is depends on what the server asked for: AuthenticationCleartextPassword or
 * AuthenticationMD5Password → 'password'; AuthenticationSASL → 'sasl-initial'; AuthenticationSASLContinue
 * → 'sasl-continue'. Without it, 'p' decodes as an opaque `AuthenticationResponse`.
 */
export type AuthPhase = 'password' | 'sasl-initial' | 'sasl-continue';

export interface FrontendDecodeOptions {
  readonly authPhase?: AuthPhase;
  /** The session's client encoding, for SQL text and names (default UTF-8). */
  readonly codec?: TextCodec | null;
}

export function decodeFrontend(frame: Frame, options: FrontendDecodeOptions = {}): FrontendMessage {
  if (frame.type === null || !options.codec) return decodeTyped(frame, options);
  // (the reader is shared: the codec applies to this one message)
  reader.codec = options.codec;
  try {
    return decodeTyped(frame, options);
  } finally {
    reader.codec = null;
  }
}

function decodeTyped(frame: Frame, options: FrontendDecodeOptions): FrontendMessage {
  if (frame.type === null) return decodeStartupPacket(frame);
  const r = reader;
  const p = frame.payload;
  switch (frame.type) {
    case FrontendType.Query: {
      // Query: String query
      r.reset(p, 'Query');
      const query = r.cstring('query');
      r.end();
      return { kind: 'Query', query };
    }
    case FrontendType.Parse:
      return decodeParse(p);
    case FrontendType.Bind:
      return decodeBind(p);
    case FrontendType.Describe:
    case FrontendType.Close: {
      // Describe / Close: Byte1 'S'|'P', String name
      const kind = frame.type === FrontendType.Describe ? 'Describe' : 'Close';
      r.reset(p, kind);
      const target = describeTarget(r.uint8('target'), kind);
      const name = r.cstring('name');
      r.end();
      return { kind, target, name };
    }
    case FrontendType.Execute: {
      // Execute: String portal, Int32 max rows (0 = no limit)
      r.reset(p, 'Execute');
      const portal = r.cstring('portal');
      const maxRows = r.int32('max rows');
      r.end();
      return { kind: 'Execute', portal, maxRows };
    }
    case FrontendType.Sync:
      return empty(p, 'Sync');
    case FrontendType.Flush:
      return empty(p, 'Flush');
    case FrontendType.Terminate:
      return empty(p, 'Terminate');
    case FrontendType.CopyDone:
      return empty(p, 'CopyDone');
    case FrontendType.CopyData:
      return { kind: 'CopyData', data: p };
    case FrontendType.CopyFail: {
      r.reset(p, 'CopyFail');
      const message = r.cstring('message', false);
      r.end();
      return { kind: 'CopyFail', message };
    }
    case FrontendType.FunctionCall:
      return decodeFunctionCall(p);
    case FrontendType.AuthenticationResponse:
      switch (options.authPhase) {
        case 'password':
          return decodePasswordMessage(p);
        case 'sasl-initial':
          return decodeSASLInitialResponse(p);
        case 'sasl-continue':
          return decodeSASLResponse(p);
        default:
          return { kind: 'AuthenticationResponse', data: p } satisfies AuthenticationResponse;
      }
    default:
      return { kind: 'Unknown', type: frame.type, payload: p };
  }
}

/**
 * Startup-phase packets. Payload (after the length word):
 *   Int32 code, then for StartupMessage: (String name, String value)* Byte1 0;
 *   for CancelRequest: Int32 process id, Byte[n] secret key (n = 4 in 3.0, ≤ 256 in 3.2).
 */
export function decodeStartupPacket(frame: Frame): StartupPacket {
  if (frame.type !== null) throw new ProtocolError('PG_FRAMER_STATE', 'a typed message is not a startup packet');
  const r = reader.reset(frame.payload, 'startup packet');
  const code = r.int32('code');
  if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
    r.end();
    return { kind: code === SSL_REQUEST_CODE ? 'SSLRequest' : 'GSSENCRequest' };
  }
  if (code === CANCEL_REQUEST_CODE) {
    const processId = r.int32('process id');
    const secretKey = r.rest();
    if (secretKey.length < MIN_CANCEL_KEY_LENGTH || secretKey.length > MAX_CANCEL_KEY_LENGTH) {
      throw new ProtocolError('PG_BAD_VALUE', `CancelRequest: secret key of ${secretKey.length} bytes`);
    }
    return { kind: 'CancelRequest', processId, secretKey } satisfies CancelRequest;
  }
  if (code >>> 16 !== 3) throw new ProtocolError('PG_STARTUP_CODE', `unsupported protocol version or request code ${code}`);
  const params = new Map<string, string>();
  for (;;) {
    const name = r.cstring('parameter name');
    if (name === '') break;
    const value = r.cstring(`value of ${name}`);
    // The server lets the last duplicate win; refusing duplicates keeps the proxy and the server in agreement.
    if (params.has(name)) throw new ProtocolError('PG_DUPLICATE_PARAMETER', `StartupMessage: parameter ${name} given twice`);
    params.set(name, value);
  }
  r.end();
  return { kind: 'StartupMessage', protocolVersion: code, params };
}

/** Parse: String name, String query, Int16 n, Int32 type OID × n */
function decodeParse(p: Buffer): Parse {
  const r = reader.reset(p, 'Parse');
  const name = r.cstring('statement name');
  const query = r.cstring('query');
  const n = r.count('parameter type count', 4);
  const paramTypes: number[] = new Array<number>(n);
  for (let i = 0; i < n; i++) paramTypes[i] = r.uint32('parameter type');
  r.end();
  return { kind: 'Parse', name, query, paramTypes };
}

/**
 * Bind: String portal, String statement, Int16 nf, Int16 format × nf, Int16 np,
 * (Int32 len (-1 NULL), Byte[len]) × np, Int16 nr, Int16 result format × nr
 */
function decodeBind(p: Buffer): Bind {
  const r = reader.reset(p, 'Bind');
  const portal = r.cstring('portal');
  const statement = r.cstring('statement');
  const paramFormats = int16List(r, 'parameter format count');
  const np = r.count('parameter count', 4);
  const params: (Buffer | null)[] = new Array<Buffer | null>(np);
  for (let i = 0; i < np; i++) params[i] = r.nullableBytes('parameter', i + 1);
  const resultFormats = int16List(r, 'result format count');
  r.end();
  return { kind: 'Bind', portal, statement, paramFormats, params, resultFormats };
}

/** FunctionCall: Int32 OID, Int16 nf, Int16 × nf, Int16 na, (Int32 len, Byte[len]) × na, Int16 result format */
function decodeFunctionCall(p: Buffer): FunctionCall {
  const r = reader.reset(p, 'FunctionCall');
  const functionOid = r.uint32('function oid');
  const argFormats = int16List(r, 'argument format count');
  const na = r.count('argument count', 4);
  const args: (Buffer | null)[] = new Array<Buffer | null>(na);
  for (let i = 0; i < na; i++) args[i] = r.nullableBytes('argument', i + 1);
  const resultFormat = r.int16('result format');
  r.end();
  return { kind: 'FunctionCall', functionOid, argFormats, args, resultFormat };
}

/** PasswordMessage: String password (cleartext, or 'md5' + 32 hex digits). */
export function decodePasswordMessage(p: Buffer): PasswordMessage {
  const r = reader.reset(p, 'PasswordMessage');
  const password = r.cstring('password', false);
  r.end();
  return { kind: 'PasswordMessage', password };
}

/** SASLInitialResponse: String mechanism, Int32 len (-1 none), Byte[len] initial response */
export function decodeSASLInitialResponse(p: Buffer): SASLInitialResponse {
  const r = reader.reset(p, 'SASLInitialResponse');
  const mechanism = r.cstring('mechanism');
  const data = r.nullableBytes('initial response');
  r.end();
  return { kind: 'SASLInitialResponse', mechanism, data };
}

/** SASLResponse: Byte[n] data */
export function decodeSASLResponse(p: Buffer): SASLResponse {
  return { kind: 'SASLResponse', data: p };
}

function describeTarget(b: number, what: string): DescribeTarget {
  if (b === 0x53) return 'S';
  if (b === 0x50) return 'P';
  throw new ProtocolError('PG_BAD_VALUE', `${what}: target must be 'S' or 'P', got byte ${b}`);
}

function int16List(r: Reader, field: string): number[] {
  const n = r.count(field, 2);
  const out: number[] = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = r.int16(field);
  return out;
}

function empty<K extends 'Sync' | 'Flush' | 'Terminate' | 'CopyDone'>(p: Buffer, kind: K): { readonly kind: K } {
  if (p.length !== 0) throw new ProtocolError('PG_TRAILING_DATA', `${kind}: expected an empty payload, got ${p.length} byte(s)`);
  return { kind };
}
