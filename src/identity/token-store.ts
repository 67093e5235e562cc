/**
 * Where a login's tokens live between commands (DESIGN §6): the OS keychain through @napi-rs/keyring
 * (Secret Service on Linux, Keychain on macOS, Credential Manager on Windows), one entry per issuer; where no
 * keychain service answers (CI, containers, SSH sessions without a session bus), a 0600 JSON file under
 * `$XDG_STATE_HOME/dlpctl/` in a 0700 directory, with a one-line notice.
 *
 * Reading tries the keychain, then the file; logout deletes from both.
 */
import { mkdir, open, readFile, rename, rm, chmod } from 'node:fs/promises';
import path from 'node:path';
import { DlpctlError } from '../errors.js';

export type TokenStoreKind = 'keychain' | 'file';

/** What a login keeps. All of it is secret. */
export interface StoredLogin {
  version: 1;
  issuer: string;
  clientId: string;
  refreshToken?: string;
  idToken?: string;
  accessToken?: string;
  /** Milliseconds since the epoch. */
  accessTokenExpiresAt?: number;
  savedAt: number;
}

export interface TokenBackend {
  readonly kind: TokenStoreKind;
  /** Where the tokens are, for messages ("the OS keychain", a file path). */
  readonly where: string;
  get(issuer: string): Promise<StoredLogin | null>;
  set(login: StoredLogin): Promise<void>;
  /** True when something was deleted. */
  delete(issuer: string): Promise<boolean>;
}

const SERVICE = 'dlpctl';

function parse(text: string | null | undefined): StoredLogin | null {
  if (!text) return null;
  try {
    const v = JSON.parse(text) as StoredLogin;
    return v && v.version === 1 && typeof v.issuer === 'string' ? v : null;
  } catch {
    return null;
  }
}

type KeyringModule = typeof import('@napi-rs/keyring');

/** The OS keychain, or null when no keychain service answers here. */
export async function openKeychain(): Promise<TokenBackend | null> {
  let mod: KeyringModule;
  try {
    mod = await import('@napi-rs/keyring');
  } catch {
    return null;
  }
  // On Linux, pin the Secret Service: the kernel keyring fallback forgets everything at logout.
  const entry = (issuer: string) => new mod.AsyncEntry(SERVICE, `login:${issuer}`, { linux: { store: 'secret-service' } });
  try {
    await entry('probe').getPassword();
  } catch {
    return null;
  }
  return {
    kind: 'keychain',
    where: 'the OS keychain',
    async get(issuer) {
      return parse(await entry(issuer).getPassword());
    },
    async set(login) {
      await entry(login.issuer).setPassword(JSON.stringify(login));
    },
    async delete(issuer) {
      try {
        return await entry(issuer).deletePassword();
      } catch {
        return false;
      }
    },
  };
}

export function stateDir(env: NodeJS.ProcessEnv, homedir: string): string {
  const xdg = env.XDG_STATE_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(homedir, '.local', 'state'), 'dlpctl');
}

type FileContents = Record<string, StoredLogin>;

/** The 0600 file fallback: `$XDG_STATE_HOME/dlpctl/tokens.json`, one entry per issuer. */
export function fileBackend(env: NodeJS.ProcessEnv, homedir: string): TokenBackend {
  const dir = stateDir(env, homedir);
  const file = path.join(dir, 'tokens.json');
  const readAll = async (): Promise<FileContents> => {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new DlpctlError('AUTH_FAILED', `cannot read the token file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
    }
    try {
      const v = JSON.parse(text) as unknown;
      return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as FileContents) : {};
    } catch {
      return {};
    }
  };
  const writeAll = async (all: FileContents): Promise<void> => {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700).catch(() => {});
    if (Object.keys(all).length === 0) {
      await rm(file, { force: true });
      return;
    }
    const tmp = `${file}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.chmod(0o600);
      await fh.writeFile(JSON.stringify(all, null, 2));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  };
  return {
    kind: 'file',
    where: file,
    async get(issuer) {
      const all = await readAll();
      return Object.hasOwn(all, issuer) ? parse(JSON.stringify(all[issuer])) : null;
    },
    async set(login) {
      const all = await readAll();
      all[login.issuer] = login;
      await writeAll(all);
    },
    async delete(issuer) {
      const all = await readAll();
      if (!Object.hasOwn(all, issuer)) return false;
      delete all[issuer];
      await writeAll(all);
      return true;
    },
  };
}

export interface TokenStoreOptions {
  env: NodeJS.ProcessEnv;
  homedir: string;
  /** `auto` (default): the keychain when one answers, else the file. */
  prefer?: TokenStoreKind | 'auto';
  /** Tests: replaces the OS keychain probe. */
  keychain?: () => Promise<TokenBackend | null>;
}

/** Both places a login may be, and where a new one goes. */
export class TokenStore {
  readonly #opts: TokenStoreOptions;
  #keychain: Promise<TokenBackend | null> | undefined;
  readonly file: TokenBackend;
  /** `$XDG_STATE_HOME/dlpctl`: the token file and the renewal lock (refresh-lock.ts). */
  readonly stateDir: string;

  constructor(opts: TokenStoreOptions) {
    this.#opts = opts;
    this.file = fileBackend(opts.env, opts.homedir);
    this.stateDir = stateDir(opts.env, opts.homedir);
  }

  keychain(): Promise<TokenBackend | null> {
    this.#keychain ??= (this.#opts.keychain ?? openKeychain)();
    return this.#keychain;
  }

  /** The backend a new login is written to; `notice` is set when the file is used because no keychain answered. */
  async target(): Promise<{ backend: TokenBackend; notice?: string }> {
    const prefer = this.#opts.prefer ?? 'auto';
    if (prefer === 'file') return { backend: this.file };
    const kc = await this.keychain();
    if (kc) return { backend: kc };
    if (prefer === 'keychain') {
      throw new DlpctlError('AUTH_FAILED', 'no OS keychain service answers here (no Secret Service on the session bus); use --token-store file');
    }
    return { backend: this.file, notice: `no OS keychain is reachable; tokens are stored in ${this.file.where} (mode 0600)` };
  }

  /** The stored login for `issuer`, and where it was found. */
  async get(issuer: string): Promise<{ login: StoredLogin; backend: TokenBackend } | null> {
    const kc = this.#opts.prefer === 'file' ? null : await this.keychain();
    if (kc) {
      const login = await kc.get(issuer).catch(() => null);
      if (login) return { login, backend: kc };
    }
    const login = await this.file.get(issuer);
    return login ? { login, backend: this.file } : null;
  }

  /** Deletes the login for `issuer` everywhere; returns the places it was removed from. */
  async delete(issuer: string): Promise<string[]> {
    const removed: string[] = [];
    const kc = await this.keychain();
    if (kc && (await kc.delete(issuer))) removed.push(kc.where);
    if (await this.file.delete(issuer)) removed.push(this.file.where);
    return removed;
  }
}
