/**
 * The approvals screen once through a real pseudo-terminal: the built binary (`npm run build` first) runs
 * under util-linux `script`, which gives it a pty; we type `a` and `q` into it. Skipped where `script` is
 * missing.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SessionStore } from '../../src/store/types.js';
import { binPath, repoRoot, testEnv } from '../helpers/cli.js';
import { openTestStore, pending, requesterSession } from './helpers.js';

// util-linux `script` gives the binary a real pty; it is on every Debian system (bsdutils), so under CI it
// must be there (the test runs and fails without it). Elsewhere, without it, the ink screen is still covered
// through ink-testing-library in screen.test.ts.
const hasScript = Boolean(process.env['CI']) || spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
let dir: string;
let url: string;
let store: SessionStore;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-pty-'));
  url = `sqlite:${path.join(dir, 'store.db')}`;
  store = await openTestStore(url);
});
afterAll(async () => {
  await store?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

it.skipIf(!hasScript)('dlpctl approvals on a pty: the screen lists the request, `a` approves it, `q` quits', async () => {
  const a = await pending(store, { sessionId: await requesterSession(store), maskedText: 'DELETE FROM pty_table WHERE id = ?' });
  const cmd = `'${process.execPath}' '${binPath}' approvals --store '${url}'`;
  const child = spawn('script', ['-qfec', cmd, '/dev/null'], { cwd: repoRoot, env: { ...testEnv(dir), TERM: 'xterm-256color', COLUMNS: '160', LINES: '40' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  const waitFor = async (text: string) => {
    for (let i = 0; i < 1000 && !out.includes(text); i++) await new Promise((r) => setTimeout(r, 20));
    if (!out.includes(text)) throw new Error(`no "${text}" on the pty; got:\n${out}`);
  };
  try {
    await waitFor('DELETE FROM pty_table');
    child.stdin.write('a');
    await waitFor(`${a.id} approved`);
    child.stdin.write('q');
    expect(await exited).toBe(0);
    expect((await store.getApproval(a.id))!).toMatchObject({ state: 'approved', decisions: [{ by: os.userInfo().username, decision: 'approve' }] });
  } finally {
    child.kill();
  }
});
