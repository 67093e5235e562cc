/**
 * Command rules see what the shell will run: through the tunnel with the real OpenSSH client and sshd, each way
 * of hiding `cat /etc/shadow` from a rule (quotes, escapes, ANSI-C strings, lists, pipes, nested `sh -c`) is
 * denied before anything runs (exit 126, the rule named on stderr); benign commands, and commands that only
 * mention the text, still run; a line that cannot be resolved statically is denied, saying why.
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sh, startSshFixture, type SshFixture, type TestTunnel } from './fixture.js';

let fx: SshFixture;
let anchored: TestTunnel;
let plain: TestTunnel;
let allowOnly: TestTunnel;

beforeAll(async () => {
  fx = await startSshFixture();
  anchored = await fx.tunnel({
    policies: `  guard:
    - name: no-shadow
      when: { ssh: { command: "^cat /etc/shadow" } }
      action: deny
      message: the shadow file stays on the host
`,
    use: ['guard'],
  });
  plain = await fx.tunnel({
    policies: `  guard:
    - name: no-shadow
      when: { ssh: { command: "cat /etc/shadow" } }
      action: deny
`,
    use: ['guard'],
  });
  // Default deny; only `ls` and `echo` are allowed: an allow rule must cover every simple command.
  allowOnly = await fx.tunnel({
    policies: `  only:
    - name: ls-echo
      when: { ssh: { command: "^(ls|echo)( |$)" } }
      action: allow
`,
    use: ['only'],
    resource: '    default: deny',
  });
});
afterAll(async () => {
  await fx?.stop();
});

/** Quotes a remote command for the local /bin/sh that runs the ssh client. */
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const run = (t: TestTunnel, cmd: string) => sh(`$DLPCTL_SSH box ${q(cmd)}`, { env: { ...process.env, ...t.env } });

const BYPASSES = [
  `cat /etc/sha""dow`,
  `c\\at /etc/shadow`,
  `$'\\x63at' /etc/shadow`,
  `bash -c 'cat /etc/shadow'`,
  `true; cat /etc/shadow`,
  `true && cat /etc/shadow`,
  `echo | cat /etc/shadow`,
  `sh -c "sh -c 'cat /etc/shadow'"`,
];

describe('ssh command rules over the normalised command line', { timeout: 180_000 }, () => {
  for (const [name, get] of [['anchored ^cat /etc/shadow', () => anchored], ['unanchored cat /etc/shadow', () => plain]] as const) {
    it(`denies every bypass of a rule (${name}): exit 126, the rule on stderr, nothing runs`, async () => {
      const t = get();
      const marker = `${fx.dir}/ran-${name.length}`;
      for (const b of BYPASSES) {
        const r = await run(t, `${b}; touch ${marker}`);
        expect(r.code, b).toBe(126);
        expect(r.stderr, b).toContain('denied by policy guard rule no-shadow');
        expect(r.stdout, b).not.toContain('root:');
      }
      await expect(fs.stat(marker)).rejects.toThrow();
      const denied = (await fx.events()).filter((e) => e.type === 'ssh.command' && e.decision === 'deny' && e.rule === 'guard/no-shadow');
      expect(denied.length).toBeGreaterThanOrEqual(BYPASSES.length);
    });
  }

  it('lets benign commands run; an echo of the text is not the command under an anchored rule', async () => {
    const ls = await run(anchored, 'ls -la /');
    expect(ls.code).toBe(0);
    expect(ls.stdout).toContain('etc');
    const echo = await run(anchored, `echo 'cat /etc/shadow is denied'`);
    expect(echo.stderr).toBe('');
    expect(echo.code).toBe(0);
    expect(echo.stdout).toBe('cat /etc/shadow is denied\n');
    // The unanchored rule matches the text wherever it is, as its regex says.
    expect((await run(plain, `echo 'cat /etc/shadow is denied'`)).code).toBe(126);
  });

  it('fails closed on a line it cannot resolve while a command rule applies, and says why', async () => {
    for (const cmd of ['X=cat; $X /etc/shadow', 'eval "$(printf %s Y2F0IC9ldGMvc2hhZG93 | base64 -d)"', "echo 'cat /etc/shadow' | bash"]) {
      const r = await run(anchored, cmd);
      expect(r.code, cmd).toBe(126);
      expect(r.stderr, cmd).toContain('cannot tell statically what this command line runs');
      expect(r.stderr, cmd).toContain('rule no-shadow');
    }
  });

  it('an allow rule covers a line only when it covers every simple command', async () => {
    const ok = await run(allowOnly, 'ls / && echo done');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('done');
    const marker = `${fx.dir}/allow-bypass`;
    for (const cmd of [`ls; touch ${marker}`, `echo $(touch ${marker})`, `ls | sh -c 'touch ${marker}'`]) {
      const r = await run(allowOnly, cmd);
      expect(r.code, cmd).toBe(126);
      expect(r.stderr, cmd).toContain('default');
    }
    await expect(fs.stat(marker)).rejects.toThrow();
  });
});
