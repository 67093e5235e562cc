import { beforeAll, describe, expect, it } from 'vitest';
import { initSqlParser } from '../../src/policy/index.js';
import { statementLineage, type LineageInput } from '../../src/policy/sql/lineage.js';

beforeAll(async () => {
  await initSqlParser();
});

const masked = ['public.customers.ssn', 'customers.card', '*.email'];
const input: LineageInput = { masked };

function one(sql: string, over: Partial<LineageInput> = {}) {
  const all = statementLineage(sql, { ...input, ...over });
  expect(all).toHaveLength(1);
  return all[0]!;
}

describe('output columns', () => {
  it.each<[string, boolean[]]>([
    ['SELECT lower(name), ssn FROM customers', [false, true]],
    ['SELECT 1 UNION SELECT length(name) FROM customers', [false]],
    ["SELECT repeat('x',1000), ssn FROM customers", [false, true]],
    ['SELECT name FROM customers UNION ALL SELECT ssn FROM customers', [true]],
    ['SELECT c.name, c.card, o.total FROM customers c JOIN orders o ON o.customer_id = c.id', [false, true, false]],
    ['SELECT email FROM users', [true]],
    ["SELECT CASE WHEN ssn LIKE '1%' THEN 'a' END, id FROM customers", [true, false]],
    ['SELECT a FROM (SELECT * FROM customers) q(a)', [true]],
    ['SELECT id FROM (SELECT * FROM customers) q', [false]],
    ['SELECT ssn FROM (SELECT * FROM customers) q', [true]],
    ['VALUES (1, 2)', [false, false]],
    ['INSERT INTO customers (name) VALUES ($1) RETURNING id, ssn', [false, true]],
    ['DELETE FROM customers WHERE id = 1 RETURNING card', [true]],
    ['UPDATE customers SET name = $1 WHERE id = 1 RETURNING old.ssn, new.name', [true, false]],
    ['WITH d AS (DELETE FROM customers RETURNING ssn AS x) SELECT x, 1 FROM d', [true, false]],
    ['SELECT (SELECT o.total FROM orders o LIMIT 1), name FROM customers', [false, false]],
    ['SELECT x FROM customers c, LATERAL (SELECT c.ssn AS x) l', [true]],
    ['SELECT g FROM customers c, generate_series(1, length(c.ssn)) g', [true]],
  ])('%s → %j', (sql, outputs) => {
    expect(one(sql).outputs).toEqual(outputs);
  });

  it.each([
    'SELECT c::text FROM customers c',
    'SELECT (c).ssn FROM customers c',
    'SELECT row_to_json(c) FROM customers c',
    "SELECT string_agg(ssn, ',') FROM customers",
    'SELECT (SELECT max(ssn) FROM customers)',
    'WITH s AS (SELECT upper(ssn) u FROM customers) SELECT u FROM s',
    'SELECT x FROM (SELECT ssn x FROM customers) q',
    "SELECT translate(ssn,'-','') FROM customers",
    'SELECT to_jsonb(c.*) FROM customers c',
    'SELECT json_agg(customers) FROM customers',
    'SELECT ROW(id, card)::text FROM customers',
    "SELECT format('%s', c) FROM customers c",
    'SELECT encode(convert_to(public.customers.ssn, $$UTF8$$), $$base64$$) FROM public.customers',
    'SELECT ssn IN (SELECT ssn FROM customers) FROM customers',
    'WITH RECURSIVE r(v, n) AS (SELECT ssn, 1 FROM customers UNION ALL SELECT v, n + 1 FROM r WHERE n < 3) SELECT v FROM r',
    "SELECT query_to_xml('select * from customers', true, false, '')",
    'SELECT most_common_vals::text FROM pg_stats WHERE attname = $$ssn$$',
  ])('%s is tainted and its column is', (sql) => {
    const l = one(sql);
    expect(l.tainted).toBe(true);
    expect(l.outputs).toEqual([true]);
  });

  it.each(['SELECT upper(name) FROM customers', 'SELECT count(*) FROM orders', "SELECT 'ssn', now()"])('%s is not tainted', (sql) => {
    const l = one(sql);
    expect(l.tainted).toBe(false);
    expect(l.outputs!.every((x) => !x)).toBe(true);
    expect(l.launders).toBeNull();
  });

  it('a pattern with a table part matches only that table', () => {
    expect(one('SELECT ssn FROM orders')).toMatchObject({ tainted: false, outputs: [false] });
    expect(one('SELECT ssn FROM other.customers')).toMatchObject({ tainted: false, outputs: [false] });
    expect(one('SELECT ssn FROM orders, customers')).toMatchObject({ tainted: true, outputs: [true] });
    expect(one('SELECT o.ssn FROM orders o, customers c')).toMatchObject({ outputs: [false] });
  });

  it('WHERE and ORDER BY taint the statement, not its columns', () => {
    expect(one("SELECT count(*) FROM customers WHERE ssn IS NOT NULL")).toEqual({ tainted: true, outputs: [false], launders: null, source: 'customers.ssn' });
    expect(one('SELECT id FROM customers ORDER BY card')).toMatchObject({ tainted: true, outputs: [false] });
  });

  it('a * in the target list cannot be lined up', () => {
    expect(one('SELECT * FROM customers')).toMatchObject({ tainted: true, outputs: null });
    expect(one('SELECT o.*, 1 FROM orders o')).toMatchObject({ outputs: null });
    // `*.email` may be a column of orders; with only customers masked it is not.
    expect(one('SELECT * FROM orders').tainted).toBe(true);
    expect(one('SELECT * FROM orders', { masked: ['public.customers.ssn'] }).tainted).toBe(false);
  });

  it('a relation renamed with a column list counts every column as possibly masked', () => {
    expect(one('SELECT a FROM customers AS c(a, b)').outputs).toEqual([true]);
  });

  it('unparseable text fails toward masking', () => {
    expect(statementLineage('SELEC ssn FROM', input)).toEqual([{ tainted: true, outputs: null, launders: null, source: null }]);
  });

  it('gives one entry per statement', () => {
    const all = statementLineage('SELECT ssn FROM customers; SELECT 1', input);
    expect(all.map((l) => l.outputs)).toEqual([[true], [false]]);
  });

  it('EXECUTE and FETCH run something decided elsewhere: tainted, outputs unknown', () => {
    expect(one('EXECUTE p(1)')).toMatchObject({ tainted: true, outputs: null });
    expect(one('FETCH 10 FROM c')).toMatchObject({ tainted: true, outputs: null });
    expect(one('EXECUTE p(1)', { masked: [] })).toMatchObject({ tainted: false });
  });
});

describe('laundering', () => {
  it.each<[string, RegExp]>([
    ['CREATE TABLE t AS SELECT ssn AS a FROM customers', /^CREATE TABLE AS copies customers\.ssn into t$/],
    ['CREATE TEMP TABLE t AS SELECT ssn AS a FROM customers', /CREATE TABLE AS copies customers\.ssn into t/],
    ['SELECT ssn INTO t FROM customers', /SELECT INTO copies customers\.ssn into t/],
    ['INSERT INTO t SELECT ssn FROM customers', /INSERT copies customers\.ssn into t/],
    ['INSERT INTO t SELECT * FROM customers', /INSERT copies customers\.ssn into t/],
    ['CREATE TABLE t AS TABLE customers', /CREATE TABLE AS copies customers/],
    ['UPDATE orders o SET note = c.ssn FROM customers c WHERE c.id = o.customer_id', /^UPDATE writes customers\.ssn into orders\.note$/],
    ['CREATE VIEW v AS SELECT ssn AS a FROM customers', /CREATE VIEW copies customers\.ssn into v/],
    ['CREATE MATERIALIZED VIEW m AS SELECT ssn FROM customers', /CREATE MATERIALIZED VIEW copies customers\.ssn into m/],
    ["SELECT pg_notify('c', ssn) FROM customers", /pg_notify\(\) sends customers\.ssn/],
    ["SELECT set_config('x.y', ssn, false) FROM customers", /set_config\(\) sends customers\.ssn/],
    ["SELECT lo_from_bytea(0, convert_to(ssn,'UTF8')) FROM customers", /lo_from_bytea\(\) sends customers\.ssn/],
    ["COPY (SELECT card FROM customers) TO '/tmp/x'", /COPY TO '\/tmp\/x' writes customers\.card/],
    ["COPY customers TO '/tmp/x'", /COPY TO '\/tmp\/x' writes customers/],
    ['WITH x AS (INSERT INTO t SELECT email FROM users RETURNING 1) SELECT 1', /INSERT copies users\.email into t/],
    ['MERGE INTO t USING customers c ON t.id = c.id WHEN NOT MATCHED THEN INSERT (id, v) VALUES (c.id, c.ssn)', /MERGE copies customers\.ssn into t\.v/],
    ['MERGE INTO t USING customers c ON t.id = c.id WHEN MATCHED THEN UPDATE SET v = c.card', /MERGE writes customers\.card into t\.v/],
    ['INSERT INTO t (a) VALUES ((SELECT max(ssn) FROM customers))', /INSERT copies customers\.ssn into t\.a/],
    ['EXPLAIN ANALYZE CREATE TABLE t AS SELECT ssn FROM customers', /CREATE TABLE AS copies/],
    ["DO $$ BEGIN INSERT INTO t SELECT ssn FROM customers; END $$", /^DO block: INSERT copies customers\.ssn into t$/],
    ["DO $$ DECLARE v text; BEGIN SELECT ssn INTO v FROM customers LIMIT 1; RAISE NOTICE '%', v; END $$", /DO block .*customers\.ssn/],
    ["DO $$ BEGIN EXECUTE 'select 1'; END $$", /dynamic SQL \(EXECUTE\)/],
    ['CREATE TABLE t AS EXECUTE p', /prepared statement p/],
    ['CREATE RULE r AS ON INSERT TO orders DO ALSO INSERT INTO log SELECT ssn FROM customers', /^CREATE RULE: INSERT copies customers\.ssn into log$/],
  ])('%s launders', (sql, desc) => {
    const l = one(sql);
    expect(l.launders).toMatch(desc);
  });

  it.each([
    'INSERT INTO t SELECT name FROM customers',
    "UPDATE customers SET name = 'x' WHERE ssn = '1'",
    'DELETE FROM customers WHERE ssn IS NULL',
    'CREATE TABLE t AS SELECT name FROM customers',
    'INSERT INTO customers (ssn) SELECT ssn FROM customers',
    'UPDATE customers SET ssn = upper(ssn)',
    'EXPLAIN CREATE TABLE t AS SELECT ssn FROM customers',
    "SELECT pg_notify('c', name) FROM customers",
    "COPY (SELECT card FROM customers) TO STDOUT",
    "DO $$ BEGIN INSERT INTO t SELECT name FROM customers; END $$",
  ])('%s does not launder', (sql) => {
    expect(one(sql).launders).toBeNull();
  });

  it('COPY TO STDOUT lines up its columns', () => {
    expect(one('COPY (SELECT id, card FROM customers) TO STDOUT').outputs).toEqual([false, true]);
    expect(one('COPY customers (id, ssn) TO STDOUT').outputs).toEqual([false, true]);
  });
});

describe('derived patterns and tainted functions', () => {
  it('a view column the caller marks masked is masked', () => {
    expect(one("SELECT a || '' FROM v", { masked: [...masked, 'public.v.a'] })).toMatchObject({ tainted: true, outputs: [true] });
    expect(one("SELECT a || '' FROM v")).toMatchObject({ tainted: false, outputs: [false] });
    expect(one('SELECT b, a FROM v', { masked: [...masked, 'public.v.*'] }).outputs).toEqual([true, true]);
  });

  it('tainted functions taint their calls, with or without schema', () => {
    const taintedFunctions = new Set(['f', 'app.g']);
    expect(one('SELECT f()', { taintedFunctions })).toMatchObject({ tainted: true, outputs: [true], source: 'function f' });
    expect(one('SELECT * FROM f()', { taintedFunctions })).toMatchObject({ tainted: true, outputs: null });
    expect(one('SELECT x FROM f() x', { taintedFunctions }).outputs).toEqual([true]);
    expect(one('SELECT public.f(1), 2', { taintedFunctions }).outputs).toEqual([true, false]);
    expect(one('SELECT app.g(), g(), other.g()', { taintedFunctions }).outputs).toEqual([true, true, false]);
    expect(one('SELECT h()', { taintedFunctions })).toMatchObject({ tainted: false, outputs: [false] });
    expect(one("SELECT pg_notify('c', f())", { taintedFunctions }).launders).toMatch(/pg_notify\(\) sends function f/);
  });
});
