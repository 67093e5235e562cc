import { beforeAll, describe, expect, it } from 'vitest';
import { classifySql, clearSqlCache, initSqlParser } from '../../src/policy/index.js';
import { literalFreeShape, sqlCacheSizes } from '../../src/policy/sql/classify.js';
import { statementLineage } from '../../src/policy/sql/lineage.js';
import { literalShape } from '../../src/policy/sql/shape.js';
import { cachedLineage } from '../../src/proxy/postgres/taint.js';

beforeAll(async () => {
  await initSqlParser();
});

describe('literal shape of a statement', () => {
  it('replaces numbers and plain strings, keeps identifiers, parameters and operators', () => {
    expect(literalShape("SELECT abalance FROM pgbench_accounts WHERE aid = 48213 AND name = 'O''Brien';")).toBe(
      'SELECT abalance FROM pgbench_accounts WHERE aid = ? AND name = ?',
    );
    expect(literalShape('select t1.a2, 1.5e-3, .5, 0x1F from "T 1" where x = $1')).toBe('select t1.a2, ?, ?, ? from "T 1" where x = $1');
  });

  it('gives up on what it does not fully understand', () => {
    for (const sql of ["SELECT E'a\\'b'", 'SELECT $$x$$', 'SELECT 1 -- c', 'SELECT /* c */ 1', 'SELECT 1; DROP TABLE t', "SELECT 'open", 'SELECT "open', "SELECT x'1F'"]) {
      expect(literalShape(sql), sql).toBeNull();
    }
  });
});

describe('what the text cache keeps', () => {
  it('a new text of a known shape (inlined parameters) is not kept by its text, so what repeats (BEGIN, a shape\'s first text) stays', () => {
    clearSqlCache();
    const begin = classifySql('BEGIN');
    const first = classifySql('SELECT abalance FROM pgbench_accounts WHERE aid = 0');
    for (let i = 1; i < 12_000; i++) classifySql(`SELECT abalance FROM pgbench_accounts WHERE aid = ${i}`);
    expect(sqlCacheSizes()).toEqual({ texts: 2, shapes: 2 });
    // the same frozen objects: hits of the text cache, not pushed out by 12,000 new texts (its bound is 10,000)
    expect(classifySql('BEGIN')).toBe(begin);
    expect(classifySql('SELECT abalance FROM pgbench_accounts WHERE aid = 0')).toBe(first);
    const other = classifySql('SELECT abalance FROM pgbench_accounts WHERE aid = 77');
    expect(other.statements[0]!.text).toBe('SELECT abalance FROM pgbench_accounts WHERE aid = 77');
    expect(other).toEqual({ ...first, statements: [{ ...first.statements[0], text: 'SELECT abalance FROM pgbench_accounts WHERE aid = 77' }] });
  });
});

describe('classification through the shape cache', () => {
  const families = [
    (v: number) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${v}`,
    (v: number) => `UPDATE pgbench_accounts SET abalance = abalance + ${v} WHERE aid = ${v * 7};`,
    (v: number) => `DELETE FROM orders WHERE id > ${v}`,
    (v: number) => `select pg_read_file('/etc/passwd${v}')`,
    (v: number) => `INSERT INTO t (a, b) SELECT ${v}, lower(name) FROM customers WHERE note = 'x${v}'`,
    (v: number) => `WITH d AS (DELETE FROM t WHERE a = ${v} RETURNING *) SELECT * FROM d`,
  ];

  it('gives exactly what a fresh parse gives, the statement text included', () => {
    for (const make of families) {
      clearSqlCache();
      classifySql(make(1)); // seeds the shape cache
      for (const v of [2, 31337, 9]) {
        const viaShape = classifySql(make(v));
        clearSqlCache();
        const fresh = classifySql(make(v));
        expect(viaShape, make(v)).toEqual(fresh);
        classifySql(make(1));
      }
    }
  });

  it('never turns unparseable text into a statement of a cached shape', () => {
    clearSqlCache();
    expect(classifySql("SELECT name FROM customers WHERE note = 'x'").statements[0]?.kind).toBe('select');
    const broken = classifySql("SELECT name FROM customers WHERE note = 'x");
    expect(broken.statements[0]?.kind).toBe('unknown');
    expect(classifySql('SELECT 1; DROP TABLE customers').statements.map((s) => s.kind)).toEqual(['select', 'drop']);
  });
});

describe('the literal-free shape other analyses may cache by', () => {
  it('is the shape of one plain statement, and null where a string carries code or there are several statements', () => {
    expect(literalFreeShape('SELECT ssn FROM customers WHERE id = 42')).toBe('SELECT ssn FROM customers WHERE id = ?');
    for (const sql of [
      "DO 'BEGIN PERFORM ssn FROM customers; END'",
      "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS 'SELECT ssn FROM customers'",
      "CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'",
      'SELECT 1; SELECT ssn FROM customers',
      "SELECT name FROM customers WHERE note = 'x",
    ]) {
      expect(literalFreeShape(sql), sql).toBeNull();
    }
  });

  it('is the same whether the text was classified before, by its shape, or not at all', () => {
    clearSqlCache();
    const texts = ['SELECT ssn FROM customers WHERE id = 1', 'SELECT ssn FROM customers WHERE id = 2', "DO 'BEGIN PERFORM 1; END'", 'SELECT 1; SELECT 2'];
    const cold = texts.map((t) => {
      clearSqlCache();
      return literalFreeShape(t);
    });
    clearSqlCache();
    for (const t of texts) classifySql(t);
    expect(texts.map((t) => literalFreeShape(t))).toEqual(cold);
    // asked right after its own classification (the masking path), and after another text's
    clearSqlCache();
    expect(texts.map((t) => (classifySql(t), literalFreeShape(t)))).toEqual(cold);
    expect(texts.map((t, i) => (classifySql(t), classifySql(texts[(i + 1) % texts.length]!), literalFreeShape(t)))).toEqual(cold);
    expect(cold).toEqual(['SELECT ssn FROM customers WHERE id = ?', 'SELECT ssn FROM customers WHERE id = ?', null, null]);
  });
});

describe('lineage cached by shape (the tunnel analyses a statement once per shape, never across code in strings)', () => {
  const masked = ['customers.ssn'];
  const none = new Set<string>();

  it('gives what a fresh analysis gives for every statement of a shape', () => {
    const families = [
      (v: number) => `SELECT ssn, name FROM customers WHERE id = ${v}`,
      (v: number) => `SELECT name, ${v} FROM customers WHERE ssn LIKE '${v}%'`,
      (v: number) => `SELECT set_config('x${v}', ssn, false) FROM customers`,
      (v: number) => `INSERT INTO t SELECT ssn FROM customers WHERE id = ${v}`,
    ];
    for (const make of families) {
      cachedLineage(make(1), masked, none);
      for (const v of [2, 77]) expect(cachedLineage(make(v), masked, none), make(v)).toEqual(statementLineage(make(v), { masked, taintedFunctions: none }));
    }
  });

  it('keeps rule sets and tainted functions apart, whichever was asked last, and an array the caller changed in place', () => {
    const sql = 'SELECT ssn, f(id) FROM customers WHERE id = 5';
    const ssnRule = ['customers.ssn'];
    const nameRule = ['customers.name'];
    const fresh = (m: readonly string[], fns: ReadonlySet<string>) => statementLineage(sql, { masked: m, taintedFunctions: fns });
    expect(fresh(ssnRule, none)).not.toEqual(fresh(nameRule, none));
    expect(fresh(nameRule, none)).not.toEqual(fresh(nameRule, new Set(['f'])));
    for (const [m, fns] of [[ssnRule, none], [nameRule, none], [ssnRule, none], [nameRule, new Set(['f'])], [nameRule, none]] as const) {
      expect(cachedLineage(sql, m, fns), `${m.join()} ${[...fns].join()}`).toEqual(fresh(m, fns));
    }
    // the same array object, now with other patterns: the answer follows its content
    const rules = ['customers.ssn'];
    expect(cachedLineage(sql, rules, none)).toEqual(fresh(['customers.ssn'], none));
    rules[0] = 'customers.name';
    expect(cachedLineage(sql, rules, none)).toEqual(fresh(['customers.name'], none));
  });

  it('keeps DO blocks and function bodies apart: their strings are code', () => {
    const clean = cachedLineage("DO 'BEGIN PERFORM 1; END'", masked, none)[0]!;
    const reads = cachedLineage("DO 'BEGIN PERFORM ssn FROM customers; END'", masked, none)[0]!;
    expect(clean.launders).toBeNull();
    expect(reads.launders).toMatch(/DO block reads customers\.ssn/);
  });
});
