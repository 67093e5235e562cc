import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { configError, problems, yaml } from './helpers.js';

const pg = (extra: string[] = [], name = 'postgres-prod'): string[] => [
  'resources:',
  `  ${name}:`,
  '    kind: postgres',
  '    target: postgres://app@db.internal:5432/app',
  ...extra.map((l) => `    ${l}`),
];

describe('config errors', () => {
  it('names file:line:col, key path and allowed values for a bad enum', () => {
    const err = configError(yaml('version: 1', ...pg(['tls:', '  mode: strict'])));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe('dlpctl.yaml: 1 problem');
    expect(err.details).toEqual(['dlpctl.yaml:7:13: resources.postgres-prod.tls.mode: must be one of disable, require, verify-full (got "strict")']);
  });

  it('suggests the closest key for an unknown key', () => {
    expect(problems(yaml('version: 1', 'polices: {}'))).toEqual([
      'dlpctl.yaml:2:1: polices: unknown key `polices` at the top level (did you mean `policies`?)',
    ]);
    expect(problems(yaml('version: 1', ...pg(['tsl: { mode: require }'])))).toEqual([
      'dlpctl.yaml:6:5: resources.postgres-prod.tsl: unknown key `tsl` in resources.postgres-prod (did you mean `tls`?)',
    ]);
  });

  it('says which resource kind a misplaced key belongs to', () => {
    expect(problems(yaml('version: 1', ...pg(['hostKey: SHA256:x'])))).toEqual([
      'dlpctl.yaml:6:5: resources.postgres-prod: unknown key `hostKey` for a postgres resource (it belongs to ssh resources)',
    ]);
  });

  it('safeFunctions is a postgres key of name or schema.name globs', () => {
    expect(parseConfig(yaml('version: 1', ...pg(['safeFunctions: [reporting.*, fmt_money]'])), 'dlpctl.yaml').resources['postgres-prod']).toMatchObject({
      safeFunctions: ['reporting.*', 'fmt_money'],
    });
    expect(problems(yaml('version: 1', ...pg(['safeFunctions: [a.b.c]'])))).toEqual([
      expect.stringMatching(/resources\.postgres-prod\.safeFunctions\[0\]: must be NAME or SCHEMA\.NAME/),
    ]);
    const http = ['resources:', '  api:', '    kind: http', '    target: https://api.example.com', '    safeFunctions: [f]'];
    expect(problems(yaml('version: 1', ...http))).toEqual([expect.stringMatching(/unknown key `safeFunctions` for a http resource \(it belongs to postgres resources\)/)]);
  });

  it('reports wrong types and the version', () => {
    expect(problems(yaml('version: 2', 'resources: []', 'tests: {}'))).toEqual([
      'dlpctl.yaml:1:10: version: must be 1 (got 2)',
      'dlpctl.yaml:2:12: resources: must be a mapping (got a list)',
      'dlpctl.yaml:3:8: tests: must be a list (got a mapping)',
    ]);
    expect(problems(yaml('version: 1', ...pg(['enforce: "yes"', 'listen: 5433'])))).toEqual([
      'dlpctl.yaml:6:14: resources.postgres-prod.enforce: must be true or false (got a string)',
      'dlpctl.yaml:7:13: resources.postgres-prod.listen: must be a string (got a number; quote it to make it text)',
    ]);
  });

  it('reports bad durations and sizes', () => {
    const text = yaml(
      'version: 1',
      'policies:',
      '  p:',
      '    - name: a',
      '      action: approve',
      '      timeout: 15 minutes',
      '    - name: b',
      '      action: limit',
      '      maxBytes: 50 megs',
      '    - name: c',
      '      action: approve',
      '      timeout: 900',
    );
    expect(problems(text)).toEqual([
      'dlpctl.yaml:6:16: policies.p[0].timeout: must be a duration such as 15m, 1h30m, 500ms or 90d (got "15 minutes")',
      'dlpctl.yaml:9:17: policies.p[1].maxBytes: must be a size such as 512, 64KB, 1KiB or 50MB (got "50 megs")',
      'dlpctl.yaml:12:16: policies.p[2].timeout: a duration needs a unit, e.g. 900s or 900m (units: ms, s, m, h, d, w)',
    ]);
  });

  it('reports dangling policy and resource references, with suggestions', () => {
    const text = yaml(
      'version: 1',
      ...pg(['policies: [recommended, pi]']),
      'policies:',
      '  pii:',
      '    - { name: x, action: mask, columns: ["*.email"] }',
      'tests:',
      '  - name: t',
      '    resource: postgres-prd',
      '    sql: select 1',
      '    expect: allow',
    );
    expect(problems(text)).toEqual([
      'dlpctl.yaml:6:29: resources.postgres-prod.policies[1]: no policy named `pi` (did you mean `pii`?); define it under policies: or use a built-in (recommended)',
      'dlpctl.yaml:12:15: tests[0].resource: no resource named `postgres-prd` (did you mean `postgres-prod`?)',
    ]);
  });

  it('reports duplicate rule names and action-specific keys', () => {
    const text = yaml(
      'version: 1',
      'policies:',
      '  p:',
      '    - name: a',
      '      action: deny',
      '      approvers: [group:dba]',
      '    - name: a',
      '      action: mask',
      '    - name: b',
      '      action: limit',
      '    - name: c',
      '      action: mask',
      '      entities: [email]',
      '      with: hash',
      '      keep: 2',
    );
    expect(problems(text)).toEqual([
      'dlpctl.yaml:6:7: policies.p[0].approvers: `approvers` is only allowed when action is approve (action is deny)',
      'dlpctl.yaml:7:13: policies.p[1].name: duplicate rule name `a` in policy p (first at line 4)',
      'dlpctl.yaml:7:7: policies.p[1]: a mask rule needs `columns` or `entities`',
      'dlpctl.yaml:9:7: policies.p[2]: a limit rule needs one of `maxRows`, `maxBytes`, `maxBodyBytes`, `ratePerMinute`',
      'dlpctl.yaml:15:7: policies.p[3].keep: `keep` is only allowed when with is partial (with is hash)',
    ].sort(byPosition));
  });

  it('reports malformed secret references without the value', () => {
    const text = yaml(
      'version: 1',
      ...pg(['password: "${env:}"']),
      '  api:',
      '    kind: http',
      '    target: https://api.example.com',
      '    headers:',
      '      A: "${foo:x}"',
      '      B: "Bearer ${env:TOKEN"',
    );
    expect(problems(text)).toEqual([
      'dlpctl.yaml:6:15: resources.postgres-prod.password: secret reference `${env:}` names nothing: write ${env:NAME}',
      'dlpctl.yaml:11:10: resources.api.headers.A: unknown secret reference kind `foo`: use ${env:NAME}, ${file:PATH} or ${keychain:NAME} (write `$${` for a literal `${`)',
      'dlpctl.yaml:12:10: resources.api.headers.B: unterminated secret reference: `${` without a closing `}` (write `$${` for a literal `${`)',
    ]);
  });

  it('rejects secret references where they are not resolved', () => {
    expect(problems(yaml('version: 1', 'identity:', '  issuer: https://idp.example.com', '  clientId: ${env:ID}'))).toEqual([
      'dlpctl.yaml:4:13: identity.clientId: does not take secret references; only credential keys (password, headers, clientSecret, privateKey, …) are resolved',
    ]);
  });

  it('reports YAML syntax errors with a position and a hint for ${…} in flow style', () => {
    const err = configError(yaml('version: 1', ...pg(['tls: { mode: verify-full, ca: ${file:/etc/ssl/db-ca.pem} }'])));
    expect(err.details[0]).toMatch(/^dlpctl\.yaml:6:\d+: YAML: .*quote values that contain \$\{…\}/);
    expect(problems('version: 1\nresources: [a, b\n')[0]).toMatch(/^dlpctl\.yaml:\d+:\d+: YAML: /);
    expect(problems('version: 1\nversion: 1\n')).toEqual(['dlpctl.yaml:2:1: duplicate key (a key may appear once in a mapping)']);
    expect(problems('')).toEqual(['dlpctl.yaml:1:1: the file is empty; a config needs at least `version: 1`']);
  });

  it('calls checkRegex for every regex and validates entities', () => {
    const seen: string[] = [];
    const text = yaml(
      'version: 1',
      'policies:',
      '  p:',
      '    - name: a',
      '      when: { sql: { text: "a+" }, http: { text: "(x+)+" }, ssh: { command: "^rm" }, entities: [emial] }',
      '      action: deny',
      'detectors:',
      '  - { name: emp, pattern: "EMP-[0-9]+" }',
    );
    const lines = problems(text, {
      checkRegex: (s) => {
        seen.push(s);
        return s === '(x+)+' ? 'nested quantifier (catastrophic backtracking)' : null;
      },
      knownEntities: new Set(['email']),
    });
    expect(seen.sort()).toEqual(['(x+)+', 'EMP-[0-9]+', '^rm', 'a+'].sort());
    expect(lines).toEqual([
      'dlpctl.yaml:5:50: policies.p[0].when.http.text: invalid regular expression: nested quantifier (catastrophic backtracking)',
      'dlpctl.yaml:5:97: policies.p[0].when.entities[0]: unknown entity `emial` (did you mean `email`?)',
    ]);
    expect(problems(yaml('version: 1', 'detectors:', '  - { name: x, pattern: "(" }'))[0]).toMatch(/^dlpctl\.yaml:3:25: detectors\[0\]\.pattern: invalid regular expression: /);
  });

  it('checks tests: exactly one of sql/http/ssh, matching the resource kind, and the named rule', () => {
    const text = yaml(
      'version: 1',
      ...pg(['policies: [p]']),
      'policies:',
      '  p: [{ name: no-ddl, action: deny }]',
      'tests:',
      '  - { name: a, resource: postgres-prod, expect: deny }',
      '  - { name: b, resource: postgres-prod, expect: deny, http: { method: get, path: /x } }',
      '  - { name: c, resource: postgres-prod, expect: deny, sql: "drop table x", rule: no-dd }',
      '  - { name: c, resource: postgres-prod, expect: maybe, sql: "x" }',
    );
    expect(problems(text)).toEqual([
      'dlpctl.yaml:10:5: tests[0]: a test needs exactly one of `sql`, `http`, `ssh`',
      'dlpctl.yaml:11:61: tests[1].http: resource `postgres-prod` is a postgres resource; write this test with `sql:`',
      'dlpctl.yaml:12:82: tests[2].rule: no rule `no-dd` in the policies of `postgres-prod` (did you mean `no-ddl`?)',
      'dlpctl.yaml:13:13: tests[3].name: duplicate test name (same as tests[2])',
      'dlpctl.yaml:13:49: tests[3].expect: must be one of allow, deny, approve (got "maybe")',
    ]);
  });

  it('collects all errors across the file, sorted by position', () => {
    const text = yaml('version: 1', 'stor: sqlite:x', ...pg(['default: maybe', 'enforce: 1']), 'approvals: { webhok: x }');
    const err = configError(text);
    expect(err.message).toBe('dlpctl.yaml: 4 problems');
    expect(err.details.map((l) => l.split(': ')[0])).toEqual(['dlpctl.yaml:2:1', 'dlpctl.yaml:7:14', 'dlpctl.yaml:8:14', 'dlpctl.yaml:9:14']);
  });

  it('rejects non-loopback listeners without serverTls and identity issuers over plain http', () => {
    expect(problems(yaml('version: 1', 'identity: { issuer: "http://idp.example.com", clientId: x }', ...pg(['listen: 0.0.0.0:5433'])))).toEqual([
      'dlpctl.yaml:2:21: identity.issuer: must be an https:// URL (http:// is only allowed for localhost, 127.0.0.1 and [::1])',
      'dlpctl.yaml:7:13: resources.postgres-prod.listen: listening on a non-loopback address needs `serverTls` (cert and key), or listen on 127.0.0.1',
    ]);
  });
});

function byPosition(a: string, b: string): number {
  const pa = a.split(':').slice(1, 3).map(Number);
  const pb = b.split(':').slice(1, 3).map(Number);
  return (pa[0] ?? 0) - (pb[0] ?? 0) || (pa[1] ?? 0) - (pb[1] ?? 0);
}

describe('approvals.webhook', () => {
  it('may be a secret reference as a whole (a Slack webhook URL is a secret), but not a non-URL', async () => {
    const { parseConfig } = await import('../../src/config/index.js');
    const ok = parseConfig('version: 1\napprovals:\n  webhook: ${env:APPROVAL_WEBHOOK}\n', 'w.yaml');
    expect(ok.approvals?.webhook?.refs[0]).toMatchObject({ kind: 'env', name: 'APPROVAL_WEBHOOK' });
    expect(() => parseConfig('version: 1\napprovals:\n  webhook: not-a-url\n', 'w.yaml')).toThrow(/w\.yaml/);
  });
});
