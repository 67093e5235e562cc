/**
 * Keys of the SSH tunnel:
 *
 *  - the local endpoint's host key: ed25519, generated once per user and kept (0600) under
 *    `$XDG_STATE_HOME/dlpctl/ssh_host_ed25519_key`, so a `known_hosts` line written once keeps working;
 *  - the per-tunnel client key: ed25519, generated when the tunnel opens, written to a 0600 file in a private
 *    temporary directory for `DLPCTL_SSH`, removed when the tunnel closes;
 *  - the pinned upstream host key: `SHA256:<base64>` (as `ssh-keygen -lf` prints it) or a known_hosts line
 *    (`[host]:port ssh-ed25519 AAAA…`, the host field is ignored: the resource names the host).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DlpctlError } from '../../errors.js';

type Ssh2 = typeof import('ssh2');
export type ParsedKey = import('ssh2').ParsedKey;

/** `SHA256:…` of an SSH wire-format public key, as OpenSSH prints it (base64 without padding). */
export function fingerprint(wireKey: Buffer): string {
  return `SHA256:${createHash('sha256').update(wireKey).digest('base64').replace(/=+$/, '')}`;
}

export type PinnedHostKey = { kind: 'fingerprint'; fingerprint: string } | { kind: 'key'; type: string; key: Buffer; fingerprint: string };

/** Parses the resource's `hostKey`. Throws a config error naming what is accepted. */
export function parsePinnedHostKey(raw: string): PinnedHostKey {
  const s = raw.trim();
  const fp = /^SHA256:([A-Za-z0-9+/]{43})=?$/.exec(s);
  if (fp) return { kind: 'fingerprint', fingerprint: `SHA256:${fp[1]}` };
  const words = s.split(/\s+/);
  // known_hosts: [markers] hosts keytype base64 [comment]; or a bare "keytype base64".
  for (let i = 0; i + 1 < words.length; i++) {
    const type = words[i]!;
    const b64 = words[i + 1]!;
    if (/^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-)/.test(type) && /^[A-Za-z0-9+/]+=*$/.test(b64)) {
      const key = Buffer.from(b64, 'base64');
      return { kind: 'key', type, key, fingerprint: fingerprint(key) };
    }
  }
  throw new DlpctlError('CONFIG_INVALID', `hostKey "${raw.slice(0, 60)}" is neither a SHA256:… fingerprint nor a known_hosts line; get it with: ssh-keyscan -p PORT HOST | ssh-keygen -lf -`);
}

export function hostKeyMatches(pin: PinnedHostKey, presented: Buffer): boolean {
  return pin.kind === 'fingerprint' ? fingerprint(presented) === pin.fingerprint : pin.key.equals(presented);
}

/** Where the tunnel's own host key lives (per user). */
export function hostKeyPath(env: NodeJS.ProcessEnv, homedir: string): string {
  const state = env.XDG_STATE_HOME && path.isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : path.join(homedir, '.local', 'state');
  return path.join(state, 'dlpctl', 'ssh_host_ed25519_key');
}

export interface LocalHostKey {
  /** OpenSSH private key text (never printed). */
  privateKey: string;
  parsed: ParsedKey;
  /** `ssh-ed25519 AAAA…` */
  publicLine: string;
  fingerprint: string;
  path: string;
}

/** Loads the per-user host key, generating it (0600, directory 0700) on first use. */
export function loadOrCreateHostKey(ssh2: Ssh2, file: string): LocalHostKey {
  let text: string | null = null;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new DlpctlError('INTERNAL', `cannot read the tunnel host key ${file}: ${(err as Error).message}`, { cause: err });
    }
  }
  if (text === null) {
    const pair = generateEd25519(ssh2, 'dlpctl tunnel host key');
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    try {
      // `wx`: two tunnels starting at once must not overwrite each other's key.
      fs.writeFileSync(file, pair.private, { mode: 0o600, flag: 'wx' });
      text = pair.private;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new DlpctlError('INTERNAL', `cannot write the tunnel host key ${file}: ${(err as Error).message}`, { cause: err });
      text = fs.readFileSync(file, 'utf8');
    }
  }
  const parsed = parseOne(ssh2, text, `the tunnel host key ${file}`);
  const wire = parsed.getPublicSSH();
  return { privateKey: text, parsed, publicLine: `${parsed.type} ${wire.toString('base64')}`, fingerprint: fingerprint(wire), path: file };
}

export interface ClientKey {
  privateKey: string;
  parsed: ParsedKey;
  publicLine: string;
  fingerprint: string;
}

/**
 * ssh2's generator drops a leading zero byte of the ed25519 key (about 1 key in 200), which yields a key file
 * neither ssh2 nor OpenSSH reads. Generate until the key parses with a 32-byte public key.
 */
function generateEd25519(ssh2: Ssh2, comment: string): { private: string; public: string } {
  for (let i = 0; ; i++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment });
    const k = ssh2.utils.parseKey(pair.private);
    const one = Array.isArray(k) ? k[0] : k;
    if (one && !(one instanceof Error) && one.getPublicSSH().length === 4 + 11 + 4 + 32) return pair;
    if (i > 20) throw new DlpctlError('INTERNAL', 'cannot generate an ed25519 key');
  }
}

export function generateClientKey(ssh2: Ssh2): ClientKey {
  const pair = generateEd25519(ssh2, 'dlpctl tunnel client');
  const parsed = parseOne(ssh2, pair.private, 'the generated client key');
  const wire = parsed.getPublicSSH();
  return { privateKey: pair.private, parsed, publicLine: `${parsed.type} ${wire.toString('base64')}`, fingerprint: fingerprint(wire) };
}

export function parseOne(ssh2: Ssh2, text: string | Buffer, what: string, passphrase?: string): ParsedKey {
  const k = ssh2.utils.parseKey(text, passphrase);
  if (k instanceof Error) throw new DlpctlError('CONFIG_INVALID', `cannot parse ${what}: ${k.message}`);
  const one = Array.isArray(k) ? k[0] : k;
  if (!one) throw new DlpctlError('CONFIG_INVALID', `cannot parse ${what}: no key in it`);
  return one;
}
