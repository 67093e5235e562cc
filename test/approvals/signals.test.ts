/**
 * Ending `dlpctl connect` (the built binary) while something waits for an approval: every exit path prints
 * clean `dlpctl: …` lines (no raw error, no stack) and exits with a documented code.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binPath } from '../helpers/cli.js';
import { startFixture, type Fixture } from '../proxy/pg-tunnel/fixture.js';

let fx: Fixture;
let config: string;
let env: NodeJS.ProcessEnv;
let storeUrl: string;

beforeAll(async () => {
  fx = await startFixture();
  config = path.join(fx.dir, 'dlpctl.yaml');
  storeUrl = `sqlite:${path.join(fx.dir, 'signals.db')}`;
  await fs.writeFile(
    config,
    `version: 1
resources:
  db:
    kind: postgres
    target: postgres://${fx.pg.user}@127.0.0.1:${fx.pg.port}/${fx.database}
    password: \${env:SIG_DB_PASSWORD}
    tls: { mode: disable }
    policies: [recommended, guard]
  gated:
    kind: postgres
    target: postgres://${fx.pg.user}@127.0.0.1:${fx.pg.port}/${fx.database}
    password: \${env:SIG_DB_PASSWORD}
    tls: { mode: disable }
    access: { approvers: [user:alice], maxDuration: 1m }
policies:
  guard:
    - name: deletes-need-approval
      when: { sql: { statements: [delete] } }
      action: approve
      approvers: [user:alice]
`,
  );
  const home = path.join(fx.dir, 'home');
  await fs.mkdir(home, { recursive: true });
  env = { PATH: process.env['PATH'], HOME: home, XDG_DATA_HOME: path.join(home, 'data'), XDG_STATE_HOME: path.join(home, 'state'), XDG_CONFIG_HOME: path.join(home, 'config'), USER: 'ci-bot', SIG_DB_PASSWORD: fx.pg.password, NO_COLOR: '1' };
}, 120_000);
afterAll(async () => fx?.stop());

async function untilPending(seen: () => string): Promise<void> {
  for (let i = 0; i < 300; i += 1) {
    if (/waiting for approval [A-Z0-9]{6}/.test(seen())) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no pending approval: ${seen()}`);
}

describe('a signal while an approval is pending', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} during a statement's approval: clean lines only, the command's exit status`, async () => {
      const child = spawn(process.execPath, [binPath, 'connect', 'db', '--config', config, '--store', storeUrl, '--', 'psql', '-X', '-At', '-c', 'delete from customers where id = 1'], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.stdout.resume();
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await untilPending(() => err);
      child.kill(signal);
      const code = await exited;
      expect(err).not.toMatch(/^Error|DlpctlError|store is closed|^\s+at /m);
      expect(err).not.toMatch(/^error: /m);
      expect(err).toMatch(/waiting for approval [A-Z0-9]{6}/);
      if (signal === 'SIGTERM') expect(code, err).toBe(143); // psql ended by the forwarded SIGTERM
      else {
        // psql turns the forwarded SIGINT into a cancel request: the held statement is denied, psql exits 1
        expect(err).toMatch(/canceled by the client while waiting for approval [A-Z0-9]{6}/);
        expect(code, err).toBe(1);
      }
    }, 60_000);
  }

  it('SIGTERM while waiting for a just-in-time access grant: one clean line, exit 143, the request withdrawn', async () => {
    const child = spawn(process.execPath, [binPath, 'connect', 'gated', '--config', config, '--store', storeUrl], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.resume();
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await untilPending(() => err);
    child.kill('SIGTERM');
    const code = await exited;
    const lines = err.trim().split('\n');
    expect(lines, err).toHaveLength(2);
    expect(lines[1]).toBe('dlpctl: interrupted (SIGTERM) while waiting for access to gated; the access request is withdrawn');
    expect(code).toBe(143);
    const { openStore } = await import('../../src/store/index.js');
    const st = await openStore(storeUrl);
    try {
      const id = /waiting for approval ([A-Z0-9]{6})/.exec(err)![1]!;
      expect((await st.getApproval(id))?.state).toBe('expired');
    } finally {
      await st.close();
    }
  }, 60_000);
});
