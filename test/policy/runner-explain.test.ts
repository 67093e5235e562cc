import { beforeAll, describe, expect, it } from 'vitest';
import type { PolicyTestCase, Resource } from '../../src/config/types.js';
import { explain, formatExplanation, initSqlParser, runPolicyTests, type PolicyTestConfig } from '../../src/policy/index.js';
import { ctx, policy, sql } from './helpers.js';

beforeAll(async () => {
  await initSqlParser();
});

const pg = (name: string, policies: string[], over: Partial<Resource> = {}) =>
  ({ name, kind: 'postgres', target: 'postgres://x@h/db', tls: { mode: 'disable' }, policies, default: 'allow', enforce: true, ...over }) as Resource;

const config: PolicyTestConfig = {
  resources: {
    'postgres-prod': pg('postgres-prod', ['recommended', 'prod-guard'], { enforce: false }),
    bastion: { name: 'bastion', kind: 'ssh', target: 'ssh://x@h', policies: ['ssh-guard'], default: 'allow', enforce: true },
  },
  policies: {
    'prod-guard': policy('prod-guard', { name: 'no-ddl', action: 'deny', when: { sql: { statements: ['drop', 'truncate', 'alter'] } } }, { name: 'pii', action: 'mask', columns: ['*.email'] }),
    'ssh-guard': policy('ssh-guard', { name: 'sudo', action: 'approve', approvers: ['group:sre'], when: { ssh: { command: '^sudo ' } } }),
  },
};

const base = { resource: 'postgres-prod', as: { subject: 'ci-bot', groups: ['analytics-agents'] } };

describe('policy test runner', () => {
  it('passes and fails, with a diff', () => {
    const cases: PolicyTestCase[] = [
      { name: 'drop denied', ...base, sql: 'DROP TABLE customers', expect: 'deny', rule: 'no-drop-truncate' },
      { name: 'wrong rule', ...base, sql: 'DROP TABLE customers', expect: 'deny', rule: 'no-ddl' },
      { name: 'wrong decision', ...base, sql: 'SELECT 1', expect: 'deny' },
      { name: 'ssh', resource: 'bastion', as: {}, ssh: { command: 'sudo reboot' }, expect: 'approve', rule: 'sudo' },
      { name: 'no such resource', resource: 'nope', as: {}, sql: 'SELECT 1', expect: 'allow' },
    ];
    const r = runPolicyTests(config, cases);
    expect(r.map((x) => x.pass)).toEqual([true, false, false, true, false]);
    expect(r[1]!.diff[0]).toBe('- expected: deny (rule no-ddl)');
    expect(r[1]!.diff[1]).toBe('+ actual:   deny (rule no-drop-truncate)');
    expect(r[2]).toMatchObject({ expected: 'deny', actual: 'allow', actualRule: null });
    expect(r[2]!.diff[1]).toMatch(/none: resource default/);
    expect(r[4]!.diff).toEqual(['resource nope is not defined']);
  });

  it('tests an observe-only resource by what it would decide', () => {
    const [r] = runPolicyTests(config, [{ name: 'x', ...base, sql: 'TRUNCATE t', expect: 'deny' }]);
    expect(r!.pass).toBe(true);
  });

  it('compares the masked sample through the injected masker', () => {
    const maskSample = (_res: string, masks: readonly { rule: string }[], sample: string) =>
      masks.some((m) => m.rule === 'pii') ? sample.replace(/\S+@\S+/g, '[email]') : sample;
    const cases: PolicyTestCase[] = [
      { name: 'masked ok', ...base, sql: 'SELECT email FROM customers', expect: 'allow', sample: 'a@b.co x', masked: '[email] x' },
      { name: 'masked wrong', ...base, sql: 'SELECT email FROM customers', expect: 'allow', sample: 'a@b.co x', masked: 'a@b.co x' },
    ];
    const r = runPolicyTests(config, cases, { maskSample });
    expect(r.map((x) => x.pass)).toEqual([true, false]);
    expect(r[1]!.masked).toEqual({ expected: 'a@b.co x', actual: '[email] x' });
    expect(r[1]!.diff).toEqual(['- masked: a@b.co x', '+ masked: [email] x']);
    const noMasker = runPolicyTests(config, [cases[0]!]);
    expect(noMasker[0]!.pass).toBe(false);
  });
});

describe('explain', () => {
  const p = policy(
    'guard',
    { name: 'no-ddl', action: 'deny', when: { sql: { statements: ['drop', 'truncate'] } } },
    { name: 'dba-only', action: 'allow', when: { identity: { groups: ['dba'] } } },
    { name: 'customers', action: 'mask', when: { sql: { tables: ['customers'] } }, columns: ['email'] },
  );

  it('says for each rule whether it matched and why not', () => {
    const x = explain(ctx([p], sql('SELECT email FROM public.customers')));
    expect(x.decision.action).toBe('allow');
    expect(x.classification?.statements[0]).toMatchObject({ kind: 'select', tables: ['public.customers'], functions: [], noWhere: false });
    expect(x.rules).toEqual([
      { policy: 'guard', rule: 'no-ddl', action: 'deny', statement: 0, result: 'not matched', reasons: ['statements: select not in [drop, truncate]'], decided: false },
      { policy: 'guard', rule: 'dba-only', action: 'allow', statement: 0, result: 'not matched', reasons: ['identity.groups: none of [analytics-agents] in [dba]'], decided: false },
      { policy: 'guard', rule: 'customers', action: 'mask', statement: 0, result: 'matched', reasons: [], decided: false },
    ]);
    const text = formatExplanation(x);
    expect(text).toContain('decision: allow');
    expect(text).toContain('statements: select not in [drop, truncate]');
    expect(text).toContain('guard/customers (mask): matched');
    expect(text).toContain('kind select; command SELECT');
  });

  it('marks the deciding rule and reports every statement of a message', () => {
    const x = explain(ctx([p], sql('SELECT 1; DROP TABLE t')));
    expect(x.decision.action).toBe('deny');
    const decided = x.rules.filter((r) => r.decided);
    expect(decided).toEqual([expect.objectContaining({ rule: 'no-ddl', statement: 1, result: 'matched' })]);
    expect(formatExplanation(x)).toContain('[statement 2]');
  });

  it('explains indeterminate rules and parse errors', () => {
    const x = explain(ctx([p], sql("LOAD 'x'")));
    expect(x.rules[0]).toMatchObject({ result: 'indeterminate', reasons: ['statements: could not classify this statement'] });
    expect(x.decision.message).toMatch(/names statement kinds/);
    const y = explain(ctx([p], sql('SELEC 1')));
    expect(y.classification?.error).toMatch(/syntax error/);
    expect(formatExplanation(y)).toMatch(/parse error: syntax error/);
  });

  it('says which part of a statement cannot be analysed', () => {
    const x = explain(ctx([p], sql("DO $$ BEGIN EXECUTE 'x'; END $$")));
    expect(x.classification?.statements[0]?.opaque).toBe('DO block runs dynamic SQL (EXECUTE) that cannot be analysed');
    expect(formatExplanation(x)).toContain('not analysable: DO block runs dynamic SQL (EXECUTE) that cannot be analysed');
  });

  it('names a failing condition for http and ssh rules', () => {
    const q = policy('h', { name: 'admin', action: 'deny', when: { http: { methods: ['POST'], paths: ['/admin/**'] } } });
    const x = explain(ctx([q], { type: 'http', method: 'GET', path: '/v1/x?y=1', headers: {} }));
    expect(x.rules[0]!.reasons).toEqual(['methods: GET not in [POST]', 'paths: /v1/x matches none of [/admin/**]']);
  });
});
