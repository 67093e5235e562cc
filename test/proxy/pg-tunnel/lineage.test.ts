import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { derivedColumnMask, sqlIdentifiers } from '../../../src/proxy/postgres/lineage.js';
import type { MaskDirective } from '../../../src/policy/index.js';
import { pgClient, startFixture, type Fixture, type TestTunnel } from './fixture.js';

const ssnRule: MaskDirective = { policy: 'pii', rule: 'ssn-column', columns: ['public.customers.ssn'], with: 'redact' };

describe('derived-column taint (pure)', () => {
  it('finds identifiers outside literals, comments and dollar quotes', () => {
    const x = sqlIdentifiers(`SELECT "Ssn", reverse(ssn) FROM t -- ssn2\n WHERE note = 'ssn3' AND $$ssn4$$ = x /* ssn5 */`);
    expect(x.idents).toEqual(['select', 'Ssn', 'reverse', 'ssn', 'from', 't', 'where', 'note', 'and', 'x']);
    expect(x.calls).toEqual(['reverse']);
  });

  it('taints statements that name a masked column or lift whole rows', () => {
    expect(derivedColumnMask("SELECT translate(ssn, '-', '') FROM customers", [ssnRule])).toMatchObject({ masker: 'redact' });
    expect(derivedColumnMask('SELECT row_to_json(c) FROM customers c', [ssnRule])).not.toBeNull();
    expect(derivedColumnMask('SELECT json_agg(c.*) FROM customers c', [ssnRule])).not.toBeNull();
    expect(derivedColumnMask("SELECT upper(name) FROM customers WHERE note <> 'ssn'", [ssnRule])).toBeNull();
    expect(derivedColumnMask('SELECT count(*) FROM orders', [ssnRule])).toBeNull();
    expect(derivedColumnMask('SELECT reverse(ssn) FROM customers', [])).toBeNull();
  });
});

let fx: Fixture;
let t: TestTunnel;
let direct: pg.Client;
let ssns: string[];

beforeAll(async () => {
  fx = await startFixture();
  t = await fx.tunnel({
    use: ['pii'],
    policies: `  pii:
    - name: ssn-column
      action: mask
      columns: [public.customers.ssn]
      with: redact`,
  });
  direct = await pgClient(fx.dbUrl);
  ssns = (await direct.query('select ssn from customers order by id')).rows.map((r: { ssn: string }) => r.ssn);
});
afterAll(async () => {
  await direct?.end();
  await fx?.stop();
});

describe('derived columns through the tunnel', () => {
  it('masks transformations of a masked column whole, and leaves unrelated computed columns alone', async () => {
    const c = await pgClient(t.url);
    const queries = [
      "SELECT translate(ssn, '-', '') AS x FROM customers",
      'SELECT reverse(ssn) AS x FROM customers',
      "SELECT encode(convert_to(ssn, 'UTF8'), 'base64') AS x FROM customers",
      "SELECT name || ' ' || ssn AS x FROM customers",
      'SELECT row_to_json(c)::text AS x FROM customers c',
      "SELECT string_agg(ssn, ',') AS x FROM customers",
      'WITH s AS (SELECT upper(ssn) AS u FROM customers) SELECT u AS x FROM s',
      'SELECT (SELECT max(ssn) FROM customers) AS x',
    ];
    for (const q of queries) {
      const r = await c.query(q);
      const text = JSON.stringify(r.rows);
      for (const s of ssns) {
        expect(text, q).not.toContain(s);
        expect(text, q).not.toContain(s.replace(/-/g, ''));
        expect(text, q).not.toContain([...s].reverse().join(''));
      }
      expect(text, q).toContain('REDACTED');
    }
    const plain = await c.query('SELECT upper(name) AS n, count(*) OVER () AS k FROM customers ORDER BY id LIMIT 2');
    const want = await direct.query('SELECT upper(name) AS n, count(*) OVER () AS k FROM customers ORDER BY id LIMIT 2');
    expect(plain.rows).toEqual(want.rows);
    await c.end();
  });
});
