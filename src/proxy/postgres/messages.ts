/**
 * Decoded message shapes. Only what a policy-enforcing proxy must look at is decoded; everything else is
 * forwarded as the framer's `raw` bytes. Each union member is tagged by `kind` (the protocol's own message
 * name). Binary values (cells, parameters, SASL data, COPY data) are views into the frame, not copies.
 */

/** Type bytes of frontend (client→server) messages. */
export const FrontendType = {
  Bind: 0x42, // 'B'
  Close: 0x43, // 'C'
  Describe: 0x44, // 'D'
  Execute: 0x45, // 'E'
  FunctionCall: 0x46, // 'F'
  Flush: 0x48, // 'H'
  Parse: 0x50, // 'P'
  Query: 0x51, // 'Q'
  Sync: 0x53, // 'S'
  Terminate: 0x58, // 'X'
  CopyDone: 0x63, // 'c'
  CopyData: 0x64, // 'd'
  CopyFail: 0x66, // 'f'
  /** PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse: which one depends on the auth state. */
  AuthenticationResponse: 0x70, // 'p'
} as const;

/** Type bytes of backend (server→client) messages. */
export const BackendType = {
  ParseComplete: 0x31, // '1'
  BindComplete: 0x32, // '2'
  CloseComplete: 0x33, // '3'
  NotificationResponse: 0x41, // 'A'
  CommandComplete: 0x43, // 'C'
  DataRow: 0x44, // 'D'
  ErrorResponse: 0x45, // 'E'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  EmptyQueryResponse: 0x49, // 'I'
  BackendKeyData: 0x4b, // 'K'
  NoticeResponse: 0x4e, // 'N'
  Authentication: 0x52, // 'R'
  ParameterStatus: 0x53, // 'S'
  RowDescription: 0x54, // 'T'
  FunctionCallResponse: 0x56, // 'V'
  CopyBothResponse: 0x57, // 'W'
  ReadyForQuery: 0x5a, // 'Z'
  CopyDone: 0x63, // 'c'
  CopyData: 0x64, // 'd'
  NoData: 0x6e, // 'n'
  PortalSuspended: 0x73, // 's'
  ParameterDescription: 0x74, // 't'
  NegotiateProtocolVersion: 0x76, // 'v'
} as const;

/** Authentication request codes ('R'). */
export const AuthCode = {
  Ok: 0,
  KerberosV5: 2,
  CleartextPassword: 3,
  MD5Password: 5,
  GSS: 7,
  GSSContinue: 8,
  SSPI: 9,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

/** 'S' statement or 'P' portal, as in Describe and Close. */
export type DescribeTarget = 'S' | 'P';
/** Transaction status in ReadyForQuery: idle, in a transaction block, in a failed transaction block. */
export type TransactionStatus = 'I' | 'T' | 'E';

// ---------------------------------------------------------------- frontend

export interface StartupMessage {
  readonly kind: 'StartupMessage';
  /** 196608 for 3.0, 196610 for 3.2. */
  readonly protocolVersion: number;
  /** In wire order; `user` is required by the server, `database` defaults to it. */
  readonly params: Map<string, string>;
}
export interface SSLRequest { readonly kind: 'SSLRequest' }
export interface GSSENCRequest { readonly kind: 'GSSENCRequest' }
export interface CancelRequest {
  readonly kind: 'CancelRequest';
  readonly processId: number;
  /** 4 bytes in protocol 3.0, up to 256 in 3.2. */
  readonly secretKey: Buffer;
}
/** A 'p' message decoded without knowing the authentication state. */
export interface AuthenticationResponse { readonly kind: 'AuthenticationResponse'; readonly data: Buffer }
export interface PasswordMessage { readonly kind: 'PasswordMessage'; readonly password: string }
export interface SASLInitialResponse {
  readonly kind: 'SASLInitialResponse';
  readonly mechanism: string;
  /** null when the client sent length -1 (no initial response). */
  readonly data: Buffer | null;
}
export interface SASLResponse { readonly kind: 'SASLResponse'; readonly data: Buffer }
export interface Query { readonly kind: 'Query'; readonly query: string }
export interface Parse {
  readonly kind: 'Parse';
  readonly name: string;
  readonly query: string;
  /** Parameter type OIDs; 0 leaves the type unspecified. */
  readonly paramTypes: readonly number[];
}
export interface Bind {
  readonly kind: 'Bind';
  readonly portal: string;
  readonly statement: string;
  /** Zero (all text), one (applies to all) or one per parameter; 0 text, 1 binary. */
  readonly paramFormats: readonly number[];
  readonly params: readonly (Buffer | null)[];
  readonly resultFormats: readonly number[];
}
export interface Describe { readonly kind: 'Describe'; readonly target: DescribeTarget; readonly name: string }
export interface Execute { readonly kind: 'Execute'; readonly portal: string; /** 0 = no limit */ readonly maxRows: number }
export interface Close { readonly kind: 'Close'; readonly target: DescribeTarget; readonly name: string }
export interface Sync { readonly kind: 'Sync' }
export interface Flush { readonly kind: 'Flush' }
export interface Terminate { readonly kind: 'Terminate' }
export interface CopyData { readonly kind: 'CopyData'; readonly data: Buffer }
export interface CopyDone { readonly kind: 'CopyDone' }
export interface CopyFail { readonly kind: 'CopyFail'; readonly message: string }
export interface FunctionCall {
  readonly kind: 'FunctionCall';
  readonly functionOid: number;
  readonly argFormats: readonly number[];
  readonly args: readonly (Buffer | null)[];
  readonly resultFormat: number;
}
/** A typed message the decoder does not know; the tunnel decides (usually: end the session). */
export interface UnknownMessage { readonly kind: 'Unknown'; readonly type: number; readonly payload: Buffer }

export type StartupPacket = StartupMessage | SSLRequest | GSSENCRequest | CancelRequest;

export type FrontendMessage =
  | StartupPacket
  | AuthenticationResponse
  | PasswordMessage
  | SASLInitialResponse
  | SASLResponse
  | Query
  | Parse
  | Bind
  | Describe
  | Execute
  | Close
  | Sync
  | Flush
  | Terminate
  | CopyData
  | CopyDone
  | CopyFail
  | FunctionCall
  | UnknownMessage;

// ---------------------------------------------------------------- backend

export interface AuthenticationOk { readonly kind: 'AuthenticationOk' }
export interface AuthenticationCleartextPassword { readonly kind: 'AuthenticationCleartextPassword' }
export interface AuthenticationMD5Password { readonly kind: 'AuthenticationMD5Password'; readonly salt: Buffer }
export interface AuthenticationSASL { readonly kind: 'AuthenticationSASL'; readonly mechanisms: readonly string[] }
export interface AuthenticationSASLContinue { readonly kind: 'AuthenticationSASLContinue'; readonly data: Buffer }
export interface AuthenticationSASLFinal { readonly kind: 'AuthenticationSASLFinal'; readonly data: Buffer }
/** Kerberos, GSSAPI, SSPI and unknown methods: not supported by the proxy, surfaced for the tunnel to refuse. */
export interface AuthenticationOther { readonly kind: 'AuthenticationOther'; readonly code: number; readonly data: Buffer }
export interface ParameterStatus { readonly kind: 'ParameterStatus'; readonly name: string; readonly value: string }
export interface BackendKeyData { readonly kind: 'BackendKeyData'; readonly processId: number; readonly secretKey: Buffer }
export interface ReadyForQuery { readonly kind: 'ReadyForQuery'; readonly status: TransactionStatus }
export interface FieldDescription {
  readonly name: string;
  /** 0 when the column is not a table column. */
  readonly tableOid: number;
  readonly columnAttr: number;
  readonly typeOid: number;
  /** Negative for variable-width types. */
  readonly typeSize: number;
  readonly typeMod: number;
  /** 0 text, 1 binary. */
  readonly format: number;
}
export interface RowDescription { readonly kind: 'RowDescription'; readonly fields: readonly FieldDescription[] }
export interface DataRow { readonly kind: 'DataRow'; readonly cells: readonly (Buffer | null)[] }
export interface CommandComplete { readonly kind: 'CommandComplete'; readonly tag: string }
/**
 * Field codes (one char) → value: S severity (localized), V severity, C SQLSTATE, M message, D detail,
 * H hint, P position, p internal position, q internal query, W where, s schema, t table, c column,
 * d data type, n constraint, F file, L line, R routine.
 */
export type NoticeFields = Readonly<Record<string, string>>;
export interface ErrorResponse {
  readonly kind: 'ErrorResponse';
  readonly fields: NoticeFields;
  /** 'V' (non-localized) or else 'S'. */
  readonly severity: string;
  /** SQLSTATE ('C'). */
  readonly code: string;
  readonly message: string;
}
export interface NoticeResponse {
  readonly kind: 'NoticeResponse';
  readonly fields: NoticeFields;
  readonly severity: string;
  readonly code: string;
  readonly message: string;
}
export interface EmptyQueryResponse { readonly kind: 'EmptyQueryResponse' }
export interface ParseComplete { readonly kind: 'ParseComplete' }
export interface BindComplete { readonly kind: 'BindComplete' }
export interface CloseComplete { readonly kind: 'CloseComplete' }
export interface NoData { readonly kind: 'NoData' }
export interface PortalSuspended { readonly kind: 'PortalSuspended' }
export interface ParameterDescription { readonly kind: 'ParameterDescription'; readonly typeOids: readonly number[] }
export interface CopyResponse {
  readonly kind: 'CopyInResponse' | 'CopyOutResponse' | 'CopyBothResponse';
  /** 0 text, 1 binary. */
  readonly format: number;
  readonly columnFormats: readonly number[];
}
export interface NotificationResponse {
  readonly kind: 'NotificationResponse';
  readonly processId: number;
  readonly channel: string;
  readonly payload: string;
}
export interface NegotiateProtocolVersion {
  readonly kind: 'NegotiateProtocolVersion';
  /**
   * The newest protocol version the server supports for the requested major version, as PostgreSQL sends
   * it: the whole version number (196608 for 3.0, 196610 for 3.2), which libpq 18 compares with its own.
   */
  readonly newestMinorVersion: number;
  readonly unrecognizedOptions: readonly string[];
}
export interface FunctionCallResponse { readonly kind: 'FunctionCallResponse'; readonly result: Buffer | null }

export type BackendMessage =
  | AuthenticationOk
  | AuthenticationCleartextPassword
  | AuthenticationMD5Password
  | AuthenticationSASL
  | AuthenticationSASLContinue
  | AuthenticationSASLFinal
  | AuthenticationOther
  | ParameterStatus
  | BackendKeyData
  | ReadyForQuery
  | RowDescription
  | DataRow
  | CommandComplete
  | ErrorResponse
  | NoticeResponse
  | EmptyQueryResponse
  | ParseComplete
  | BindComplete
  | CloseComplete
  | NoData
  | PortalSuspended
  | ParameterDescription
  | CopyResponse
  | CopyData
  | CopyDone
  | NotificationResponse
  | NegotiateProtocolVersion
  | FunctionCallResponse
  | UnknownMessage;
