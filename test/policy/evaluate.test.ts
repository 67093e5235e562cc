import { beforeAll, describe, expect, it } from 'vitest';
import type { Rule } from '../../src/config/types.js';
import { evaluate, initSqlParser, normalizeHttpPath, type PolicyAction } from '../../src/policy/index.js';
import { alice, bot, ctx, policy, sql } from './helpers.js';

beforeAll(async () => {
  await initSqlParser();
});

const deny = (name: string, when?: Rule['when'], extra: Partial<Rule> = {}): Rule => ({ name, action: 'deny', ...(when ? { when } : {}), ...extra });
const allow = (name: string, when?: Rule['when']): Rule => ({ name, action: 'allow', ...(when ? { when } : {}) });
const approve = (name: string, when?: Rule['when'], approvers = ['group:dba']): Rule => ({ name, action: 'approve', approvers, ...(when ? { when } : {}) });

describe('precedence', () => {
  const p = policy(
    'p',
    allow('allow-all'),
    approve('writes', { sql: { statements: ['insert', 'update', 'delete'] } }),
    deny('no-delete', { sql: { statements: ['delete'] } }, { message: 'no deletes here' }),
  );

  it('deny beats approve beats allow, whatever the order', () => {
    expect(evaluate(ctx([p], sql('DELETE FROM t WHERE a = 1')))).toMatchObject({ action: 'deny', rule: { policy: 'p', rule: 'no-delete' }, message: 'no deletes here' });
    expect(evaluate(ctx([p], sql('UPDATE t SET a = 1 WHERE b = 2')))).toMatchObject({ action: 'approve', rule: { rule: 'writes' }, approvers: ['group:dba'] });
    expect(evaluate(ctx([p], sql('SELECT 1')))).toMatchObject({ action: 'allow', basis: 'rule', rule: { rule: 'allow-all' } });
  });

  it('lists every matching rule', () => {
    const d = evaluate(ctx([p], sql('DELETE FROM t WHERE a = 1')));
    expect(d.matched.map((m) => m.rule)).toEqual(['allow-all', 'writes', 'no-delete']);
  });

  it('the first of equally strict rules decides', () => {
    const q = policy('q', deny('first'), deny('second'));
    expect(evaluate(ctx([q], sql('SELECT 1'))).rule?.rule).toBe('first');
  });

  it('with no deciding rule the resource default applies', () => {
    const q = policy('q', deny('drops', { sql: { statements: ['drop'] } }));
    expect(evaluate(ctx([q], sql('SELECT 1'), { default: 'deny' }))).toMatchObject({ action: 'deny', basis: 'default', rule: null });
    expect(evaluate(ctx([q], sql('SELECT 1'), { default: 'allow' }))).toMatchObject({ action: 'allow', basis: 'default' });
    expect(evaluate(ctx([q], sql('SELECT 1'), { default: 'deny' })).message).toMatch(/default of resource res is deny/);
  });

  it('among matching approve rules, one that names approvers decides over one that names none, whatever the order', () => {
    const none = approve('nobody', undefined, []);
    const some = approve('dba', undefined, ['group:dba']);
    for (const rules of [[none, some], [some, none]]) {
      expect(evaluate(ctx([policy('q', ...rules)], sql('UPDATE t SET a = 1')))).toMatchObject({ action: 'approve', rule: { rule: 'dba' }, approvers: ['group:dba'] });
    }
    // Between two that both name approvers, the first still decides.
    const sre = approve('sre', undefined, ['group:sre']);
    expect(evaluate(ctx([policy('q', some, sre)], sql('SELECT 1')))).toMatchObject({ rule: { rule: 'dba' } });
    expect(evaluate(ctx([policy('q', sre, some)], sql('SELECT 1')))).toMatchObject({ rule: { rule: 'sre' } });
  });

  it('an approval nobody could give is denied at once, saying why; a deny still wins; observe-only records it', () => {
    const none = approve('nobody', undefined, []);
    const d = evaluate(ctx([policy('q', none)], sql('UPDATE t SET a = 1')));
    expect(d).toMatchObject({ action: 'deny', basis: 'fail_closed', rule: { policy: 'q', rule: 'nobody' }, approvers: [] });
    expect(d.message).toMatch(/nobody could approve/);
    expect(evaluate(ctx([policy('q', none, deny('no'))], sql('SELECT 1')))).toMatchObject({ action: 'deny', basis: 'rule', rule: { rule: 'no' } });
    const observed = evaluate({ ...ctx([policy('q', none)], sql('SELECT 1')), resource: { ...ctx([], sql('SELECT 1')).resource, enforce: false } });
    expect(observed).toMatchObject({ action: 'allow', wouldBe: 'deny', enforced: false });
  });

  it('approve carries approvers, minimum approvals and timeout from the deciding rule', () => {
    const q = policy('q', { name: 'a', action: 'approve', approvers: ['group:sre'], minApprovals: 2, timeout: 900_000 });
    expect(evaluate(ctx([q], sql('SELECT 1')))).toMatchObject({ action: 'approve', approvers: ['group:sre'], minApprovals: 2, timeout: 900_000 });
  });
});

describe('masks and limits', () => {
  it('every matching mask rule applies', () => {
    const p = policy(
      'pii',
      { name: 'cols', action: 'mask', columns: ['public.customers.ssn'], with: 'redact' },
      { name: 'vals', action: 'mask', entities: ['email'], with: 'partial', keep: 4 },
      { name: 'other', action: 'mask', when: { sql: { tables: ['orders'] } }, columns: ['*.card'] },
    );
    const d = evaluate(ctx([p], sql('SELECT * FROM customers')));
    expect(d.masks).toEqual([
      { policy: 'pii', rule: 'cols', columns: ['public.customers.ssn'], with: 'redact' },
      { policy: 'pii', rule: 'vals', entities: ['email'], with: 'partial', keep: 4 },
    ]);
    expect(d.action).toBe('allow');
  });

  it('the strictest value of each limit applies', () => {
    const p = policy('a', { name: 'l1', action: 'limit', maxRows: 10_000, maxBytes: 50_000_000 });
    const q = policy('b', { name: 'l2', action: 'limit', maxRows: 100_000, maxBytes: 1_000, ratePerMinute: 60 });
    const d = evaluate(ctx([p, q], sql('SELECT 1')));
    expect(d.limits).toEqual({ maxRows: 10_000, maxBytes: 1_000, ratePerMinute: 60 });
    expect(d.limitSources.maxRows).toEqual({ policy: 'a', rule: 'l1' });
    expect(d.limitSources.maxBytes).toEqual({ policy: 'b', rule: 'l2' });
  });

  it('masks of all statements of a message accumulate, once each', () => {
    const p = policy('p', { name: 'm', action: 'mask', when: { sql: { tables: ['customers'] } }, columns: ['email'] }, { name: 'n', action: 'mask', when: { sql: { tables: ['orders'] } }, columns: ['card'] });
    const d = evaluate(ctx([p], sql('SELECT * FROM customers; SELECT * FROM orders; SELECT * FROM customers')));
    expect(d.masks.map((m) => m.rule)).toEqual(['m', 'n']);
  });
});

describe('multi-statement SQL', () => {
  it('one denied statement denies the whole message', () => {
    const p = policy('p', deny('no-drop', { sql: { statements: ['drop'] } }));
    const d = evaluate(ctx([p], sql('SELECT 1; DROP TABLE t')));
    expect(d.action).toBe('deny');
    expect(d.rule?.rule).toBe('no-drop');
    expect(d.message).toMatch(/statement 2 of 2/);
    expect(d.statements?.map((s) => [s.kind, s.action])).toEqual([
      ['select', 'allow'],
      ['drop', 'deny'],
    ]);
  });

  it('matched rules say which statement they matched', () => {
    const p = policy('p', deny('no-drop', { sql: { statements: ['drop'] } }));
    expect(evaluate(ctx([p], sql('SELECT 1; DROP TABLE t'))).matched).toEqual([{ policy: 'p', rule: 'no-drop', action: 'deny', statement: 1 }]);
  });

  it('uses a classification passed in', () => {
    const p = policy('p', deny('no-drop', { sql: { statements: ['drop'] } }));
    const d = evaluate(ctx([p], { type: 'sql', text: 'SELECT 1', classification: { statements: [{ text: 'x', kind: 'drop', effects: ['drop'], command: 'DROP TABLE', reads: [], writes: [], functions: [], ctes: [], noWhere: false }] } }));
    expect(d.action).toBe('deny');
  });
});

describe('sql conditions', () => {
  it('a data-modifying CTE matches a delete rule', () => {
    const p = policy('p', deny('no-delete', { sql: { statements: ['delete'] } }));
    expect(evaluate(ctx([p], sql('WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d'))).action).toBe('deny');
  });

  it('an allow rule must cover every effect: allow [select] does not allow a SELECT wrapping a DELETE', () => {
    const p = policy('p', allow('reads', { sql: { statements: ['select'] } }));
    expect(evaluate(ctx([p], sql('SELECT * FROM t'), { default: 'deny' })).action).toBe('allow');
    expect(evaluate(ctx([p], sql('WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d'), { default: 'deny' })).action).toBe('deny');
  });

  it('tables match case-insensitively, with or without schema', () => {
    const bare = policy('p', deny('c', { sql: { tables: ['customers'] } }));
    const qualified = policy('p', deny('c', { sql: { tables: ['public.customers'] } }));
    expect(evaluate(ctx([bare], sql('SELECT * FROM public.customers'))).action).toBe('deny');
    expect(evaluate(ctx([bare], sql('SELECT * FROM "Customers"'))).action).toBe('deny');
    expect(evaluate(ctx([bare], sql('SELECT * FROM PUBLIC.CUSTOMERS'))).action).toBe('deny');
    expect(evaluate(ctx([qualified], sql('SELECT * FROM public.customers'))).action).toBe('deny');
    expect(evaluate(ctx([qualified], sql('SELECT * FROM other.customers'))).action).toBe('allow');
    // unqualified may resolve to public.customers through the search_path: a deny rule takes it
    expect(evaluate(ctx([qualified], sql('SELECT * FROM customers'))).action).toBe('deny');
    expect(evaluate(ctx([bare], sql('SELECT * FROM customer_notes'))).action).toBe('allow');
  });

  it('an allow rule with tables needs every relation covered, and a qualified name', () => {
    const p = policy('p', allow('orders', { sql: { tables: ['public.orders'] } }));
    expect(evaluate(ctx([p], sql('SELECT * FROM public.orders'), { default: 'deny' })).action).toBe('allow');
    expect(evaluate(ctx([p], sql('SELECT * FROM public.orders JOIN public.customers ON true'), { default: 'deny' })).action).toBe('deny');
    expect(evaluate(ctx([p], sql('SELECT * FROM orders'), { default: 'deny' })).action).toBe('deny');
    expect(evaluate(ctx([p], sql('SELECT 1'), { default: 'deny' })).action).toBe('deny');
  });

  it('CTE names are not tables', () => {
    const p = policy('p', deny('c', { sql: { tables: ['customers'] } }));
    expect(evaluate(ctx([p], sql('WITH customers AS (SELECT 1) SELECT * FROM customers'))).action).toBe('allow');
    expect(evaluate(ctx([p], sql('WITH customers AS (SELECT * FROM customers) SELECT * FROM customers'))).action).toBe('deny');
  });

  it('functions match with or without schema and with a trailing glob', () => {
    const p = policy('p', deny('f', { sql: { functions: ['pg_read_file', 'dblink*'] } }));
    expect(evaluate(ctx([p], sql("SELECT pg_catalog.pg_read_file('/etc/passwd')"))).action).toBe('deny');
    expect(evaluate(ctx([p], sql("SELECT PG_READ_FILE('/etc/passwd')"))).action).toBe('deny');
    expect(evaluate(ctx([p], sql("SELECT dblink_exec('c', 'drop table t')"))).action).toBe('deny');
    expect(evaluate(ctx([p], sql("SELECT dblink('c', 'select 1')"))).action).toBe('deny');
    expect(evaluate(ctx([p], sql("SELECT my_dblink('c')"))).action).toBe('allow');
    expect(evaluate(ctx([p], sql("SELECT pg_read_file_x('c')"))).action).toBe('allow');
  });

  it('noWhere and text', () => {
    const p = policy('p', approve('unbounded', { sql: { noWhere: true } }), deny('sleep', { sql: { text: 'pg_sleep\\(' } }));
    expect(evaluate(ctx([p], sql('UPDATE t SET a = 1'))).action).toBe('approve');
    expect(evaluate(ctx([p], sql('UPDATE t SET a = 1 WHERE id = 1'))).action).toBe('allow');
    expect(evaluate(ctx([p], sql('SELECT pg_sleep(10)'))).action).toBe('deny');
  });

  it('sql conditions never match other protocols', () => {
    const p = policy('p', deny('any-sql', { sql: {} }));
    expect(evaluate(ctx([p], { type: 'ssh', channel: 'exec', command: 'ls' })).action).toBe('allow');
    expect(evaluate(ctx([p], sql('SELECT 1'))).action).toBe('deny');
  });
});

describe('identity', () => {
  const p = policy(
    'p',
    deny('bots-no-writes', { identity: { kind: 'machine' }, sql: { statements: ['insert'] } }),
    allow('dba', { identity: { groups: ['group:dba'] } }),
    allow('carol', { identity: { subjects: ['carol'] } }),
    allow('alice-by-email', { identity: { subjects: ['alice@example.com'] } }),
  );

  it('kind, groups (with or without group: prefix), subjects and email', () => {
    expect(evaluate(ctx([p], sql('INSERT INTO t VALUES (1)'))).action).toBe('deny');
    expect(evaluate(ctx([p], sql('INSERT INTO t VALUES (1)'), { identity: alice })).action).toBe('allow');
    expect(evaluate(ctx([p], sql('SELECT 1'), { identity: alice, default: 'deny' })).matched.map((m) => m.rule)).toEqual(['dba', 'alice-by-email']);
    expect(evaluate(ctx([p], sql('SELECT 1'), { identity: { ...bot, subject: 'carol' }, default: 'deny' })).rule?.rule).toBe('carol');
    expect(evaluate(ctx([p], sql('SELECT 1'), { identity: bot, default: 'deny' })).action).toBe('deny');
  });
});

describe('observe mode (enforce: false)', () => {
  it('allows, and says what would have happened', () => {
    const p = policy('p', deny('no-drop', { sql: { statements: ['drop'] } }, { message: 'no' }));
    const d = evaluate(ctx([p], sql('DROP TABLE t'), { enforce: false }));
    expect(d).toMatchObject({ action: 'allow', enforced: false, wouldBe: 'deny', rule: { rule: 'no-drop' } });
    expect(d.message).toMatch(/would have been denied/);
    const e = evaluate(ctx([p], sql('DROP TABLE t')));
    expect(e).toMatchObject({ action: 'deny', enforced: true, wouldBe: 'deny' });
  });

  it('fail-closed denials are observed too', () => {
    const d = evaluate(ctx([], sql('DR/**/OP TABLE t'), { enforce: false }));
    expect(d).toMatchObject({ action: 'allow', wouldBe: 'deny', basis: 'fail_closed' });
  });
});

describe('fail closed', () => {
  const kinds = policy('guard', deny('no-ddl', { sql: { statements: ['drop', 'truncate'] } }));

  it('a parse error denies, under a kinds rule and even without one', () => {
    const d = evaluate(ctx([kinds], sql('DR/**/OP TABLE t')));
    expect(d).toMatchObject({ action: 'deny', basis: 'fail_closed' });
    expect(d.message).toMatch(/could not parse this statement \(syntax error/);
    expect(evaluate(ctx([], sql('SELEC 1'))).action).toBe('deny');
  });

  it('an unknown statement under a rule naming kinds is denied, naming the rule', () => {
    const d = evaluate(ctx([kinds], sql('DO $$ BEGIN EXECUTE \'DROP TABLE t\'; END $$')));
    expect(d.action).toBe('deny');
    expect(d.basis).toBe('fail_closed');
    expect(d.message).toBe(
      'could not classify this statement (DO: DO block runs dynamic SQL (EXECUTE) that cannot be analysed); denied because policy guard rule no-ddl names statement kinds',
    );
    expect(d.rule).toEqual({ policy: 'guard', rule: 'no-ddl' });
  });

  it('unknown statements without any kinds rule follow the default', () => {
    const p = policy('p', { name: 'lim', action: 'limit', maxRows: 5 });
    expect(evaluate(ctx([p], sql('CALL proc()'))).action).toBe('allow');
    expect(evaluate(ctx([p], sql('CALL proc()'), { default: 'deny' })).action).toBe('deny');
  });

  it('a rule naming `unknown` is the explicit opt-out (not for parse errors)', () => {
    const optOut = policy('ops', allow('allow-do', { sql: { statements: ['unknown'] } }));
    expect(evaluate(ctx([kinds, optOut], sql("LOAD 'x'"))).action).toBe('allow');
    expect(evaluate(ctx([kinds, optOut], sql('DR/**/OP TABLE t'))).action).toBe('deny');
    const denyUnknown = policy('p', deny('no-unknown', { sql: { statements: ['unknown'] } }));
    expect(evaluate(ctx([denyUnknown], sql('EXECUTE p'))).rule?.rule).toBe('no-unknown');
  });

  it('an identity that the kinds rule does not apply to is not failed closed', () => {
    const p = policy('p', deny('bots', { identity: { groups: ['bots'] }, sql: { statements: ['drop'] } }));
    expect(evaluate(ctx([p], sql("LOAD 'x'"))).action).toBe('allow');
  });

  it('an entities condition without a detector denies', () => {
    const p = policy('p', deny('no-cards', { entities: ['credit_card'] }));
    const d = evaluate(ctx([p], sql("SELECT '4111 1111 1111 1111'")));
    expect(d.action).toBe('deny');
    expect(d.message).toMatch(/no entity detector/);
  });

  it('entities with a detector, and secrets expanded', () => {
    const p = policy('p', deny('no-secrets', { entities: ['secrets'] }));
    const detectEntities = (t: string) => new Set(t.includes('AKIA') ? ['aws_access_key'] : []);
    const expandEntities = (names: string[]) => names.flatMap((n) => (n === 'secrets' ? ['aws_access_key', 'github_token'] : [n]));
    expect(evaluate(ctx([p], sql("SELECT 'AKIAABCDEFGHIJKLMNOP'"), { detectEntities, expandEntities })).action).toBe('deny');
    expect(evaluate(ctx([p], sql("SELECT 'hello'"), { detectEntities, expandEntities })).action).toBe('allow');
    // the detector runs once per statement, on that statement
    let calls = 0;
    const counting = (t: string) => {
      calls++;
      return detectEntities(t);
    };
    const q = policy('q', deny('a', { entities: ['x'] }), deny('b', { entities: ['y'] }));
    evaluate(ctx([q], sql('SELECT 1; SELECT 2'), { detectEntities: counting }));
    expect(calls).toBe(2);
  });

  it('an invalid regex denies with the reason', () => {
    const p = policy('p', deny('bad', { sql: { text: '(' } }));
    const d = evaluate(ctx([p], sql('SELECT 1')));
    expect(d).toMatchObject({ action: 'deny', basis: 'fail_closed' });
    expect(d.message).toMatch(/invalid regular expression in rule bad sql\.text/);
  });

  it('a throwing detector denies', () => {
    const p = policy('p', { name: 'm', action: 'mask', when: { entities: ['email'] }, columns: ['x'] });
    const d = evaluate(ctx([p], sql('SELECT 1'), { detectEntities: () => { throw new Error('boom'); } }));
    expect(d.action).toBe('deny');
    expect(d.message).toMatch(/policy evaluation failed \(boom\)/);
  });
});

describe('http', () => {
  const req = (method: string, path: string, body?: string, headers: Record<string, string> = {}): PolicyAction => ({ type: 'http', method, path, headers, ...(body !== undefined ? { body } : {}) });
  const p = policy(
    'api',
    deny('no-admin', { http: { paths: ['/admin/**'] } }),
    approve('deletes', { http: { methods: ['delete'], paths: ['/v1/users/*'] } }),
    deny('no-keys', { http: { text: 'sk-[A-Za-z0-9]{8}' } }),
  );

  it('method is case-insensitive; * is one segment; ** any', () => {
    expect(evaluate(ctx([p], req('DELETE', '/v1/users/42'))).action).toBe('approve');
    expect(evaluate(ctx([p], req('delete', '/v1/users/42'))).action).toBe('approve');
    expect(evaluate(ctx([p], req('DELETE', '/v1/users/42/keys'))).action).toBe('allow');
    expect(evaluate(ctx([p], req('GET', '/v1/users/42'))).action).toBe('allow');
    expect(evaluate(ctx([p], req('GET', '/admin/a/b/c'))).action).toBe('deny');
    expect(evaluate(ctx([p], req('GET', '/admin'))).action).toBe('deny');
  });

  it('query strings are ignored and paths normalised before matching', () => {
    expect(evaluate(ctx([p], req('DELETE', '/v1/users/42?force=true'))).action).toBe('approve');
    expect(evaluate(ctx([p], req('GET', '/public/../admin/x'))).action).toBe('deny');
    expect(evaluate(ctx([p], req('GET', '//admin//x'))).action).toBe('deny');
    expect(evaluate(ctx([p], req('GET', '/%61dmin/x'))).action).toBe('deny');
    expect(normalizeHttpPath('/a/%2Fb/./c/')).toBe('/a/%2Fb/c/');
  });

  it('text matches headers and body', () => {
    expect(evaluate(ctx([p], req('POST', '/v1/chat', '{"k":"sk-abcdefgh1"}'))).action).toBe('deny');
    expect(evaluate(ctx([p], req('POST', '/v1/chat', '{}', { 'x-key': 'sk-abcdefgh1' }))).action).toBe('deny');
    expect(evaluate(ctx([p], req('POST', '/v1/chat', '{}'))).action).toBe('allow');
  });
});

describe('ssh', () => {
  const p = policy(
    'ssh-guard',
    deny('destructive', { ssh: { command: '^(rm -rf /|shutdown|reboot|mkfs)' } }),
    approve('sudo', { ssh: { command: '^sudo ' } }, ['group:sre']),
    deny('no-forward', { ssh: { channels: ['forward'] } }),
  );
  it('command regex and channels', () => {
    expect(evaluate(ctx([p], { type: 'ssh', channel: 'exec', command: 'rm -rf /' })).action).toBe('deny');
    expect(evaluate(ctx([p], { type: 'ssh', channel: 'exec', command: 'sudo systemctl restart app' }))).toMatchObject({ action: 'approve', approvers: ['group:sre'] });
    expect(evaluate(ctx([p], { type: 'ssh', channel: 'exec', command: 'ls -la' })).action).toBe('allow');
    expect(evaluate(ctx([p], { type: 'ssh', channel: 'forward', target: 'db:5432' })).action).toBe('deny');
    expect(evaluate(ctx([p], { type: 'ssh', channel: 'shell' })).action).toBe('allow');
  });
});
