import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, runCli, testEnv } from '../helpers/cli.js';

const example = path.join(repoRoot, 'examples/dlpctl.yaml');
let env: NodeJS.ProcessEnv;
let home: string;
beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-policy-'));
  env = testEnv(home);
});

const base = `version: 1
resources:
  db:
    kind: postgres
    target: postgres://app@127.0.0.1:5432/app
    policies: [recommended, guard]
policies:
  guard:
    - name: no-ddl
      when: { sql: { statements: [drop, alter] } }
      action: deny
    - name: no-ddl-again
      when: { sql: { statements: [drop] } }
      action: deny
    - name: writes
      when: { sql: { statements: [insert] } }
      action: approve
    - name: pii
      action: mask
      entities: [email, creditcard]
`;

describe('dlpctl policy test', () => {
  it("passes the example config's own cases", async () => {
    const r = await runCli(['policy', 'test', '--config', example], { env });
    expect(r.stdout).toMatch(/✓ analysts cannot drop tables/);
    expect(r.stdout.trim().split('\n').pop()).toMatch(/^\d+ passed, 0 failed$/);
    expect(r.code).toBe(0);
  });

  it('reports a failing case with its diff, exits 1, and has --json', async () => {
    const cfg = path.join(home, 'failing.yaml');
    await writeFile(
      cfg,
      `version: 1
resources:
  db:
    kind: postgres
    target: postgres://app@127.0.0.1:5432/app
    policies: [recommended]
tests:
  - name: select allowed
    resource: db
    as: { subject: bot }
    sql: SELECT 1
    expect: allow
  - name: wrongly expects drop to pass
    resource: db
    as: { subject: bot }
    sql: DROP TABLE customers
    expect: allow
`,
    );
    const r = await runCli(['policy', 'test', '--config', cfg], { env });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('✓ select allowed');
    expect(r.stdout).toContain('✗ wrongly expects drop to pass');
    expect(r.stdout).toMatch(/expected: allow/);
    expect(r.stdout).toMatch(/actual: +deny/);
    expect(r.stdout.trim().split('\n').pop()).toBe('1 passed, 1 failed');
    const j = await runCli(['--json', 'policy', 'test', '--config', cfg], { env });
    expect(JSON.parse(j.stdout)).toMatchObject({ passed: 1, failed: 1, results: [{ pass: true }, { pass: false, expected: 'allow', actual: 'deny' }] });
  });

  it('runs extra case files', async () => {
    const extra = path.join(home, 'extra.yaml');
    await writeFile(extra, `- name: truncate denied\n  resource: postgres-prod\n  as: { subject: bot }\n  sql: TRUNCATE orders\n  expect: deny\n`);
    const r = await runCli(['policy', 'test', '--config', example, extra], { env });
    expect(r.stdout).toContain('✓ truncate denied');
    expect(r.code).toBe(0);
  });

  it('a test file that is not valid YAML is a configuration error naming the file and line (exit 2)', async () => {
    const bad = path.join(home, 'bad-cases.yaml');
    await writeFile(bad, `- name: ok\n  resource: postgres-prod\n  sql: "SELECT 1\n  expect: allow\n- [unclosed\n`);
    const r = await runCli(['policy', 'test', '--config', example, bad], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain('internal error');
    expect(r.stderr).not.toContain('this is a bug');
    expect(r.stderr).toMatch(/bad-cases\.yaml:\d+:\d+: YAML: /);
  });
});

describe('dlpctl policy lint', () => {
  it('--json with schema errors: the errors as JSON findings, exit 2', async () => {
    const cfg = path.join(home, 'lint-schema.yaml');
    await writeFile(cfg, base);
    const j = await runCli(['--json', 'policy', 'lint', '--config', cfg], { env });
    expect(j.code).toBe(2);
    const body = JSON.parse(j.stdout) as { file: string; errors: number; findings: { severity: string; path: string; message: string; pos: { file: string; line: number; col: number } }[] };
    expect(body.errors).toBeGreaterThan(0);
    const f = body.findings.find((x) => x.path === 'policies.guard[3].entities[1]');
    expect(f, j.stdout).toMatchObject({ severity: 'error', pos: { file: cfg, line: 20, col: 25 } });
    expect(f!.message).toContain('creditcard');
  });

  it('finds unknown entities (error, exit 2) and shadowed rules (warning), with file:line', async () => {
    const cfg = path.join(home, 'lint.yaml');
    await writeFile(cfg, base);
    const r = await runCli(['policy', 'lint', '--config', cfg], { env });
    // An unknown entity is already a schema error when the config loads.
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/lint\.yaml:\d+:\d+: policies\.guard\[3\]\.entities\[1\]/);
    await writeFile(cfg, base.replace('creditcard', 'credit_card'));
    const ok = await runCli(['policy', 'lint', '--config', cfg], { env });
    expect(ok.stdout).toMatch(/lint\.yaml:\d+:\d+: warning: policies\.guard\[1\]/);
    expect(ok.stdout).toMatch(/policies\.guard\[2\].*approvers/);
    const j = await runCli(['--json', 'policy', 'lint', '--config', cfg], { env });
    const body = JSON.parse(j.stdout) as { findings: { path: string; severity: string }[] };
    expect(body.findings.some((f) => f.path.startsWith('policies.guard[1]'))).toBe(true);
  });
});

describe('dlpctl policy explain', () => {
  it('explains a data-modifying CTE as a delete and names the deciding rule', async () => {
    const r = await runCli(['policy', 'explain', '--config', example, '--resource', 'postgres-prod', '--sql', 'WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/decision: deny/);
    expect(r.stdout).toMatch(/kind delete/);
    expect(r.stdout).toMatch(/no-delete-all \(deny\): matched +\(decided\)/);
    expect(r.stdout).toMatch(/no-drop-truncate \(deny\): not matched/);
  });

  it('takes the identity into account and has --json', async () => {
    const args = ['--json', 'policy', 'explain', '--config', example, '--resource', 'postgres-prod', '--as', 'alice', '--sql', 'SELECT 1'];
    type X = { decision: { action: string; basis: string; rule: { rule: string } | null } };
    const dba = JSON.parse((await runCli([...args, '--group', 'dba'], { env })).stdout) as X;
    expect(dba.decision).toMatchObject({ action: 'allow', basis: 'rule', rule: { rule: 'dba-may-do-anything' } });
    const other = JSON.parse((await runCli([...args, '--group', 'analytics-agents'], { env })).stdout) as X;
    expect(other.decision).toMatchObject({ action: 'allow', basis: 'default', rule: null });
  });

  it('needs exactly one of --sql, --http, --ssh', async () => {
    const r = await runCli(['policy', 'explain', '--config', example, '--resource', 'postgres-prod'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('exactly one of --sql');
  });
});
