/**
 * One configured issuer: its discovered metadata (OpenID Connect discovery through openid-client), the OAuth
 * clients dlpctl uses there (public for the device flow, confidential for client credentials), its JWKS
 * cache and the two verifiers: ID tokens from login (`aud` = client id) and workload tokens from CI
 * (`aud` = `identity.audience`, else the client id).
 *
 * Plain http:// issuers are accepted only on loopback (tests, a local Keycloak), as in the config schema.
 */
import * as oidc from 'openid-client';
import type { IdentityConfig } from '../config/types.js';
import { DlpctlError } from '../errors.js';
import { systemClock, type Clock } from './clock.js';
import { JwksCache, TokenVerifier } from './verify.js';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const DEFAULT_SCOPES = ['openid', 'profile', 'email', 'offline_access'];

/** What identity code needs from the config, with defaults applied. */
export interface IssuerSettings {
  issuer: string;
  clientId: string;
  audience?: string;
  groupsClaim: string;
  scopes: string[];
  algorithms?: string[];
}

export function issuerSettings(cfg: Pick<IdentityConfig, 'issuer' | 'clientId'> & Partial<IdentityConfig>): IssuerSettings {
  const scopes = [...new Set([...DEFAULT_SCOPES, ...(cfg.scopes ?? [])])];
  return {
    issuer: cfg.issuer,
    clientId: cfg.clientId,
    ...(cfg.audience ? { audience: cfg.audience } : {}),
    groupsClaim: cfg.groupsClaim ?? 'groups',
    scopes,
    ...(cfg.algorithms?.length ? { algorithms: [...cfg.algorithms] } : {}),
  };
}

function isLoopbackHttp(url: URL): boolean {
  const h = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return url.protocol === 'http:' && (h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h));
}

export class Issuer {
  readonly settings: IssuerSettings;
  readonly metadata: oidc.ServerMetadata;
  readonly clock: Clock;
  readonly jwks: JwksCache;
  /** The public client: device flow, refresh, revocation. */
  readonly client: oidc.Configuration;
  readonly idTokens: TokenVerifier;
  readonly workloadTokens: TokenVerifier;
  readonly #insecure: boolean;

  constructor(settings: IssuerSettings, metadata: oidc.ServerMetadata, clock: Clock) {
    this.settings = settings;
    this.metadata = metadata;
    this.clock = clock;
    this.#insecure = isLoopbackHttp(new URL(settings.issuer));
    if (!metadata.jwks_uri) throw new DlpctlError('AUTH_FAILED', `${settings.issuer} publishes no jwks_uri in its discovery document; dlpctl cannot verify its tokens`);
    this.jwks = new JwksCache(metadata.jwks_uri, { clock });
    this.client = this.#configuration(oidc.None());
    const common = { issuer: settings.issuer, jwks: this.jwks, groupsClaim: settings.groupsClaim, clock, ...(settings.algorithms ? { algorithms: settings.algorithms } : {}) };
    this.idTokens = new TokenVerifier({ ...common, audience: settings.clientId });
    this.workloadTokens = new TokenVerifier({ ...common, audience: settings.audience ?? settings.clientId });
  }

  #configuration(auth: oidc.ClientAuth): oidc.Configuration {
    const c = new oidc.Configuration(this.metadata, this.settings.clientId, undefined, auth);
    if (this.#insecure) oidc.allowInsecureRequests(c);
    return c;
  }

  /** A confidential client for the client-credentials grant and token exchange. */
  confidential(clientSecret: string): oidc.Configuration {
    return this.#configuration(oidc.ClientSecretPost(clientSecret));
  }

  supportsGrant(grant: string): boolean {
    return Array.isArray(this.metadata.grant_types_supported) && this.metadata.grant_types_supported.includes(grant);
  }
}

const cache = new Map<string, Promise<Issuer>>();

/** Discovers the issuer (once per process and settings). */
export function discoverIssuer(settings: IssuerSettings, opts: { clock?: Clock } = {}): Promise<Issuer> {
  const clock = opts.clock ?? systemClock;
  const key = JSON.stringify(settings);
  if (clock === systemClock) {
    const hit = cache.get(key);
    if (hit) return hit;
  }
  const p = (async () => {
    const url = new URL(settings.issuer);
    if (url.protocol !== 'https:' && !isLoopbackHttp(url)) {
      throw new DlpctlError('USAGE', `issuer ${settings.issuer} must be an https:// URL (http:// only on localhost)`);
    }
    let config: oidc.Configuration;
    try {
      config = await oidc.discovery(url, settings.clientId, undefined, oidc.None(), {
        ...(isLoopbackHttp(url) ? { execute: [oidc.allowInsecureRequests] } : {}),
        timeout: 15,
      });
    } catch (err) {
      throw new DlpctlError('AUTH_FAILED', `cannot discover the identity provider at ${settings.issuer}: ${describeOidcError(err)}; check identity.issuer (or --issuer) and the network`, { cause: err });
    }
    return new Issuer(settings, config.serverMetadata(), clock);
  })();
  if (clock === systemClock) {
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

/** A short, token-free description of an openid-client / fetch failure. */
export function describeOidcError(err: unknown): string {
  if (err instanceof oidc.ResponseBodyError) return `${err.error}${err.error_description ? ` (${err.error_description})` : ''}`;
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    const c = cause instanceof Error ? `: ${cause.message}` : '';
    return `${err.message}${c}`;
  }
  return String(err);
}

/** True when the provider answered with an OAuth error (a definite "no"), as opposed to a network failure. */
export function isProviderRefusal(err: unknown): err is oidc.ResponseBodyError {
  return err instanceof oidc.ResponseBodyError;
}
