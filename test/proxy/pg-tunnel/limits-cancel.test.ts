import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCancelRequest } from '../../../src/proxy/postgres/protocol.js';
import { pgClient, queryError, startFixture, type Fixture, type TestTunnel } from './fixture.js';

let fx: Fixture;
let t: TestTunnel;

beforeAll(async () => {
  fx = await startFixture();
  t = await fx.tunnel({
    use: ['lim'],
    policies: `  lim:
    - name: few-rows
      when: { sql: { tables: [customers, orders] } }
      action: limit
      maxRows: 10
    - name: few-bytes
      when: { sql: { tables: [payments] } }
      action: limit
      maxBytes: 500
    - name: series
      when: { sql: { functions: [generate_series] } }
      action: limit
      maxRows: 1000`,
  });
});
afterAll(async () => fx?.stop());

async function sendCancel(port: number, pid: number, key: Buffer): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.end(encodeCancelRequest(pid, key)));
    s.on('close', () => resolve());
    s.on('error', reject);
  });
}

describe('limits', () => {
  it('maxRows: 54000 after N rows, the session continues', async () => {
    const c = await pgClient(t.url);
    expect((await c.query('select id from customers where id <= 10')).rows).toHaveLength(10);
    const err = await queryError(c, 'select id from customers');
    expect(err.code).toBe('54000');
    expect(err.message).toContain('more than 10 rows');
    expect(err.message).toContain('lim/few-rows');
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    expect((await c.query('select id from orders where id <= 3')).rows).toHaveLength(3);
    await c.end();
  });

  it('maxRows also holds in the extended protocol', async () => {
    const c = await pgClient(t.url);
    const err = await queryError(c, 'select id from customers where id > $1', [0]);
    expect(err.code).toBe('54000');
    expect((await c.query('select id from customers where id = $1', [2])).rows).toEqual([{ id: 2 }]);
    await c.end();
  });

  it('maxBytes: 54000, the session continues', async () => {
    const c = await pgClient(t.url);
    const err = await queryError(c, 'select * from payments');
    expect(err.code).toBe('54000');
    expect(err.message).toContain('more than 500 bytes');
    expect((await c.query('select id from payments where id = 1')).rows).toEqual([{ id: 1 }]);
    await c.end();
  });

  it('a limited query that ends by itself is not cancelled: the next statement is never the one cancelled', async () => {
    // A cancel sent at the limit used to land, now and then, on the statement after it (57014).
    const c = await pgClient(t.url);
    for (let i = 0; i < 25; i += 1) {
      expect((await queryError(c, 'select * from payments')).code).toBe('54000');
      expect((await c.query('select id from payments where id = 1')).rows).toEqual([{ id: 1 }]);
    }
    await c.end();
  });

  it('a huge result under a small limit ends (the server query is cancelled)', async () => {
    const c = await pgClient(t.url);
    const err = await queryError(c, 'select g, md5(g::text) from generate_series(1, 20000000) g');
    expect(err.code).toBe('54000');
    // The next statement runs on the same backend: the cancel did not hit it.
    expect((await c.query('select 5 as five')).rows).toEqual([{ five: 5 }]);
    const active = await pgClient(fx.dbUrl);
    const still = await active.query(`select count(*)::int as n from pg_stat_activity where query like '%generate_series(1, 20000000)%' and state = 'active' and pid <> pg_backend_pid()`);
    expect(still.rows[0].n).toBe(0);
    await active.end();
    await c.end();
  });
});

describe('cancel', () => {
  it("a CancelRequest with the client's own key cancels: 57014", async () => {
    const c = await pgClient(t.url);
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    const key = Buffer.alloc(4);
    key.writeInt32BE(secretKey);
    const sleeping = c.query('select pg_sleep(30)').then(
      () => null,
      (e: { code?: string }) => e,
    );
    await new Promise((r) => setTimeout(r, 300));
    await sendCancel(t.port, processID, key);
    const err = await sleeping;
    expect(err?.code).toBe('57014');
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    await c.end();
  });

  it('a CancelRequest with a wrong key does nothing', async () => {
    const c = await pgClient(t.url);
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    const key = Buffer.alloc(4);
    key.writeInt32BE(secretKey ^ 0x5a5a5a5a);
    const started = c.query('select pg_sleep(1.5), 9 as nine');
    await new Promise((r) => setTimeout(r, 200));
    await sendCancel(t.port, processID, key);
    await sendCancel(t.port, processID ^ 1, Buffer.alloc(4));
    const r = await started;
    expect(r.rows[0].nine).toBe(9);
    await c.end();
  });
});
