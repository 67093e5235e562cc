/**
 * Non-human identities (CI jobs, services), never prompting:
 *
 * - a token presented in `DLPCTL_TOKEN` or a file (`--token-file`, re-read at every re-check so rotated
 *   tokens such as Kubernetes projected tokens keep working), verified against the configured issuer with
 *   `aud` = `identity.audience` (else the client id);
 * - a token from *another* issuer (the CI system's own OIDC token) is exchanged first (RFC 8693) when the
 *   configured provider advertises the token-exchange grant, and the token it returns is verified;
 * - the client-credentials grant with `identity.clientSecret` (a secret reference).
 */
import { readFile } from 'node:fs/promises';
import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import { DlpctlError } from '../errors.js';
import { TransientIdentityError } from './errors.js';
import { TOKEN_EXCHANGE_GRANT, describeOidcError, type Issuer } from './issuer.js';
import type { VerifiedToken } from './verify.js';

export type WorkloadSource = 'env' | 'file' | 'client_credentials';

/** Reads a token file: trimmed, at most 64 KiB. Errors name the path, never the content. */
export async function readTokenFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new DlpctlError('AUTH_FAILED', `cannot read the token file ${file} (${code === 'ENOENT' ? 'no such file' : code ?? 'error'})`, { cause: err });
  }
  const token = text.trim();
  if (token === '') throw new DlpctlError('AUTH_FAILED', `the token file ${file} is empty`);
  if (token.length > 65_536) throw new DlpctlError('AUTH_FAILED', `the token file ${file} is larger than 64 KiB; it does not hold a token`);
  return token;
}

function unverifiedIssuer(token: string): string | undefined {
  try {
    const iss = decodeJwt(token).iss;
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Verifies a presented workload token; exchanges it first when it comes from another issuer and the
 * provider supports RFC 8693. `clientSecret` authenticates the exchange when configured.
 */
export async function verifyWorkloadToken(iss: Issuer, token: string, what: string, clientSecret?: string): Promise<VerifiedToken & { exchanged: boolean }> {
  const from = unverifiedIssuer(token);
  if (from !== undefined && from !== iss.settings.issuer && iss.supportsGrant(TOKEN_EXCHANGE_GRANT)) {
    const exchanged = await exchangeToken(iss, token, what, clientSecret);
    return { ...(await iss.workloadTokens.verify(exchanged, 'machine', `the token ${iss.settings.issuer} returned for ${what}`)), exchanged: true };
  }
  return { ...(await iss.workloadTokens.verify(token, 'machine', what)), exchanged: false };
}

async function exchangeToken(iss: Issuer, token: string, what: string, clientSecret?: string): Promise<string> {
  const client = clientSecret ? iss.confidential(clientSecret) : iss.client;
  let res: oidc.TokenEndpointResponse;
  try {
    res = await oidc.genericGrantRequest(client, TOKEN_EXCHANGE_GRANT, {
      subject_token: token,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      requested_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      audience: iss.settings.audience ?? iss.settings.clientId,
    });
  } catch (err) {
    if (err instanceof oidc.ResponseBodyError) {
      throw new DlpctlError('AUTH_FAILED', `${iss.settings.issuer} refused to exchange ${what} (${err.error}); check that it trusts the CI system's issuer`, { cause: err });
    }
    throw new TransientIdentityError(`cannot exchange ${what} at ${iss.settings.issuer}: ${describeOidcError(err)}`, { cause: err });
  }
  return res.access_token;
}

/** The client-credentials grant; the access token must be a JWT for dlpctl's audience. */
export async function clientCredentials(iss: Issuer, clientSecret: string, scopes: readonly string[]): Promise<VerifiedToken> {
  let res: oidc.TokenEndpointResponse;
  try {
    res = await oidc.clientCredentialsGrant(iss.confidential(clientSecret), scopes.length ? { scope: scopes.join(' ') } : {});
  } catch (err) {
    if (err instanceof oidc.ResponseBodyError) {
      throw new DlpctlError('AUTH_FAILED', `${iss.settings.issuer} refused the client-credentials grant for client ${iss.settings.clientId} (${err.error}); check identity.clientSecret and that the client is enabled`, { cause: err });
    }
    throw new TransientIdentityError(`cannot reach ${iss.settings.issuer} for the client-credentials grant: ${describeOidcError(err)}`, { cause: err });
  }
  return iss.workloadTokens.verify(res.access_token, 'machine', 'the client-credentials access token');
}
