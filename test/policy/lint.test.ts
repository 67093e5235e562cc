import { describe, expect, it } from 'vitest';
import type { Policy, Rule } from '../../src/config/types.js';
import { lintPolicies, type LintInput } from '../../src/policy/index.js';

const knownEntities = ['email', 'credit_card', 'us_ssn', 'phone', 'iban'];

function lint(policies: Record<string, Rule[]>, resources: LintInput['resources'] = { db: { kind: 'postgres', policies: Object.keys(policies) } }, checkRegex?: (s: string) => string | null) {
  const ps: Record<string, Policy> = {};
  for (const [name, rules] of Object.entries(policies)) ps[name] = { name, rules };
  return lintPolicies({ resources, policies: ps }, { knownEntities, ...(checkRegex ? { checkRegex } : {}) });
}

describe('lint', () => {
  it('a clean policy has no findings', () => {
    expect(lint({ p: [{ name: 'd', action: 'deny', when: { sql: { statements: ['drop'] } } }, { name: 'm', action: 'mask', entities: ['email', 'secrets'] }] })).toEqual([]);
  });

  it('unknown entity names', () => {
    const f = lint({ p: [{ name: 'm', action: 'mask', entities: ['emial'] }, { name: 'd', action: 'deny', when: { entities: ['ssn'] } }] });
    expect(f.map((x) => [x.severity, x.path])).toEqual([
      ['error', 'policies.p[0].entities[0]'],
      ['error', 'policies.p[1].when.entities[0]'],
    ]);
    expect(f[0]!.message).toMatch(/unknown entity emial/);
  });

  it('rules that can never match', () => {
    const f = lint(
      {
        web: [
          { name: 'sql-on-http', action: 'deny', when: { sql: { statements: ['drop'] } } },
          { name: 'ok', action: 'deny', when: { http: { paths: ['/admin/**'] } } },
        ],
        db: [
          { name: 'empty', action: 'deny', when: { sql: { statements: [] } } },
          { name: 'both', action: 'deny', when: { sql: { tables: ['t'] }, http: { methods: ['GET'] } } },
          { name: 'bad-kind', action: 'deny', when: { sql: { statements: ['dorp' as never] } } },
        ],
      },
      { api: { kind: 'http', policies: ['web'] }, db: { kind: 'postgres', policies: ['db'] } },
    );
    const msgs = f.map((x) => `${x.path}: ${x.message}`);
    expect(msgs.some((m) => m.startsWith('policies.web[0].when.sql') && /only used by http resources \(api\)/.test(m))).toBe(true);
    expect(msgs.some((m) => m.startsWith('policies.db[0].when.sql.statements') && /empty/.test(m))).toBe(true);
    expect(msgs.some((m) => m.startsWith('policies.db[1].when') && /both sql and http/.test(m))).toBe(true);
    expect(msgs.some((m) => m.startsWith('policies.db[2].when.sql.statements[0]') && /dorp is not a statement kind/.test(m))).toBe(true);
    expect(msgs.some((m) => m.startsWith('policies.web[1]'))).toBe(false);
  });

  it('rules shadowed by a stricter or earlier rule', () => {
    const f = lint({
      p: [
        { name: 'deny-customers', action: 'deny', when: { sql: { tables: ['customers'] } } },
        { name: 'allow-customers-read', action: 'allow', when: { sql: { statements: ['select'], tables: ['public.customers'] } } },
        { name: 'approve-orders', action: 'approve', approvers: ['group:dba'], when: { sql: { tables: ['orders'] } } },
        { name: 'deny-orders-too', action: 'deny', when: { sql: { tables: ['orders', 'x'] } } },
        { name: 'deny-orders-dup', action: 'deny', when: { sql: { tables: ['orders'] } } },
        { name: 'allow-other', action: 'allow', when: { sql: { tables: ['invoices'] } } },
      ],
    });
    const shadowed = f.filter((x) => /can never decide/.test(x.message)).map((x) => x.path);
    expect(shadowed).toEqual(['policies.p[1]', 'policies.p[2]', 'policies.p[4]']);
  });

  it('a deny without when shadows everything weaker', () => {
    const f = lint({ p: [{ name: 'a', action: 'allow', when: { identity: { groups: ['dba'] } } }], q: [{ name: 'all', action: 'deny' }] });
    expect(f.filter((x) => /can never decide/.test(x.message)).map((x) => x.message)).toEqual([
      'rule a can never decide: policy q rule all (deny) matches everything it matches and is stricter',
    ]);
  });

  it('approve rules without approvers', () => {
    const f = lint({ p: [{ name: 'a', action: 'approve', when: { sql: { noWhere: true } } }] });
    expect(f).toEqual([{ severity: 'error', path: 'policies.p[0].approvers', message: expect.stringMatching(/names no approvers/) }]);
  });

  it('unsafe and invalid regexes', () => {
    const check = (s: string) => (/\(.*\+\)\+/.test(s) ? 'nested quantifier' : null);
    const f = lint({ p: [{ name: 'r', action: 'deny', when: { sql: { text: '(a+)+$' } } }, { name: 'bad', action: 'deny', when: { sql: { text: '(' } } }] }, undefined, check);
    expect(f.map((x) => x.message)).toEqual([
      'unsafe regular expression in rule r: nested quantifier',
      expect.stringMatching(/^invalid regular expression in rule bad/),
    ]);
  });

  it('mask rules with neither columns nor entities, limit rules without limits', () => {
    const f = lint({ p: [{ name: 'm', action: 'mask', with: 'redact' }, { name: 'l', action: 'limit' }] });
    expect(f.map((x) => x.message)).toEqual([
      'mask rule m has neither columns nor entities, so it masks nothing',
      expect.stringMatching(/limit rule l sets no limit/),
    ]);
  });

  it('duplicate rule names, undefined and unused policies', () => {
    const f = lint({ p: [{ name: 'x', action: 'deny', when: { sql: { tables: ['a'] } } }, { name: 'x', action: 'deny', when: { sql: { tables: ['b'] } } }], unused: [] }, {
      db: { kind: 'postgres', policies: ['p', 'nope', 'recommended'] },
    });
    expect(f.map((x) => [x.severity, x.path])).toEqual([
      ['error', 'resources.db.policies[1]'],
      ['error', 'policies.p[1].name'],
      ['warning', 'policies.unused'],
      ['warning', 'resources.db.policies[2]'],
    ]);
  });

  it('warns when recommended holds statements for approval that no approve rule of the resource lets anyone approve', () => {
    const writes: Rule = { name: 'w', action: 'approve', when: { sql: { statements: ['update', 'delete'], noWhere: true } }, approvers: ['group:dba'] };
    const alone = lint({}, { db: { kind: 'postgres', policies: ['recommended'] } });
    expect(alone).toEqual([expect.objectContaining({ severity: 'warning', path: 'resources.db.policies[0]', message: expect.stringMatching(/denied at once.*add an approve rule with approvers/) })]);
    // With an approve rule that names approvers, before or after it: nothing to say.
    expect(lint({ gate: [writes] }, { db: { kind: 'postgres', policies: ['recommended', 'gate'] } })).toEqual([]);
    expect(lint({ gate: [writes] }, { db: { kind: 'postgres', policies: ['gate', 'recommended'] } })).toEqual([]);
  });

  it('carries the rule position', () => {
    const pos = { file: 'dlpctl.yaml', line: 12, col: 7 };
    const f = lint({ p: [{ name: 'm', action: 'mask', pos }] });
    expect(f[0]!.pos).toEqual(pos);
  });
});

describe('ssh command conditions', () => {
  const box = { box: { kind: 'ssh' as const, policies: ['p'] } };
  it('accept forward channels (command is then host:port) and flag channels that carry nothing', () => {
    const forward = lint({ p: [{ name: 'db-forward', when: { ssh: { command: '^db\\.internal:5432$', channels: ['forward'] } }, action: 'allow' }] }, box);
    expect(forward.filter((f) => f.severity === 'error')).toEqual([]);
    // Lines typed into a shell carry a command; an sftp channel does not.
    const shell = lint({ p: [{ name: 'shell-cmd', when: { ssh: { command: '^rm', channels: ['shell'] } }, action: 'deny' }] }, box);
    expect(shell.filter((f) => f.severity === 'error')).toEqual([]);
    const sftp = lint({ p: [{ name: 'sftp-cmd', when: { ssh: { command: '^rm', channels: ['sftp'] } }, action: 'deny' }] }, box);
    expect(sftp.map((f) => f.message).join('\n')).toMatch(/sftp-cmd can never match: only exec channels/);
  });

  it('flag paths rules that can never match: with a command, or on channels that read no file', () => {
    const ok = lint({ p: [{ name: 'keys', when: { ssh: { paths: ['**/.ssh/**'], channels: ['sftp', 'exec'] } }, action: 'deny' }] }, box);
    expect(ok.filter((f) => f.severity === 'error')).toEqual([]);
    const both = lint({ p: [{ name: 'both', when: { ssh: { paths: ['/etc/**'], command: '^cat' } }, action: 'deny' }] }, box);
    expect(both.map((f) => f.message).join('\n')).toMatch(/both can never match: a file read has no command line/);
    const fwd = lint({ p: [{ name: 'fwd', when: { ssh: { paths: ['/etc/**'], channels: ['forward'] } }, action: 'deny' }] }, box);
    expect(fwd.map((f) => f.message).join('\n')).toMatch(/fwd can never match: only sftp channels and scp -f/);
  });
});
