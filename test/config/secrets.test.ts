import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  describeTarget,
  parseConfig,
  parseSecretString,
  redactConfigForOutput,
  resolveSecret,
  secretEnvNames,
} from '../../src/config/index.js';
import { DlpctlError } from '../../src/errors.js';
import { configError, yaml } from './helpers.js';

const SECRET = 's3cr3t-value-XYZ';

describe('secret references', () => {
  it('parses references of each kind, and $${ as a literal', () => {
    const s = parseSecretString('Bearer ${env:TOKEN} ${file:~/k} ${keychain:db} $${env:NOT}');
    expect(s.refs.map((r) => [r.kind, r.name, r.text])).toEqual([
      ['env', 'TOKEN', '${env:TOKEN}'],
      ['file', '~/k', '${file:~/k}'],
      ['keychain', 'db', '${keychain:db}'],
    ]);
  });

  it('rejects malformed references with CONFIG_INVALID', () => {
    for (const bad of ['${env:}', '${foo:x}', '${env:X', '${env:1X}', '${}']) {
      expect(() => parseSecretString(bad), bad).toThrow(DlpctlError);
    }
  });

  it('resolves env, file (~ expanded, trailing newline trimmed) and keychain references', async () => {
    const home = mkdtempSync(join(tmpdir(), 'dlpctl-secret-'));
    writeFileSync(join(home, 'pw'), 'from-file\n');
    const opts = { env: { A: 'from-env' }, homedir: home, keychain: async (n: string) => (n === 'k' ? 'from-keychain' : null) };
    expect(await resolveSecret(parseSecretString('${env:A}'), opts)).toBe('from-env');
    expect(await resolveSecret(parseSecretString('${file:~/pw}'), opts)).toBe('from-file');
    expect(await resolveSecret(parseSecretString('x-${keychain:k}-$${y}'), opts)).toBe('x-from-keychain-${y}');
  });

  it('fails with CONFIG_SECRET naming the reference, never a value', async () => {
    const env = { EMPTY: '', OTHER: SECRET };
    const cases: [string, RegExp][] = [
      ['${env:MISSING}', /\$\{env:MISSING\}.*not set/],
      ['${env:EMPTY}', /\$\{env:EMPTY\}.*empty/],
      ['${file:/nonexistent/dlpctl/pw}', /cannot read \/nonexistent\/dlpctl\/pw \(no such file\)/],
      ['${keychain:nope}', /no keychain entry named nope/],
    ];
    for (const [raw, re] of cases) {
      const err = await resolveSecret(parseSecretString(`${raw}`), { env, keychain: async () => null }).catch((e: unknown) => e);
      expect(err, raw).toBeInstanceOf(DlpctlError);
      expect((err as DlpctlError).code).toBe('CONFIG_SECRET');
      expect((err as DlpctlError).exitCode).toBe(2);
      expect((err as DlpctlError).message).toMatch(re);
      expect((err as DlpctlError).message).not.toContain(SECRET);
    }
    const noKeychain = await resolveSecret(parseSecretString('${keychain:x}'), {}).catch((e: unknown) => e);
    expect((noKeychain as DlpctlError).message).toMatch(/no OS keychain/);
  });

  it('never shows the value of a referenced secret: load, errors, describe, redact', async () => {
    const env = { PW: SECRET };
    const good = yaml(
      'version: 1',
      'resources:',
      '  db:',
      '    kind: postgres',
      '    target: postgres://app@db.internal/app',
      '    password: ${env:PW}',
    );
    const config = parseConfig(good, 'dlpctl.yaml');
    expect(secretEnvNames(config)).toEqual(['PW']);
    const db = config.resources['db'];
    if (db === undefined) throw new Error('no db');
    expect(JSON.stringify(config)).not.toContain(SECRET);
    expect(describeTarget(db)).toBe('postgres://app@db.internal/app');
    expect(JSON.stringify(redactConfigForOutput(config))).not.toContain(SECRET);
    // Resolution only happens on demand, and only then is the value present.
    expect(db.kind === 'postgres' && db.password && (await resolveSecret(db.password, { env }))).toBe(SECRET);
    // An error elsewhere in the same file.
    const err = configError(`${good}    tls: { mode: strict }\n`);
    expect([err.message, ...err.details].join('\n')).not.toContain(SECRET);
  });

  it('rejects a literal password in a target or store URL without printing it', () => {
    const text = yaml(
      'version: 1',
      'store: postgres://dlp:hunter2-store@audit/dlpctl',
      'resources:',
      '  db:',
      '    kind: postgres',
      '    target: postgres://app:hunter2-target@db.internal/app',
      '  box:',
      '    kind: ssh',
      '    target: ssh://deploy:hunter2-ssh@10.0.0.1',
      '    password: "${oops:hunter2-pw}"',
    );
    const err = configError(text);
    const all = [err.message, ...err.details].join('\n');
    expect(err.details).toHaveLength(4);
    expect(err.details[1]).toBe(
      'dlpctl.yaml:6:13: resources.db.target: must not contain a password: remove it from the URL and write `password: ${env:…}` (or ${file:…}, ${keychain:…})',
    );
    expect(all).not.toMatch(/hunter2/);
  });

  it('does not echo source text in YAML syntax errors', () => {
    const err = configError('version: 1\nresources:\n  db:\n    password: hunter2-syntax"\n  x: [\n');
    expect(err.details.join('\n')).not.toContain('hunter2');
    const err2 = configError('version: 1\nidentity:\n  clientSecret: "hunter2-unterminated\n');
    expect(err2.details.join('\n')).not.toContain('hunter2');
  });

  it('redacts literal secret text in output but keeps references', () => {
    const config = parseConfig(
      yaml('version: 1', 'resources:', '  api:', '    kind: http', '    target: https://api.example.com', '    headers:', '      Authorization: "Bearer ${env:K}"', `      X-Key: ${SECRET}`),
      'x.yaml',
    );
    const out = JSON.stringify(redactConfigForOutput(config));
    expect(out).toContain('Bearer ${env:K}');
    expect(out).not.toContain(SECRET);
  });
});
