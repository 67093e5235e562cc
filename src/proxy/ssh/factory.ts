/**
 * `openEngine` for ssh resources: resolve the injected credential, load (or create) the tunnel's host key,
 * make the per-tunnel client key and the files `DLPCTL_SSH` points at, build the engine.
 *
 * `DLPCTL_SSH` is an `ssh` command prefix: `$DLPCTL_SSH ANYHOST 'COMMAND'` (and `GIT_SSH_COMMAND="$DLPCTL_SSH"`)
 * reach the tunnel whatever ANYHOST is (`HostName` overrides it), log in with the generated client key, and
 * check the tunnel's host key strictly against a known_hosts file that holds only it. `-F none` keeps the
 * user's ssh_config (ProxyJump, ControlMaster, agents) out of the way.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as Ssh2 from 'ssh2';
import type { SshResource } from '../../config/types.js';
import { DlpctlError } from '../../errors.js';
import type { EngineFactoryOptions, OpenedEngine } from '../engine-factory.js';
import { SshEngine, type SshTarget } from './engine.js';
import { generateClientKey, hostKeyPath, loadOrCreateHostKey, parseOne, parsePinnedHostKey } from './keys.js';

/** The cipher order DLPCTL_SSH asks for (see its Ciphers option): AES-GCM, then the rest of what the tunnel offers. */
export const CLIENT_CIPHER_ORDER = 'aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,chacha20-poly1305@openssh.com';

export function parseSshTarget(target: string): { host: string; port: number; user: string } {
  let u: URL;
  try {
    u = new URL(target);
  } catch {
    throw new DlpctlError('CONFIG_INVALID', `target ${target} is not an ssh:// URL (ssh://USER@HOST[:PORT])`);
  }
  if (u.protocol !== 'ssh:' || !u.hostname || !u.username) {
    throw new DlpctlError('CONFIG_INVALID', `target must be ssh://USER@HOST[:PORT]`);
  }
  if (u.password) throw new DlpctlError('CONFIG_INVALID', 'the ssh target must not carry a password; use the resource key `password` with a secret reference');
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port: u.port ? Number(u.port) : 22, user: decodeURIComponent(u.username) };
}

/** Options for tests and the bench (flush timing, limits); the CLI passes none. */
export type SshEngineTuning = Partial<Pick<import('./engine.js').SshEngineOptions, 'envAllow' | 'execIdleFlushMs' | 'maxChannels' | 'loginGraceMs' | 'recordLimit' | 'connectTimeoutMs' | 'spareIdleMs' | 'shareUpstream'>>;

export async function createSshEngine(o: EngineFactoryOptions<SshResource>, tuning: SshEngineTuning = {}): Promise<OpenedEngine & { engine: SshEngine; files: { dir: string; clientKey: string; knownHosts: string }; hostKeyFingerprint: string }> {
  const r = o.resource;
  const t = parseSshTarget(r.target);
  // ssh2 is CommonJS: under Node's ESM loader its exports are on `default` (named ones are not detected).
  const mod = (await import('ssh2')) as unknown as { default?: typeof Ssh2 } & typeof Ssh2;
  const ssh2: typeof Ssh2 = mod.default ?? mod;
  const privateKey = r.privateKey ? await o.resolve(r.privateKey) : undefined;
  const password = r.password ? await o.resolve(r.password) : undefined;
  if (privateKey === undefined && password === undefined) {
    throw new DlpctlError('CONFIG_INVALID', `resource ${r.name} has neither privateKey nor password to log in to ${t.host}`);
  }
  if (privateKey !== undefined) parseOne(ssh2, privateKey, `the privateKey of resource ${r.name}`); // fails early, names no value
  const pin = r.hostKey ? parsePinnedHostKey(r.hostKey) : null;
  const hostKey = loadOrCreateHostKey(ssh2, hostKeyPath(o.env, o.homedir));
  const clientKey = generateClientKey(ssh2);

  // Private files for DLPCTL_SSH (the client key must be 0600 or ssh ignores it).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlpctl-ssh-'));
  fs.chmodSync(dir, 0o700);
  const keyFile = path.join(dir, 'client_ed25519');
  fs.writeFileSync(keyFile, clientKey.privateKey, { mode: 0o600 });
  const alias = `dlpctl-${r.name.replace(/[^A-Za-z0-9._-]/g, '_')}`;
  const knownHosts = path.join(dir, 'known_hosts');
  fs.writeFileSync(knownHosts, `${alias} ${hostKey.publicLine}\n`, { mode: 0o600 });

  const target: SshTarget = {
    ...t,
    ...(privateKey !== undefined ? { privateKey } : {}),
    ...(password !== undefined ? { password } : {}),
  };
  const engine = new SshEngine({
    ssh2,
    resource: r,
    target,
    pin,
    hostKey,
    clientKey,
    policies: o.policies,
    store: o.store,
    identity: o.identity,
    ...(o.reason ? { reason: o.reason } : {}),
    customDetectors: o.config.detectors ?? [],
    ...(o.onApprovalPending ? { onApprovalPending: o.onApprovalPending } : {}),
    ...(r.shareUpstream !== undefined ? { shareUpstream: r.shareUpstream } : {}),
    ...tuning,
  });

  const sshPrefix = (a: { host: string; port: number }) =>
    [
      'ssh',
      '-F', 'none',
      '-p', String(a.port),
      '-i', keyFile,
      '-o', 'IdentitiesOnly=yes',
      '-o', 'IdentityAgent=none',
      '-o', `HostName=${a.host}`,
      '-o', `HostKeyAlias=${alias}`,
      '-o', `UserKnownHostsFile=${knownHosts}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', 'CheckHostIP=no',
      '-o', 'UpdateHostKeys=no',
      '-o', 'BatchMode=yes',
      '-o', 'ForwardAgent=no',
      '-o', 'ForwardX11=no',
      '-o', 'LogLevel=ERROR',
      // AES-GCM first: OpenSSH's own first choice, chacha20-poly1305, is the slow one on the tunnel's side (ssh2,
      // without its optional native addon, computes Poly1305 in WebAssembly for every packet); with AES-GCM, done
      // by OpenSSL, an scp upload through the tunnel ran 15-45% faster. Every cipher stays offered, for other clients.
      '-o', `Ciphers=${CLIENT_CIPHER_ORDER}`,
      '-o', 'User=dlpctl',
    ].join(' ');

  return {
    engine,
    clientTls: false,
    files: { dir, clientKey: keyFile, knownHosts },
    hostKeyFingerprint: hostKey.fingerprint,
    childEnv: (a) => ({ DLPCTL_SSH_PORT: String(a.port), DLPCTL_SSH: sshPrefix(a) }),
    describe: `ssh → ${t.user}@${t.host}:${t.port} (tunnel host key ${hostKey.fingerprint} as ${alias}; client key ${keyFile})`,
    connectHelp: (a, url) => ({ stdout: [url], hint: `connect with: ${sshPrefix(a)} ${o.resource.name} [COMMAND]` }),
    close: async () => {
      engine.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
