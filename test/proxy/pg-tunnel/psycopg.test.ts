/**
 * Python's psycopg2 (libpq underneath, Debian's python3-psycopg2 which .ci/run installs) through the
 * tunnel: parameters, a transaction with a denied statement, masking, server-side cursors.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, startFixture, type Fixture, type TestTunnel } from './fixture.js';

const PYTHON = '/usr/bin/python3';
let fx: Fixture;
let t: TestTunnel;

const SCRIPT = `
import json, sys, psycopg2
out = {}
conn = psycopg2.connect(sys.argv[1])
cur = conn.cursor()
cur.execute("SELECT id, ssn, email FROM customers WHERE id <= %s ORDER BY id", (3,))
out["rows"] = cur.fetchall()
try:
    cur.execute("DROP TABLE orders")
except psycopg2.Error as e:
    out["denied"] = [e.pgcode, e.pgerror.strip()]
    conn.rollback()
cur.execute("SELECT count(*) FROM orders")
out["orders"] = cur.fetchone()[0]
named = conn.cursor(name="big")
named.itersize = 5
named.execute("SELECT ssn FROM customers ORDER BY id")
out["cursor"] = [r[0] for r in named]
named.close()
conn.commit()
conn.close()
print(json.dumps(out))
`;

beforeAll(async () => {
  fx = await startFixture();
  t = await fx.tunnel({
    use: ['recommended', 'pii'],
    policies: `  pii:
    - name: ssn-column
      action: mask
      columns: [public.customers.ssn]
      with: redact`,
  });
});
afterAll(async () => {
  await fx?.stop();
});

describe('psycopg2 through the tunnel', () => {
  it('queries with parameters, sees masked values and a native denial, and uses a server-side cursor', async (ctx) => {
    const probe = existsSync(PYTHON) ? await run(PYTHON, ['-c', 'import psycopg2']) : { code: 1 };
    // .ci/run installs python3-psycopg2, so under CI a missing client is a failure; a developer machine
    // without the Debian package skips this one client (node-postgres, psql and pgbench cover the protocol).
    if (probe.code !== 0) {
      if (process.env['CI']) throw new Error(`python3-psycopg2 is missing at ${PYTHON}: .ci/run should have installed it`);
      ctx.skip(`python3-psycopg2 is not installed at ${PYTHON} (apt install python3-psycopg2); node-postgres, psql and pgbench still cover the protocol`);
    }
    const r = await run(PYTHON, ['-c', SCRIPT, t.url]);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { rows: [number, string, string][]; denied: [string, string]; orders: number; cursor: string[] };
    expect(out.rows.map((row) => row[1])).toEqual(['[REDACTED:ssn]', '[REDACTED:ssn]', '[REDACTED:ssn]']);
    expect(out.rows.map((row) => row[2]).join(' ')).not.toMatch(/@example\.com$/);
    expect(out.denied[0]).toBe('42501');
    expect(out.denied[1]).toMatch(/denied by policy recommended/);
    expect(out.orders).toBeGreaterThan(0);
    expect(out.cursor.length).toBeGreaterThan(5);
    expect(new Set(out.cursor)).toEqual(new Set(['[REDACTED:ssn]']));
  });
});
