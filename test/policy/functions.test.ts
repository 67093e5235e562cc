import { beforeAll, describe, expect, it } from 'vitest';
import { classifySql, initSqlParser } from '../../src/policy/index.js';
import { analyzeFunction, withFunctionFacts, type FunctionAnalysis, type ProcRow } from '../../src/policy/sql/functions.js';

beforeAll(async () => {
  await initSqlParser();
});

function row(over: Partial<ProcRow> & Pick<ProcRow, 'name'>): ProcRow {
  return { schema: 'pg_catalog', language: 'internal', volatility: 'i', kind: 'f', body: null, ...over };
}

describe('analyzeFunction', () => {
  it.each<[ProcRow, boolean, RegExp]>([
    [row({ name: 'lower' }), true, /immutable built-in/],
    [row({ name: 'now', volatility: 's' }), true, /stable built-in/],
    [row({ name: 'string_agg', kind: 'a', volatility: 'v' }), true, /aggregate/],
    [row({ name: 'row_number', kind: 'w', volatility: 'v' }), true, /window function/],
    [row({ name: 'random', volatility: 'v' }), true, /acts only on this statement/],
    [row({ name: 'pg_advisory_xact_lock_shared', volatility: 'v' }), true, /acts only on this statement/],
    [row({ name: 'pg_sleep_for', volatility: 'v' }), true, /acts only on this statement/],
    [row({ name: 'lo_lseek64', volatility: 'v' }), true, /acts only on this statement/],
    [row({ name: 'pg_partition_ancestors', volatility: 'v' }), true, /acts only on this statement/],
    [row({ name: 'pg_terminate_backend', volatility: 'v' }), false, /built-in that acts beyond the statement.*safeFunctions/],
    [row({ name: 'pg_cancel_backend', volatility: 'v' }), false, /acts beyond the statement/],
    [row({ name: 'setval', volatility: 'v' }), false, /acts beyond the statement/],
    [row({ name: 'lo_export', volatility: 'v' }), false, /acts beyond the statement/],
    [row({ name: 'pg_stat_reset_single_table_counters', volatility: 'v' }), false, /acts beyond the statement/],
    [row({ name: 'pg_reload_conf', volatility: 'v' }), false, /acts beyond the statement/],
    [row({ schema: 'public', name: 'lower', volatility: 'i', language: 'sql', body: 'SELECT 1' }), false, /function public\.lower is not known to be safe/],
  ])('%o → safe %s', (r, safe, why) => {
    const a = analyzeFunction([r], []);
    expect(a.safe).toBe(safe);
    expect(a.why).toMatch(why);
    expect(a.name).toBe(`${r.schema}.${r.name}`);
  });

  it('a safeFunctions glob makes a function safe, by name or schema.name', () => {
    const f = row({ schema: 'app', name: 'fmt_money', language: 'sql', volatility: 'v', body: 'SELECT 1' });
    expect(analyzeFunction([f], ['fmt_*'])).toMatchObject({ safe: true, why: 'app.fmt_money is listed in safeFunctions (fmt_*)' });
    expect(analyzeFunction([f], ['app.*']).safe).toBe(true);
    expect(analyzeFunction([f], ['other.*']).safe).toBe(false);
    expect(analyzeFunction([row({ name: 'pg_terminate_backend', volatility: 'v' })], ['pg_catalog.pg_terminate_backend']).safe).toBe(true);
  });

  it('folds a SQL body: effects, relations, functions and the statements for lineage', () => {
    const a = analyzeFunction([row({ schema: 'public', name: 'purge', language: 'sql', volatility: 'v', body: 'DELETE FROM audit WHERE ts < now(); DROP TABLE victim' })], []);
    expect(a).toMatchObject({ safe: false, effects: ['drop', 'delete'], writes: ['audit', 'victim'], functions: ['now'] });
    expect(a.bodyStatements).toEqual(['DELETE FROM audit WHERE ts < now()', 'DROP TABLE victim']);
  });

  it('folds a PL/pgSQL body, its parameters and trigger rows included', () => {
    const body = 'BEGIN INSERT INTO log SELECT ssn FROM customers WHERE id = cid; total := total + 1; END';
    const a = analyzeFunction([row({ schema: 'public', name: 'f', language: 'plpgsql', volatility: 'v', body, args: 'cid integer, INOUT total integer', result: 'integer' })], []);
    expect(a).toMatchObject({ safe: false, effects: ['insert', 'select'], reads: ['customers'], writes: ['log'] });
    expect(a.bodyStatements).toContain('INSERT INTO log SELECT ssn FROM customers WHERE id = cid');
    const trig = analyzeFunction([row({ schema: 'public', name: 't', language: 'plpgsql', volatility: 'v', body: 'BEGIN NEW.x := 1; UPDATE counts SET n = n + 1; RETURN NEW; END' })], []);
    expect(trig).toMatchObject({ effects: ['update', 'select'], writes: ['counts'] });
    expect(trig.opaque).toBeUndefined();
  });

  it('dynamic SQL and other languages are opaque: effect unknown, no body statements', () => {
    const dyn = analyzeFunction([row({ schema: 'public', name: 'g', language: 'plpgsql', volatility: 'v', body: "BEGIN EXECUTE 'DROP TABLE ' || 'x'; END" })], []);
    expect(dyn).toMatchObject({ safe: false, bodyStatements: null, opaque: 'function public.g runs dynamic SQL (EXECUTE) that cannot be analysed' });
    expect(dyn.effects).toContain('unknown');
    const py = analyzeFunction([row({ schema: 'public', name: 'p', language: 'plpython3u', volatility: 'v', body: 'return 1' })], []);
    expect(py).toMatchObject({ safe: false, bodyStatements: null, effects: ['unknown'] });
    expect(py.why).toMatch(/LANGUAGE plpython3u/);
  });

  it('is safe only when every overload is', () => {
    const a = analyzeFunction([row({ name: 'setval' }), row({ name: 'setval', volatility: 'v' })], []);
    expect(a.safe).toBe(false);
  });
});

function facts(...list: FunctionAnalysis[]): Map<string, FunctionAnalysis> {
  return new Map(list.map((f) => [f.name.split('.').pop()!, f]));
}

describe('withFunctionFacts', () => {
  const lower = () => analyzeFunction([row({ name: 'lower' })], []);
  const purge = () => analyzeFunction([row({ schema: 'public', name: 'purge', language: 'sql', volatility: 'v', body: 'DROP TABLE victim' })], []);

  it('a call of an unsafe function adds call and its body effects; a safe one adds nothing', () => {
    const safe = withFunctionFacts(classifySql('SELECT lower(name) FROM customers'), facts(lower()));
    expect(safe.statements[0]).toMatchObject({ kind: 'select', effects: ['select'] });
    const c = withFunctionFacts(classifySql('SELECT purge(), lower(x) FROM t'), facts(lower(), purge()));
    expect(c.statements[0]).toMatchObject({ kind: 'drop', effects: ['drop', 'call', 'select'], writes: ['victim'], reads: ['t'] });
    expect(Object.isFrozen(c.statements[0])).toBe(true);
  });

  it('a name without facts is unsafe and opaque', () => {
    const c = withFunctionFacts(classifySql('SELECT nosuch(1)'), new Map());
    expect(c.statements[0]).toMatchObject({ kind: 'unknown', opaque: 'function nosuch was not found in the catalogue' });
    expect(c.statements[0]!.effects).toEqual(['unknown', 'call', 'select']);
  });

  it('a CALL of a listed procedure is what its body does', () => {
    const p = analyzeFunction([row({ schema: 'public', name: 'archive', kind: 'p', language: 'sql', volatility: 'v', body: 'INSERT INTO archive SELECT * FROM orders' })], ['archive']);
    const c = withFunctionFacts(classifySql('CALL archive()'), facts(p));
    expect(c.statements[0]).toMatchObject({ kind: 'insert', effects: ['insert'], writes: ['archive'], reads: ['orders'] });
    const unlisted = analyzeFunction([row({ schema: 'public', name: 'archive', kind: 'p', language: 'sql', volatility: 'v', body: 'SELECT 1' })], []);
    expect(withFunctionFacts(classifySql('CALL archive()'), facts(unlisted)).statements[0]).toMatchObject({ kind: 'call' });
  });
});
