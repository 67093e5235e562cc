import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli.js';

const run = promisify(execFile);
const tsx = path.join(repoRoot, 'node_modules/.bin/tsx');
const child = path.join(repoRoot, 'test/identity/keychain-child.ts');
const haveKeyring = existsSync('/usr/bin/dbus-run-session') && existsSync('/usr/bin/gnome-keyring-daemon');

describe('token store', () => {
  it.runIf(haveKeyring)('uses a real Secret Service (gnome-keyring under dbus-run-session)', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-kc-'));
    const script = `echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; exec "${tsx}" "${child}" "${home}"`;
    const { stdout } = await run('dbus-run-session', ['--', 'sh', '-c', script], { env: { PATH: process.env.PATH, HOME: home }, timeout: 60_000 });
    const r = JSON.parse(stdout);
    expect(r).toEqual({ kind: 'keychain', notice: null, roundTrip: true, foundIn: 'keychain', removed: ['the OS keychain'], after: null });
    expect(existsSync(path.join(home, 'state/dlpctl/tokens.json'))).toBe(false);
  }, 90_000);

  it('falls back to a 0600 file with a one-line notice when no keychain answers', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-kc-'));
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/bus' };
    const { stdout } = await run(tsx, [child, home], { env, timeout: 60_000 });
    const r = JSON.parse(stdout);
    expect(r.kind).toBe('file');
    expect(r.notice).toBe(`no OS keychain is reachable; tokens are stored in ${home}/state/dlpctl/tokens.json (mode 0600)`);
    expect(r.notice).not.toContain('rt-secret-value-kc-123');
    expect(r).toMatchObject({ roundTrip: true, foundIn: 'file', after: null });
  }, 90_000);
});
