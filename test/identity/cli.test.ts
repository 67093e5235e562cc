import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { testEnv } from '../helpers/cli.js';
import { screenAfter } from '../helpers/screen.js';
import { approveDevice, AUDIENCE, CLIENT_ID, sign, startProvider, type TestProvider } from './provider.js';

// ink renders only its last frame when it believes it runs in CI (is-in-ci reads the environment when ink is
// loaded); these tests look at the frames a terminal shows, so the CI run's own CI=true must not reach ink.
vi.hoisted(() => {
  for (const k of Object.keys(process.env)) if (k === 'CI' || k === 'CONTINUOUS_INTEGRATION' || k.startsWith('CI_')) delete process.env[k];
});

let op: TestProvider;
let home: string;
let env: NodeJS.ProcessEnv;
let config: string;

beforeAll(async () => {
  op = await startProvider();
  op.accounts.set('dana', { email: 'dana@example.com', groups: ['data-eng'] });
  home = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-cli-id-'));
  config = path.join(home, 'dlpctl.yaml');
  await writeFile(config, `version: 1\nidentity:\n  issuer: ${op.issuer}\n  clientId: ${CLIENT_ID}\n  audience: ${AUDIENCE}\n`);
  env = testEnv(home, { DLPCTL_CONFIG: config });
});
afterAll(async () => op?.close());

/** Runs dlpctl in-process; `stdinTTY` makes stdin look like a terminal (stdout/stderr stay pipes). */
function start(args: string[], opts: { env?: NodeJS.ProcessEnv; stdinTTY?: boolean } = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const stdin = Readable.from([]);
  if (opts.stdinTTY) Object.assign(stdin, { isTTY: true });
  const done = main(['node', 'dlpctl', ...args], { io: { stdout, stderr, stdin }, env: opts.env ?? env });
  return { done, out: () => out, err: () => err };
}

async function waitFor(cond: () => RegExpExecArray | null): Promise<RegExpExecArray> {
  for (let i = 0; i < 500; i++) {
    const m = cond();
    if (m) return m;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('timed out waiting');
}

describe('dlpctl login / whoami / logout', () => {
  it('login refuses to prompt in CI or without a terminal (exit 3)', async () => {
    const ci = start(['login'], { env: { ...env, CI: 'true' }, stdinTTY: true });
    expect(await ci.done).toBe(3);
    expect(ci.err()).toMatch(/CI is set.*DLPCTL_TOKEN/);
    const noTty = start(['login']);
    expect(await noTty.done).toBe(3);
    expect(noTty.err()).toMatch(/stdin is not a terminal/);
  });

  it('on a terminal: the device-code screen is gone after the login, and the keychain notice is printed once, after it', async () => {
    const home2 = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-cli-id-tty-'));
    const stdout = new PassThrough();
    const stderr = Object.assign(new PassThrough(), { isTTY: true, columns: 100, rows: 30 });
    let err = '';
    stderr.on('data', (c: Buffer) => (err += c.toString()));
    stdout.resume();
    const stdin = Object.assign(Readable.from([]), { isTTY: true });
    const done = main(['node', 'dlpctl', 'login'], {
      io: { stdout, stderr, stdin },
      env: { ...testEnv(home2, { DLPCTL_CONFIG: config }), DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/bus' },
    });
    const m = await waitFor(() => /or open (\S+?user_code=\S+?)\s/.exec(err));
    expect(screenAfter(err).join('\n')).toMatch(/╭/);
    await approveDevice(m[1]!, 'dana');
    expect(await done).toBe(0);
    const screen = screenAfter(err);
    expect(screen.join('\n'), JSON.stringify(err)).not.toMatch(/[╭╮╰╯│]/);
    expect(screen.filter((l) => l.includes('no OS keychain is reachable'))).toEqual([expect.stringMatching(/^dlpctl: no OS keychain is reachable; tokens are stored in /)]);
    expect(screen.at(-1)).toContain('logged in to');
  }, 60_000);

  it('logs in with the device flow, shows who you are, and logs out revoking at the provider', async () => {
    const login = start(['login', '--token-store', 'file'], { stdinTTY: true });
    const m = await waitFor(() => /or open (\S+?)\)/.exec(login.err()));
    expect(login.err()).toMatch(/^To sign in, open \S+ and enter the code \S+/m);
    await approveDevice(m[1]!, 'dana');
    expect(await login.done).toBe(0);
    expect(login.err()).toContain(`logged in to ${op.issuer} as dana@example.com (groups: data-eng)`);

    const tokensFile = path.join(home, '.local/state/dlpctl/tokens.json');
    const stored = JSON.parse(await readFile(tokensFile, 'utf8'))[op.issuer];
    const secrets = [stored.refreshToken, stored.idToken, stored.accessToken] as string[];

    const who = start(['whoami', '--json']);
    expect(await who.done).toBe(0);
    const j = JSON.parse(who.out());
    expect(j).toMatchObject({ issuer: op.issuer, subject: 'dana', email: 'dana@example.com', groups: ['data-eng'], kind: 'human', verified: true, source: 'login' });
    expect(Date.parse(j.expiresAt)).toBeGreaterThan(Date.now());

    const human = start(['whoami']);
    expect(await human.done).toBe(0);
    expect(human.out()).toMatch(/^subject\s+dana$/m);

    const out = start(['logout', '--json']);
    expect(await out.done).toBe(0);
    expect(JSON.parse(out.out())).toEqual({ issuer: op.issuer, loggedIn: true, revoked: true, removedFrom: [tokensFile] });
    // Revoked at the provider: the old refresh token no longer works.
    const meta = await oidc.discovery(new URL(op.issuer), CLIENT_ID, undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
    await expect(oidc.refreshTokenGrant(meta, stored.refreshToken)).rejects.toMatchObject({ error: 'invalid_grant' });

    const after = start(['whoami']);
    expect(await after.done).toBe(3);
    expect(after.err()).toMatch(/dlpctl login|DLPCTL_TOKEN/);

    for (const r of [login, who, human, out, after]) for (const s of secrets) {
      expect(r.out()).not.toContain(s);
      expect(r.err()).not.toContain(s);
    }
  }, 60_000);

  it('whoami with DLPCTL_TOKEN shows a verified machine identity', async () => {
    const t = Math.floor(Date.now() / 1000);
    const token = await sign(op.keys[0]!, { iss: op.issuer, sub: 'repo:acme/app', aud: AUDIENCE, iat: t, exp: t + 300, groups: ['ci'] });
    const r = start(['whoami', '--json'], { env: { ...env, CI: 'true', DLPCTL_TOKEN: token } });
    expect(await r.done).toBe(0);
    expect(JSON.parse(r.out())).toMatchObject({ subject: 'repo:acme/app', kind: 'machine', verified: true, groups: ['ci'], source: 'env' });
    expect(r.out() + r.err()).not.toContain(token);
    const bad = start(['whoami'], { env: { ...env, CI: 'true', DLPCTL_TOKEN: `${token.slice(0, -4)}AAAA` } });
    expect(await bad.done).toBe(3);
    expect(bad.err()).toMatch(/invalid signature/);
    expect(bad.err()).not.toContain(token.slice(0, 40));
  });
});
