/**
 * Token verification (DESIGN §6): a JWT is accepted only when its signature verifies against a key the issuer
 * publishes in its JWKS, with an allowed asymmetric algorithm, and its `iss`, `aud`, `exp` and `nbf` hold
 * (with a small clock skew). The JWKS is cached; a `kid` the cache does not know triggers one refetch (at most
 * once per cooldown), which is how key rotation at the issuer is picked up. A cached set older than `maxAge`
 * is refetched too, so keys the issuer has withdrawn stop being accepted.
 *
 * Nothing here puts a token, or any part of one, in an error message.
 */
import { createLocalJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';
import { DlpctlError } from '../errors.js';
import type { Identity } from '../store/types.js';
import { systemClock, type Clock } from './clock.js';
import { TransientIdentityError } from './errors.js';

/** Asymmetric algorithms only: an HMAC key would be a shared secret, and `none` is never accepted. */
export const DEFAULT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export const DEFAULT_SKEW_SECONDS = 30;
const MAX_JWKS_BYTES = 512 * 1024;

export interface JwksCacheOptions {
  fetch?: typeof fetch;
  clock?: Clock;
  /** Minimum time between two fetches triggered by an unknown `kid` (default 30 s). */
  cooldownMs?: number;
  /** A cached set older than this is fetched again before use (default 10 min). */
  maxAgeMs?: number;
}

/** The issuer's published keys, fetched lazily and refreshed on an unknown `kid`. */
export class JwksCache {
  readonly uri: string;
  readonly #fetch: typeof fetch;
  readonly #clock: Clock;
  readonly #cooldownMs: number;
  readonly #maxAgeMs: number;
  #keys: ReturnType<typeof createLocalJWKSet> | undefined;
  #fetchedAt = -Infinity;
  #inflight: Promise<void> | undefined;
  /** How many times the set was fetched (for tests and `-v` diagnostics). */
  fetches = 0;

  constructor(uri: string, opts: JwksCacheOptions = {}) {
    this.uri = uri;
    this.#fetch = opts.fetch ?? fetch;
    this.#clock = opts.clock ?? systemClock;
    this.#cooldownMs = opts.cooldownMs ?? 30_000;
    this.#maxAgeMs = opts.maxAgeMs ?? 600_000;
  }

  async #load(): Promise<void> {
    this.#inflight ??= (async () => {
      try {
        let res: Response;
        try {
          res = await this.#fetch(this.uri, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(15_000) });
        } catch (err) {
          throw new TransientIdentityError(`cannot fetch the issuer's signing keys from ${this.uri}: ${(err as Error).message}; check the network and identity.issuer`, { cause: err });
        }
        const text = await res.text();
        if (res.status >= 500) throw new TransientIdentityError(`the issuer's key set ${this.uri} answered HTTP ${res.status}`);
        if (!res.ok) throw new DlpctlError('AUTH_FAILED', `the issuer's key set ${this.uri} answered HTTP ${res.status}; check identity.issuer`);
        if (text.length > MAX_JWKS_BYTES) throw new DlpctlError('AUTH_FAILED', `the issuer's key set ${this.uri} is larger than ${MAX_JWKS_BYTES} bytes`);
        let jwks: JSONWebKeySet;
        try {
          jwks = JSON.parse(text) as JSONWebKeySet;
          if (!Array.isArray(jwks.keys)) throw new Error('no "keys" array');
        } catch (err) {
          throw new DlpctlError('AUTH_FAILED', `the issuer's key set ${this.uri} is not a JWKS document`, { cause: err });
        }
        // Only public keys: a set that carries private or symmetric material is not used for verification.
        jwks = { keys: jwks.keys.filter((k) => k.kty !== 'oct' && k.d === undefined) };
        this.#keys = createLocalJWKSet(jwks);
        this.#fetchedAt = this.#clock.now();
        this.fetches += 1;
      } finally {
        this.#inflight = undefined;
      }
    })();
    return this.#inflight;
  }

  /** A key resolver for `jwtVerify`. */
  readonly resolve = async (header: Parameters<ReturnType<typeof createLocalJWKSet>>[0], token: Parameters<ReturnType<typeof createLocalJWKSet>>[1]) => {
    if (!this.#keys || this.#clock.now() - this.#fetchedAt > this.#maxAgeMs) await this.#load();
    try {
      return await this.#keys!(header, token);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      if (this.#clock.now() - this.#fetchedAt < this.#cooldownMs) throw err;
      await this.#load();
      return this.#keys!(header, token);
    }
  };
}

export interface VerifierOptions {
  issuer: string;
  /** Accepted `aud` values: the token must name at least one. */
  audience: string | readonly string[];
  jwks: JwksCache;
  algorithms?: readonly string[];
  groupsClaim?: string;
  clock?: Clock;
  skewSeconds?: number;
}

export interface VerifiedToken {
  identity: Identity;
  /** `exp` in milliseconds since the epoch. */
  expiresAt: number;
  claims: JWTPayload;
}

/** Why a token was refused, as a stable word (for tests and audit) next to the human message. */
export type RejectReason = 'malformed' | 'algorithm' | 'signature' | 'unknown-key' | 'expired' | 'not-yet-valid' | 'issuer' | 'audience' | 'claims';

export class TokenRejectedError extends DlpctlError {
  readonly reason: RejectReason;
  constructor(reason: RejectReason, message: string) {
    super('AUTH_FAILED', message);
    this.reason = reason;
  }
}

/** Verifies JWTs of one issuer and turns their claims into an `Identity`. */
export class TokenVerifier {
  readonly issuer: string;
  readonly #opts: VerifierOptions;
  readonly #algorithms: string[];

  constructor(opts: VerifierOptions) {
    this.issuer = opts.issuer;
    this.#opts = opts;
    this.#algorithms = [...(opts.algorithms && opts.algorithms.length > 0 ? opts.algorithms : DEFAULT_ALGORITHMS)].filter(
      (a) => a !== 'none' && !a.startsWith('HS'),
    );
  }

  /** `what` names the token in messages ("the ID token", "DLPCTL_TOKEN"). */
  async verify(token: string, kind: Identity['kind'], what = 'the token'): Promise<VerifiedToken> {
    const clock = this.#opts.clock ?? systemClock;
    const skew = this.#opts.skewSeconds ?? DEFAULT_SKEW_SECONDS;
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token.trim()).alg;
    } catch {
      throw new TokenRejectedError('malformed', `${what} is not a signed JWT (a compact JWS with three parts)`);
    }
    if (!alg || !this.#algorithms.includes(alg)) {
      throw new TokenRejectedError('algorithm', `${what} is signed with algorithm ${alg ?? '(none)'}, which is not accepted; accepted: ${this.#algorithms.join(', ')}`);
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token.trim(), this.#opts.jwks.resolve, {
        issuer: this.#opts.issuer,
        audience: typeof this.#opts.audience === 'string' ? this.#opts.audience : [...this.#opts.audience],
        algorithms: this.#algorithms,
        clockTolerance: skew,
        currentDate: new Date(clock.now()),
        requiredClaims: ['iss', 'sub', 'exp'],
      }));
    } catch (err) {
      throw translate(err, what, this.#opts);
    }
    const identity: Identity = {
      issuer: payload.iss!,
      subject: payload.sub!,
      groups: groupsFromClaims(payload, this.#opts.groupsClaim ?? 'groups'),
      kind,
      verified: true,
    };
    if (typeof payload['email'] === 'string' && payload['email'] !== '') identity.email = payload['email'];
    return { identity, expiresAt: payload.exp! * 1000, claims: payload };
  }
}

function translate(err: unknown, what: string, opts: VerifierOptions): unknown {
  if (err instanceof DlpctlError) return err;
  if (err instanceof joseErrors.JWTExpired) return new TokenRejectedError('expired', `${what} has expired; get a fresh one (dlpctl login, or a new CI token)`);
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'iss':
        return new TokenRejectedError('issuer', `${what} was issued by another issuer than identity.issuer (${opts.issuer})`);
      case 'aud': {
        const aud = typeof opts.audience === 'string' ? opts.audience : opts.audience.join(', ');
        return new TokenRejectedError('audience', `${what} is not meant for dlpctl: its audience (aud) does not include ${aud}; request the token for that audience`);
      }
      case 'nbf':
        return new TokenRejectedError('not-yet-valid', `${what} is not valid yet (nbf is in the future); check the clock of this machine`);
      case 'iat':
        return new TokenRejectedError('not-yet-valid', `${what} was issued in the future (iat); check the clock of this machine`);
      default:
        return new TokenRejectedError('claims', `${what} lacks a valid "${err.claim}" claim`);
    }
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return new TokenRejectedError('unknown-key', `${what} is signed with a key that ${opts.issuer} does not publish`);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new TokenRejectedError('signature', `${what} has an invalid signature`);
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new TokenRejectedError('algorithm', `${what} uses an algorithm that is not accepted`);
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JOSENotSupported) {
    return new TokenRejectedError('malformed', `${what} is malformed`);
  }
  return new TokenRejectedError('claims', `${what} could not be verified`);
}

/**
 * Reads the groups at `path`: first as one claim name (namespaced claims such as
 * `https://example.com/groups` contain dots), then as a dotted path (`realm_access.roles`). An array keeps
 * its string members; a single string is one group.
 */
export function groupsFromClaims(claims: Record<string, unknown>, path: string): string[] {
  let value: unknown = Object.hasOwn(claims, path) ? claims[path] : undefined;
  if (value === undefined) {
    value = claims;
    for (const part of path.split('.')) {
      if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, part)) {
        value = undefined;
        break;
      }
      value = (value as Record<string, unknown>)[part];
    }
  }
  if (typeof value === 'string') return value === '' ? [] : [value];
  if (Array.isArray(value)) return [...new Set(value.filter((g): g is string => typeof g === 'string' && g !== ''))];
  return [];
}
