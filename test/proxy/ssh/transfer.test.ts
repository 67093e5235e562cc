/**
 * File transfer through the tunnel with the real OpenSSH clients: `scp -O` (legacy, an exec channel),
 * `scp` (sftp-based default), `sftp`, and `git` over ssh; sftp allowed or denied by policy; file operations
 * recorded. The tunnel here has no mask rule, so every file must arrive byte for byte; downloads under mask rules
 * and path rules are in downloads.test.ts.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoreEvent } from '../../../src/store/types.js';
import { sh, startSshFixture, type SshFixture, type TestTunnel } from './fixture.js';

let fx: SshFixture;
let t: TestTunnel;
let denied: TestTunnel;
let wrapper: string;
let work: string;

beforeAll(async () => {
  fx = await startSshFixture();
  // No mask rule: files must arrive byte for byte (masked downloads: downloads.test.ts).
  t = await fx.tunnel({
    policies: `  audit:
    - name: forward-off
      when: { ssh: { channels: [forward] } }
      action: deny
`,
    use: ['audit'],
  });
  denied = await fx.tunnel({
    policies: `  nosftp:
    - name: no-sftp
      when: { ssh: { channels: [sftp] } }
      action: deny
      message: use the approved transfer path
`,
    use: ['nosftp'],
  });
  work = path.join(fx.dir, 'work');
  await fs.mkdir(work);
  // scp and sftp take one program for -S: a two-line wrapper around the prefix.
  wrapper = path.join(fx.dir, 'dlpctl-ssh');
  await fs.writeFile(wrapper, '#!/bin/sh\nexec $DLPCTL_SSH "$@"\n', { mode: 0o755 });
  await sh(`head -c 3000000 /dev/urandom > ${work}/blob && (for i in $(seq 1 2000); do echo "line $i jane.doe@example.com"; done) > ${work}/text`);
});
afterAll(async () => {
  await fx?.stop();
});

const env = (tt: TestTunnel) => ({ ...process.env, ...tt.env });
const sum = async (f: string) => (await sh(`sha256sum < ${f}`)).stdout.split(' ')[0]!;

async function sessionEvents(from: number): Promise<StoreEvent[]> {
  const all = await fx.events();
  return all.slice(from);
}

describe('file transfer through the tunnel', { timeout: 240_000 }, () => {
  it('scp -O (legacy protocol) uploads and downloads binary and text files unchanged; the command is recorded', async () => {
    const before = (await fx.events()).length;
    await fs.mkdir(`${work}/legacy`);
    const up = await sh(`scp -O -S ${wrapper} ${work}/blob ${work}/text box:${work}/legacy/`, { env: env(t) });
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    expect(await sum(`${work}/legacy/blob`)).toBe(await sum(`${work}/blob`));
    expect(await sum(`${work}/legacy/text`)).toBe(await sum(`${work}/text`));
    const down = await sh(`scp -O -S ${wrapper} box:${work}/legacy/blob ${work}/down-legacy`, { env: env(t) });
    expect(down.code).toBe(0);
    expect(await sum(`${work}/down-legacy`)).toBe(await sum(`${work}/blob`));
    const ev = await sessionEvents(before);
    expect(ev.some((e) => e.type === 'ssh.command' && /^scp( -[-\w]+)* -t\b/.test(e.command) && e.decision === 'allow')).toBe(true);
    expect(ev.some((e) => e.type === 'ssh.command' && /^scp( -[-\w]+)* -f\b/.test(e.command) && e.decision === 'allow')).toBe(true);
  });

  it('scp (sftp-based default) uploads and downloads; the file operations are recorded', async () => {
    const before = (await fx.events()).length;
    const up = await sh(`scp -S ${wrapper} ${work}/blob box:${work}/up-sftp`, { env: env(t) });
    expect(up.code).toBe(0);
    expect(await sum(`${work}/up-sftp`)).toBe(await sum(`${work}/blob`));
    const down = await sh(`scp -S ${wrapper} box:${work}/up-sftp ${work}/down-sftp`, { env: env(t) });
    expect(down.code).toBe(0);
    expect(await sum(`${work}/down-sftp`)).toBe(await sum(`${work}/blob`));
    const ev = await sessionEvents(before);
    const ops = ev.filter((e) => e.type === 'ssh.command' && e.channel === 'sftp').map((e) => (e as { command: string }).command);
    expect(ops.some((o) => /^sftp open\(write,create/.test(o) && o.endsWith(JSON.stringify(`${work}/up-sftp`)))).toBe(true);
    expect(ops).toContain(`sftp open(read) ${JSON.stringify(`${work}/up-sftp`)}`);
    expect(ev.some((e) => e.type === 'ssh.channel' && e.channel === 'sftp' && e.phase === 'open' && e.decision === 'allow')).toBe(true);
  });

  it('sftp: mkdir, put, rename, ls, get, rm, rmdir — each recorded', async () => {
    const before = (await fx.events()).length;
    const batch = path.join(fx.dir, 'batch');
    await fs.writeFile(
      batch,
      [`mkdir ${work}/d`, `put ${work}/text ${work}/d/a.txt`, `rename ${work}/d/a.txt ${work}/d/b.txt`, `ls ${work}/d`, `get ${work}/d/b.txt ${work}/got.txt`, `rm ${work}/d/b.txt`, `rmdir ${work}/d`].join('\n') + '\n',
    );
    const r = await sh(`sftp -S ${wrapper} -b ${batch} box`, { env: env(t) });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('b.txt');
    expect(await sum(`${work}/got.txt`)).toBe(await sum(`${work}/text`));
    await expect(fs.stat(`${work}/d`)).rejects.toThrow();
    const ops = (await sessionEvents(before)).filter((e) => e.type === 'ssh.command' && e.channel === 'sftp').map((e) => (e as { command: string }).command);
    const q = (p: string) => JSON.stringify(p);
    expect(ops).toEqual(
      expect.arrayContaining([
        `sftp mkdir ${q(`${work}/d`)}`,
        `sftp rename ${q(`${work}/d/a.txt`)} ${q(`${work}/d/b.txt`)}`,
        `sftp open(write,create,truncate) ${q(`${work}/d/a.txt`)}`,
        `sftp opendir ${q(`${work}/d/`)}`,
        `sftp open(read) ${q(`${work}/d/b.txt`)}`,
        `sftp remove ${q(`${work}/d/b.txt`)}`,
        `sftp rmdir ${q(`${work}/d`)}`,
      ]),
    );
  });

  it('denies the sftp subsystem by policy: sftp and default scp fail, nothing is written; legacy exec is decided separately', async () => {
    const r = await sh(`echo ls | sftp -S ${wrapper} -b - box 2>&1; echo "status=$?"`, { env: env(denied) });
    expect(r.stdout).toMatch(/status=[1-9]/);
    const s = await sh(`scp -S ${wrapper} ${work}/text box:${work}/should-not-exist`, { env: env(denied) });
    expect(s.code).not.toBe(0);
    await expect(fs.stat(`${work}/should-not-exist`)).rejects.toThrow();
    const ev = await fx.events();
    expect(ev.some((e) => e.type === 'ssh.channel' && e.channel === 'sftp' && e.decision === 'deny' && e.rule === 'nosftp/no-sftp')).toBe(true);
  });

  it('git clone and push over ssh with GIT_SSH_COMMAND="$DLPCTL_SSH"', async () => {
    const repo = path.join(work, 'repo.git');
    const g = `git -c user.name=t -c user.email=t@example.invalid -c init.defaultBranch=main -c protocol.version=2`;
    expect((await sh(`${g} init -q --bare ${repo} && ${g} init -q ${work}/src && cd ${work}/src && echo hi > f && ${g} add f && ${g} commit -qm one && ${g} push -q ${repo} HEAD:main`)).code).toBe(0);
    const e = { ...env(t), GIT_SSH_COMMAND: t.env.DLPCTL_SSH! };
    const clone = await sh(`${g} clone -q box:${repo} ${work}/clone && cat ${work}/clone/f`, { env: e });
    expect(clone.stderr).toBe('');
    expect(clone.stdout).toBe('hi\n');
    const push = await sh(`cd ${work}/clone && echo two >> f && ${g} commit -qam two && ${g} push -q origin HEAD:main && git --git-dir=${repo} log --format=%s main`, { env: e });
    expect(push.code).toBe(0);
    expect(push.stdout).toBe('two\none\n');
  });
});
