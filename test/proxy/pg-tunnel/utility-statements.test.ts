/**
 * Utility statements clients send on their own are classified, and with `recommended` they work: LISTEN /
 * NOTIFY, PREPARE / EXECUTE / DEALLOCATE (EXECUTE decided as the statement it runs), DISCARD, RESET, SHOW; a
 * denial names the rule that really decided it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { pgClient, queryError, startFixture, type Fixture, type TestTunnel } from './fixture.js';

let fx: Fixture;
let t: TestTunnel;

beforeAll(async () => {
  fx = await startFixture();
  t = await fx.tunnel({ use: ['recommended'] });
});
afterAll(async () => {
  await fx?.stop();
});

describe('utility statements with the recommended policy', () => {
  it('LISTEN and NOTIFY work, and the notification arrives', async () => {
    const listener = await pgClient(t.url);
    const sender = await pgClient(t.url);
    const got = new Promise<pg.Notification>((resolve) => listener.on('notification', resolve));
    await listener.query('LISTEN jobs');
    await sender.query(`NOTIFY jobs, 'ready'`);
    const n = await got;
    expect(n.channel).toBe('jobs');
    expect(n.payload).toBe('ready');
    await listener.query('UNLISTEN jobs');
    await listener.end();
    await sender.end();
  });

  it('EXECUTE runs a PREPAREd statement and is decided as that statement', async () => {
    const c = await pgClient(t.url);
    await c.query('PREPARE q(int) AS SELECT id, product FROM orders WHERE id = $1');
    const r = await c.query('EXECUTE q(1)');
    expect(r.rows).toHaveLength(1);
    await c.query('DEALLOCATE q');
    // a PREPARE of a statement the policy denies (a DELETE without WHERE nobody could approve) is refused by the rule that decides it, and so is its EXECUTE
    const prep = await queryError(c, 'PREPARE d AS DELETE FROM orders');
    expect(prep.code).toBe('42501');
    expect(prep.message).toContain('unbounded-writes-need-approval');
    const exec = await queryError(c, 'EXECUTE d');
    expect(exec.code).toBe('42501');
    expect(exec.message).toContain('which was not prepared through this tunnel');
    await c.end();
  });

  it('DISCARD, RESET and SHOW are allowed', async () => {
    const c = await pgClient(t.url);
    await c.query('SET work_mem = 8192');
    expect((await c.query('SHOW work_mem')).rows[0].work_mem).toBe('8MB');
    await c.query('RESET work_mem');
    await c.query('DISCARD ALL');
    await c.end();
  });

  it('a statement the parser rejects is answered as PostgreSQL would (42601 with the position), never forwarded, and recorded', async () => {
    const c = await pgClient(t.url);
    const direct = await pgClient(fx.dbUrl);
    const sql = "SELECT 'é' wat wat";
    const want = await queryError(direct, sql);
    const got = await queryError(c, sql);
    expect(got.code).toBe('42601');
    expect(got.position).toBe(want.position);
    expect(got.message).toBe(want.message);
    // extended protocol too, and the session goes on
    const ext = await queryError(c, 'SELEC $1::int', [1]);
    expect(ext.code).toBe('42601');
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await c.end();
    await direct.end();
    const events = await fx.store.search({ text: 'wat' });
    expect(events.some((h) => h.event.type === 'query' && h.event.decision === 'deny')).toBe(true);
  });
});
