import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { psql, run, startFixture, type Fixture, type TestTunnel } from './fixture.js';

let fx: Fixture;
let t: TestTunnel;

beforeAll(async () => {
  fx = await startFixture();
  // pgbench -i is DDL-heavy (DROP TABLE IF EXISTS …): initialise it directly against the server.
  const init = await run('pgbench', ['-i', '-s', '1', '-q', fx.dbUrl], { timeoutMs: 120_000 });
  if (init.code !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
  t = await fx.tunnel();
}, 180_000);
afterAll(async () => fx?.stop());

describe('real clients', () => {
  for (const mode of ['simple', 'extended', 'prepared']) {
    it(`pgbench -S -M ${mode} through the tunnel`, async () => {
      const r = await run('pgbench', ['-n', '-S', '-T', '3', '-c', '4', '-M', mode, t.url], { timeoutMs: 60_000 });
      expect(r.stderr).not.toMatch(/error|aborted/i);
      expect(r.code).toBe(0);
      const m = /number of transactions actually processed: (\d+)/.exec(r.stdout);
      expect(Number(m?.[1] ?? 0)).toBeGreaterThan(0);
    }, 60_000);
  }

  it('a psql script with \\d customers and \\copy', async () => {
    const file = path.join(fx.dir, 'script.sql');
    await fs.writeFile(
      file,
      ['\\d customers', 'select count(*) as n from orders;', "\\copy (select id, email from customers order by id limit 3) to stdout", '\\dt'].join('\n'),
    );
    const r = await psql(t.url, ['-f', file]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Table "public\.customers"/);
    expect(r.stdout).toMatch(/ssn\s+\| text/);
    expect(r.stdout).toMatch(/\n\s+20\n/);
    const copied = r.stdout.split('\n').filter((l) => /^\d+\t/.test(l));
    expect(copied).toHaveLength(3);
    for (const l of copied) expect(l).not.toContain('@example.com');
    expect(r.stdout).toMatch(/pgbench_accounts/);
  });

  it('a node-postgres Pool with 8 clients runs 200 concurrent queries', async () => {
    const pool = new pg.Pool({ connectionString: t.url, max: 8 });
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => pool.query('select $1::int as i, (select count(*)::int from customers) as n', [i])),
    );
    expect(results.map((r) => r.rows[0].i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(results.every((r) => r.rows[0].n === 20)).toBe(true);
    expect(pool.totalCount).toBe(8);
    await pool.end();
    // pool.end() does not wait for the sockets: wait until the tunnel has seen every session end.
    for (let i = 0; i < 300 && t.tunnel.activeSessions > 0; i += 1) await new Promise((r) => setTimeout(r, 50));
    expect(t.tunnel.activeSessions).toBe(0);
  });
});
