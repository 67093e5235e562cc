/**
 * identity/: who is on the other side of a tunnel (DESIGN §6).
 *
 * - `resolveSessionIdentity` — what `connect` calls: a verified identity plus an `IdentityWatch` that keeps it
 *   current and fires `revoked` when it is gone.
 * - `currentIdentity` — what `approve`/`deny` call: the verified identity of whoever runs the command.
 * - `resolveCredential` — both of the above, and `whoami`, in one place.
 *
 * Which credential is used, first found wins: `--token-file`, `DLPCTL_TOKEN`, a stored `dlpctl login`, the CI
 * system's own OIDC token (GitHub Actions, GitLab CI, CircleCI, Buildkite, Kubernetes: ci.ts), the
 * client-credentials grant (`identity.clientSecret`), and — only when a person is at a terminal and not in CI
 * — a device-flow login right there. Without an `identity` section the local OS user is used, unverified.
 * Logins (device flow, refresh, revocation) go out as the public client, or with `identity.loginClientSecret`
 * for providers that require a secret of device clients too (Google): `loginClient`.
 */
import path from 'node:path';
import type * as oidc from 'openid-client';
import type { Config, IdentityConfig } from '../config/types.js';
import { DlpctlError } from '../errors.js';
import type { Identity } from '../store/types.js';
import { systemClock, type Clock } from './clock.js';
import { withRefreshLock } from './refresh-lock.js';
import { deviceLogin, refreshLogin, verifyStored, type DeviceCodePrompt, type HumanLogin } from './human.js';
import { discoverIssuer, issuerSettings, type Issuer } from './issuer.js';
import { localIdentity } from './local.js';
import { TokenStore, type TokenBackend } from './token-store.js';
import type { VerifiedToken } from './verify.js';
import { IdentityWatch } from './watch.js';
import { detectCiToken, missingCiTokenHint, type CiToken, type CiTokenSource } from './ci.js';
import { TokenRejectedError } from './verify.js';
import { clientCredentials, readTokenFile, verifyWorkloadToken } from './workload.js';

export { IdentityWatch } from './watch.js';
export type { IdentityWatchEvents, IdentityWatchOptions } from './watch.js';
export { localIdentity, identityAllowed } from './local.js';
export { TokenVerifier, JwksCache, TokenRejectedError, groupsFromClaims } from './verify.js';
export type { VerifiedToken, RejectReason } from './verify.js';
export { TokenStore } from './token-store.js';
export type { StoredLogin, TokenStoreKind } from './token-store.js';
export type { DeviceCodePrompt } from './human.js';
export { systemClock } from './clock.js';
export { CI_TOKEN_SOURCES, detectCiToken } from './ci.js';
export type { CiToken, CiTokenSource } from './ci.js';
export type { Clock } from './clock.js';
export { keychainReader } from './keychain.js';

export type CredentialSource = 'local' | 'login' | 'env' | 'file' | 'client_credentials' | CiTokenSource;

export interface ResolveIdentityOptions {
  /** The loaded config (`identity` section used); null or without `identity`: the local OS user, unverified. */
  config: Pick<Config, 'identity'> & { file?: string } | null;
  env: NodeJS.ProcessEnv;
  homedir: string;
  /** `--token-file`: a workload token, re-read at every re-check. */
  tokenFile?: string;
  signal?: AbortSignal;
  /** A person can be asked to sign in (a TTY, not CI). Forced false when `CI` is set. */
  interactive: boolean;
  /** Shows the device code when an interactive login happens. Required for an interactive login. */
  onDeviceCode?: (prompt: DeviceCodePrompt) => void | Promise<void>;
  /** Where notices go (the token-file fallback). */
  notice?: (line: string) => void;
  /** `--id-token-var`: the GitLab CI `id_tokens:` variable (over `identity.workload.gitlabVariable`). */
  idTokenVar?: string;
  /** Tests: the fetch used for the CI system's token endpoint (GitHub Actions). */
  ciFetch?: typeof fetch;
  /** Re-check the identity with the provider now (refresh) even when the stored ID token is still valid. Default true. */
  fresh?: boolean;
  /** Tests. */
  clock?: Clock;
  tokenStore?: TokenStore;
  /** Resolves `identity.clientSecret` (secret references); default: env/file/keychain references. */
  resolveSecret?: (s: NonNullable<IdentityConfig['clientSecret']>) => Promise<string>;
  /** Watch tuning (tests). */
  recheckMs?: number;
}

export interface ResolvedCredential {
  identity: Identity;
  source: CredentialSource;
  /** When the credential expires (ms since the epoch); undefined for the local user. */
  expiresAt?: number;
  /** Renews the credential (refresh, re-read, re-grant); undefined for the local user. */
  renewable?: { renew(): Promise<VerifiedToken> };
  /** The first verified credential. */
  verified?: VerifiedToken;
  /** Environment variables that carry the credential (CI token variables): kept from `connect`'s child. */
  envNames?: string[];
}

export interface SessionIdentity {
  identity: Identity;
  /** Absent for the unverified local user. Call `watch.close()` when the tunnel closes. */
  watch?: IdentityWatch;
  /** `identity.maxSessionDuration` in ms. */
  maxSessionDuration?: number;
  /** As `ResolvedCredential.envNames`. */
  envNames?: string[];
}

/** `CI` set to anything but "false"/"0" (GitHub Actions, GitLab, Buildkite, CircleCI… all set `CI=true`). */
export function isCI(env: NodeJS.ProcessEnv): boolean {
  const ci = env.CI;
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}

async function defaultResolveSecret(opts: { env: NodeJS.ProcessEnv; homedir: string; configFile?: string | undefined }, s: NonNullable<IdentityConfig['clientSecret']>): Promise<string> {
  const [{ resolveSecret }, { keychainReader }] = await Promise.all([import('../config/secrets.js'), import('./keychain.js')]);
  return resolveSecret(s, {
    env: opts.env,
    homedir: opts.homedir,
    keychain: keychainReader(),
    ...(opts.configFile ? { baseDir: path.dirname(opts.configFile) } : {}),
  });
}

const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);

/**
 * The client `dlpctl login`, refresh and logout go out as: the public one, or with `identity.loginClientSecret`
 * (client_secret_post) for providers that require a secret even of device clients, such as Google's "TVs and
 * Limited Input devices" clients.
 */
export async function loginClient(
  iss: Issuer,
  cfg: Pick<IdentityConfig, 'loginClientSecret'>,
  opts: { env: NodeJS.ProcessEnv; homedir: string; configFile?: string | undefined; resolveSecret?: ResolveIdentityOptions['resolveSecret'] },
): Promise<oidc.Configuration> {
  if (!cfg.loginClientSecret) return iss.client;
  return iss.confidential(await resolveIdentitySecret(cfg.loginClientSecret, opts));
}

function resolveIdentitySecret(
  s: NonNullable<IdentityConfig['clientSecret']>,
  opts: { env: NodeJS.ProcessEnv; homedir: string; configFile?: string | undefined; resolveSecret?: ResolveIdentityOptions['resolveSecret'] },
): Promise<string> {
  return opts.resolveSecret ? opts.resolveSecret(s) : defaultResolveSecret(opts, s);
}

/** Finds and verifies the credential to use (see the module doc for the order). */
export async function resolveCredential(opts: ResolveIdentityOptions): Promise<ResolvedCredential> {
  const cfg = opts.config?.identity;
  if (!cfg) return { identity: localIdentity(opts.env), source: 'local' };
  const clock = opts.clock ?? systemClock;
  const iss = await discoverIssuer(issuerSettings(cfg), { clock });
  const secretOpts = { env: opts.env, homedir: opts.homedir, configFile: opts.config?.file, ...(opts.resolveSecret ? { resolveSecret: opts.resolveSecret } : {}) };
  const secret = async () => (cfg.clientSecret ? resolveIdentitySecret(cfg.clientSecret, secretOpts) : undefined);

  if (opts.tokenFile !== undefined) {
    const file = path.resolve(opts.tokenFile);
    const renew = async () => verifyWorkloadToken(iss, await readTokenFile(file), `the token in ${file}`, await secret());
    const verified = await renew();
    return { identity: verified.identity, source: 'file', expiresAt: verified.expiresAt, renewable: { renew }, verified };
  }
  const envToken = opts.env.DLPCTL_TOKEN?.trim();
  if (envToken) {
    const renew = async () => verifyWorkloadToken(iss, envToken, 'DLPCTL_TOKEN', await secret());
    const verified = await renew();
    return { identity: verified.identity, source: 'env', expiresAt: verified.expiresAt, renewable: { renew }, verified };
  }

  const store = opts.tokenStore ?? new TokenStore({ env: opts.env, homedir: opts.homedir });
  const stored = await store.get(iss.settings.issuer);
  if (stored && stored.login.clientId === iss.settings.clientId) {
    // The login client (and its secret) is resolved when a renewal needs it, not to read a login still valid.
    const human = new HumanCredential(iss, () => loginClient(iss, cfg, secretOpts), store, stored.backend, stored.login);
    const verified = await human.start(opts.fresh ?? true);
    return { identity: verified.identity, source: 'login', expiresAt: verified.expiresAt, renewable: human, verified };
  }

  const ci = await detectCiToken({
    env: opts.env,
    audience: iss.settings.audience ?? iss.settings.clientId,
    ...(cfg.workload?.detect !== undefined ? { detect: cfg.workload.detect } : {}),
    ...((opts.idTokenVar ?? cfg.workload?.gitlabVariable) ? { gitlabVariable: (opts.idTokenVar ?? cfg.workload?.gitlabVariable)! } : {}),
    ...(cfg.workload?.kubernetesTokenFile ? { kubernetesTokenFile: path.resolve(opts.config?.file && opts.config.file !== '<default>' ? path.dirname(opts.config.file) : '.', cfg.workload.kubernetesTokenFile) } : {}),
    ...(opts.ciFetch ? { fetch: opts.ciFetch } : {}),
  });
  if (ci) {
    const renew = async () => verifyCiToken(iss, ci, await secret());
    const verified = await renew();
    return { identity: verified.identity, source: ci.source, expiresAt: verified.expiresAt, renewable: { renew }, verified, envNames: ci.envNames };
  }

  if (cfg.clientSecret) {
    const scopes = (cfg.scopes ?? []).filter((s) => !OIDC_SCOPES.has(s));
    const renew = async () => clientCredentials(iss, (await secret())!, scopes);
    const verified = await renew();
    return { identity: verified.identity, source: 'client_credentials', expiresAt: verified.expiresAt, renewable: { renew }, verified };
  }

  const interactive = opts.interactive && !isCI(opts.env);
  if (interactive && opts.onDeviceCode) {
    const client = await loginClient(iss, cfg, secretOpts);
    const result = await loginWithDeviceFlow(iss, store, { client, onCode: opts.onDeviceCode, ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.notice ? { notice: opts.notice } : {}) });
    const human = new HumanCredential(iss, async () => client, store, result.backend, result.login.login);
    return { identity: result.login.verified.identity, source: 'login', expiresAt: result.login.verified.expiresAt, renewable: human, verified: result.login.verified };
  }
  throw new DlpctlError(
    'AUTH_REQUIRED',
    isCI(opts.env) || !opts.interactive
      ? `an identity is required by ${iss.settings.issuer} and dlpctl does not prompt ${isCI(opts.env) ? 'in CI (CI is set)' : 'without a terminal'}: ${missingCiTokenHint(opts.env) ?? `no CI OIDC token was found (GitHub Actions, GitLab CI, CircleCI, Buildkite, Kubernetes; see docs/ci.md)`}; or set DLPCTL_TOKEN to an OIDC token for audience ${iss.settings.audience ?? iss.settings.clientId}, pass --token-file, or configure identity.clientSecret`
      : `not logged in to ${iss.settings.issuer}; run dlpctl login`,
  );
}

/** Obtains the CI system's token and verifies it; a token for another audience says how to request the right one. */
async function verifyCiToken(iss: Issuer, ci: CiToken, clientSecret: string | undefined): Promise<VerifiedToken> {
  const token = await ci.obtain();
  try {
    return await verifyWorkloadToken(iss, token, ci.what, clientSecret);
  } catch (err) {
    if (err instanceof TokenRejectedError && err.reason === 'audience') throw new TokenRejectedError('audience', `${err.message}.\nFix: ${ci.audienceFix}`);
    throw err;
  }
}

/** A stored login that renews itself through the refresh token and writes rotated tokens back. */
class HumanCredential {
  readonly #iss: Issuer;
  readonly #client: () => Promise<oidc.Configuration>;
  readonly #store: TokenStore;
  #backend: TokenBackend;
  #login: HumanLogin['login'];

  constructor(iss: Issuer, client: () => Promise<oidc.Configuration>, store: TokenStore, backend: TokenBackend, login: HumanLogin['login']) {
    this.#iss = iss;
    this.#client = client;
    this.#store = store;
    this.#backend = backend;
    this.#login = login;
  }

  async start(fresh: boolean): Promise<VerifiedToken> {
    if (!fresh) {
      const ok = await verifyStored(this.#iss, this.#login).catch(() => null);
      if (ok && ok.verified.expiresAt - this.#iss.clock.now() > 60_000) return ok.verified;
    }
    return this.renew();
  }

  async renew(): Promise<VerifiedToken> {
    // One renewal at a time across processes: a refresh token used twice revokes the login (refresh-lock.ts).
    return withRefreshLock(this.#store.stateDir, this.#iss.settings.issuer, async () => {
      // Another dlpctl process may have rotated the refresh token since we read it. Under the lock the stored
      // login is the latest any process wrote (its savedAt may still be older: clocks differ), so use it.
      const latest = await this.#store.get(this.#iss.settings.issuer).catch(() => null);
      if (latest && latest.login.clientId === this.#login.clientId) {
        this.#login = latest.login;
        this.#backend = latest.backend;
      }
      const next = await refreshLogin(this.#iss, this.#login, await this.#client());
      this.#login = next.login;
      await this.#backend.set(next.login);
      return next.verified;
    });
  }
}

/** Runs the device flow and stores the tokens; `notice` gets the one-line file-fallback notice. */
export async function loginWithDeviceFlow(
  iss: Issuer,
  store: TokenStore,
  opts: { onCode: (p: DeviceCodePrompt) => void | Promise<void>; signal?: AbortSignal; notice?: (line: string) => void; onWait?: (ms: number) => void; client?: oidc.Configuration },
): Promise<{ login: HumanLogin; backend: TokenBackend }> {
  // Pick the backend first: `--token-store keychain` without a keychain fails before anyone signs in.
  const { backend, notice } = await store.target();
  const login = await deviceLogin(iss, { onCode: opts.onCode, ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.onWait ? { onWait: opts.onWait } : {}), ...(opts.client ? { client: opts.client } : {}) });
  await backend.set(login.login);
  if (notice) opts.notice?.(notice);
  return { login, backend };
}

/**
 * For `connect`: the identity a tunnel runs as, and a watch that re-checks it. With an `identity` section and
 * no usable credential this throws `AUTH_REQUIRED` (exit 3); a token that does not verify throws `AUTH_FAILED`.
 */
export async function resolveSessionIdentity(opts: ResolveIdentityOptions): Promise<SessionIdentity> {
  const cred = await resolveCredential(opts);
  const maxSessionDuration = opts.config?.identity?.maxSessionDuration;
  if (!cred.renewable || !cred.verified) return { identity: cred.identity, ...(maxSessionDuration !== undefined ? { maxSessionDuration } : {}) };
  const envNames = cred.envNames?.length ? { envNames: cred.envNames } : {};
  const recheck = opts.recheckMs ?? opts.config?.identity?.recheckInterval;
  const watch = new IdentityWatch(cred.renewable, cred.verified, {
    clock: opts.clock ?? systemClock,
    ...(recheck !== undefined ? { recheckMs: recheck } : {}),
    ...(maxSessionDuration !== undefined ? { maxSessionDuration } : {}),
  });
  opts.signal?.addEventListener('abort', () => watch.close(), { once: true });
  return { identity: cred.identity, watch, ...(maxSessionDuration !== undefined ? { maxSessionDuration } : {}), ...envNames };
}

/**
 * For `approve`/`deny`: the verified identity of whoever runs the command (never prompts; uses the stored
 * login's ID token while it is valid, else refreshes). Local OS user, unverified, without an `identity` section.
 */
export async function currentIdentity(opts: Omit<ResolveIdentityOptions, 'interactive' | 'onDeviceCode'>): Promise<Identity> {
  return (await resolveCredential({ ...opts, interactive: false, fresh: opts.fresh ?? false })).identity;
}
