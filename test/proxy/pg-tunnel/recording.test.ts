import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { sha256Hex } from '../../../src/approvals/request.js';
import { openStore } from '../../../src/store/index.js';
import type { SessionStore, StoreEvent } from '../../../src/store/types.js';
import { IDENTITY, pgClient, queryError, startFixture, type Fixture, type TestTunnel } from './fixture.js';

let fx: Fixture;
let t: TestTunnel;
let direct: pg.Client;

beforeAll(async () => {
  fx = await startFixture();
  t = await fx.tunnel({
    use: ['recommended', 'pii', 'gate'],
    policies: `  pii:
    - name: ssn-column
      action: mask
      columns: [public.customers.ssn]
  gate:
    - name: updates-need-approval
      when: { sql: { statements: [update] } }
      action: approve
      approvers: ['group:dba']
      timeout: 3s`,
  });
  direct = await pgClient(fx.dbUrl);
});
afterAll(async () => {
  await direct?.end();
  await fx?.stop();
});

function sessionIds(tt: TestTunnel): string[] {
  return tt.events.flatMap((e) => (e.type === 'session_start' ? [e.sessionId] : []));
}

async function waitFor<T>(f: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 200; i += 1) {
    const v = await f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('recording', () => {
  it('a session record, query events with masked literals, result and mask.summary events; verify ok', async () => {
    const before = new Set(sessionIds(t));
    const c = await pgClient(t.url);
    await c.query(`select id from customers where ssn = '536-22-1234' or email = 'x@example.com'`);
    await c.query(`select id from payments where card_number = '4111111111111111'`);
    await c.query('select id, ssn, email from customers order by id limit 5');
    await queryError(c, 'drop table orders');
    await c.end();
    const id = await waitFor(async () => {
      const ids = sessionIds(t).filter((s) => !before.has(s));
      if (ids.length !== 1) return undefined;
      const s = await fx.store.getSession(ids[0]!);
      return s?.endedAt ? ids[0] : undefined;
    }, 'the session to end');
    const session = (await fx.store.getSession(id))!;
    expect(session.resource).toBe('db');
    expect(session.kind).toBe('postgres');
    expect(session.identity).toMatchObject({ subject: IDENTITY.subject, groups: IDENTITY.groups, issuer: 'local' });
    expect(session.clientAddr).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(session.outcome).toBe('ok');
    expect(session.counters.statements).toBe(4);
    expect(session.counters.denied).toBe(1);

    const events = await fx.store.listEvents(id);
    const text = JSON.stringify(events);
    expect(text).not.toContain('536-22-1234');
    expect(text).not.toContain('4111111111111111');
    expect(text).not.toContain('x@example.com');
    const queries = events.filter((e): e is Extract<StoreEvent, { type: 'query' }> => e.type === 'query');
    expect(queries).toHaveLength(4);
    expect(queries[0]!.sql).toMatch(/^select id from customers where ssn = '.+' or email = '.+'$/);
    expect(queries.map((q) => q.decision)).toEqual(['allow', 'allow', 'allow', 'deny']);
    expect(queries[3]!.rule).toBe('recommended/no-drop-truncate');
    expect(queries[3]!.kinds).toEqual(['drop']);
    const results = events.filter((e) => e.type === 'result');
    expect(results.map((r) => (r.type === 'result' ? r.rows : -1))).toContain(5);
    const summaries = events.filter((e) => e.type === 'mask.summary');
    expect(summaries.length).toBeGreaterThan(0);
    const counts = summaries.map((e) => (e.type === 'mask.summary' ? e.entities : {}));
    expect(counts.some((c) => c['column:ssn'] === 5)).toBe(true);
    expect(counts.some((c) => (c['email'] ?? 0) >= 5)).toBe(true);
    for (const c of counts) for (const v of Object.values(c)) expect(typeof v).toBe('number');
    expect(events.at(-1)!.type).toBe('session.end');
    expect((await fx.store.verify(id)).ok).toBe(true);
    expect((await fx.store.verify()).ok).toBe(true);
  });

  it('a store that fails mid-session: the next statement is denied (fail closed), not forwarded', async () => {
    const dir = await fs.mkdtemp(path.join(fx.dir, 'failing-'));
    const own = await openStore(`sqlite:${path.join(dir, 's.db')}`);
    const ft = await fx.tunnel({ store: own });
    const c = await pgClient(ft.url);
    await c.query(`insert into orders (customer_id, product, quantity) values (1, 'before-close', 1)`);
    await own.close();
    const err = await queryError(c, `insert into orders (customer_id, product, quantity) values (1, 'after-close', 1)`);
    expect(err.code).toBe('42501');
    expect(err.message).toContain('session store cannot record');
    await c.end().catch(() => undefined);
    await ft.close();
    const n = (await direct.query(`select product, count(*)::int as n from orders where product in ('before-close', 'after-close') group by 1 order by 1`)).rows;
    expect(n).toEqual([{ product: 'before-close', n: 1 }]);
  });

  it("a store whose writer thread dies mid-session: the next statement is denied, not forwarded", async () => {
    const dir = await fs.mkdtemp(path.join(fx.dir, 'dying-writer-'));
    const own = await openStore(`sqlite:${path.join(dir, 's.db')}`, { threads: 'writer' });
    const ft = await fx.tunnel({ store: own });
    const c = await pgClient(ft.url);
    await c.query(`insert into orders (customer_id, product, quantity) values (1, 'before-death', 1)`);
    await (own as unknown as { thread: { worker: { terminate(): Promise<number> } } }).thread.worker.terminate();
    const err = await queryError(c, `insert into orders (customer_id, product, quantity) values (1, 'after-death', 1)`);
    expect(err.code).toBe('42501');
    expect(err.message).toMatch(/session store cannot record.*writer thread/);
    await c.end().catch(() => undefined);
    await ft.close();
    await own.close();
    const n = (await direct.query(`select product, count(*)::int as n from orders where product in ('before-death', 'after-death') group by 1 order by 1`)).rows;
    expect(n).toEqual([{ product: 'before-death', n: 1 }]);
  });
});

describe('approvals', () => {
  let other: SessionStore;
  beforeAll(async () => {
    other = await openStore(fx.storeUrl);
  });
  afterAll(async () => other?.close());

  async function pendingFor(marker: string) {
    return waitFor(async () => (await other.listApprovals({ state: 'pending' })).find((a) => a.maskedText.includes(marker)), 'a pending approval');
  }

  it('an approved statement runs; the approval has the sha256 of the exact statement and masked text', async () => {
    const c = await pgClient(t.url);
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    const sql = `update customers set name = 'Approved Name' where ssn = '536-22-1234' or id = 1`;
    const running = c.query(sql);
    const a = await pendingFor('Approved Name');
    // the waiting client itself is told what it waits for, and the command that releases it
    await waitFor(async () => (notices.some((n) => n.includes(`dlpctl approve ${a.id}`)) ? true : undefined), 'the waiting notice');
    expect(a.sha256).toBe(sha256Hex(sql));
    expect(a.maskedText).not.toContain('536-22-1234');
    expect(a.rule).toBe('gate/updates-need-approval');
    expect(a.approvers).toEqual(['group:dba']);
    expect((await direct.query('select name from customers where id = 1')).rows[0].name).not.toBe('Approved Name');
    await other.updateApproval(a.id, (cur) => ({
      ...cur,
      state: 'approved',
      decisions: [...cur.decisions, { by: 'alice', groups: ['dba'], decision: 'approve', at: new Date().toISOString() }],
    }));
    const r = await running;
    expect(r.rowCount).toBe(1);
    expect((await direct.query('select name from customers where id = 1')).rows[0].name).toBe('Approved Name');
    expect((await other.getApproval(a.id))!.state).toBe('consumed');
    await c.end();
  });

  it('a denied approval: 42501 naming the denier', async () => {
    const c = await pgClient(t.url);
    const running = queryError(c, `update customers set name = 'Denied Name' where id = 2`);
    const a = await pendingFor('Denied Name');
    await other.updateApproval(a.id, (cur) => ({
      ...cur,
      state: 'denied',
      decisions: [...cur.decisions, { by: 'bob', groups: ['dba'], decision: 'deny', comment: 'not today', at: new Date().toISOString() }],
    }));
    const err = await running;
    expect(err.code).toBe('42501');
    expect(err.message).toContain(`approval ${a.id} was denied by bob: not today`);
    expect((await direct.query('select name from customers where id = 2')).rows[0].name).not.toBe('Denied Name');
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    await c.end();
  });

  it('a cancel while a statement waits for approval denies it and stays with dlpctl; a cancel of a running statement reaches the server', async () => {
    // A relay in front of the server that counts the CancelRequests dlpctl sends on. One sent for the held
    // statement could land on the statement that answers it with its denial (57014 instead of the reason).
    let cancels = 0;
    const relay = net.createServer((c) => {
      const u = net.connect(fx.pg.port, '127.0.0.1');
      c.once('data', (first: Buffer) => {
        if (first.length >= 8 && first.readUInt32BE(4) === 80877102) cancels += 1;
        u.write(first);
        c.pipe(u);
      });
      u.pipe(c);
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const tt = await fx.tunnel({
      port: (relay.address() as net.AddressInfo).port,
      use: ['recommended', 'gate'],
      policies: `  gate:
    - name: updates-need-approval
      when: { sql: { statements: [update] } }
      action: approve
      approvers: ['group:dba']`,
    });
    const c = await pgClient(tt.url);
    const cancel = async (): Promise<void> => {
      const keys = c as unknown as { processID: number; secretKey: number };
      const req = Buffer.alloc(16);
      req.writeUInt32BE(16, 0);
      req.writeUInt32BE(80877102, 4);
      req.writeUInt32BE(keys.processID, 8);
      req.writeUInt32BE(keys.secretKey >>> 0, 12);
      await new Promise<void>((resolve, reject) => {
        const s = net.connect(tt.port, '127.0.0.1', () => s.end(req));
        s.on('close', () => resolve());
        s.on('error', reject);
      });
    };
    try {
      const held = queryError(c, `update customers set name = 'Canceled Name' where id = 4`);
      await pendingFor('Canceled Name');
      await cancel();
      const err = await held;
      expect(err.message).toMatch(/canceled by the client while waiting for approval [A-Z0-9]{6}/);
      expect(cancels).toBe(0);
      expect((await direct.query('select name from customers where id = 4')).rows[0].name).not.toBe('Canceled Name');
      const running = queryError(c, 'select pg_sleep(30)');
      await waitFor(async () => ((await direct.query(`select 1 from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'`)).rowCount ? true : undefined), 'the running statement');
      await cancel();
      expect((await running).code).toBe('57014');
      expect(cancels).toBe(1);
    } finally {
      await c.end();
      await tt.close();
      relay.close();
    }
  });

  it('nobody decides: denied on timeout', async () => {
    const c = await pgClient(t.url);
    const err = await queryError(c, `update customers set name = 'Timeout Name' where id = 3`);
    expect(err.code).toBe('42501');
    expect(err.message).toMatch(/timed out: nobody decided within 3s/);
    expect((await direct.query('select name from customers where id = 3')).rows[0].name).not.toBe('Timeout Name');
    const a = (await other.listApprovals()).find((x) => x.maskedText.includes('Timeout Name'));
    expect(a?.state).toBe('expired');
    await c.end();
  });
});
