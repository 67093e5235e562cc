/**
 * SSH tunnel benchmark: the same work straight to a real sshd and through a dlpctl SSH tunnel (the built
 * binary, `dlpctl connect box`, in its own process as users run it; masking policy on, recording to SQLite),
 * side by side. `npm run build` first.
 *
 *   scp 200 MB (sftp-based and legacy -O), upload: MB/s each way, ratio, peak RSS (VmHWM) of the tunnel
 *   interactive echo on a pty shell: one keystroke → its echo, p50/p99, added
 *   exec round-trip on an open connection (`true`): p50/p99, added
 *   50 concurrent sessions (connect + auth + exec + result): failures, p50/p99 setup, added
 *
 * Run: npx tsx test/bench/ssh.ts  (or through npm run bench). Needs /usr/sbin/sshd and the OpenSSH client.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client, type ClientChannel } from 'ssh2';
import { sh, startSshFixture } from '../proxy/ssh/fixture.js';

const MB = 1024 * 1024;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}
const ms = (n: number) => `${n.toFixed(2)} ms`;

function connect(o: { port: number; username: string; password?: string; privateKey?: string }): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    // TCP_NODELAY as OpenSSH's own client sets it for interactive work: without it, Nagle and delayed ACKs
    // put ~40 ms into every keystroke and exec round trip on both paths, hiding what the tunnel adds.
    c.on('ready', () => resolve(c.setNoDelay(true))).on('error', reject);
    c.connect({ host: '127.0.0.1', ...o, hostVerifier: () => true, readyTimeout: 120_000 });
  });
}

function execOnce(c: Client, cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    c.exec(cmd, (err, s) => {
      if (err) return reject(err);
      let out = '';
      s.on('data', (d: Buffer) => (out += d.toString()));
      s.stderr.resume();
      s.on('close', () => resolve(out));
    });
  });
}

async function echoLatency(c: Client, n: number): Promise<number[]> {
  const s: ClientChannel = await new Promise((resolve, reject) => c.shell({ term: 'dumb', rows: 24, cols: 80 }, (e, st) => (e ? reject(e) : resolve(st))));
  let buf = '';
  let waiter: (() => void) | null = null;
  s.on('data', (d: Buffer) => {
    buf += d.toString();
    waiter?.();
  });
  const waitFor = (re: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${re} in ${JSON.stringify(buf.slice(-300))}`)), 60_000);
      const check = () => {
        if (re.test(buf)) {
          waiter = null;
          clearTimeout(timer);
          resolve();
        }
      };
      waiter = check;
      check();
    });
  s.write("stty -icanon; export PS1='B> '\r");
  await waitFor(/B> $/);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    buf = '';
    const ch = String.fromCharCode(97 + (i % 26));
    const t0 = process.hrtime.bigint();
    s.write(ch);
    await waitFor(new RegExp(ch));
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
    // Erase it again (not timed), so the line never scrolls.
    buf = '';
    s.write('\x7f');
    await waitFor(/\x08/);
  }
  s.end('\x15exit\r');
  return out;
}

const log = (m: string) => process.stderr.write(`[bench ssh] ${m}\n`);
const BIN = path.resolve(import.meta.dirname, '../../bin/dlpctl.js');

/** `dlpctl connect box` as its own process; its stdout gives the URL (with the tunnel password), stderr the ssh command. */
async function binaryTunnel(fx: Awaited<ReturnType<typeof startSshFixture>>, policies: string): Promise<{ port: number; secret: string; ssh: string; child: ChildProcess }> {
  const file = path.join(fx.dir, 'bench.yaml');
  await fs.writeFile(
    file,
    `version: 1
resources:
  box:
    kind: ssh
    target: ssh://${fx.sshd.user}@127.0.0.1:${fx.sshd.port}
    privateKey: \${env:BENCH_SSH_KEY}
    hostKey: "${fx.sshd.hostFingerprint}"
    policies: [pii]
policies:
${policies}`,
  );
  const child = spawn(process.execPath, [BIN, 'connect', 'box', '--config', file, '--store', `sqlite:${path.join(fx.dir, 'bench-store.db')}`], {
    env: { ...process.env, BENCH_SSH_KEY: fx.sshd.userKey, XDG_STATE_HOME: path.join(fx.dir, 'bench-state'), NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    const check = () => {
      const url = /^ssh:\/\/dlpctl:([^@]+)@127\.0\.0\.1:(\d+)$/m.exec(out);
      const cmd = /connect with: (.*) box \[COMMAND\]/.exec(err);
      if (url && cmd) resolve({ secret: url[1]!, port: Number(url[2]), ssh: cmd[1]!, child });
    };
    child.stdout!.on('data', (d: Buffer) => ((out += d.toString()), check()));
    child.stderr!.on('data', (d: Buffer) => ((err += d.toString()), check()));
    child.once('exit', (code) => reject(new Error(`dlpctl connect exited (${code}): ${err}`)));
  });
}

function vmHwmMb(pid: number | undefined): number {
  const m = pid ? /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8')) : null;
  return m ? Number(m[1]) / 1024 : NaN;
}

export async function run(): Promise<string> {
  const fx = await startSshFixture();
  const rows: string[][] = [];
  let tunnelChild: ChildProcess | undefined;
  try {
    const t = await binaryTunnel(
      fx,
      `  pii:
    - name: mask
      action: mask
      entities: [email, credit_card, secrets]
`,
    );
    tunnelChild = t.child;
    const work = path.join(fx.dir, 'bench');
    await fs.mkdir(work);
    const size = Number(process.env.DLPCTL_BENCH_SCP_MB ?? 200);
    await sh(`head -c ${size * MB} /dev/urandom > ${work}/src`, { timeoutMs: 600_000 });
    const direct = path.join(fx.dir, 'direct-ssh');
    await fs.writeFile(direct, `#!/bin/sh\nexec ${fx.sshd.direct.replace(/ 127\.0\.0\.1$/, ' -o HostName=127.0.0.1 -o HostKeyAlias=[127.0.0.1]:' + fx.sshd.port)} "$@"\n`, { mode: 0o755 });
    const tunneled = path.join(fx.dir, 'tunnel-ssh');
    await fs.writeFile(tunneled, `#!/bin/sh\nexec ${t.ssh} "$@"\n`, { mode: 0o755 });

    // ── scp ──
    for (const mode of ['', '-O'] as const) {
      const label = mode ? 'scp -O (legacy)' : 'scp (sftp)';
      const speed: number[] = [];
      let peak = NaN;
      for (const [i, wrap] of [direct, tunneled].entries()) {
        const dest = `${work}/dst-${i}${mode}`;
        const t0 = performance.now();
        const r = await sh(`scp ${mode} -S ${wrap} ${work}/src box:${dest}`, { timeoutMs: 900_000 });
        const secs = (performance.now() - t0) / 1000;
        if (r.code !== 0) throw new Error(`${label} failed: ${r.stderr}`);
        speed.push(size / secs);
        if (i === 1) peak = vmHwmMb(t.child.pid);
        await fs.rm(dest, { force: true });
      }
      rows.push([`${label} ${size} MB upload`, `${speed[0]!.toFixed(1)} MB/s`, `${speed[1]!.toFixed(1)} MB/s`, `${(speed[1]! / speed[0]!).toFixed(2)}×`, `tunnel peak RSS ${peak.toFixed(0)} MB`]);
    }

    const directLogin = { port: fx.sshd.port, username: fx.sshd.user, privateKey: fx.sshd.userKey };
    const tunnelLogin = { port: t.port, username: 'bench', password: t.secret };

    log('scp done');
    // ── interactive echo ──
    {
      const [d, tt] = [await connect(directLogin), await connect(tunnelLogin)];
      const a = await echoLatency(d, 300);
      const b = await echoLatency(tt, 300);
      d.end();
      tt.end();
      rows.push(['pty echo p50', ms(pct(a, 50)), ms(pct(b, 50)), `+${ms(pct(b, 50) - pct(a, 50))}`, '']);
      rows.push(['pty echo p99', ms(pct(a, 99)), ms(pct(b, 99)), `+${ms(pct(b, 99) - pct(a, 99))}`, '']);
    }

    log('echo done');
    // ── exec round-trip on an open connection ──
    {
      const [d, tt] = [await connect(directLogin), await connect(tunnelLogin)];
      const lat = async (c: Client) => {
        const xs: number[] = [];
        for (let i = 0; i < 40; i++) {
          const t0 = performance.now();
          await execOnce(c, 'exec true');
          xs.push(performance.now() - t0);
        }
        return xs;
      };
      const a = await lat(d);
      const b = await lat(tt);
      d.end();
      tt.end();
      rows.push(['exec round-trip p50', ms(pct(a, 50)), ms(pct(b, 50)), `+${ms(pct(b, 50) - pct(a, 50))}`, '']);
      rows.push(['exec round-trip p99', ms(pct(a, 99)), ms(pct(b, 99)), `+${ms(pct(b, 99) - pct(a, 99))}`, '']);
    }

    log('exec done');
    // ── 50 concurrent sessions ──
    {
      const wave = async (login: typeof directLogin | typeof tunnelLogin) => {
        let failed = 0;
        const xs = await Promise.all(
          Array.from({ length: 50 }, async (_, i) => {
            const t0 = performance.now();
            try {
              const c = await connect(login);
              const out = await execOnce(c, `echo s${i}`);
              c.end();
              if (out.trim() !== `s${i}`) failed++;
            } catch {
              failed++;
            }
            return performance.now() - t0;
          }),
        );
        return { xs, failed };
      };
      const a = await wave(directLogin);
      const b = await wave(tunnelLogin);
      rows.push(['50 concurrent sessions p50', ms(pct(a.xs, 50)), ms(pct(b.xs, 50)), `+${ms(pct(b.xs, 50) - pct(a.xs, 50))}`, `failed: ${a.failed} direct, ${b.failed} tunnel`]);
      rows.push(['50 concurrent sessions p99', ms(pct(a.xs, 99)), ms(pct(b.xs, 99)), `+${ms(pct(b.xs, 99) - pct(a.xs, 99))}`, '']);
    }
  } finally {
    if (tunnelChild) {
      const exited = new Promise((r) => tunnelChild!.once('exit', r));
      tunnelChild.kill('SIGTERM');
      await exited;
    }
    await fx.stop();
  }
  const head = ['| SSH | direct | through dlpctl | ratio / added | notes |', '|---|---|---|---|---|'];
  return [...head, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  run().then(
    (table) => {
      process.stdout.write(`${table}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
