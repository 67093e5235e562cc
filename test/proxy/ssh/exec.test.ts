/**
 * Exec through the tunnel with the real OpenSSH client: DLPCTL_SSH, policy before anything runs upstream,
 * denial as stderr + 126, approvals, env allowlist, output masking (split across packets, ANSI, UTF-8),
 * recording (commands, decisions, exit statuses, bytes, masking counts, frames), no secret anywhere.
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideApproval } from '../../../src/approvals/decide.js';
import { eventually, sh, startSshFixture, type SshFixture, type TestTunnel } from './fixture.js';

const POLICIES = `  guard:
    - name: destructive
      when: { ssh: { command: "^(rm -rf /|shutdown|reboot|mkfs)" } }
      action: deny
      message: destructive commands are not allowed
    - name: sudo
      when: { ssh: { command: "^sudo " } }
      action: approve
      approvers: [group:sre]
      timeout: 1m
    - name: pii
      action: mask
      entities: [email, credit_card, us_ssn, secrets]
      with: redact
`;

let fx: SshFixture;
let t: TestTunnel;

beforeAll(async () => {
  fx = await startSshFixture();
  t = await fx.tunnel({ policies: POLICIES, use: ['guard'] });
});
afterAll(async () => {
  await fx?.stop();
});

const run = (cmd: string, extraEnv: Record<string, string> = {}) => sh(cmd, { env: { ...process.env, ...t.env, ...extraEnv } });

describe('ssh exec through the tunnel', { timeout: 120_000 }, () => {
  it('runs a command with $DLPCTL_SSH ANYHOST and returns its output and exit status', async () => {
    const r = await run(`$DLPCTL_SSH anyhost 'echo hello; id -un; exit 7'`);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`hello\n${fx.sshd.user}\n`);
    expect(r.code).toBe(7);
  });

  it('denies a command by policy before it runs: stderr message, exit status 126, session goes on', async () => {
    const marker = `${fx.dir}/must-not-exist`;
    const r = await run(`$DLPCTL_SSH box 'shutdown now; touch ${marker}'`);
    expect(r.code).toBe(126);
    expect(r.stderr).toContain('denied by policy guard rule destructive');
    expect(r.stderr).toContain('destructive commands are not allowed');
    await expect(fs.stat(marker)).rejects.toThrow();
    const events = await fx.events();
    expect(events.some((e) => e.type === 'ssh.command' && e.command.startsWith('shutdown now') && e.decision === 'deny' && e.rule === 'guard/destructive')).toBe(true);
  });

  it('holds an approve command until an approver decides, then runs it', async () => {
    const child = run(`$DLPCTL_SSH box 'sudo -n true 2>/dev/null; echo approved-ran'`);
    const pending = await eventually(async () => (await fx.store.listApprovals({ state: 'pending' }))[0], 'a pending approval');
    expect(pending.maskedText).toBe('sudo -n true 2>/dev/null; echo approved-ran');
    await decideApproval(fx.store, { id: pending.id, decision: 'approve', identity: { issuer: 'local', subject: 'sre-1', groups: ['sre'], kind: 'human', verified: true } });
    const r = await child;
    expect(r.stdout).toBe('approved-ran\n');
    expect(r.stderr).toContain(`waiting for approval ${pending.id}`);
    expect(r.code).toBe(0);
  });

  it('a denied approval ends the command with 126', async () => {
    const child = run(`$DLPCTL_SSH box 'sudo -n true'`);
    const pending = await eventually(async () => (await fx.store.listApprovals({ state: 'pending' }))[0], 'a pending approval');
    await decideApproval(fx.store, { id: pending.id, decision: 'deny', comment: 'not today', identity: { issuer: 'local', subject: 'sre-1', groups: ['sre'], kind: 'human', verified: true } });
    const r = await child;
    expect(r.code).toBe(126);
    expect(r.stderr).toContain('not today');
  });

  it('masks secrets and personal data in stdout and stderr, also when split across packets and pauses', async () => {
    // The card number arrives in two writes 50 ms apart (two SSH packets); the email on stderr.
    const r = await run(`$DLPCTL_SSH box 'printf "card 4111 1111 "; sleep 0.05; printf "1111 1111 end\\n"; echo "mail jane.doe@example.com" >&2; echo plain'`);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/4111|1111 1111/);
    expect(r.stdout).toContain('card ');
    expect(r.stdout).toContain(' end\nplain\n');
    expect(r.stderr).not.toContain('jane.doe@example.com');
    expect(r.stderr).toContain('mail ');
  });

  it('keeps ANSI colours and UTF-8 intact around masked values', async () => {
    const r = await run(`$DLPCTL_SSH box 'printf "\\033[31mrot\\033[0m Grüße 😀 jane.doe@example.com \\033[1mfett\\033[0m\\n"'`);
    expect(r.stdout.startsWith('\x1b[31mrot\x1b[0m Grüße 😀 ')).toBe(true);
    expect(r.stdout.endsWith(' \x1b[1mfett\x1b[0m\n')).toBe(true);
    expect(r.stdout).not.toContain('jane.doe@example.com');
  });

  it('passes binary output unchanged', async () => {
    // The remote prints the digest of what it sends on stderr; we hash what arrived on stdout. Random bytes
    // without '@' and digits, so no run in them reads as an email or a number the policy masks.
    const r = await run(`$DLPCTL_SSH box 'f=$(mktemp); head -c 300000 /dev/urandom | tr -d "@0-9" > $f; sha256sum < $f >&2; cat $f; rm $f' | sha256sum`);
    expect(r.code).toBe(0);
    const remote = r.stderr.trim().split(/\s+/)[0];
    expect(remote).toMatch(/^[0-9a-f]{64}$/);
    expect(r.stdout.trim().split(/\s+/)[0]).toBe(remote);
  });

  it('forwards only allowlisted environment variables', async () => {
    const r = await run(`$DLPCTL_SSH -o SendEnv=LANG -o SendEnv=DLPCTL_TEST_SECRET box 'echo "lang=$LANG secret=$DLPCTL_TEST_SECRET"'`, { LANG: 'C.UTF-8', DLPCTL_TEST_SECRET: 'leak-me' });
    expect(r.stdout).toBe('lang=C.UTF-8 secret=\n');
  });

  it('records commands, decisions, exit statuses, bytes, masking counts and output frames', async () => {
    const r = await run(`$DLPCTL_SSH box 'echo recorded jane.doe@example.com; exit 3'`);
    expect(r.code).toBe(3);
    const events = await eventually(async () => {
      const all = await fx.events();
      const cmd = all.find((e) => e.type === 'ssh.command' && e.command.startsWith('echo recorded '));
      if (!cmd) return null;
      const rest = (await fx.events(cmd.sessionId));
      return rest.some((e) => e.type === 'session.end') ? rest : null;
    }, 'the session to end');
    const cmd = events.find((e) => e.type === 'ssh.command')!;
    expect(cmd).toMatchObject({ decision: 'allow', channel: 'exec' });
    // The command line is recorded with detected values masked.
    expect((cmd as { command: string }).command).not.toContain('jane.doe@example.com');
    expect((cmd as { command: string }).command).toMatch(/; exit 3$/);
    const close = events.find((e) => e.type === 'ssh.channel' && e.phase === 'close');
    expect(close).toMatchObject({ channel: 'exec', exitStatus: 3 });
    expect((close as { bytesOut: number }).bytesOut).toBeGreaterThan(10);
    const mask = events.find((e) => e.type === 'mask.summary');
    expect(mask).toMatchObject({ entities: { email: 1 } });
    const frames = events.filter((e) => e.type === 'terminal.output').map((e) => (e as { data: string }).data).join('');
    expect(frames).toContain('echo recorded'.slice(5));
    expect(frames).not.toContain('jane.doe@example.com');
    const end = events.find((e) => e.type === 'session.end') as { counters: { statements: number; masked: number; bytesOut: number } };
    expect(end.counters.statements).toBe(1);
    expect(end.counters.masked).toBe(1);
    expect(end.counters.bytesOut).toBeGreaterThan(0);
    expect((await fx.store.verify(cmd.sessionId)).ok).toBe(true);
  });

  it('never lets the injected private key reach the store, the child environment or the tunnel events', async () => {
    const keyBody = fx.sshd.userKey.split('\n')[1]!;
    expect(keyBody.length).toBeGreaterThan(20);
    expect(await fx.dump()).not.toContain(keyBody);
    expect(JSON.stringify(t.env)).not.toContain(keyBody);
    expect(JSON.stringify(t.events)).not.toContain(keyBody);
    expect(t.describe).not.toContain(keyBody);
    expect(t.url).not.toContain(keyBody);
  });
});
