/**
 * Public surface of the sans-I/O PostgreSQL codec: framing, decoding, encoding and SCRAM. No sockets.
 *
 * Typical use in a tunnel:
 *   const fromClient = frontendFramer();
 *   for (const frame of fromClient.frames(chunk)) {
 *     const msg = decodeFrontend(frame, { authPhase });   // only for messages the proxy acts on
 *     … forward frame.raw untouched, or answer with encodeErrorResponse(…)
 *   }
 */
export { ProtocolError, isProtocolError } from './errors.js';
export type { ProtocolErrorCode } from './errors.js';
export {
  Framer,
  frontendFramer,
  backendFramer,
  PROTOCOL_3_0,
  PROTOCOL_3_2,
  SSL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  CANCEL_REQUEST_CODE,
  DEFAULT_MAX_MESSAGE_SIZE,
  DEFAULT_MAX_STARTUP_SIZE,
} from './framer.js';
export type { Frame, FramerMode, FramerOptions } from './framer.js';
export { Reader } from './reader.js';
export { decodeFrontend, decodeStartupPacket, decodePasswordMessage, decodeSASLInitialResponse, decodeSASLResponse } from './frontend.js';
export type { AuthPhase, FrontendDecodeOptions } from './frontend.js';
export { decodeBackend, decodeDataRow, decodeRowDescription } from './backend.js';
export { FrontendType, BackendType, AuthCode } from './messages.js';
export type * from './messages.js';
export * from './encode.js';
export {
  ScramClient,
  ScramServer,
  createScramSecret,
  formatScramSecret,
  saltedPassword,
  scramPasswordBytes,
  saslprep,
  md5PasswordHash,
  SCRAM_SHA_256,
  DEFAULT_SCRAM_ITERATIONS,
  DEFAULT_MAX_SCRAM_ITERATIONS,
} from './scram.js';
export type { RandomSource, ScramClientOptions, ScramServerOptions, ScramSecret, ScramSecretOptions } from './scram.js';
