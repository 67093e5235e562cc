import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DlpctlError } from '../../src/errors.js';
import { resolveSessionIdentity, currentIdentity } from '../../src/identity/index.js';
import { parseSecretString } from '../../src/config/secrets.js';
import { manualClock } from './clock.js';
import { AUDIENCE, CI_CLIENT_ID, CI_CLIENT_SECRET, CLIENT_ID, newKey, sign, startProvider, type SigningKey, type TestProvider } from './provider.js';

let op: TestProvider;
let ciIssuer: TestProvider;
let key: SigningKey;
let home: string;

beforeAll(async () => {
  key = await newKey('wk-1');
  op = await startProvider({ keys: [key] });
  ciIssuer = await startProvider({ keys: [await newKey('ci-1')] });
  home = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-wl-'));
});
afterAll(async () => {
  await op?.close();
  await ciIssuer?.close();
});

const cfg = () => ({ identity: { issuer: op.issuer, clientId: CLIENT_ID, audience: AUDIENCE, groupsClaim: 'groups' } });
const env = (extra: NodeJS.ProcessEnv = {}) => ({ HOME: home, XDG_STATE_HOME: path.join(home, 'state'), CI: 'true', ...extra });

describe('workload tokens', () => {
  it('DLPCTL_TOKEN: verified, machine, and the watch ends the identity when it expires', async () => {
    const clock = manualClock(Date.now());
    const t = Math.floor(clock.now() / 1000);
    const token = await sign(key, { iss: op.issuer, sub: 'repo:acme/app:ref:refs/heads/main', aud: AUDIENCE, iat: t, exp: t + 120, groups: ['ci'] });
    const { identity, watch } = await resolveSessionIdentity({ config: cfg(), env: env({ DLPCTL_TOKEN: token }), homedir: home, interactive: false, clock });
    expect(identity).toMatchObject({ subject: 'repo:acme/app:ref:refs/heads/main', kind: 'machine', verified: true, groups: ['ci'] });
    const revoked = once(watch!, 'revoked');
    for (let i = 0; i < 10 && watch!.revokedReason === undefined; i++) {
      clock.advance(45_000);
      await new Promise((r) => setTimeout(r, 20));
    }
    const [reason] = await revoked;
    expect(reason).toMatch(/expired/);
    expect(reason).not.toContain(token);
  });

  it('DLPCTL_TOKEN for another audience is refused with exit 3 and no token in the message', async () => {
    const t = Math.floor(Date.now() / 1000);
    const token = await sign(key, { iss: op.issuer, sub: 'x', aud: 'something-else', iat: t, exp: t + 120 });
    const err = await resolveSessionIdentity({ config: cfg(), env: env({ DLPCTL_TOKEN: token }), homedir: home, interactive: false }).catch((e: unknown) => e as DlpctlError);
    expect(err).toBeInstanceOf(DlpctlError);
    expect((err as DlpctlError).exitCode).toBe(3);
    expect((err as DlpctlError).message).not.toContain(token);
  });

  it('--token-file: re-read at every check, so a rotated token keeps the session; a token for another subject ends it', async () => {
    const clock = manualClock(Date.now());
    const t = Math.floor(clock.now() / 1000);
    const file = path.join(home, 'token');
    await writeFile(file, `${await sign(key, { iss: op.issuer, sub: 'svc-a', aud: AUDIENCE, iat: t, exp: t + 120 })}\n`);
    const { watch } = await resolveSessionIdentity({ config: cfg(), env: env(), homedir: home, tokenFile: file, interactive: false, clock });
    await writeFile(file, await sign(key, { iss: op.issuer, sub: 'svc-a', aud: AUDIENCE, iat: t + 60, exp: t + 600 }));
    const refreshed = once(watch!, 'refreshed');
    clock.advance(45_000);
    await refreshed;
    expect(watch!.expiresAt).toBe((t + 600) * 1000);
    await writeFile(file, await sign(key, { iss: op.issuer, sub: 'svc-b', aud: AUDIENCE, iat: t + 60, exp: t + 600 }));
    const revoked = once(watch!, 'revoked');
    clock.advance(45_000);
    expect((await revoked)[0]).toMatch(/another identity/);
  });

  it('client credentials with a secret reference', async () => {
    const identity = await currentIdentity({
      config: { identity: { ...cfg().identity, clientId: CI_CLIENT_ID, clientSecret: parseSecretString('${env:CI_BOT_SECRET}') } },
      env: env({ CI_BOT_SECRET: CI_CLIENT_SECRET }),
      homedir: home,
    });
    expect(identity).toMatchObject({ issuer: op.issuer, subject: CI_CLIENT_ID, kind: 'machine', verified: true });
  });

  it('client credentials with a wrong secret fail with exit 3 without echoing it', async () => {
    const err = await currentIdentity({
      config: { identity: { ...cfg().identity, clientId: CI_CLIENT_ID, clientSecret: parseSecretString('${env:CI_BOT_SECRET}') } },
      env: env({ CI_BOT_SECRET: 'wrong-secret-value-123' }),
      homedir: home,
    }).catch((e: unknown) => e as DlpctlError);
    expect((err as DlpctlError).exitCode).toBe(3);
    expect((err as DlpctlError).message).not.toContain('wrong-secret-value-123');
  });

  it('RFC 8693: a CI token from another issuer is exchanged at the configured provider', async () => {
    op.trustForExchange(ciIssuer.issuer, ciIssuer.keys[0]!);
    const t = Math.floor(Date.now() / 1000);
    const ciToken = await sign(ciIssuer.keys[0]!, { iss: ciIssuer.issuer, sub: 'pipeline-7', aud: 'dlpctl', iat: t, exp: t + 300 });
    const exchangeCfg = { identity: { ...cfg().identity, clientId: CI_CLIENT_ID, clientSecret: parseSecretString('${env:CI_BOT_SECRET}') } };
    const identity = await currentIdentity({ config: exchangeCfg, env: env({ DLPCTL_TOKEN: ciToken, CI_BOT_SECRET: CI_CLIENT_SECRET }), homedir: home });
    expect(identity).toMatchObject({ issuer: op.issuer, subject: 'ci:pipeline-7', kind: 'machine', groups: ['ci'] });
    // A token from an issuer the provider does not trust is refused.
    const rogue = await newKey('rogue');
    const bad = await sign(rogue, { iss: 'http://127.0.0.1:9/rogue', sub: 'x', aud: 'dlpctl', iat: t, exp: t + 300 });
    const err = await currentIdentity({ config: exchangeCfg, env: env({ DLPCTL_TOKEN: bad, CI_BOT_SECRET: CI_CLIENT_SECRET }), homedir: home }).catch((e: unknown) => e as DlpctlError);
    expect((err as DlpctlError).exitCode).toBe(3);
    expect((err as DlpctlError).message).toMatch(/refused to exchange/);
  });

  it('without an identity section: the local user, unverified, no watch', async () => {
    const r = await resolveSessionIdentity({ config: null, env: env(), homedir: home, interactive: false });
    expect(r.identity.verified).toBe(false);
    expect(r.watch).toBeUndefined();
  });
});
