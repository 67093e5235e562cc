/**
 * The adversarial suite: every path a masked value could take out of the database, tried through the real
 * tunnel against a real PostgreSQL, each asserting that no raw value of the seeded `customers` / `payments`
 * tables reaches the client (rows, errors, notices, notifications, COPY output) or the session store; plus the
 * ways around deny rules (DDL by proxy through functions, triggers and rules).
 *
 * Each case runs against three tunnels:
 *   cols       column rules only, and an operator rule denying DROP/TRUNCATE (no entity detectors, so only
 *              lineage and withholding protect the side doors)
 *   cols+dlp   the same plus entity masks (us_ssn, credit_card, email)
 *   recommended  the built-in policy plus the column rules
 *
 * To add a case, append to CASES: `sql` runs through node-postgres (a list runs in order on one connection),
 * `psql` through psql -c. `expect` is 'clean' (whatever happens, nothing leaks) or 'denied' (and nothing leaks).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { dumpSqlite, pgClient, psql, startFixture, type Fixture, type TestTunnel } from './fixture.js';

interface Case {
  name: string;
  sql?: string | string[];
  psql?: string;
  /** 'denied': the (last) statement must be refused with 42501; 'clean': it may run, but nothing leaks. */
  expect: 'clean' | 'denied';
  /** Only on these tunnels (default all). */
  only?: TunnelName[];
}

type TunnelName = 'cols' | 'cols+dlp' | 'recommended';

const COLUMN_RULES = `  cols:
    - name: customer-columns
      action: mask
      columns: [public.customers.ssn, public.customers.email, public.payments.card_number]
      with: redact
  dlp:
    - name: pii-values
      action: mask
      entities: [us_ssn, credit_card, email]
      with: redact
  guard:
    - name: no-drop
      when: { sql: { statements: [drop, truncate] } }
      action: deny
      message: no drops`;

const CASES: Case[] = [
  // error texts
  { name: 'a cast error quotes the value', sql: 'SELECT ssn::int FROM customers', expect: 'clean' },
  { name: 'an aggregate cast error quotes every value', sql: "SELECT string_agg(ssn, ',')::int FROM customers", expect: 'clean' },
  { name: 'a cast error of a card number', sql: 'SELECT card_number::int FROM payments', expect: 'clean' },
  { name: 'a cast error of a whole row', sql: 'SELECT c::text::int FROM customers c', expect: 'clean' },
  { name: 'a cast error in the extended protocol', sql: ['EXT:SELECT ssn::int FROM customers WHERE id > $1'], expect: 'clean' },
  { name: 'an error quoting an email through a subquery', sql: 'SELECT (SELECT email FROM customers ORDER BY id LIMIT 1)::int', expect: 'clean' },
  { name: 'a json error quoting the value', sql: "SELECT (ssn || '}')::json FROM customers", expect: 'clean' },
  // functions created by someone else (directly), called through the tunnel
  { name: 'RAISE NOTICE of a column from a plpgsql function', sql: 'SELECT leak_notice()', expect: 'clean' },
  { name: 'RAISE EXCEPTION of a column from a plpgsql function', sql: 'SELECT leak_exception()', expect: 'clean' },
  { name: 'a SQL function returning the column', sql: 'SELECT f_ssn()', expect: 'clean' },
  { name: 'a set-returning SQL function in FROM', sql: 'SELECT * FROM f_ssn()', expect: 'clean' },
  { name: 'a plpgsql function returning a table', sql: 'SELECT * FROM f_rows()', expect: 'clean' },
  // COPY out
  { name: 'COPY a table TO STDOUT', psql: 'COPY customers TO STDOUT', expect: 'clean' },
  { name: 'COPY a column list TO STDOUT', psql: 'COPY customers (id, ssn, email) TO STDOUT', expect: 'clean' },
  { name: 'COPY (query) TO STDOUT as CSV', psql: 'COPY (SELECT ssn, name, email FROM customers) TO STDOUT WITH (FORMAT csv, HEADER)', expect: 'clean' },
  { name: 'COPY (query) with a derived column', psql: "COPY (SELECT upper(ssn) || ',x' AS s FROM customers) TO STDOUT WITH (FORMAT csv)", expect: 'clean' },
  { name: 'COPY with another delimiter', psql: "COPY customers TO STDOUT WITH (DELIMITER '|')", expect: 'clean' },
  { name: 'COPY of payments card numbers', psql: 'COPY payments TO STDOUT', expect: 'clean' },
  { name: 'binary COPY of a masked column', psql: 'COPY customers TO STDOUT WITH (FORMAT binary)', expect: 'denied' },
  { name: 'COPY TO STDOUT after another statement in one Query', psql: 'SELECT 1; COPY customers TO STDOUT', expect: 'clean' },
  { name: 'COPY (query) TO STDOUT as CSV after another statement in one Query', psql: 'SELECT 1; COPY (SELECT ssn, email FROM customers) TO STDOUT WITH (FORMAT csv)', expect: 'clean' },
  { name: 'binary COPY after another statement in one Query', psql: 'SELECT 1; COPY customers TO STDOUT WITH (FORMAT binary)', expect: 'denied' },
  { name: 'psql \\copy of a query', psql: '\\copy (select * from customers) to stdout', expect: 'clean' },
  // views and materialized views
  { name: 'a view someone else created', sql: 'SELECT * FROM v_other', expect: 'clean' },
  { name: 'a view over a view', sql: 'SELECT * FROM v_over', expect: 'clean' },
  { name: 'a computed column of a view, transformed again', sql: "SELECT b || '' AS x, a FROM v_other", expect: 'clean' },
  { name: 'a materialized view someone else created', sql: 'SELECT * FROM mv_other', expect: 'clean' },
  { name: 'creating a view over the column', sql: 'CREATE VIEW v_mine AS SELECT ssn AS a FROM customers', expect: 'denied' },
  { name: 'creating a materialized view over the column', sql: 'CREATE MATERIALIZED VIEW mv_mine AS SELECT ssn AS a FROM customers', expect: 'denied' },
  // derived relations
  { name: 'CREATE TEMP TABLE AS', sql: 'CREATE TEMP TABLE t1 AS SELECT ssn AS a FROM customers', expect: 'denied' },
  { name: 'CREATE TABLE AS', sql: 'CREATE TABLE t2 AS SELECT ssn AS a, name FROM customers', expect: 'denied' },
  { name: 'CREATE TABLE AS TABLE', sql: 'CREATE TABLE t2b AS TABLE customers', expect: 'denied' },
  { name: 'SELECT INTO', sql: 'SELECT ssn AS a INTO t3 FROM customers', expect: 'denied' },
  { name: 'INSERT … SELECT into a table no rule names', sql: 'INSERT INTO scratch (v) SELECT ssn FROM customers', expect: 'denied' },
  { name: 'INSERT … SELECT * into a table no rule names', sql: 'INSERT INTO scratch_wide SELECT * FROM customers', expect: 'denied' },
  { name: 'UPDATE … FROM', sql: 'UPDATE scratch s SET v = c.email FROM customers c WHERE c.id = s.id', expect: 'denied' },
  { name: 'a large object from the column', sql: "SELECT lo_from_bytea(0, convert_to(ssn, 'UTF8')) FROM customers", expect: 'denied' },
  { name: 'pg_notify of the column', sql: ['LISTEN c1', "SELECT pg_notify('c1', ssn) FROM customers"], expect: 'denied' },
  { name: 'set_config of the column', sql: "SELECT set_config('x.leak', string_agg(ssn, ','), false) FROM customers", expect: 'denied' },
  { name: 'MERGE … UPDATE SET from the column', sql: 'MERGE INTO scratch s USING customers c ON s.id = c.id WHEN MATCHED THEN UPDATE SET v = c.ssn', expect: 'denied' },
  { name: 'COPY a table to a server file', sql: "COPY customers TO '/tmp/dlpctl-side-channel-copy.txt'", expect: 'denied' },
  { name: 'COPY (query) to a server file', sql: "COPY (SELECT ssn FROM customers) TO '/tmp/dlpctl-side-channel-copy2.txt'", expect: 'denied' },
  { name: 'a DO block raising the column', sql: "DO $$ BEGIN RAISE EXCEPTION '%', (SELECT string_agg(ssn, ',') FROM customers); END $$", expect: 'clean' },
  // cursors and other spellings of a read
  { name: 'a cursor over a derived column', sql: ['BEGIN', "DECLARE cur CURSOR FOR SELECT ssn || '' AS x FROM customers", 'FETCH ALL FROM cur', 'COMMIT'], expect: 'clean' },
  { name: 'TABLE customers', sql: 'TABLE customers', expect: 'clean' },
  { name: 'format() of a whole row', sql: "SELECT format('%s', c) AS x FROM customers c", expect: 'clean' },
  { name: 'a JSON path over a whole row', sql: "SELECT jsonb_path_query(to_jsonb(c), '$.ssn')::text AS x FROM customers c", expect: 'clean' },
  { name: "the table's data file read by a superuser", sql: "SELECT encode(pg_read_binary_file(pg_relation_filepath('customers')), 'escape') AS x", expect: 'clean' },
  { name: 'EXPLAIN ANALYZE VERBOSE of a filter on the column', sql: "EXPLAIN (ANALYZE, VERBOSE) SELECT * FROM customers WHERE ssn > ''", expect: 'clean' },
  { name: 'a collation on the column', sql: 'SELECT ssn COLLATE "C" AS x FROM customers', expect: 'clean' },
  { name: 'a star over a subquery of the column', sql: 'SELECT t.* FROM (SELECT ssn FROM customers) t', expect: 'clean' },
  // catalogue statistics
  { name: 'pg_stats histogram and most common values', sql: ['ANALYZE customers', 'ANALYZE payments', "SELECT attname, histogram_bounds::text AS h, most_common_vals::text AS m FROM pg_stats WHERE tablename IN ('customers', 'payments')"], expect: 'clean' },
  { name: 'pg_statistic values', sql: ['ANALYZE customers', 'SELECT stavalues1::text AS a, stavalues2::text AS b FROM pg_statistic'], expect: 'clean' },
  // whole rows and transformations
  { name: 'a whole row cast to text', sql: 'SELECT c::text AS x FROM customers c', expect: 'clean' },
  { name: 'a whole row through a CTE', sql: 'WITH s AS (SELECT * FROM customers) SELECT s::text AS x FROM s', expect: 'clean' },
  { name: 'array_agg as text', sql: 'SELECT array_agg(ssn)::text AS x FROM customers', expect: 'clean' },
  { name: 'xml of a query', sql: "SELECT query_to_xml('select ssn from customers', true, false, '')::text AS x", expect: 'clean' },
  { name: 'values inside array text (entity detectors)', sql: "SELECT '{078-51-1120,323-45-6781}'::text AS x", expect: 'clean', only: ['cols+dlp'] },
  // DDL by proxy
  { name: 'a SQL function whose body drops a table', sql: "CREATE FUNCTION g_drop() RETURNS void LANGUAGE sql AS 'DROP TABLE victim'", expect: 'denied' },
  { name: 'a SQL function whose body truncates', sql: "CREATE FUNCTION g_trunc() RETURNS void LANGUAGE sql AS 'TRUNCATE victim'", expect: 'denied' },
  { name: 'a plpgsql function running dynamic DROP', sql: "CREATE FUNCTION g_dyn() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DROP TABLE victim'; END $$", expect: 'denied' },
  { name: 'calling a function someone else made that drops', sql: 'SELECT drop_victim()', expect: 'denied' },
  { name: 'calling a plpgsql function running dynamic SQL', sql: 'SELECT dyn_exec()', expect: 'denied' },
  { name: 'a DO block that drops', sql: "DO $$ BEGIN EXECUTE 'DROP TABLE victim'; END $$", expect: 'denied' },
  { name: 'a trigger calling a function that truncates', sql: 'CREATE TRIGGER trg AFTER INSERT ON scratch FOR EACH STATEMENT EXECUTE FUNCTION trunc_victim()', expect: 'denied' },
  { name: 'a rule whose action calls a dropping function', sql: 'CREATE RULE r1 AS ON INSERT TO scratch DO ALSO SELECT drop_victim()', expect: 'denied' },
  { name: 'CALL of a procedure that drops', sql: 'CALL drop_proc()', expect: 'denied' },
];

const DIRECT_SETUP = [
  'CREATE TABLE victim (id int)',
  'CREATE TABLE scratch (id int, v text)',
  'INSERT INTO scratch SELECT g, NULL FROM generate_series(1, 3) g',
  'CREATE TABLE scratch_wide (LIKE customers)',
  `CREATE FUNCTION leak_notice() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE '%', (SELECT string_agg(ssn, ',') FROM customers); RETURN 1; END $$`,
  `CREATE FUNCTION leak_exception() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom %', (SELECT string_agg(email, ',') FROM customers); END $$`,
  `CREATE FUNCTION f_ssn() RETURNS SETOF text LANGUAGE sql AS 'SELECT ssn FROM customers'`,
  `CREATE FUNCTION f_rows() RETURNS TABLE (a text, b text) LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY SELECT ssn, email FROM customers; END $$`,
  `CREATE VIEW v_other AS SELECT id, ssn AS a, upper(ssn) AS b, name FROM customers`,
  `CREATE VIEW v_over AS SELECT a AS aa, b || '!' AS bb, name FROM v_other`,
  `CREATE MATERIALIZED VIEW mv_other AS SELECT id, ssn AS a, email AS e FROM customers`,
  `CREATE FUNCTION drop_victim() RETURNS void LANGUAGE sql AS 'DROP TABLE IF EXISTS victim'`,
  `CREATE FUNCTION trunc_victim() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN TRUNCATE victim; RETURN NULL; END $$`,
  `CREATE FUNCTION dyn_exec() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'DROP TABLE IF EXISTS victim'; END $$`,
  `CREATE PROCEDURE drop_proc() LANGUAGE sql AS 'DROP TABLE IF EXISTS victim'`,
];

let fx: Fixture;
let direct: pg.Client;
const tunnels = new Map<TunnelName, TestTunnel>();
let secrets: string[] = [];

beforeAll(async () => {
  fx = await startFixture();
  direct = await pgClient(fx.dbUrl);
  for (const q of DIRECT_SETUP) await direct.query(q);
  const ssn = (await direct.query('SELECT ssn, email FROM customers')).rows as { ssn: string; email: string }[];
  const cards = (await direct.query('SELECT card_number FROM payments')).rows as { card_number: string }[];
  secrets = [...ssn.flatMap((r) => [r.ssn, r.email]), ...cards.map((r) => r.card_number), '078-51-1120', '323-45-6781'];
  tunnels.set('cols', await fx.tunnel({ use: ['cols', 'guard'], policies: COLUMN_RULES }));
  tunnels.set('cols+dlp', await fx.tunnel({ use: ['cols', 'dlp', 'guard'], policies: COLUMN_RULES }));
  tunnels.set('recommended', await fx.tunnel({ use: ['recommended', 'cols'], policies: COLUMN_RULES }));
});
afterAll(async () => {
  await direct?.end();
  await fx?.stop();
});

interface Outcome {
  text: string;
  errorCode: string | null;
}

/** Runs a case; everything the client could see, as one text. */
async function runCase(t: TestTunnel, c: Case): Promise<Outcome> {
  if (c.psql !== undefined) {
    const r = await psql(t.url, ['-v', 'VERBOSITY=verbose', '-c', c.psql]);
    const code = /ERROR:\s+([0-9A-Z]{5}):/.exec(r.stderr);
    return { text: r.stdout + r.stderr, errorCode: r.code === 0 ? null : (code?.[1] ?? 'error') };
  }
  const client = await pgClient(t.url);
  let text = '';
  client.on('notice', (n) => (text += JSON.stringify({ ...n, message: n.message })));
  client.on('notification', (n) => (text += JSON.stringify(n)));
  let errorCode: string | null = null;
  try {
    for (const q of [c.sql ?? []].flat()) {
      errorCode = null;
      try {
        const r = q.startsWith('EXT:') ? await client.query(q.slice(4), [0]) : await client.query(q);
        text += JSON.stringify((Array.isArray(r) ? r : [r]).map((x: pg.QueryResult) => x.rows));
      } catch (err) {
        const e = err as pg.DatabaseError;
        errorCode = e.code ?? 'error';
        text += JSON.stringify({ message: e.message, detail: e.detail, hint: e.hint, where: e.where, internalQuery: e.internalQuery, code: e.code });
      }
    }
    await new Promise((r) => setTimeout(r, 50)); // notifications in flight
  } finally {
    await client.end().catch(() => undefined);
  }
  return { text, errorCode };
}

function leaked(text: string): string[] {
  return secrets.filter((s) => text.includes(s));
}

describe.each(['cols', 'cols+dlp', 'recommended'] as TunnelName[])('side channels through the %s tunnel', (name) => {
  for (const c of CASES) {
    if (c.only && !c.only.includes(name)) continue;
    it(`${c.expect === 'denied' ? 'denies' : 'masks'}: ${c.name}`, async () => {
      const out = await runCase(tunnels.get(name)!, c);
      expect(leaked(out.text), out.text.slice(0, 400)).toEqual([]);
      if (c.expect === 'denied') expect(out.errorCode, out.text.slice(0, 400)).toBe('42501');
    });
  }

  it('the deny rules held: the victim table still exists', async () => {
    const r = await direct.query(`SELECT to_regclass('victim') IS NOT NULL AS present`);
    expect(r.rows[0].present).toBe(true);
  });
});

describe('what must stay clear (over-masking)', () => {
  it('a computed column of an unmasked column next to a masked one stays clear', async () => {
    const c = await pgClient(tunnels.get('cols')!.url);
    const want = await direct.query('SELECT lower(name) AS l, repeat($$x$$, 1000) AS r FROM customers ORDER BY id');
    const got = await c.query('SELECT lower(name) AS l, ssn, repeat($$x$$, 1000) AS r FROM customers ORDER BY id');
    expect(got.rows.map((r: { l: string; r: string }) => ({ l: r.l, r: r.r }))).toEqual(want.rows);
    for (const r of got.rows) expect(r.ssn).toBe('[REDACTED:ssn]');
    const union = await c.query('SELECT 1 AS n UNION SELECT length(name) FROM customers');
    expect(union.rows.every((r: { n: number | null }) => r.n !== null)).toBe(true);
    await c.end();
  });

  it('an unmasked view column and an unrelated error keep their text', async () => {
    const c = await pgClient(tunnels.get('cols')!.url);
    const want = await direct.query('SELECT id, name FROM v_other ORDER BY id');
    const got = await c.query('SELECT id, name, a FROM v_other ORDER BY id');
    expect(got.rows.map((r: { id: number; name: string }) => ({ id: r.id, name: r.name }))).toEqual(want.rows);
    const err = await c.query('SELECT name::int FROM customers').catch((e: pg.DatabaseError) => e);
    expect((err as pg.DatabaseError).message).toContain('invalid input syntax');
    await c.end();
  });
});

describe('the store', () => {
  it('keeps no raw value of any case', async () => {
    const dump = await dumpSqlite(fx.storeUrl.slice('sqlite:'.length));
    // every table, the events journal included, and the statements of the cases are in it
    expect(dump).toContain('FROM v_other');
    expect(leaked(dump)).toEqual([]);
  });
});
