import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, runBin, runCli, testEnv } from '../helpers/cli.js';

const example = path.join(repoRoot, 'examples/dlpctl.yaml');
let home: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-cli-'));
  env = testEnv(home);
});

describe('dlpctl config validate', () => {
  it('accepts the shipped example', async () => {
    const r = await runCli(['config', 'validate', example], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/dlpctl\.yaml is valid: 3 resources/);
    const j = await runCli(['--json', 'config', 'validate', example], { env });
    expect(JSON.parse(j.stdout)).toMatchObject({ valid: true, resources: 3 });
  });

  it('names file:line:col and the key path of each problem, exits 2, and prints no secret', async () => {
    const broken = path.join(home, 'broken.yaml');
    await writeFile(
      broken,
      [
        'version: 1',
        'resources:',
        '  db:',
        '    kind: postgres',
        '    target: postgres://app:hunter2-literal@db.internal:5432/app',
        '    tls: { mode: strict }',
        '    policies: [nope]',
        '',
      ].join('\n'),
    );
    const r = await runCli(['config', 'validate', '--config', broken], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/broken\.yaml:6:\d+: resources\.db\.tls\.mode/);
    expect(r.stderr).toMatch(/broken\.yaml:7:\d+: resources\.db\.policies/);
    expect(r.stderr).toMatch(/broken\.yaml:5:\d+: resources\.db\.target/);
    expect(r.stderr).not.toContain('hunter2-literal');
    expect(r.stdout).toBe('');
    const j = await runCli(['--json', 'config', 'validate', broken], { env });
    expect(j.code).toBe(2);
    const body = JSON.parse(j.stdout) as { valid: boolean; errors: string[] };
    expect(body.valid).toBe(false);
    expect(body.errors.length).toBeGreaterThanOrEqual(3);
    expect(j.stdout).not.toContain('hunter2-literal');
  });

  it('says what to do when no configuration exists', async () => {
    const r = await runCli(['config', 'validate', path.join(home, 'missing.yaml')], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('missing.yaml');
  });

  it('works as the built binary, with the exit code', async () => {
    const broken = path.join(home, 'broken2.yaml');
    await writeFile(broken, 'version: 1\nresources:\n  x:\n    kind: postgress\n');
    const r = await runBin(['config', 'validate', '--config', broken], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/broken2\.yaml:4:\d+: resources\.x\.kind/);
  });
});

describe('dlpctl resources', () => {
  it('lists resources without secrets, as a table and as JSON', async () => {
    const secretEnv = { ...env, PROD_DB_PASSWORD: 'pw-do-not-print', OPENAI_API_KEY: 'sk-proj-donotprint' };
    const r = await runCli(['resources', '--config', example], { env: secretEnv });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^NAME\s+KIND\s+TARGET\s+LISTEN\s+POLICIES/m);
    expect(r.stdout).toMatch(/postgres-prod\s+postgres\s+postgres:\/\/app_reader@db\.internal:5432\/app\s+127\.0\.0\.1:5433/);
    const j = await runCli(['--json', 'resources', '--config', example], { env: secretEnv });
    const items = JSON.parse(j.stdout) as { id: string; kind: string; target: string; policies: string[] }[];
    expect(items.map((i) => i.id)).toEqual(['postgres-prod', 'openai', 'bastion']);
    expect(items[0]).toMatchObject({ kind: 'postgres', policies: ['recommended', 'pii', 'prod-guard'] });
    for (const out of [r.stdout, r.stderr, j.stdout]) {
      expect(out).not.toContain('pw-do-not-print');
      expect(out).not.toContain('sk-proj-donotprint');
      expect(out).not.toContain('${env:');
    }
  });

  it('colours only on a TTY, never with NO_COLOR or --no-color', async () => {
    const tty = await runCli(['resources', '--config', example], { env, tty: true });
    expect(tty.stdout).toContain('\u001b[');
    const piped = await runCli(['resources', '--config', example], { env });
    expect(piped.stdout).not.toContain('\u001b[');
    const noColor = await runCli(['resources', '--config', example], { env: { ...env, NO_COLOR: '1' }, tty: true });
    expect(noColor.stdout).not.toContain('\u001b[');
    const flag = await runCli(['--no-color', 'resources', '--config', example], { env, tty: true });
    expect(flag.stdout).not.toContain('\u001b[');
  });
});

describe('dlpctl config get/set', () => {
  it('keeps user settings and rejects unknown keys with the list of valid ones', async () => {
    const set = await runCli(['config', 'set', 'color', 'never'], { env });
    expect(set.code).toBe(0);
    const get = await runCli(['config', 'get', 'color'], { env });
    expect(get.stdout.trim()).toBe('never');
    const all = await runCli(['--json', 'config', 'get'], { env });
    expect(JSON.parse(all.stdout)).toMatchObject({ color: 'never' });
    const bad = await runCli(['config', 'set', 'colour', 'never'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/store/);
  });
});
