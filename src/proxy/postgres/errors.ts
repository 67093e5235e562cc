/**
 * Errors of the PostgreSQL codec and of SCRAM. A `ProtocolError` means the peer sent bytes we cannot
 * interpret safely: the caller ends the session (after, where possible, telling the client with an
 * ErrorResponse 08P01 / 28P01). The `code` is stable and meant for tests, logs and the audit trail.
 */

export type ProtocolErrorCode =
  // framing
  | 'PG_LENGTH_INVALID' // length word < 4
  | 'PG_MESSAGE_TOO_LARGE' // typed message over the configured cap
  | 'PG_STARTUP_LENGTH' // startup packet shorter than 8 or of the wrong length for its code
  | 'PG_STARTUP_TOO_LARGE' // startup packet over the configured cap
  | 'PG_STARTUP_CODE' // unknown protocol version / request code
  | 'PG_FRAMER_STATE' // a frame of the wrong kind was handed to a decoder
  // payload decoding
  | 'PG_TRUNCATED' // a field or a count runs past the end of the payload
  | 'PG_UNTERMINATED_STRING'
  | 'PG_INVALID_UTF8'
  | 'PG_INVALID_ENCODING' // a byte sequence invalid in the session's (non-UTF-8) client_encoding
  | 'PG_NEGATIVE_LENGTH' // a value length below -1
  | 'PG_BAD_VALUE' // a field with a value the protocol does not allow
  | 'PG_DUPLICATE_PARAMETER' // the same startup parameter twice
  | 'PG_TRAILING_DATA' // bytes after the last field of a message
  // encoding (our own bug or hostile input reaching an encoder)
  | 'PG_ENCODE_INVALID'
  // SCRAM-SHA-256
  | 'SCRAM_MALFORMED'
  | 'SCRAM_CHANNEL_BINDING_UNSUPPORTED'
  | 'SCRAM_UNSUPPORTED' // authzid or a mandatory extension we do not implement
  | 'SCRAM_NONCE_MISMATCH'
  | 'SCRAM_ITERATIONS'
  | 'SCRAM_INVALID_PROOF' // the client's proof is wrong: wrong password
  | 'SCRAM_SERVER_SIGNATURE' // the server's signature is wrong: not the server we think it is
  | 'SCRAM_SERVER_ERROR' // the server sent `e=...`
  | 'SCRAM_STATE'; // a step called out of order

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  /** The offending number, where one is the point (the requested protocol version of PG_STARTUP_CODE). */
  readonly value: number | undefined;

  constructor(code: ProtocolErrorCode, message: string, options: { cause?: unknown; value?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProtocolError';
    this.code = code;
    this.value = options.value;
  }
}

export function isProtocolError(err: unknown): err is ProtocolError {
  return err instanceof ProtocolError;
}
