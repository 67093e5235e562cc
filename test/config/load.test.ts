import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { findConfigFile, getSetting, listSettings, loadConfig, setSetting, unsetSetting } from '../../src/config/index.js';
import { DlpctlError } from '../../src/errors.js';

let root: string;
let home: string;
let cwd: string;
const MINIMAL = 'version: 1\n';

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dlpctl-load-'));
  home = join(root, 'home');
  cwd = join(root, 'work');
  mkdirSync(join(home, '.config', 'dlpctl'), { recursive: true });
  mkdirSync(cwd, { recursive: true });
});

describe('config lookup', () => {
  it('follows --config, $DLPCTL_CONFIG, ./dlpctl.yaml, $XDG_CONFIG_HOME/dlpctl/dlpctl.yaml', () => {
    const xdg = join(root, 'xdg');
    mkdirSync(join(xdg, 'dlpctl'), { recursive: true });
    const base = { cwd, homedir: home };
    expect(findConfigFile({ ...base, env: {} })).toBeNull();
    writeFileSync(join(home, '.config', 'dlpctl', 'dlpctl.yaml'), MINIMAL);
    expect(findConfigFile({ ...base, env: {} })).toBe(join(home, '.config', 'dlpctl', 'dlpctl.yaml'));
    writeFileSync(join(xdg, 'dlpctl', 'dlpctl.yaml'), MINIMAL);
    expect(findConfigFile({ ...base, env: { XDG_CONFIG_HOME: xdg } })).toBe(join(xdg, 'dlpctl', 'dlpctl.yaml'));
    writeFileSync(join(cwd, 'dlpctl.yaml'), MINIMAL);
    expect(findConfigFile({ ...base, env: { XDG_CONFIG_HOME: xdg } })).toBe(join(cwd, 'dlpctl.yaml'));
    writeFileSync(join(root, 'env.yaml'), MINIMAL);
    expect(findConfigFile({ ...base, env: { DLPCTL_CONFIG: join(root, 'env.yaml') } })).toBe(join(root, 'env.yaml'));
    writeFileSync(join(cwd, 'flag.yaml'), MINIMAL);
    expect(findConfigFile({ ...base, file: 'flag.yaml', env: { DLPCTL_CONFIG: join(root, 'env.yaml') } })).toBe(join(cwd, 'flag.yaml'));
  });

  it('an explicit file or $DLPCTL_CONFIG that is missing is CONFIG_NOT_FOUND', async () => {
    const err = await loadConfig({ file: 'nope.yaml', cwd, homedir: home, env: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DlpctlError);
    expect((err as DlpctlError).code).toBe('CONFIG_NOT_FOUND');
    expect((err as DlpctlError).exitCode).toBe(2);
    expect((err as DlpctlError).message).toMatch(/nope\.yaml \(from --config\) does not exist/);
    expect(() => findConfigFile({ cwd, homedir: home, env: { DLPCTL_CONFIG: '/nonexistent/x.yaml' } })).toThrow(/DLPCTL_CONFIG/);
  });

  it('returns null when not required, and explains what to do when required', async () => {
    expect(await loadConfig({ cwd, homedir: home, env: {}, required: false })).toBeNull();
    const err = await loadConfig({ cwd, homedir: home, env: {} }).catch((e: unknown) => e);
    expect((err as DlpctlError).code).toBe('CONFIG_NOT_FOUND');
    expect((err as DlpctlError).message).toMatch(/--config FILE or set DLPCTL_CONFIG/);
  });

  it('loads and names the file relative to cwd in errors', async () => {
    writeFileSync(join(cwd, 'dlpctl.yaml'), 'version: 1\nresources: { a: { kind: nope } }\n');
    const err = await loadConfig({ cwd, homedir: home, env: {} }).catch((e: unknown) => e);
    expect((err as DlpctlError).details).toEqual(['dlpctl.yaml:2:25: resources.a.kind: must be one of postgres, http, ssh (got "nope")']);
    writeFileSync(join(cwd, 'dlpctl.yaml'), MINIMAL);
    const config = await loadConfig({ cwd, homedir: home, env: {} });
    expect(config.file).toBe(join(cwd, 'dlpctl.yaml'));
    expect(config.resources).toEqual({});
  });
});

describe('user settings', () => {
  it('round-trips, validates keys and values, and applies defaults', () => {
    const dir = join(root, 'settings');
    expect(getSetting('color', { cwd: dir })).toBe('auto');
    expect(getSetting('store', { cwd: dir })).toBeUndefined();
    setSetting('color', 'never', { cwd: dir });
    setSetting('output', 'json', { cwd: dir });
    setSetting('store', 'postgres://dlp:pw-in-settings@audit/dlpctl', { cwd: dir });
    setSetting('issuer', 'https://idp.example.com', { cwd: dir });
    expect(getSetting('color', { cwd: dir })).toBe('never');
    expect(getSetting('store', { cwd: dir })).toBe('postgres://dlp:pw-in-settings@audit/dlpctl');
    const all = listSettings({ cwd: dir });
    expect(all).toMatchObject({ color: 'never', output: 'json', issuer: 'https://idp.example.com' });
    expect(JSON.stringify(all)).not.toContain('pw-in-settings');
    unsetSetting('color', { cwd: dir });
    expect(getSetting('color', { cwd: dir })).toBe('auto');

    const unknown = (() => {
      try {
        setSetting('colour', 'never', { cwd: dir });
      } catch (e) {
        return e;
      }
    })() as DlpctlError;
    expect(unknown.code).toBe('USAGE');
    expect(unknown.message).toMatch(/valid settings: store, issuer, color, output/);
    expect(() => setSetting('color', 'sometimes', { cwd: dir })).toThrow(/one of auto, always, never/);
    expect(() => setSetting('store', 'mysql://x', { cwd: dir })).toThrow(/sqlite:PATH or postgres/);
    expect(() => setSetting('issuer', 'http://idp.example.com', { cwd: dir })).toThrow(/https/);
  });
});
