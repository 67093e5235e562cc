/**
 * Edges of the SSH tunnel: port forwarding by rule only, agent and remote forwarding refused, the pinned
 * host key (mismatch shows both fingerprints; a known_hosts line works), client authentication (tunnel
 * password through OpenSSH's SSH_ASKPASS, wrong password refused), the host key kept across tunnels, and
 * bad clients (garbage, abort mid-handshake, 100 channels) ending only their own session, and the log-in to
 * the target using only the injected credential (no "none" round trip).
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Client, Server } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { eventually, sh, startSshFixture, type SshFixture, type TestTunnel } from './fixture.js';

/** `$DLPCTL_SSH box CMD` as a child process (to kill it mid-command). */
function spawnSsh(env: NodeJS.ProcessEnv, cmd: string, flags: string[] = []): ChildProcess {
  // stdin a pipe kept open: the command's input does not end until the process is killed
  const c = spawn('/bin/sh', ['-c', `exec $DLPCTL_SSH ${flags.join(' ')} box '${cmd}'`], { env, stdio: ['pipe', 'ignore', 'ignore'] });
  c.on('error', () => undefined);
  return c;
}

let fx: SshFixture;
let t: TestTunnel;
let echo: net.Server;
let echoPort: number;
let otherPort: number;

beforeAll(async () => {
  fx = await startSshFixture();
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  echoPort = (echo.address() as net.AddressInfo).port;
  otherPort = echoPort === 65535 ? 65534 : echoPort + 1;
  t = await fx.tunnel({
    policies: `  fwd:
    - name: echo-only
      when: { ssh: { channels: [forward], command: "^127\\\\.0\\\\.0\\\\.1:${echoPort}$" } }
      action: allow
`,
    use: ['fwd'],
  });
});
afterAll(async () => {
  echo?.close();
  await fx?.stop();
});

function connect(port: number, password: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.on('ready', () => resolve(c)).on('error', reject);
    c.connect({ host: '127.0.0.1', port, username: 'agent', password, hostVerifier: () => true, readyTimeout: 60_000 });
  });
}

function execOut(c: Client, cmd: string): Promise<{ out: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    c.exec(cmd, (err, s) => {
      if (err) return reject(err);
      let out = '';
      let code: number | null = null;
      s.on('data', (d: Buffer) => (out += d.toString()));
      s.stderr.on('data', (d: Buffer) => (out += d.toString()));
      s.on('exit', (c2: number | null) => (code = c2));
      s.on('close', () => resolve({ out, code }));
    });
  });
}

describe('SSH tunnel edges', { timeout: 240_000 }, () => {
  it('forwards direct-tcpip only to a host:port a rule allows', async () => {
    const c = await connect(t.port, t.secret);
    const ok = await new Promise<string>((resolve, reject) => {
      c.forwardOut('127.0.0.1', 5555, '127.0.0.1', echoPort, (err, s) => {
        if (err) return reject(err);
        let got = '';
        s.on('data', (d: Buffer) => {
          got += d.toString();
          if (got.length >= 5) s.end();
        });
        s.on('close', () => resolve(got));
        s.write('hello');
      });
    });
    expect(ok).toBe('hello');
    const denied = await new Promise<Error | null>((resolve) => c.forwardOut('127.0.0.1', 5555, '127.0.0.1', otherPort, (err) => resolve(err ?? null)));
    expect(denied).toBeInstanceOf(Error);
    // Remote forwarding (ssh -R) is refused.
    const remote = await new Promise<Error | null>((resolve) => c.forwardIn('127.0.0.1', 0, (err) => resolve(err ?? null)));
    expect(remote).toBeInstanceOf(Error);
    c.end();
    const ev = await fx.events();
    expect(ev.some((e) => e.type === 'ssh.channel' && e.channel === 'forward' && e.target === `127.0.0.1:${echoPort}` && e.decision === 'allow' && e.rule === 'fwd/echo-only')).toBe(true);
    expect(ev.some((e) => e.type === 'ssh.channel' && e.channel === 'forward' && e.target === `127.0.0.1:${otherPort}` && e.decision === 'deny')).toBe(true);
    expect(ev.some((e) => e.type === 'ssh.channel' && e.channel === 'forward' && e.phase === 'close' && e.bytesIn === 5 && e.bytesOut === 5)).toBe(true);
  });

  it('refuses agent forwarding', async () => {
    const agent = await sh(`eval "$(ssh-agent -s)" >/dev/null; $DLPCTL_SSH -o ForwardAgent=yes box 'echo "sock=\${SSH_AUTH_SOCK:-none}"'; s=$?; ssh-agent -k >/dev/null; exit $s`, { env: { ...process.env, ...t.env } });
    expect(agent.stdout).toBe('sock=none\n');
    // The same request straight to sshd is granted, so the tunnel is what refused it.
    const direct = await sh(`eval "$(ssh-agent -s)" >/dev/null; ${fx.sshd.direct.replace(' 127.0.0.1', ' -o ForwardAgent=yes 127.0.0.1')} 'echo "sock=\${SSH_AUTH_SOCK:-none}"'; s=$?; ssh-agent -k >/dev/null; exit $s`);
    expect(direct.stdout).toMatch(/^sock=\/tmp\//);
  });

  it('refuses a target whose host key does not match the pin, showing both fingerprints', async () => {
    const wrong = `SHA256:${'A'.repeat(43)}`;
    const bad = await fx.tunnel({ hostKey: wrong });
    const r = await sh(`$DLPCTL_SSH box 'echo should-not-run'`, { env: { ...process.env, ...bad.env } });
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(wrong);
    expect(r.stderr).toContain(fx.sshd.hostFingerprint);
    expect(r.stderr).toContain('host key mismatch');
    expect(bad.events.some((e) => e.type === 'error' && e.message.includes(fx.sshd.hostFingerprint))).toBe(true);
  });

  it('without sharing (shareUpstream 1): keeps one spare upstream log-in for the next session, drops it when idle, and never retries a failing one', async () => {
    const warm = await fx.tunnel({ tuning: { spareIdleMs: 60_000, shareUpstream: 1 } });
    const env = { ...process.env, ...warm.env };
    const first = await sh(`$DLPCTL_SSH box 'echo one'`, { env });
    expect(first.stdout).toBe('one\n');
    // The first session logged in itself, then the tunnel opened a spare for the next one.
    await eventually(async () => warm.engine.hasSpare, 'the spare upstream connection');
    expect(warm.engine.upstreamConnects).toBe(2);
    const second = await sh(`$DLPCTL_SSH box 'echo two'`, { env });
    expect(second.stdout).toBe('two\n');
    // The second session took the spare (no log-in of its own) and a new spare replaced it.
    await eventually(async () => warm.engine.hasSpare, 'the next spare');
    expect(warm.engine.upstreamConnects).toBe(3);
    await warm.close();
    expect(warm.engine.hasSpare).toBe(false);

    const idle = await fx.tunnel({ tuning: { spareIdleMs: 1000, shareUpstream: 1 } });
    const once = await sh(`$DLPCTL_SSH box true`, { env: { ...process.env, ...idle.env } });
    expect(once.code, `ssh exited ${once.code}: ${once.stderr}`).toBe(0);
    await eventually(async () => idle.engine.hasSpare, 'the spare upstream connection');
    await eventually(async () => !idle.engine.hasSpare, 'the idle spare to be dropped');
    await new Promise((r) => setTimeout(r, 400));
    expect(idle.engine.hasSpare).toBe(false);
    expect(idle.engine.upstreamConnects).toBe(2);

    const bad = await fx.tunnel({ hostKey: `SHA256:${'B'.repeat(43)}` });
    for (let i = 0; i < 2; i++) expect((await sh(`$DLPCTL_SSH box true`, { env: { ...process.env, ...bad.env } })).code).toBe(255);
    await new Promise((r) => setTimeout(r, 300));
    expect(bad.engine.upstreamConnects).toBe(2); // one per session, no spares behind a failing target
  });

  it('shares upstream log-ins: sequential sessions reuse one, a burst packs shareUpstream channels on each, idle ones end', async () => {
    const t = await fx.tunnel({ tuning: { spareIdleMs: 1500, shareUpstream: 4 } });
    const env = { ...process.env, ...t.env };
    expect((await sh(`$DLPCTL_SSH box 'echo one'`, { env })).stdout).toBe('one\n');
    expect((await sh(`$DLPCTL_SSH box 'echo two'`, { env })).stdout).toBe('two\n');
    expect(t.engine.upstreamConnects).toBe(1);
    // 12 sessions at once: 4 channels per log-in, 3 log-ins (and at most one spare behind them)
    const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => sh(`$DLPCTL_SSH box 'sleep 0.3; echo s${i}'`, { env })));
    expect(burst.map((r) => r.stdout)).toEqual(Array.from({ length: 12 }, (_, i) => `s${i}\n`));
    expect(t.engine.upstreamConnects).toBeGreaterThanOrEqual(3);
    expect(t.engine.upstreamConnects).toBeLessThanOrEqual(5);
    // no channels left: every connection ends after spareIdleMs
    await eventually(async () => t.engine.upstreams.size === 0, 'idle upstream connections to end');
    // each session was recorded on its own, with its own command
    const ids = t.events.filter((e) => e.type === 'session_start').map((e) => (e as { sessionId: string }).sessionId);
    expect(new Set(ids).size).toBe(14);
    await t.close();

    // the resource's shareUpstream: 1 turns sharing off (a log-in per channel, the next one as a spare)
    const own = await fx.tunnel({ resource: '    shareUpstream: 1' });
    for (const w of ['one', 'two']) expect((await sh(`$DLPCTL_SSH box 'echo ${w}'`, { env: { ...process.env, ...own.env } })).stdout).toBe(`${w}\n`);
    await eventually(async () => own.engine.upstreamConnects === 3, 'a log-in per session and a spare');
    await own.close();
  });

  it('a session ending (its client killed) closes only its own channels on a shared log-in; the other session finishes', async () => {
    const t = await fx.tunnel({ tuning: { shareUpstream: 8 } });
    const env = { ...process.env, ...t.env };
    // a: `cat` with its input held open (it runs until its upstream channel is closed, which closes its stdin)
    const a = spawnSsh(env, 'cat', ['-T']);
    const b = sh(`$DLPCTL_SSH box 'sleep 2; echo b-done'`, { env });
    await eventually(async () => t.events.filter((e) => e.type === 'session_start').length === 2, 'both sessions');
    expect(t.engine.upstreamConnects).toBe(1); // both on one log-in
    await eventually(async () => t.engine.upstreams.channels === 2, 'both channels upstream');
    const killed = Date.now();
    a.kill('SIGKILL');
    const rb = await b;
    expect(rb.code).toBe(0);
    expect(rb.stdout).toBe('b-done\n');
    expect(t.engine.upstreamConnects).toBe(1);
    // a's upstream channel was closed when its session ended (else `cat` would hold its slot for ever)
    await eventually(async () => t.engine.upstreams.channels === 0 && t.events.filter((e) => e.type === 'session_end').length === 2, "a's channel to give back its slot");
    expect(Date.now() - killed).toBeLessThan(15_000);
    await t.close();
  });

  it("a target whose MaxSessions is lower than shareUpstream: the refused channel is retried on another log-in", async () => {
    const small = await startSshFixture({ maxSessions: 2 });
    try {
      const t = await small.tunnel({ tuning: { shareUpstream: 8 } });
      const env = { ...process.env, ...t.env };
      const rs = await Promise.all(Array.from({ length: 5 }, (_, i) => sh(`$DLPCTL_SSH box 'sleep 0.5; echo m${i}'`, { env })));
      expect(rs.map((r) => r.stdout)).toEqual(Array.from({ length: 5 }, (_, i) => `m${i}\n`));
      expect(rs.every((r) => r.code === 0)).toBe(true);
      expect(t.engine.upstreamConnects).toBeGreaterThanOrEqual(3); // 2 channels per log-in at most
      await t.close();
    } finally {
      await small.stop();
    }
  });

  it('logs in to the target with the injected key alone: no "none" attempt (one round trip less per session)', async () => {
    // its own sshd: at DEBUG1 sshd logs each method a client tries (and copies debug lines to a root session's stderr)
    const dbg = await startSshFixture({ sshdLogLevel: 'DEBUG1' });
    try {
      const t2 = await dbg.tunnel();
      const from = dbg.sshd.log().length;
      const r = await sh(`$DLPCTL_SSH box 'echo in'`, { env: { ...process.env, ...t2.env } });
      expect(r.stdout).toBe('in\n');
      // the session's log-in stays open with free slots for the next channels (shared): no second log-in
      await eventually(async () => t2.engine.hasSpare, 'the idle upstream connection');
      await t2.close();
      const methods = [...dbg.sshd.log().slice(from).matchAll(/userauth-request for user \S+ service ssh-connection method (\S+)/g)].map((m) => m[1]);
      // one log-in: a publickey query and the signed request
      expect(methods).toEqual(['publickey', 'publickey']);
      expect(t2.engine.upstreamConnects).toBe(1);
    } finally {
      await dbg.stop();
    }
  });

  it('hands on the output and exit status of a command whose end arrives in the same read as its channel', async () => {
    // A target that confirms an exec and sends its exit status in one TCP segment, as one running `true` does when
    // the tunnel reads late (a loaded machine): ssh2 emits the status before the code awaiting the channel runs.
    // The tunnel lost it and the client, told of no status, exited 255.
    const hostKeys = [await fs.readFile(path.join(fx.dir, 'host_key'))];
    const target = net.createServer((sock) => {
      const server = new Server({ hostKeys }, (conn) => {
        conn.on('authentication', (ctx) => ctx.accept());
        conn.on('ready', () =>
          conn.on('session', (acceptSession) =>
            acceptSession().on('exec', (acceptExec, _reject, info) => {
              sock.cork();
              const s = acceptExec();
              // `quiet`: the status alone; otherwise output first, and the channel's EOF and close in the same segment
              if (!info.command.includes('quiet')) s.write('said and gone\n');
              s.exit(7);
              s.end();
              setImmediate(() => sock.uncork());
            }),
          ),
        );
      });
      server.injectSocket(sock);
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()));
    const quick = await fx.tunnel({ targetPort: (target.address() as net.AddressInfo).port });
    try {
      for (let i = 0; i < 3; i++) {
        const quiet = await sh(`$DLPCTL_SSH box 'quiet; exit 7'`, { env: { ...process.env, ...quick.env } });
        expect(quiet.code, `ssh exited ${quiet.code}: ${quiet.stderr}`).toBe(7);
        const said = await sh(`$DLPCTL_SSH box 'echo said and gone; exit 7'`, { env: { ...process.env, ...quick.env } });
        expect(said.code, `ssh exited ${said.code}: ${said.stderr}`).toBe(7);
        expect(said.stdout).toBe('said and gone\n');
      }
    } finally {
      await quick.close();
      target.close();
    }
  });

  it('tells the client when the target is unreachable (ECONNREFUSED), and other tunnels keep working', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise((r) => closed.close(r)); // nothing listens there now
    const down = await fx.tunnel({ targetPort: port });
    const r = await sh(`$DLPCTL_SSH box 'echo should-not-run'`, { env: { ...process.env, ...down.env } });
    expect(r.code).toBe(255);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`cannot connect to 127.0.0.1:${port}`);
    expect(r.stderr).toContain('ECONNREFUSED');
    expect(down.events.some((e) => e.type === 'error' && e.message.includes(`127.0.0.1:${port}`))).toBe(true);
    // the shared tunnel to the live target is unaffected
    expect((await sh(`$DLPCTL_SSH box 'echo alive'`, { env: { ...process.env, ...t.env } })).stdout).toBe('alive\n');
  });

  it('DLPCTL_SSH asks for AES-GCM (done by OpenSSL on the tunnel side), while a client preferring chacha20-poly1305 still gets it', async () => {
    const gcm = await sh(`$DLPCTL_SSH -v box true`, { env: { ...process.env, ...t.env } });
    expect(gcm.code).toBe(0);
    expect(gcm.stderr).toMatch(/kex: server->client cipher: aes128-gcm@openssh\.com/);
    expect(gcm.stderr).toMatch(/kex: client->server cipher: aes128-gcm@openssh\.com/);
    // (OpenSSH keeps the first value given for an option: replace ours rather than add another)
    const chachaOnly = t.env.DLPCTL_SSH!.replace(/-o Ciphers=\S+/, '-o Ciphers=chacha20-poly1305@openssh.com');
    expect(chachaOnly).not.toBe(t.env.DLPCTL_SSH);
    const chacha = await sh(`${chachaOnly} -v box 'echo still'`, { env: { ...process.env, ...t.env } });
    expect(chacha.stdout).toBe('still\n');
    expect(chacha.stderr).toMatch(/kex: client->server cipher: chacha20-poly1305@openssh\.com/);
  });

  it('accepts a known_hosts line as the pin', async () => {
    const kh = await fx.tunnel({ hostKey: fx.sshd.hostKeyLine });
    const r = await sh(`$DLPCTL_SSH box 'echo pinned'`, { env: { ...process.env, ...kh.env } });
    expect(r.stdout).toBe('pinned\n');
  });

  it('lets OpenSSH log in with the tunnel password (SSH_ASKPASS) and refuses a wrong one', async () => {
    const askpass = path.join(fx.dir, 'askpass');
    await fs.writeFile(askpass, '#!/bin/sh\nprintf "%s\\n" "$TUNNEL_PW"\n', { mode: 0o700 });
    const base = `ssh -F none -p ${t.port} -o PreferredAuthentications=password -o PubkeyAuthentication=no -o UserKnownHostsFile=${t.files.knownHosts} -o HostKeyAlias=dlpctl-box -o StrictHostKeyChecking=yes -o NumberOfPasswordPrompts=1 someone@127.0.0.1`;
    const env = { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' };
    const good = await sh(`${base} 'echo via-password'`, { env: { ...env, TUNNEL_PW: t.secret } });
    expect(good.stdout).toBe('via-password\n');
    const bad = await sh(`${base} 'echo via-password'`, { env: { ...env, TUNNEL_PW: 'wrong' } });
    expect(bad.code).toBe(255);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/Permission denied/);
  });

  it('keeps the tunnel host key across tunnels (0600), so one known_hosts line keeps working', async () => {
    const again = await fx.tunnel({});
    expect(again.hostKeyFingerprint).toBe(t.hostKeyFingerprint);
    const st = await fs.stat(path.join(fx.stateDir, 'dlpctl', 'ssh_host_ed25519_key'));
    expect(st.mode & 0o777).toBe(0o600);
    // The first tunnel's known_hosts file verifies the second tunnel.
    const r = await sh(`${again.env.DLPCTL_SSH!.replace(again.files.knownHosts, t.files.knownHosts)} box 'echo same-key'`);
    expect(r.stdout).toBe('same-key\n');
  });

  it('a client that speaks garbage or aborts mid-handshake ends only its own session', async () => {
    const c = await connect(t.port, t.secret);
    // Garbage instead of an SSH banner.
    await new Promise<void>((resolve) => {
      const s = net.connect(t.port, '127.0.0.1', () => s.write(Buffer.alloc(70_000, 0x41)));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.resume();
    });
    // A valid banner, the start of a key exchange, then gone.
    await new Promise<void>((resolve) => {
      const s = net.connect(t.port, '127.0.0.1', () => s.write('SSH-2.0-bad\r\n\x00\x00\x01\x0c\x0a\x14'));
      s.once('data', () => s.destroy());
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
    // A banner and a packet length far beyond any limit.
    await new Promise<void>((resolve) => {
      const s = net.connect(t.port, '127.0.0.1', () => s.write(Buffer.concat([Buffer.from('SSH-2.0-bad\r\n'), Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3])])));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
      s.resume();
    });
    // The established session is still fine, and new ones work.
    expect(await execOut(c, 'echo still-here')).toEqual({ out: 'still-here\n', code: 0 });
    c.end();
    const r = await sh(`$DLPCTL_SSH box 'echo new-session'`, { env: { ...process.env, ...t.env } });
    expect(r.stdout).toBe('new-session\n');
  });

  it('a client opening 100 channels at once gets some refused, and no other session notices', async () => {
    const small = await fx.tunnel({ tuning: { maxChannels: 16 } });
    const other = await connect(small.port, small.secret);
    const greedy = await connect(small.port, small.secret);
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        new Promise<string>((resolve) => {
          greedy.exec(`echo ch${i}`, (err, s) => {
            if (err) return resolve('refused');
            let out = '';
            s.on('data', (d: Buffer) => (out += d.toString()));
            s.on('close', () => resolve(out.trim()));
          });
        }),
      ),
    );
    const ok = results.filter((r) => /^ch\d+$/.test(r)).length;
    expect(ok).toBeGreaterThan(0);
    expect(ok).toBeLessThanOrEqual(16 + 15); // at most the limit at once (some may finish early and free a slot)
    expect(ok + results.filter((r) => r === 'refused' || r === '').length).toBe(100);
    expect(await execOut(other, 'echo unaffected')).toEqual({ out: 'unaffected\n', code: 0 });
    greedy.end();
    other.end();
  });

  it('a client that does not log in within the grace time is disconnected; a logged-in session is not', async () => {
    const tt = await fx.tunnel({ tuning: { loginGraceMs: 400 } });
    const closed = (bytes: string) =>
      new Promise<{ data: string; ms: number }>((resolve, reject) => {
        const t0 = performance.now();
        let data = '';
        const s = net.connect({ host: '127.0.0.1', port: tt.port }, () => s.write(bytes));
        s.on('data', (d: Buffer) => (data += d.toString('latin1')));
        s.on('close', () => resolve({ data, ms: performance.now() - t0 }));
        s.on('error', reject);
      });
    const logged = await connect(tt.port, tt.secret);
    const [silent, banner] = await Promise.all([closed(''), closed('SSH-2.0-stalled\r\n')]);
    for (const r of [silent, banner]) {
      expect(r.ms).toBeGreaterThanOrEqual(350);
      expect(r.data.startsWith('SSH-2.0-')).toBe(true); // the tunnel's identification, then nothing more from it
    }
    expect(tt.events.filter((e) => e.type === 'error' && /rejected: it did not log in within 0\.4 s/.test(e.message))).toHaveLength(2);
    // past the grace time, the session that logged in still works
    await new Promise((r) => setTimeout(r, 500));
    expect(await execOut(logged, 'echo still')).toEqual({ out: 'still\n', code: 0 });
    logged.end();
    await tt.close();
  });
});
