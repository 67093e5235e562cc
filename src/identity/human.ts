/**
 * People: the OAuth 2.0 device authorization grant (RFC 8628), refresh and revocation.
 *
 *   dlpctl                                   identity provider
 *   POST device_authorization_endpoint  ──▶  device_code, user_code, verification_uri, expires_in, [interval]
 *   (show verification_uri + user_code; the person signs in in a browser)
 *   POST token_endpoint grant_type=device_code  ──▶  authorization_pending | slow_down | access_denied |
 *        every `interval` s (+5 s per slow_down)      expired_token | tokens
 *
 * The poll loop is ours (not openid-client's) so that it sleeps through an injected clock. The ID token that
 * comes back is verified against the JWKS (aud = client id) and is what the identity is made of.
 */
import * as oidc from 'openid-client';
import { DlpctlError } from '../errors.js';
import { DEVICE_CODE_GRANT, describeOidcError, type Issuer } from './issuer.js';
import type { StoredLogin } from './token-store.js';
import { TransientIdentityError } from './errors.js';
import type { VerifiedToken } from './verify.js';

export interface DeviceCodePrompt {
  verificationUri: string;
  verificationUriComplete?: string;
  userCode: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

export interface DeviceLoginOptions {
  signal?: AbortSignal;
  /** The client the login requests go out as (default: the issuer's public client; see `loginClient`). */
  client?: oidc.Configuration;
  /** Shows the code. Polling starts when it returns (a returned promise is awaited). */
  onCode(prompt: DeviceCodePrompt): void | Promise<void>;
  /** Called with each wait before a poll, in ms (diagnostics, tests). */
  onWait?: (ms: number) => void;
}

export interface HumanLogin {
  login: StoredLogin;
  verified: VerifiedToken;
  /** False when the provider issued no refresh token (no `offline_access`): the login ends when the ID token expires. */
  refreshable: boolean;
}

const SLOW_DOWN_STEP_MS = 5_000;

export async function deviceLogin(iss: Issuer, opts: DeviceLoginOptions): Promise<HumanLogin> {
  if (!iss.metadata.device_authorization_endpoint) {
    throw new DlpctlError('AUTH_FAILED', `${iss.settings.issuer} does not offer the device authorization grant (no device_authorization_endpoint); enable it for client ${iss.settings.clientId}`);
  }
  let start: oidc.DeviceAuthorizationResponse;
  try {
    start = await oidc.initiateDeviceAuthorization(opts.client ?? iss.client, { scope: iss.settings.scopes.join(' ') });
  } catch (err) {
    throw new DlpctlError('AUTH_FAILED', `the identity provider refused to start a device login: ${describeOidcError(err)}; check that client ${iss.settings.clientId} allows the device flow and the scopes ${iss.settings.scopes.join(' ')}`, { cause: err });
  }
  const clock = iss.clock;
  const expiresAt = clock.now() + start.expires_in * 1000;
  await opts.onCode({
    verificationUri: start.verification_uri,
    ...(start.verification_uri_complete ? { verificationUriComplete: start.verification_uri_complete } : {}),
    userCode: start.user_code,
    expiresAt,
  });
  // RFC 8628 §3.5: 5 seconds when the provider names no interval; slow_down adds 5 seconds for good.
  let interval = typeof start.interval === 'number' && start.interval > 0 ? start.interval * 1000 : 5_000;
  for (;;) {
    if (clock.now() >= expiresAt) throw expiredCode();
    opts.onWait?.(interval);
    await clock.sleep(interval, opts.signal);
    if (clock.now() >= expiresAt) throw expiredCode();
    let tokens: oidc.TokenEndpointResponse;
    try {
      tokens = await oidc.genericGrantRequest(opts.client ?? iss.client, DEVICE_CODE_GRANT, { device_code: start.device_code });
    } catch (err) {
      if (err instanceof oidc.ResponseBodyError) {
        if (err.error === 'authorization_pending') continue;
        if (err.error === 'slow_down') {
          interval += SLOW_DOWN_STEP_MS;
          continue;
        }
        if (err.error === 'access_denied') {
          throw new DlpctlError('AUTH_FAILED', 'the sign-in was denied in the browser; run dlpctl login again and approve the request (or ask your identity administrator for access)');
        }
        if (err.error === 'expired_token') throw expiredCode();
      }
      throw new DlpctlError('AUTH_FAILED', `the identity provider refused the device login: ${describeOidcError(err)}`, { cause: err });
    }
    return fromTokenResponse(iss, tokens, undefined);
  }
}

function expiredCode(): DlpctlError {
  return new DlpctlError('AUTH_FAILED', 'the code expired before the sign-in was completed; run dlpctl login again and enter the new code in time');
}

async function fromTokenResponse(iss: Issuer, tokens: oidc.TokenEndpointResponse, previous: StoredLogin | undefined): Promise<HumanLogin> {
  const idToken = tokens.id_token ?? previous?.idToken;
  if (!idToken) {
    throw new DlpctlError('AUTH_FAILED', `${iss.settings.issuer} returned no ID token; add the openid scope for client ${iss.settings.clientId}`);
  }
  const verified = await iss.idTokens.verify(idToken, 'human', 'the ID token from the identity provider');
  const refreshToken = tokens.refresh_token ?? previous?.refreshToken;
  const login: StoredLogin = {
    version: 1,
    issuer: iss.settings.issuer,
    clientId: iss.settings.clientId,
    ...(refreshToken ? { refreshToken } : {}),
    idToken,
    accessToken: tokens.access_token,
    ...(typeof tokens.expires_in === 'number' ? { accessTokenExpiresAt: iss.clock.now() + tokens.expires_in * 1000 } : {}),
    savedAt: iss.clock.now(),
  };
  return { login, verified, refreshable: Boolean(refreshToken) };
}

/** Verifies a stored login's ID token without contacting the token endpoint. */
export async function verifyStored(iss: Issuer, login: StoredLogin): Promise<HumanLogin> {
  if (!login.idToken) throw new DlpctlError('AUTH_REQUIRED', 'the stored login has no ID token; run dlpctl login');
  const verified = await iss.idTokens.verify(login.idToken, 'human', 'the stored ID token');
  return { login, verified, refreshable: Boolean(login.refreshToken) };
}

/**
 * Uses the refresh token. A refusal by the provider (the account disabled, the login revoked) is an
 * `AUTH_REQUIRED` error; a network failure is a `TransientIdentityError`.
 */
export async function refreshLogin(iss: Issuer, login: StoredLogin, client: oidc.Configuration = iss.client): Promise<HumanLogin> {
  if (!login.refreshToken) {
    throw new DlpctlError('AUTH_REQUIRED', `the login at ${iss.settings.issuer} cannot be renewed (the provider issued no refresh token; allow offline_access for client ${iss.settings.clientId}); run dlpctl login`);
  }
  let tokens: oidc.TokenEndpointResponse;
  try {
    tokens = await oidc.refreshTokenGrant(client, login.refreshToken);
  } catch (err) {
    if (err instanceof oidc.ResponseBodyError) {
      throw new DlpctlError('AUTH_REQUIRED', `the identity provider refused to renew the login (${err.error}): the account may be disabled or the login revoked; run dlpctl login`, { cause: err });
    }
    throw new TransientIdentityError(`cannot renew the login at ${iss.settings.issuer}: ${describeOidcError(err)}`, { cause: err });
  }
  const before = login.idToken ? await iss.idTokens.verify(login.idToken, 'human').catch(() => null) : null;
  const next = await fromTokenResponse(iss, tokens, login);
  if (before && before.identity.subject !== next.verified.identity.subject) {
    throw new DlpctlError('AUTH_FAILED', 'the renewed login belongs to another subject; run dlpctl login');
  }
  return next;
}

/** RFC 7009: revokes the refresh and access tokens when the provider has a revocation endpoint. */
export async function revokeLogin(iss: Issuer, login: StoredLogin, client: oidc.Configuration = iss.client): Promise<'revoked' | 'unsupported'> {
  if (!iss.metadata.revocation_endpoint) return 'unsupported';
  if (login.refreshToken) await oidc.tokenRevocation(client, login.refreshToken, { token_type_hint: 'refresh_token' });
  if (login.accessToken) await oidc.tokenRevocation(client, login.accessToken, { token_type_hint: 'access_token' });
  return 'revoked';
}
