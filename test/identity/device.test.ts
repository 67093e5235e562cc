import { once } from 'node:events';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DlpctlError } from '../../src/errors.js';
import { parseSecretString } from '../../src/config/secrets.js';
import { loginClient, loginWithDeviceFlow, resolveSessionIdentity, currentIdentity } from '../../src/identity/index.js';
import { revokeLogin } from '../../src/identity/human.js';
import { discoverIssuer, issuerSettings, type Issuer } from '../../src/identity/issuer.js';
import { TokenStore } from '../../src/identity/token-store.js';
import type { DeviceCodePrompt } from '../../src/identity/human.js';
import { manualClock, type ManualClock } from './clock.js';
import { approveDevice, CLIENT_ID, startProvider, TV_CLIENT_ID, TV_CLIENT_SECRET, type TestProvider } from './provider.js';

let op: TestProvider;
beforeAll(async () => {
  op = await startProvider();
  op.accounts.set('alice', { email: 'alice@example.com', groups: ['data-eng', 'oncall'] });
});
afterAll(async () => op?.close());

async function setup(): Promise<{ clock: ManualClock; iss: Issuer; store: TokenStore; home: string; env: NodeJS.ProcessEnv }> {
  const clock = manualClock(Date.now());
  const iss = await discoverIssuer(issuerSettings({ issuer: op.issuer, clientId: CLIENT_ID }), { clock });
  const home = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-id-'));
  const env = { HOME: home, XDG_STATE_HOME: path.join(home, 'state') };
  const store = new TokenStore({ env, homedir: home, prefer: 'file', keychain: async () => null });
  return { clock, iss, store, home, env };
}

async function failure(p: Promise<unknown>): Promise<DlpctlError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DlpctlError);
  return err as DlpctlError;
}

describe('device flow login against oidc-provider', () => {
  it('signs in end to end, verifies the ID token and stores the tokens in a 0600 file', async () => {
    const { clock, iss, store, env } = await setup();
    const shown: DeviceCodePrompt[] = [];
    const notices: string[] = [];
    const { login, backend } = await loginWithDeviceFlow(iss, store, {
      onCode: async (p) => {
        shown.push(p);
        await approveDevice(p.verificationUriComplete!, 'alice');
      },
      notice: (l) => notices.push(l),
    });
    expect(shown[0]!.userCode).toMatch(/\S/);
    expect(login.verified.identity).toEqual({ issuer: op.issuer, subject: 'alice', email: 'alice@example.com', groups: ['data-eng', 'oncall'], kind: 'human', verified: true });
    expect(login.refreshable).toBe(true);
    expect(clock.sleeps[0]).toBe(5000); // RFC 8628 default when the provider names no interval
    expect(backend.kind).toBe('file');
    const file = path.join(env.XDG_STATE_HOME!, 'dlpctl', 'tokens.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    const saved = JSON.parse(await readFile(file, 'utf8'));
    expect(saved[op.issuer].refreshToken).toBe(login.login.refreshToken);
    for (const line of notices) for (const t of [login.login.refreshToken!, login.login.idToken!, login.login.accessToken!]) expect(line).not.toContain(t);
  });

  it('honours slow_down by polling 5 s less often from then on', async () => {
    const { clock, iss, store } = await setup();
    op.slowDowns.remaining = 1;
    const pollsBefore = op.polls;
    const { login } = await loginWithDeviceFlow(iss, store, { onCode: (p) => approveDevice(p.verificationUriComplete!, 'alice').then(() => {}) });
    expect(login.verified.identity.subject).toBe('alice');
    expect(op.polls - pollsBefore).toBe(2);
    expect(clock.sleeps).toEqual([5000, 10000]);
  });

  it('reports a denial in the browser (access_denied), exit 3', async () => {
    const { iss, store } = await setup();
    const err = await failure(loginWithDeviceFlow(iss, store, { onCode: (p) => approveDevice(p.verificationUriComplete!, 'alice', { deny: true }).then(() => {}) }));
    expect(err.message).toMatch(/denied/);
    expect(err.exitCode).toBe(3);
  });

  it('reports an expired code (expired_token from the provider, and its own deadline)', async () => {
    const { iss, store, clock } = await setup();
    const e1 = await failure(loginWithDeviceFlow(iss, store, { onCode: (p) => op.expireDeviceCode(p.userCode) }));
    expect(e1.message).toMatch(/code expired/);
    const e2 = await failure(loginWithDeviceFlow(iss, store, { onCode: () => clock.advance(3_600_000) }));
    expect(e2.message).toMatch(/code expired/);
    expect(e2.exitCode).toBe(3);
  });
});

describe('refresh and revocation', () => {
  async function loggedIn(user: string) {
    const s = await setup();
    op.accounts.set(user, { email: `${user}@example.com`, groups: ['analysts'] });
    await loginWithDeviceFlow(s.iss, s.store, { onCode: (p) => approveDevice(p.verificationUriComplete!, user).then(() => {}) });
    return s;
  }

  it('refreshes ahead of time, writes the rotated refresh token back, and revokes when the account is disabled', async () => {
    const { clock, store, env, home } = await loggedIn('bob');
    const before = (await store.get(op.issuer))!.login.refreshToken;
    const { identity, watch } = await resolveSessionIdentity({
      config: { identity: { issuer: op.issuer, clientId: CLIENT_ID, groupsClaim: 'groups', maxSessionDuration: 3_600_000 } },
      env,
      homedir: home,
      interactive: false,
      clock,
      tokenStore: store,
    });
    expect(identity.subject).toBe('bob');
    expect(watch).toBeDefined();
    expect(watch!.maxSessionDuration).toBe(3_600_000);
    const afterStart = (await store.get(op.issuer))!.login.refreshToken;
    expect(afterStart).not.toBe(before); // rotated at start, and persisted

    op.accounts.set('bob', { email: 'bob@example.com', groups: ['analysts', 'admins'] });
    const refreshed = once(watch!, 'refreshed');
    clock.advance(45_000);
    const [next] = await refreshed;
    expect(next.groups).toEqual(['analysts', 'admins']);
    expect(watch!.valid).toBe(true);

    op.disabled.add('bob');
    const revoked = once(watch!, 'revoked');
    clock.advance(45_000);
    const [reason] = await revoked;
    expect(reason).toMatch(/bob is no longer valid/);
    expect(reason).toMatch(/disabled or the login revoked/);
    expect(watch!.valid).toBe(false);
    const stored = (await store.get(op.issuer))!.login;
    for (const t of [stored.refreshToken!, stored.idToken!, stored.accessToken!]) expect(reason).not.toContain(t);
    op.disabled.delete('bob');
  });

  it('revokes when the refresh token is revoked at the provider', async () => {
    const { clock, store, env, home } = await loggedIn('carol');
    const { watch } = await resolveSessionIdentity({
      config: { identity: { issuer: op.issuer, clientId: CLIENT_ID, groupsClaim: 'groups' } },
      env,
      homedir: home,
      interactive: false,
      clock,
      tokenStore: store,
    });
    await op.revokeAccount('carol');
    const revoked = once(watch!, 'revoked');
    clock.advance(45_000);
    expect((await revoked)[0]).toMatch(/carol/);
    // And a new session cannot start either.
    const err = await failure(currentIdentity({ config: { identity: { issuer: op.issuer, clientId: CLIENT_ID, groupsClaim: 'groups' } }, env, homedir: home, clock, tokenStore: store, fresh: true }));
    expect(err.code).toBe('AUTH_REQUIRED');
  });

  it('two processes renewing one login at once both get it, and the refresh token is never used twice', async () => {
    const { store, env, home } = await loggedIn('dave');
    const cfg = { identity: { issuer: op.issuer, clientId: CLIENT_ID, groupsClaim: 'groups' } };
    // Each "process" has its own token store over the same files, and its own clock.
    const processes = Array.from({ length: 3 }, () => ({ store: new TokenStore({ env, homedir: home, prefer: 'file', keychain: async () => null }), clock: manualClock(Date.now()) }));
    const results = await Promise.allSettled(processes.map((p) => currentIdentity({ config: cfg, env, homedir: home, clock: p.clock, tokenStore: p.store, fresh: true })));
    // With refresh-token rotation, a second use of one refresh token makes the provider revoke the grant.
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value.subject : String(r.reason)))).toEqual(['dave', 'dave', 'dave']);
    const again = await currentIdentity({ config: cfg, env, homedir: home, clock: manualClock(Date.now()), tokenStore: store, fresh: true });
    expect(again.subject).toBe('dave');
  });

  it('never prompts without a terminal or in CI: AUTH_REQUIRED naming the CI options', async () => {
    const { store, env, home } = await setup();
    const cfg = { identity: { issuer: op.issuer, clientId: CLIENT_ID, groupsClaim: 'groups' } };
    let prompted = false;
    const err = await failure(
      resolveSessionIdentity({ config: cfg, env: { ...env, CI: 'true' }, homedir: home, interactive: true, tokenStore: store, onDeviceCode: () => { prompted = true; } }),
    );
    expect(prompted).toBe(false);
    expect(err.exitCode).toBe(3);
    expect(err.message).toMatch(/DLPCTL_TOKEN/);
  });
});

describe('a device client that must send its secret (Google "TVs and Limited Input devices")', () => {
  const secretRef = parseSecretString('${env:TV_SECRET}');
  const cfg = { identity: { issuer: op?.issuer ?? '', clientId: TV_CLIENT_ID, groupsClaim: 'groups', loginClientSecret: secretRef } };

  async function tvSetup() {
    const clock = manualClock(Date.now());
    const iss = await discoverIssuer(issuerSettings({ issuer: op.issuer, clientId: TV_CLIENT_ID }), { clock });
    const home = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-id-'));
    const env = { HOME: home, XDG_STATE_HOME: path.join(home, 'state'), TV_SECRET: TV_CLIENT_SECRET };
    const store = new TokenStore({ env, homedir: home, prefer: 'file', keychain: async () => null });
    return { clock, iss, home, env, store };
  }

  it('without identity.loginClientSecret the provider refuses to start the login, and dlpctl says so', async () => {
    const { iss, store } = await tvSetup();
    const err = await failure(loginWithDeviceFlow(iss, store, { onCode: () => {} }));
    expect(err.exitCode).toBe(3);
    expect(err.message).toMatch(/refused to start a device login.*invalid_client/);
  });

  it('with it: signs in, renews through the refresh token and logs out, the secret sent each time and stored nowhere', async () => {
    const { iss, store, env, home, clock } = await tvSetup();
    const c = { ...cfg, identity: { ...cfg.identity, issuer: op.issuer } };
    const client = await loginClient(iss, c.identity, { env, homedir: home });
    const { login } = await loginWithDeviceFlow(iss, store, { client, onCode: (p) => approveDevice(p.verificationUriComplete!, 'alice').then(() => {}) });
    expect(login.verified.identity).toMatchObject({ subject: 'alice', kind: 'human', verified: true });
    const file = path.join(env.XDG_STATE_HOME, 'dlpctl', 'tokens.json');
    expect(await readFile(file, 'utf8')).not.toContain(TV_CLIENT_SECRET);

    // A later process renews the stored login with the configured secret (fresh: a refresh-token grant).
    const renewed = await currentIdentity({ config: c, env, homedir: home, clock, tokenStore: store, fresh: true });
    expect(renewed.subject).toBe('alice');
    const saved = JSON.parse(await readFile(file, 'utf8'));
    expect(saved[op.issuer].accessToken).not.toBe(login.login.accessToken); // a new access token: the refresh grant went through
    // Without the secret, the same renewal is refused (the login cannot be renewed), not silently kept.
    const refused = await failure(currentIdentity({ config: { identity: { issuer: op.issuer, clientId: TV_CLIENT_ID, groupsClaim: 'groups' } }, env, homedir: home, clock, tokenStore: store, fresh: true }));
    expect(refused.code).toBe('AUTH_REQUIRED');

    // Logout revokes with the secret too.
    expect(await revokeLogin(iss, saved[op.issuer], client)).toBe('revoked');
    const after = await failure(currentIdentity({ config: c, env, homedir: home, clock, tokenStore: store, fresh: true }));
    expect(after.code).toBe('AUTH_REQUIRED');
  });

  it('an unset secret reference is a clear error before anything is sent', async () => {
    const { iss, home } = await tvSetup();
    const err = await loginClient(iss, { loginClientSecret: secretRef }, { env: { HOME: home }, homedir: home }).then(() => null, (e: unknown) => e as Error);
    expect(err?.message).toMatch(/TV_SECRET/);
    expect(err?.message).not.toContain(TV_CLIENT_SECRET);
  });
});
