/**
 * Finding and reading dlpctl.yaml (DESIGN §3). Lookup order: `--config FILE`, `$DLPCTL_CONFIG`,
 * `./dlpctl.yaml`, `$XDG_CONFIG_HOME/dlpctl/dlpctl.yaml` (`~/.config` when unset). The environment, working
 * directory and home directory are parameters so that tests are hermetic; they default to the process's.
 */
import { statSync } from 'node:fs';
import { readFile as fsReadFile } from 'node:fs/promises';
import { homedir as osHomedir } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { DlpctlError } from '../errors.js';
import type { Config } from './types.js';
import { parseConfig } from './validate.js';
import type { ParseHooks } from './validate.js';

export const CONFIG_FILE_NAME = 'dlpctl.yaml';

export interface FindConfigOptions {
  /** `--config FILE`; relative to `cwd`. */
  file?: string | undefined;
  env?: Readonly<Record<string, string | undefined>>;
  cwd?: string;
  homedir?: string;
  /** Whether a path is an existing file; defaults to `fs.statSync`. */
  isFile?: (path: string) => boolean;
}

export type ConfigSource = 'flag' | 'env' | 'cwd' | 'xdg';

export interface ConfigCandidate {
  path: string;
  source: ConfigSource;
}

const defaultIsFile = (p: string): boolean => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
};

function expandHome(p: string, home: string): string {
  return p === '~' || p.startsWith('~/') ? join(home, p.slice(1)) : p;
}

/** The places looked at, in order. An explicit file or `$DLPCTL_CONFIG` is the only candidate when given. */
export function configSearchPaths(opts: FindConfigOptions = {}): ConfigCandidate[] {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const home = opts.homedir ?? osHomedir();
  if (opts.file !== undefined && opts.file !== '') return [{ path: resolve(cwd, expandHome(opts.file, home)), source: 'flag' }];
  const fromEnv = env['DLPCTL_CONFIG'];
  if (fromEnv !== undefined && fromEnv !== '') return [{ path: resolve(cwd, expandHome(fromEnv, home)), source: 'env' }];
  const xdg = env['XDG_CONFIG_HOME'];
  const configHome = xdg !== undefined && isAbsolute(xdg) ? xdg : join(home, '.config');
  return [
    { path: join(cwd, CONFIG_FILE_NAME), source: 'cwd' },
    { path: join(configHome, 'dlpctl', CONFIG_FILE_NAME), source: 'xdg' },
  ];
}

/**
 * The config file to use, or null when there is none. A file named by `--config` or `$DLPCTL_CONFIG` that
 * does not exist is an error (`CONFIG_NOT_FOUND`): the user asked for that file.
 */
export function findConfigFile(opts: FindConfigOptions = {}): string | null {
  const isFile = opts.isFile ?? defaultIsFile;
  const candidates = configSearchPaths(opts);
  for (const c of candidates) {
    if (isFile(c.path)) return c.path;
    if (c.source === 'flag') {
      throw new DlpctlError('CONFIG_NOT_FOUND', `config file ${c.path} (from --config) does not exist; check the path, or omit --config to use ./${CONFIG_FILE_NAME}`);
    }
    if (c.source === 'env') {
      throw new DlpctlError('CONFIG_NOT_FOUND', `config file ${c.path} (from $DLPCTL_CONFIG) does not exist; fix or unset DLPCTL_CONFIG`);
    }
  }
  return null;
}

export interface LoadConfigOptions extends FindConfigOptions {
  /** Default true: no config file at all is `CONFIG_NOT_FOUND`. With false, `loadConfig` returns null. */
  required?: boolean;
  hooks?: ParseHooks;
  readFile?: (path: string) => Promise<string>;
}

/** Finds, reads and validates the config. Errors: `CONFIG_NOT_FOUND`, `CONFIG_INVALID` (exit 2). */
export function loadConfig(opts: LoadConfigOptions & { required: false }): Promise<Config | null>;
export function loadConfig(opts?: LoadConfigOptions & { required?: true }): Promise<Config>;
export function loadConfig(opts?: LoadConfigOptions): Promise<Config | null>;
export async function loadConfig(opts: LoadConfigOptions = {}): Promise<Config | null> {
  const path = findConfigFile(opts);
  if (path === null) {
    if (opts.required === false) return null;
    const looked = configSearchPaths(opts).map((c) => c.path).join(', ');
    throw new DlpctlError(
      'CONFIG_NOT_FOUND',
      `no ${CONFIG_FILE_NAME} found (looked at ${looked}); create one (see examples/${CONFIG_FILE_NAME} or \`man 5 dlpctl.yaml\`), pass --config FILE or set DLPCTL_CONFIG`,
    );
  }
  const read = opts.readFile ?? ((p: string) => fsReadFile(p, 'utf8'));
  let text: string;
  try {
    text = await read(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | null)?.code;
    throw new DlpctlError('CONFIG_NOT_FOUND', `cannot read config file ${path} (${code ?? 'read error'}); check that it is a readable file`, { cause: err });
  }
  const cwd = opts.cwd ?? process.cwd();
  const rel = relative(cwd, path);
  const displayFile = rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
  return parseConfig(text, path, { displayFile, ...opts.hooks });
}
