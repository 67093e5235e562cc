/**
 * Secret references (DESIGN §3): `${env:NAME}`, `${file:PATH}` and `${keychain:NAME}` inside a config string.
 * They are parsed when the config loads (so a malformed one is a positioned config error) and resolved only
 * when a tunnel opens. `$${` writes a literal `${`.
 *
 * Nothing here ever puts a secret *value* in an error message or in output: errors name the reference
 * (`${env:PROD_DB_PASSWORD}`), the path of a file, or the key path, never what they resolve to.
 */
import { readFile as fsReadFile } from 'node:fs/promises';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import { DlpctlError } from '../errors.js';
import type { Config, Resource, SecretRef, SecretRefKind, SecretString } from './types.js';

export const SECRET_REF_KINDS: readonly SecretRefKind[] = ['env', 'file', 'keychain'];

/** Reads a secret from the OS keychain; null when there is no such entry. Implemented by `identity/`. */
export type KeychainReader = (name: string) => Promise<string | null>;

export type SecretScan =
  | { ok: true; value: SecretString }
  /** `index` is the offset in the raw string where the bad reference starts. The message holds no value text. */
  | { ok: false; message: string; index: number };

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SAFE_KIND = /^[A-Za-z0-9_-]{1,20}$/;

/** Parses the references in a string without throwing. Error messages never quote the string itself. */
export function scanSecretString(raw: string): SecretScan {
  const refs: SecretRef[] = [];
  let i = 0;
  while (i < raw.length) {
    const dollar = raw.indexOf('$', i);
    if (dollar < 0) break;
    if (raw.startsWith('$${', dollar)) {
      i = dollar + 3;
      continue;
    }
    if (raw[dollar + 1] !== '{') {
      i = dollar + 1;
      continue;
    }
    const close = raw.indexOf('}', dollar + 2);
    if (close < 0) {
      return { ok: false, index: dollar, message: 'unterminated secret reference: `${` without a closing `}` (write `$${` for a literal `${`)' };
    }
    const inner = raw.slice(dollar + 2, close);
    if (inner.includes('${')) {
      return { ok: false, index: dollar, message: 'secret references cannot be nested' };
    }
    const colon = inner.indexOf(':');
    const kind = colon < 0 ? inner : inner.slice(0, colon);
    if (colon < 0 || !(SECRET_REF_KINDS as readonly string[]).includes(kind)) {
      const named = SAFE_KIND.test(kind) ? ` \`${kind}\`` : '';
      return {
        ok: false,
        index: dollar,
        message: `unknown secret reference kind${named}: use \${env:NAME}, \${file:PATH} or \${keychain:NAME} (write \`$\${\` for a literal \`\${\`)`,
      };
    }
    const name = inner.slice(colon + 1);
    if (name.trim() === '') {
      return { ok: false, index: dollar, message: `secret reference \`\${${kind}:}\` names nothing: write \${${kind}:${kind === 'file' ? 'PATH' : 'NAME'}}` };
    }
    if (kind === 'env' && !ENV_NAME.test(name)) {
      return { ok: false, index: dollar, message: 'an ${env:…} reference must name an environment variable (letters, digits and _, not starting with a digit)' };
    }
    refs.push({ kind: kind as SecretRefKind, name, text: raw.slice(dollar, close + 1) });
    i = close + 1;
  }
  return { ok: true, value: { raw, refs } };
}

/** Parses a string that may hold secret references; a malformed reference is a `CONFIG_INVALID` error. */
export function parseSecretString(raw: string): SecretString {
  const r = scanSecretString(raw);
  if (!r.ok) throw new DlpctlError('CONFIG_INVALID', r.message);
  return r.value;
}

/** True for a value built by `parseSecretString` (structural: `{ raw: string, refs: [] }`). */
export function isSecretString(v: unknown): v is SecretString {
  return typeof v === 'object' && v !== null && typeof (v as SecretString).raw === 'string' && Array.isArray((v as SecretString).refs);
}

export interface ResolveSecretOptions {
  env?: Readonly<Record<string, string | undefined>>;
  /** Reads a file as UTF-8; defaults to `fs.readFile`. */
  readFile?: (path: string) => Promise<string>;
  keychain?: KeychainReader;
  /** For `~` in `${file:~/…}`. */
  homedir?: string;
  /** Relative `${file:…}` paths resolve against this directory (the config file's directory). */
  baseDir?: string;
}

/** Expands `~` and resolves a `${file:…}` path. */
export function secretFilePath(name: string, opts: Pick<ResolveSecretOptions, 'homedir' | 'baseDir'> = {}): string {
  let p = name;
  if (p === '~' || p.startsWith('~/')) {
    if (opts.homedir === undefined) throw new DlpctlError('CONFIG_SECRET', `cannot expand \`~\` in \${file:${name}}: no home directory known`);
    p = join(opts.homedir, p.slice(1));
  }
  if (!isAbsolute(p) && opts.baseDir !== undefined) p = resolvePath(opts.baseDir, p);
  return p;
}

async function resolveRef(ref: SecretRef, opts: ResolveSecretOptions): Promise<string> {
  switch (ref.kind) {
    case 'env': {
      const v = opts.env?.[ref.name];
      if (v === undefined) {
        throw new DlpctlError('CONFIG_SECRET', `secret reference ${ref.text}: environment variable ${ref.name} is not set; export it before opening the tunnel`);
      }
      // CI systems hand out an empty string for a secret that is not configured; that is never a credential.
      if (v === '') throw new DlpctlError('CONFIG_SECRET', `secret reference ${ref.text}: environment variable ${ref.name} is empty; check the CI secret`);
      return v;
    }
    case 'file': {
      const path = secretFilePath(ref.name, opts);
      const read = opts.readFile ?? ((p: string) => fsReadFile(p, 'utf8'));
      let text: string;
      try {
        text = await read(path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException | null)?.code;
        const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code ?? 'cannot read it';
        throw new DlpctlError('CONFIG_SECRET', `secret reference ${ref.text}: cannot read ${path} (${why})`, { cause: err });
      }
      return text.replace(/[\r\n]+$/, '');
    }
    case 'keychain': {
      if (opts.keychain === undefined) {
        throw new DlpctlError('CONFIG_SECRET', `secret reference ${ref.text}: no OS keychain is available here; use \${env:…} or \${file:…}`);
      }
      let v: string | null;
      try {
        v = await opts.keychain(ref.name);
      } catch (err) {
        throw new DlpctlError('CONFIG_SECRET', `secret reference ${ref.text}: the OS keychain could not be read`, { cause: err });
      }
      if (v === null) throw new DlpctlError('CONFIG_SECRET', `secret reference ${ref.text}: no keychain entry named ${ref.name}`);
      return v;
    }
  }
}

/** Resolves every reference in `s` and returns the resulting string. Call only when a tunnel opens. */
export async function resolveSecret(s: SecretString, opts: ResolveSecretOptions = {}): Promise<string> {
  const values = new Map<string, string>();
  for (const ref of s.refs) {
    if (!values.has(ref.text)) values.set(ref.text, await resolveRef(ref, opts));
  }
  let out = '';
  let i = 0;
  const raw = s.raw;
  while (i < raw.length) {
    if (raw.startsWith('$${', i)) {
      out += '${';
      i += 3;
      continue;
    }
    if (raw.startsWith('${', i)) {
      const close = raw.indexOf('}', i + 2);
      const text = raw.slice(i, close + 1);
      const v = values.get(text);
      if (close >= 0 && v !== undefined) {
        out += v;
        i = close + 1;
        continue;
      }
    }
    out += raw[i];
    i++;
  }
  return out;
}

function collectSecretStrings(value: unknown, out: SecretString[], seen: Set<unknown>): void {
  if (typeof value !== 'object' || value === null || seen.has(value)) return;
  seen.add(value);
  if (isSecretString(value)) {
    out.push(value);
    return;
  }
  for (const v of Array.isArray(value) ? value : Object.values(value)) collectSecretStrings(v, out, seen);
}

/** Every secret string in the config, including the store URL. */
export function configSecretStrings(config: Config): SecretString[] {
  const out: SecretString[] = [];
  collectSecretStrings({ identity: config.identity, resources: config.resources, approvals: config.approvals, audit: config.audit }, out, new Set());
  if (config.store !== undefined) {
    const s = scanSecretString(config.store);
    if (s.ok) out.push(s.value);
  }
  return out;
}

/**
 * The names of every environment variable a `${env:…}` reference anywhere in the config names, sorted.
 * `dlpctl connect … -- cmd` removes them from the child's environment.
 */
export function secretEnvNames(config: Config): string[] {
  const names = new Set<string>();
  for (const s of configSecretStrings(config)) for (const r of s.refs) if (r.kind === 'env') names.add(r.name);
  return [...names].sort();
}

const SCHEME_PREFIX = /^(Bearer|Basic|Token|Bot|token|bearer|basic) $/;

/**
 * A secret string for display: references are shown (they name where a secret lives, not the secret),
 * literal text is replaced by `<redacted>` except an authorization scheme such as `Bearer `.
 */
export function redactSecretString(s: SecretString): string {
  let out = '';
  let last = 0;
  const lit = (text: string): string => (text === '' ? '' : SCHEME_PREFIX.test(text) ? text : '<redacted>');
  for (const ref of s.refs) {
    const at = s.raw.indexOf(ref.text, last);
    if (at < 0) continue;
    out += lit(s.raw.slice(last, at)) + ref.text;
    last = at + ref.text.length;
  }
  return out + lit(s.raw.slice(last));
}

/** Removes a password (and credential-like query parameters) from a URL string. Non-URLs come back unchanged. */
export function stripUrlCredentials(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return text;
  }
  if (url.password !== '') url.password = '';
  for (const key of [...url.searchParams.keys()]) {
    if (/pass|secret|token|key|auth/i.test(key)) url.searchParams.set(key, '<redacted>');
  }
  // `postgres:` and `ssh:` are not special schemes: URL keeps them as written apart from what we changed.
  return url.toString();
}

/** The store URL for display: secret references stay, a literal password is removed. */
export function describeStore(store: string): string {
  return stripUrlCredentials(store);
}

/** A resource's target without credentials, for `dlpctl resources` and logs. */
export function describeTarget(resource: Resource): string {
  return stripUrlCredentials(resource.target);
}

/** A deep copy of the config that is safe to print (`dlpctl config validate --json`): every secret string is redacted. */
export function redactConfigForOutput(config: Config): unknown {
  const walk = (v: unknown): unknown => {
    if (isSecretString(v)) return redactSecretString(v);
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v === 'object' && v !== null) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        if (k === 'pos') continue;
        out[k] = k === 'target' && typeof x === 'string' ? stripUrlCredentials(x) : walk(x);
      }
      return out;
    }
    return v;
  };
  const out = walk(config) as Record<string, unknown>;
  if (config.store !== undefined) out['store'] = describeStore(config.store);
  return out;
}
