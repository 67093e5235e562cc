/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it, both ends, without channel binding, and the
 * MD5 password hash. Pure state machines over strings/bytes; the random source is injectable for tests.
 *
 *   client                                     server
 *   client-first   n,,n=<user>,r=<cnonce>  →
 *                                          ←   server-first  r=<cnonce><snonce>,s=<salt b64>,i=<iterations>
 *   client-final   c=biws,r=<nonce>,p=<proof b64>  →
 *                                          ←   server-final  v=<server signature b64>   (or e=<error>)
 *
 *   SaltedPassword  = PBKDF2-HMAC-SHA-256(SASLprep(password), salt, i)
 *   ClientKey       = HMAC(SaltedPassword, "Client Key");   StoredKey = SHA-256(ClientKey)
 *   ServerKey       = HMAC(SaltedPassword, "Server Key")
 *   AuthMessage     = client-first-bare "," server-first "," client-final-without-proof
 *   ClientProof     = ClientKey XOR HMAC(StoredKey, AuthMessage)
 *   ServerSignature = HMAC(ServerKey, AuthMessage)
 *
 * In PostgreSQL the user name inside SCRAM is ignored (the StartupMessage's `user` counts) and libpq sends
 * `n=` empty. We advertise only SCRAM-SHA-256 (no -PLUS): the server refuses a client that asks for channel
 * binding (`p=`) and accepts `n` and `y` (the client could bind but believes we cannot: true).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes as cryptoRandomBytes, timingSafeEqual } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { ProtocolError } from './errors.js';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
export const DEFAULT_SCRAM_ITERATIONS = 4096;
/** Upper bound on the iteration count a server may ask the client for (a hostile server could stall us). */
export const DEFAULT_MAX_SCRAM_ITERATIONS = 1_000_000;

/** Returns `size` random bytes. Tests inject a deterministic source. */
export type RandomSource = (size: number) => Buffer;

const NONCE_BYTES = 18;
const KEY_LENGTH = 32;

// ---------------------------------------------------------------- primitives

function hmac(key: Uint8Array, data: string | Uint8Array): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) ^ (b[i] as number);
  return out;
}

export function saltedPassword(password: string, salt: Uint8Array, iterations: number): Buffer {
  return pbkdf2Sync(scramPasswordBytes(password), salt, iterations, KEY_LENGTH, 'sha256');
}

/**
 * The password bytes SCRAM hashes: SASLprep(password) when it applies, else the raw UTF-8 bytes — what
 * PostgreSQL (server and libpq) do when SASLprep rejects a password.
 */
export function scramPasswordBytes(password: string): Buffer {
  return Buffer.from(saslprep(password) ?? password, 'utf8');
}

// ---------------------------------------------------------------- SASLprep (RFC 4013), approximated

const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/gu;
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/gu;
// C.1.2, C.2.1, C.2.2, C.3 private use, C.4 non-characters, C.5 surrogates, C.6-C.9, plus A.1
// approximated by the code points unassigned in the running Unicode version.
const PROHIBITED =
  /[\u0000-\u001F\u007F-\u009F\u00A0\u0340\u0341\u06DD\u070F\u1680\u180E\u2000-\u200F\u2028-\u202F\u205F-\u2063\u206A-\u206F\u2FF0-\u2FFB\u3000\uD800-\uDFFF\uE000-\uF8FF\uFDD0-\uFDEF\uFFF9-\uFFFF\u{1D173}-\u{1D17A}\u{E0001}\u{E0020}-\u{E007F}\u{F0000}-\u{10FFFF}]|[\u{1FFFE}\u{1FFFF}\u{2FFFE}\u{2FFFF}\u{3FFFE}\u{3FFFF}\u{4FFFE}\u{4FFFF}\u{5FFFE}\u{5FFFF}\u{6FFFE}\u{6FFFF}\u{7FFFE}\u{7FFFF}\u{8FFFE}\u{8FFFF}\u{9FFFE}\u{9FFFF}\u{AFFFE}\u{AFFFF}\u{BFFFE}\u{BFFFF}\u{CFFFE}\u{CFFFF}\u{DFFFE}\u{DFFFF}\u{EFFFE}\u{EFFFF}]|\p{Cn}/u;
// Bidirectional categories R/AL approximated by script (JS regexes have no Bidi_Class property).
const RAND_AL = /[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}]/u;
const L_CAT = /(?![\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}])\p{L}/u;

/** SASLprep of a password, or null when the result would contain a prohibited character. */
export function saslprep(input: string): string | null {
  if (/^[\x20-\x7E]*$/.test(input)) return input; // printable ASCII is unchanged
  const mapped = input.replace(NON_ASCII_SPACE, ' ').replace(MAPPED_TO_NOTHING, '').normalize('NFKC');
  if (PROHIBITED.test(mapped)) return null;
  if (RAND_AL.test(mapped)) {
    const chars = [...mapped];
    if (L_CAT.test(mapped) || !RAND_AL.test(chars[0] ?? '') || !RAND_AL.test(chars[chars.length - 1] ?? '')) return null;
  }
  return mapped;
}

// ---------------------------------------------------------------- message syntax

function fail(code: 'SCRAM_MALFORMED', message: string): never {
  throw new ProtocolError(code, message);
}

function text(message: string | Uint8Array, what: string): string {
  if (typeof message === 'string') return message;
  if (!isUtf8(message)) fail('SCRAM_MALFORMED', `${what} is not valid UTF-8`);
  return Buffer.from(message.buffer, message.byteOffset, message.byteLength).toString('utf8');
}

/** A `x=value` attribute with the expected name. */
function attr(part: string | undefined, name: string, what: string): string {
  if (part === undefined || part.length < 2 || part[0] !== name || part[1] !== '=') {
    fail('SCRAM_MALFORMED', `${what}: expected attribute ${name}=`);
  }
  return part.slice(2);
}

const PRINTABLE_NONCE = /^[\x21-\x2B\x2D-\x7E]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Optional trailing extensions (`x=value`): allowed by the RFC, ignored, but they must be well-formed. */
function extensions(parts: readonly string[], from: number, what: string): void {
  for (let i = from; i < parts.length; i++) {
    if (!/^[A-Za-z]=/.test(parts[i] as string)) fail('SCRAM_MALFORMED', `${what}: malformed attribute`);
  }
}

function base64(value: string, what: string): Buffer {
  if (!BASE64.test(value)) fail('SCRAM_MALFORMED', `${what} is not valid base64`);
  return Buffer.from(value, 'base64');
}

function nonceOf(value: string, what: string): string {
  if (!PRINTABLE_NONCE.test(value)) fail('SCRAM_MALFORMED', `${what}: invalid nonce`);
  return value;
}

/** saslname: ',' and '=' escaped as =2C and =3D. */
function escapeUsername(user: string): string {
  return user.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

function randomNonce(random: RandomSource): string {
  return random(NONCE_BYTES).toString('base64');
}

// ---------------------------------------------------------------- client

export interface ScramClientOptions {
  readonly password: string;
  /** Sent as `n=`; PostgreSQL ignores it, libpq sends it empty (the default). */
  readonly username?: string;
  /** The client nonce; default: 18 random bytes, base64. */
  readonly nonce?: string;
  readonly randomBytes?: RandomSource;
  readonly maxIterations?: number;
}

/** The client side, used upstream with the injected password. */
export class ScramClient {
  readonly mechanism = SCRAM_SHA_256;
  private state: 'initial' | 'first-sent' | 'final-sent' | 'done' = 'initial';
  private readonly password: string;
  private readonly clientNonce: string;
  private readonly clientFirstBare: string;
  private readonly maxIterations: number;
  private expectedServerSignature: Buffer | null = null;

  constructor(options: ScramClientOptions) {
    this.password = options.password;
    this.clientNonce = nonceOf(options.nonce ?? randomNonce(options.randomBytes ?? cryptoRandomBytes), 'client nonce');
    this.clientFirstBare = `n=${escapeUsername(options.username ?? '')},r=${this.clientNonce}`;
    this.maxIterations = options.maxIterations ?? DEFAULT_MAX_SCRAM_ITERATIONS;
  }

  /** client-first-message, for SASLInitialResponse. */
  clientFirstMessage(): string {
    this.step('initial', 'first-sent');
    return `n,,${this.clientFirstBare}`;
  }

  /** Takes server-first-message (AuthenticationSASLContinue), returns client-final-message (SASLResponse). */
  handleServerFirst(message: string | Uint8Array): string {
    this.step('first-sent', 'final-sent');
    const serverFirst = text(message, 'server-first-message');
    const parts = serverFirst.split(',');
    if (parts[0]?.startsWith('m=')) throw new ProtocolError('SCRAM_UNSUPPORTED', 'server-first-message: unsupported mandatory extension');
    const nonce = nonceOf(attr(parts[0], 'r', 'server-first-message'), 'server-first-message');
    if (!nonce.startsWith(this.clientNonce) || nonce.length === this.clientNonce.length) {
      throw new ProtocolError('SCRAM_NONCE_MISMATCH', 'server-first-message: the nonce does not extend ours');
    }
    const salt = base64(attr(parts[1], 's', 'server-first-message'), 'salt');
    const iterText = attr(parts[2], 'i', 'server-first-message');
    if (!/^[1-9][0-9]{0,9}$/.test(iterText)) fail('SCRAM_MALFORMED', 'server-first-message: invalid iteration count');
    const iterations = Number(iterText);
    if (iterations > this.maxIterations) {
      throw new ProtocolError('SCRAM_ITERATIONS', `server asks for ${iterations} iterations, over the ${this.maxIterations} limit`);
    }
    if (salt.length === 0) fail('SCRAM_MALFORMED', 'server-first-message: empty salt');
    extensions(parts, 3, 'server-first-message');

    const withoutProof = `c=biws,r=${nonce}`; // biws = base64("n,,")
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const salted = saltedPassword(this.password, salt, iterations);
    const clientKey = hmac(salted, 'Client Key');
    const proof = xor(clientKey, hmac(sha256(clientKey), authMessage));
    this.expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Takes server-final-message (AuthenticationSASLFinal); throws unless the server proved it knows the password. */
  handleServerFinal(message: string | Uint8Array): void {
    this.step('final-sent', 'done');
    const serverFinal = text(message, 'server-final-message');
    const first = serverFinal.split(',')[0];
    if (first?.startsWith('e=')) throw new ProtocolError('SCRAM_SERVER_ERROR', `server refused authentication: ${first.slice(2)}`);
    const signature = base64(attr(first, 'v', 'server-final-message'), 'server signature');
    const expected = this.expectedServerSignature as Buffer;
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new ProtocolError('SCRAM_SERVER_SIGNATURE', 'the server signature is wrong: the server does not know the password');
    }
  }

  private step(from: ScramClient['state'], to: ScramClient['state']): void {
    if (this.state !== from) throw new ProtocolError('SCRAM_STATE', `SCRAM client: expected state ${from}, in ${this.state}`);
    this.state = to;
  }
}

// ---------------------------------------------------------------- server

/** What a server stores instead of the password (as in pg_authid: SCRAM-SHA-256$i:salt$StoredKey:ServerKey). */
export interface ScramSecret {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export interface ScramSecretOptions {
  readonly iterations?: number;
  /** Default: 16 random bytes. */
  readonly salt?: Buffer;
  readonly randomBytes?: RandomSource;
}

export function createScramSecret(password: string, options: ScramSecretOptions = {}): ScramSecret {
  const iterations = options.iterations ?? DEFAULT_SCRAM_ITERATIONS;
  const salt = options.salt ?? (options.randomBytes ?? cryptoRandomBytes)(16);
  const salted = saltedPassword(password, salt, iterations);
  return {
    iterations,
    salt,
    storedKey: sha256(hmac(salted, 'Client Key')),
    serverKey: hmac(salted, 'Server Key'),
  };
}

/** The pg_authid text form of a secret. */
export function formatScramSecret(s: ScramSecret): string {
  return `${SCRAM_SHA_256}$${s.iterations}:${s.salt.toString('base64')}$${s.storedKey.toString('base64')}:${s.serverKey.toString('base64')}`;
}

export interface ScramServerOptions {
  /** The server's part of the nonce; default: 18 random bytes, base64. */
  readonly nonce?: string;
  readonly randomBytes?: RandomSource;
}

/** The server side, toward local clients that authenticate with the per-tunnel password. */
export class ScramServer {
  readonly mechanism = SCRAM_SHA_256;
  private state: 'initial' | 'first-sent' | 'done' = 'initial';
  private readonly serverNonce: string;
  private nonce = '';
  private gs2Header = '';
  private clientFirstBare = '';
  private serverFirst = '';
  private readonly secretValue: ScramSecret;

  constructor(secret: ScramSecret, options: ScramServerOptions = {}) {
    this.secretValue = secret;
    this.serverNonce = nonceOf(options.nonce ?? randomNonce(options.randomBytes ?? cryptoRandomBytes), 'server nonce');
  }

  /** Takes client-first-message (SASLInitialResponse data), returns server-first-message (SASLContinue). */
  handleClientFirst(message: string | Uint8Array): string {
    this.step('initial', 'first-sent');
    const clientFirst = text(message, 'client-first-message');
    // gs2-header = gs2-cbind-flag "," [authzid] ","
    const c1 = clientFirst.indexOf(',');
    const c2 = c1 === -1 ? -1 : clientFirst.indexOf(',', c1 + 1);
    if (c2 === -1) fail('SCRAM_MALFORMED', 'client-first-message: missing GS2 header');
    const flag = clientFirst.slice(0, c1);
    if (flag.startsWith('p=')) {
      throw new ProtocolError('SCRAM_CHANNEL_BINDING_UNSUPPORTED', 'the client requires channel binding, which this proxy does not offer (use SCRAM-SHA-256, not -PLUS)');
    }
    if (flag !== 'n' && flag !== 'y') fail('SCRAM_MALFORMED', 'client-first-message: invalid channel-binding flag');
    if (c2 !== c1 + 1) throw new ProtocolError('SCRAM_UNSUPPORTED', 'client-first-message: an authorization identity is not supported');
    this.gs2Header = clientFirst.slice(0, c2 + 1);
    this.clientFirstBare = clientFirst.slice(c2 + 1);
    const parts = this.clientFirstBare.split(',');
    if (parts[0]?.startsWith('m=')) throw new ProtocolError('SCRAM_UNSUPPORTED', 'client-first-message: unsupported mandatory extension');
    const user = attr(parts[0], 'n', 'client-first-message');
    if (/=(?!2C|3D)/.test(user)) fail('SCRAM_MALFORMED', 'client-first-message: invalid user name escape');
    const clientNonce = nonceOf(attr(parts[1], 'r', 'client-first-message'), 'client-first-message');
    extensions(parts, 2, 'client-first-message');
    this.nonce = clientNonce + this.serverNonce;
    const s = this.secretValue;
    this.serverFirst = `r=${this.nonce},s=${s.salt.toString('base64')},i=${s.iterations}`;
    return this.serverFirst;
  }

  /**
   * Takes client-final-message (SASLResponse data), verifies the proof in constant time and returns
   * server-final-message (SASLFinal). A wrong password throws SCRAM_INVALID_PROOF.
   */
  handleClientFinal(message: string | Uint8Array): string {
    this.step('first-sent', 'done');
    const clientFinal = text(message, 'client-final-message');
    const p = clientFinal.lastIndexOf(',p=');
    if (p === -1) fail('SCRAM_MALFORMED', 'client-final-message: missing proof');
    const withoutProof = clientFinal.slice(0, p);
    const proof = base64(clientFinal.slice(p + 3), 'client proof');
    const parts = withoutProof.split(',');
    const binding = attr(parts[0], 'c', 'client-final-message');
    if (binding !== Buffer.from(this.gs2Header).toString('base64')) {
      throw new ProtocolError('SCRAM_CHANNEL_BINDING_UNSUPPORTED', 'client-final-message: channel-binding data does not match the GS2 header');
    }
    if (attr(parts[1], 'r', 'client-final-message') !== this.nonce) {
      throw new ProtocolError('SCRAM_NONCE_MISMATCH', 'client-final-message: the nonce does not match');
    }
    extensions(parts, 2, 'client-final-message');
    const s = this.secretValue;
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const clientSignature = hmac(s.storedKey, authMessage);
    // Compare fixed-length values only, so the comparison's timing reveals nothing.
    const clientKey = xor(proof.length === KEY_LENGTH ? proof : Buffer.alloc(KEY_LENGTH), clientSignature);
    const ok = timingSafeEqual(sha256(clientKey), s.storedKey) && proof.length === KEY_LENGTH;
    if (!ok) throw new ProtocolError('SCRAM_INVALID_PROOF', 'password authentication failed: the SCRAM proof does not match');
    return `v=${hmac(s.serverKey, authMessage).toString('base64')}`;
  }

  private step(from: ScramServer['state'], to: ScramServer['state']): void {
    if (this.state !== from) throw new ProtocolError('SCRAM_STATE', `SCRAM server: expected state ${from}, in ${this.state}`);
    this.state = to;
  }
}

// ---------------------------------------------------------------- MD5

/** The PasswordMessage answer to AuthenticationMD5Password: 'md5' + md5(md5(password + user) + salt). */
export function md5PasswordHash(user: string, password: string, salt: Uint8Array): string {
  const inner = createHash('md5').update(password, 'utf8').update(user, 'utf8').digest('hex');
  return 'md5' + createHash('md5').update(inner, 'latin1').update(salt).digest('hex');
}
