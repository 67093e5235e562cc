/**
 * Shared fixture for the SSH tunnel tests: a real OpenSSH `sshd` on 127.0.0.1 (its own config, host key and
 * authorized_keys; the test user is the current user, root here and in CI), one SQLite store, and tunnels
 * built with `createSshEngine` from YAML the way `dlpctl connect` builds them.
 *
 *   const fx = await startSshFixture();          // beforeAll
 *   const t = await fx.tunnel({ policies: '…' }); // t.env.DLPCTL_SSH, t.port, t.secret, t.events
 *   const r = await fx.run(`${t.env.DLPCTL_SSH} box 'echo hi'`);
 *   await fx.stop();                             // afterAll
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../../src/config/index.js';
import type { SshResource } from '../../../src/config/types.js';
import { resolvePolicies } from '../../../src/policy/index.js';
import { createSshEngine, type SshEngineTuning } from '../../../src/proxy/ssh/factory.js';
import { Tunnel, type TunnelEvent } from '../../../src/proxy/tunnel.js';
import { openStore } from '../../../src/store/index.js';
import type { Identity, SessionStore, StoreEvent } from '../../../src/store/types.js';

export const IDENTITY: Identity = { issuer: 'local', subject: 'tester', groups: ['dev'], kind: 'human', verified: false };

export function sh(cmd: string, opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile('/bin/sh', ['-c', cmd], { env: opts.env ?? process.env, maxBuffer: 64 * 1024 * 1024, timeout: opts.timeoutMs ?? 60_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

export interface Sshd {
  port: number;
  dir: string;
  user: string;
  /** The upstream user's private key (the secret the tunnel injects). */
  userKey: string;
  userKeyFile: string;
  /** `SHA256:…` of sshd's host key. */
  hostFingerprint: string;
  hostKeyLine: string;
  /** `ssh` options that reach sshd directly (for the bench and the direct comparisons). */
  direct: string;
  /** What sshd has logged so far (LogLevel ${logLevel}: connections and each authentication attempt). */
  log(): string;
  stop(): Promise<void>;
}

/**
 * `logLevel`: sshd's LogLevel (default ERROR; DEBUG1 also logs each authentication method a client tries).
 * `maxSessions`: sessions (channels) per connection sshd allows (default 200; OpenSSH's own default is 10).
 */
export async function startSshd(dir: string, logLevel = 'ERROR', maxSessions = 200): Promise<Sshd> {
  await fs.mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  await sh(`ssh-keygen -q -t ed25519 -N '' -f ${dir}/host_key && ssh-keygen -q -t ed25519 -N '' -C upstream -f ${dir}/user_key && cp ${dir}/user_key.pub ${dir}/authorized_keys`);
  const port = await freePort();
  // SetEnv SHLVL=1: bash sources ~/.bashrc for every command run by sshd unless SHLVL is already set; on
  // machines whose root .bashrc starts pyenv and the like that costs ~0.6 s per exec, which drowned what
  // the tests and the bench measure (both the direct and the tunnel paths paid it).
  const config = `Port ${port}
ListenAddress 127.0.0.1
HostKey ${dir}/host_key
PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile ${dir}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp internal-sftp
AcceptEnv LANG LC_* GIT_PROTOCOL DLPCTL_TEST_*
AllowTcpForwarding yes
AllowAgentForwarding yes
X11Forwarding no
MaxSessions ${maxSessions}
MaxStartups 200:30:400
LogLevel ${logLevel}
SetEnv SHLVL=1
`;
  await fs.writeFile(`${dir}/sshd_config`, config);
  const child: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', `${dir}/sshd_config`, '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  // Ready when the port answers with an SSH banner.
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString().startsWith('SSH-'));
      });
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    if (child.exitCode !== null || i > 200) throw new Error(`sshd did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const fp = await sh(`ssh-keygen -lf ${dir}/host_key.pub`);
  const hostFingerprint = fp.stdout.split(/\s+/)[1]!;
  const pub = (await fs.readFile(`${dir}/host_key.pub`, 'utf8')).trim().split(/\s+/);
  await fs.writeFile(`${dir}/direct_known_hosts`, `[127.0.0.1]:${port} ${pub[0]} ${pub[1]}\n`);
  return {
    port,
    dir,
    user: os.userInfo().username,
    userKey: await fs.readFile(`${dir}/user_key`, 'utf8'),
    userKeyFile: `${dir}/user_key`,
    hostFingerprint,
    hostKeyLine: `[127.0.0.1]:${port} ${pub[0]} ${pub[1]}`,
    log: () => log,
    direct: `ssh -F none -p ${port} -i ${dir}/user_key -o IdentitiesOnly=yes -o UserKnownHostsFile=${dir}/direct_known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR 127.0.0.1`,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    },
  };
}

export interface TunnelOptions {
  /** YAML of the `policies:` map body (indented by 2). */
  policies?: string;
  use?: string[];
  /** Extra YAML lines of the resource (indented by 4). */
  resource?: string;
  hostKey?: string;
  /** Target port (default: the fixture's sshd). */
  targetPort?: number;
  /** Replaces the injected private key (by env var) with a password reference. */
  password?: string;
  tuning?: SshEngineTuning;
  store?: SessionStore;
}

export interface TestTunnel {
  tunnel: Tunnel;
  engine: import('../../../src/proxy/ssh/engine.js').SshEngine;
  port: number;
  secret: string;
  url: string;
  env: Record<string, string>;
  events: TunnelEvent[];
  files: { dir: string; clientKey: string; knownHosts: string };
  hostKeyFingerprint: string;
  describe: string;
  close(): Promise<void>;
}

export interface SshFixture {
  sshd: Sshd;
  dir: string;
  store: SessionStore;
  stateDir: string;
  tunnel(o?: TunnelOptions): Promise<TestTunnel>;
  /** Every event of every session, in order (session by session). */
  events(sessionId?: string): Promise<StoreEvent[]>;
  /** Everything the store holds, as text (to search for leaked secrets). */
  dump(): Promise<string>;
  stop(): Promise<void>;
}

export async function startSshFixture(o: { sshdLogLevel?: string; maxSessions?: number } = {}): Promise<SshFixture> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-sshfx-'));
  const sshd = await startSshd(dir, o.sshdLogLevel, o.maxSessions);
  const store = await openStore(`sqlite:${path.join(dir, 'store.db')}`, { sqliteSynchronous: 'normal', threads: 'tunnel' }); // as `dlpctl connect` opens it
  const stateDir = path.join(dir, 'state');
  const open: TestTunnel[] = [];
  const sessionIds = new Set<string>();

  const tunnel = async (o: TunnelOptions = {}): Promise<TestTunnel> => {
    const cred = o.password !== undefined ? '    password: ${env:SSH_PW}' : '    privateKey: ${env:SSH_KEY}';
    const yaml = `version: 1
resources:
  box:
    kind: ssh
    target: ssh://${sshd.user}@127.0.0.1:${o.targetPort ?? sshd.port}
${cred}
    hostKey: "${o.hostKey ?? sshd.hostFingerprint}"
    policies: [${(o.use ?? []).join(', ')}]
${o.resource ?? ''}
policies:
${o.policies ?? '  {}'}
`.replace('policies:\n  {}', 'policies: {}');
    const cfg = parseConfig(yaml, 'test.yaml');
    const res = cfg.resources['box'] as SshResource;
    const secrets: Record<string, string> = { SSH_KEY: sshd.userKey, SSH_PW: o.password ?? '' };
    const opened = await createSshEngine(
      {
        resource: res,
        config: cfg,
        policies: resolvePolicies(res.policies, cfg.policies),
        store: o.store ?? store,
        identity: IDENTITY,
        resolve: async (s) => {
          const m = /^\$\{env:(\w+)\}$/.exec(s.raw);
          if (!m) throw new Error(`unexpected secret ${s.raw}`);
          return secrets[m[1]!]!;
        },
        env: { XDG_STATE_HOME: stateDir },
        homedir: dir,
      },
      o.tuning,
    );
    const t = new Tunnel({ resource: 'box', kind: 'ssh', clientTls: false, engine: opened.engine, graceMs: 2000 });
    const events: TunnelEvent[] = [];
    t.on('event', (e) => {
      events.push(e);
      if (e.type === 'session_start') sessionIds.add(e.sessionId);
    });
    const addr = await t.open();
    const tt: TestTunnel = {
      tunnel: t,
      engine: opened.engine,
      port: addr.port,
      secret: t.secret,
      url: t.url,
      env: opened.childEnv(addr, t.secret),
      events,
      files: opened.files,
      hostKeyFingerprint: opened.hostKeyFingerprint,
      describe: opened.describe,
      async close() {
        await t.close();
        await opened.close();
      },
    };
    open.push(tt);
    return tt;
  };

  return {
    sshd,
    dir,
    store,
    stateDir,
    tunnel,
    async events(sessionId?: string) {
      if (sessionId) return store.listEvents(sessionId);
      const all: StoreEvent[] = [];
      for (const id of sessionIds) all.push(...(await store.listEvents(id)));
      return all;
    },
    async dump() {
      const parts: string[] = [];
      for (const id of sessionIds) {
        parts.push(JSON.stringify(await store.getSession(id)));
        parts.push(JSON.stringify(await store.listEvents(id)));
      }
      parts.push(JSON.stringify(await store.listApprovals()));
      return parts.join('\n');
    },
    async stop() {
      for (const t of open) await t.close().catch(() => undefined);
      await store.close().catch(() => undefined);
      await sshd.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until `check` returns a value (polling the store, not the clock: no timing assertions). */
export async function eventually<T>(check: () => Promise<T | undefined | null | false>, what: string, tries = 2400): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await check();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}
