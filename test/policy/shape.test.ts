import { beforeAll, describe, expect, it } from 'vitest';
import { classifySql, clearSqlCache, initSqlParser } from '../../src/policy/index.js';
import { literalShape } from '../../src/policy/sql/shape.js';

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
