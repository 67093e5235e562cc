/**
 * Interactive shell through the tunnel: the real `ssh` client on a real pseudo-terminal (ptydrive.py), a pty
 * upstream, window changes, Ctrl-C, exit status, the line check before Enter, masked echo and output,
 * asciicast frames in the store; Ctrl-C reaches the remote through the pty.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toAsciicast } from '../../../src/audit/asciicast.js';
import type { StoreEvent } from '../../../src/store/types.js';
import { eventually, startSshFixture, type SshFixture, type TestTunnel } from './fixture.js';

const here = path.dirname(fileURLToPath(import.meta.url));

interface PtyResult {
  ok: boolean;
  out: string;
  status: number | null;
  failed: unknown;
}

function ptyRun(cmd: string, steps: object[], env: NodeJS.ProcessEnv): Promise<PtyResult> {
  return new Promise((resolve, reject) => {
    execFile('python3', [path.join(here, 'ptydrive.py'), JSON.stringify({ cmd, steps, rows: 24, cols: 80 })], { env, maxBuffer: 16 * 1024 * 1024, timeout: 240_000 }, (err, stdout) => {
      if (err && !stdout) return reject(err);
      resolve(JSON.parse(stdout) as PtyResult);
    });
  });
}

const POLICIES = `  guard:
    - name: no-touch
      when: { ssh: { command: "^touch " } }
      action: deny
      message: no touching
    - name: pii
      action: mask
      entities: [email, credit_card]
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

const P = 'XPQ> ';

describe('interactive shell through the tunnel', { timeout: 240_000 }, () => {
  it('runs a pty shell: prompt, output, window change, Ctrl-C, line check, masking, exit status; records frames', async () => {
    const forbidden = path.join(fx.dir, 'forbidden');
    const r = await ptyRun(
      `exec $DLPCTL_SSH -tt box`,
      [
        { expect: '.' },
        { send: "export PS1='XP''Q> '\r" },
        { expect: P },
        { send: 'echo one  two\r' },
        { expect: `one two\\r\\n.{0,24}?${P}` },
        { send: 'stty size\r' },
        { expect: `24 80\\r\\n.{0,24}?${P}` },
        { resize: [30, 100] },
        { send: 'stty size\r' },
        { expect: `30 100\\r\\n.{0,24}?${P}` },
        { send: `touch ${forbidden}\r` },
        { expect: 'denied by policy guard rule no-touch: no touching' },
        { expect: P },
        // Each typed line is resolved like an exec command line: a rule for `^touch` sees `true && t\ouch …`.
        { send: `true && t\\ouch ${forbidden}\r` },
        { expect: 'denied by policy guard rule no-touch: no touching' },
        { expect: P },
        // A line typed while the shell is busy is echoed by the remote tty as it arrives, and again by the line
        // editor: expect what the command printed (not preceded by `echo `), or the next step goes out early.
        { send: 'echo mail: jane.doe@example.com\r' },
        { expect: `(?<!echo )mail: [^\\r]*\\r\\n.{0,24}?${P}` },
        { send: 'echo started; sleep 60\r' },
        { expect: '(?<!echo )started\\r\\n' },
        { send: '\x03' },
        { expect: P },
        { send: 'echo abc\x1b[DX\r' },
        { expect: `abXc\\r\\n.{0,24}?${P}` },
        { send: 'exit 5\r' },
      ],
      { ...process.env, ...t.env },
    );
    expect(r.failed, r.out).toBeNull();
    expect(r.ok).toBe(true);
    expect(r.status).toBe(5);
    expect(fs.existsSync(forbidden)).toBe(false);
    expect(r.out).not.toContain('jane.doe@example.com');

    const events = await eventually(async () => {
      const all = await fx.events();
      const open = all.find((e) => e.type === 'ssh.channel' && e.channel === 'shell' && e.phase === 'open');
      if (!open) return null;
      const ev = await fx.events(open.sessionId);
      return ev.some((e) => e.type === 'session.end') ? ev : null;
    }, 'the shell session to end');
    const open = events.find((e) => e.type === 'ssh.channel' && e.phase === 'open')!;
    expect(open).toMatchObject({ channel: 'shell', decision: 'allow', pty: true, cols: 80, rows: 24 });
    const lines = events.filter((e): e is Extract<StoreEvent, { type: 'ssh.command' }> => e.type === 'ssh.command');
    expect(lines.find((e) => e.command === 'echo one  two')).toMatchObject({ channel: 'shell', decision: 'allow', certain: true });
    expect(lines.find((e) => e.command.startsWith('touch '))).toMatchObject({ decision: 'deny', rule: 'guard/no-touch' });
    expect(lines.find((e) => e.command.startsWith('true && t\\ouch '))).toMatchObject({ decision: 'deny', rule: 'guard/no-touch' });
    // Cursor keys: the line is still checked and recorded, marked uncertain.
    expect(lines.find((e) => e.command === 'echo abcX')).toMatchObject({ certain: false });
    const close = events.find((e) => e.type === 'ssh.channel' && e.phase === 'close');
    expect(close).toMatchObject({ channel: 'shell', exitStatus: 5 });
    const frames = events.filter((e): e is Extract<StoreEvent, { type: 'terminal.output' }> => e.type === 'terminal.output');
    const text = frames.map((f) => f.data).join('');
    expect(text).toContain('one two');
    expect(text).toContain('30 100');
    expect(text).not.toContain('jane.doe@example.com');
    expect(events.find((e) => e.type === 'mask.summary')).toBeDefined();

    const session = (await fx.store.getSession(open.sessionId))!;
    const cast = toAsciicast({ width: 80, height: 24, timestamp: session.startedAt, title: 'box' }, frames);
    const [head, ...rest] = cast.trimEnd().split('\n');
    expect(JSON.parse(head!)).toMatchObject({ version: 2, width: 80, height: 24 });
    let last = 0;
    for (const l of rest) {
      const [tt, kind, data] = JSON.parse(l) as [number, string, string];
      expect(kind).toBe('o');
      expect(typeof data).toBe('string');
      expect(tt).toBeGreaterThanOrEqual(last);
      last = tt;
    }
    expect(rest.map((l) => (JSON.parse(l) as [number, string, string])[2]).join('')).toBe(text);
  });
});
