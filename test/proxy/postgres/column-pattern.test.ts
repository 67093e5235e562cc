import { describe, expect, it } from 'vitest';
import { columnPatternMatches } from '../../../src/proxy/postgres/result-mask.js';

const col = (schema: string, table: string, column: string) => ({ schema, table, column });

describe('column patterns', () => {
  it('match by column, table.column or schema.table.column, case-insensitively, each part a glob', () => {
    const ssn = col('Public', 'Customers', 'SSN');
    for (const p of ['ssn', 'customers.ssn', 'public.customers.ssn', '*.ssn', 'public.*.ssn', '*.*.*', 'cust*.s*n', 'PUBLIC.CUSTOMERS.SSN', '*']) {
      expect(columnPatternMatches(p, ssn), p).toBe(true);
    }
    for (const p of ['email', 'orders.ssn', 'other.customers.ssn', 'ssn2', 's', 'customers.ssn.x.y', 'cust.ssn', '*.email']) {
      expect(columnPatternMatches(p, ssn), p).toBe(false);
    }
  });

  it('a glob does not cross a dot, and a pattern\'s other characters are taken literally', () => {
    expect(columnPatternMatches('a*', col('s', 't', 'a.b'))).toBe(false);
    expect(columnPatternMatches('a.b+c', col('s', 'a', 'b+c'))).toBe(true);
    expect(columnPatternMatches('a.b+c', col('s', 'a', 'bbc'))).toBe(false);
    expect(columnPatternMatches('t.(x)', col('s', 't', '(x)'))).toBe(true);
    expect(columnPatternMatches('t.x?', col('s', 't', 'xy'))).toBe(false);
  });

  it('gives the same answers on repeated use (patterns are compiled once)', () => {
    const c = col('public', 'people', 'card');
    for (let i = 0; i < 3; i++) {
      expect(columnPatternMatches('public.people.card', c)).toBe(true);
      expect(columnPatternMatches('public.people.ssn', c)).toBe(false);
    }
  });
});
