/**
 * User settings that are not policy (DESIGN §3): kept by `conf` in `settings.json` under the user's config
 * directory (`$XDG_CONFIG_HOME/dlpctl/`, next to a personal dlpctl.yaml), set with `dlpctl config set KEY VALUE`.
 * The keys are defined once in `SETTINGS`, which validation, `listSettings` and the docs use.
 */
import Conf from 'conf';
import { isAbsolute, join } from 'node:path';
import { DlpctlError } from '../errors.js';
import { checkFormat } from './formats.js';
import { stripUrlCredentials } from './secrets.js';

export interface SettingDef {
  doc: string;
  values?: readonly string[];
  default?: string;
  /** Returns what is wrong with a value, or null. */
  check?: (value: string) => string | null;
}

export const SETTINGS = {
  store: {
    doc: 'Session store URL used when neither --store, DLPCTL_STORE nor the config file names one (sqlite:PATH or postgres://…).',
    check: (v: string) => {
      if (v.startsWith('sqlite:')) return v.length > 'sqlite:'.length ? null : 'needs a path: sqlite:PATH';
      try {
        const u = new URL(v);
        if ((u.protocol === 'postgres:' || u.protocol === 'postgresql:') && u.hostname !== '') return null;
      } catch {
        /* fall through */
      }
      return 'must be sqlite:PATH or postgres://USER@HOST[:PORT]/DATABASE';
    },
  },
  issuer: {
    doc: 'OIDC issuer of the last `dlpctl login`, used when the config file has no identity section.',
    check: (v: string) => checkFormat('issuer-url', v),
  },
  color: { doc: 'Colour in human output.', values: ['auto', 'always', 'never'], default: 'auto' },
  output: { doc: 'Default output format.', values: ['human', 'json'], default: 'human' },
} as const satisfies Record<string, SettingDef>;

export type SettingKey = keyof typeof SETTINGS;
export const SETTING_KEYS = Object.keys(SETTINGS) as SettingKey[];

export interface SettingsOptions {
  /** Directory holding settings.json; for tests. Default: `$XDG_CONFIG_HOME/dlpctl` or the OS config dir. */
  cwd?: string;
  env?: Readonly<Record<string, string | undefined>>;
}

type Stored = Partial<Record<SettingKey, string>>;

function open(opts: SettingsOptions): Conf<Stored> {
  const xdg = opts.env?.['XDG_CONFIG_HOME'];
  const cwd = opts.cwd ?? (xdg !== undefined && isAbsolute(xdg) ? join(xdg, 'dlpctl') : undefined);
  return new Conf<Stored>({
    projectName: 'dlpctl',
    projectSuffix: '',
    configName: 'settings',
    configFileMode: 0o600,
    ...(cwd === undefined ? {} : { cwd }),
  });
}

function settingDef(key: string): SettingDef {
  if (!Object.hasOwn(SETTINGS, key)) {
    throw new DlpctlError('USAGE', `unknown setting "${key}"; valid settings: ${SETTING_KEYS.join(', ')}`);
  }
  return SETTINGS[key as SettingKey];
}

/** The effective value of a setting (its default when unset), or undefined. Unknown key → `USAGE`. */
export function getSetting(key: string, opts: SettingsOptions = {}): string | undefined {
  const def = settingDef(key);
  return open(opts).get(key as SettingKey) ?? def.default;
}

/** Validates and stores a setting. Unknown key or bad value → `USAGE` naming what is allowed. */
export function setSetting(key: string, value: string, opts: SettingsOptions = {}): void {
  const def = settingDef(key);
  if (def.values !== undefined && !def.values.includes(value)) {
    throw new DlpctlError('USAGE', `setting ${key} must be one of ${def.values.join(', ')}`);
  }
  const why = def.check?.(value) ?? null;
  if (why !== null) throw new DlpctlError('USAGE', `setting ${key} ${why}`);
  open(opts).set(key as SettingKey, value);
}

/** Removes a setting so that its default applies again. */
export function unsetSetting(key: string, opts: SettingsOptions = {}): void {
  settingDef(key);
  open(opts).delete(key as SettingKey);
}

/**
 * Every setting's effective value, for display: a password in the store URL is removed. Use `getSetting`
 * for the value itself.
 */
export function listSettings(opts: SettingsOptions = {}): Record<SettingKey, string | undefined> {
  const conf = open(opts);
  const out = {} as Record<SettingKey, string | undefined>;
  for (const key of SETTING_KEYS) {
    const def: SettingDef = SETTINGS[key];
    const v = conf.get(key) ?? def.default;
    out[key] = key === 'store' && v !== undefined ? stripUrlCredentials(v) : v;
  }
  return out;
}

/** Where the settings file is (for `dlpctl config get --help` and errors). */
export function settingsPath(opts: SettingsOptions = {}): string {
  return open(opts).path;
}
