/**
 * Two processes sharing a store: a PostgreSQL tunnel (in this process) holds a statement that needs
 * approval; the built binary (`npm run build` first), as a second process, runs `dlpctl approve ID` /
 * `dlpctl deny ID`; the client sees its result or the denial. Once with the SQLite store file, once with a
 * PostgreSQL store (LISTEN/NOTIFY wake-up). No timing assertions: the statement just has to be released.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/approvals/request.js';
import { openStore } from '../../src/store/index.js';
import type { Approval, SessionStore } from '../../src/store/types.js';
import { runBin, testEnv } from '../helpers/cli.js';
import { pgClient, queryError, startFixture, type Fixture, type TestTunnel } from '../proxy/pg-tunnel/fixture.js';
import { OS_USER } from './helpers.js';

let fx: Fixture;
let home: string;

beforeAll(async () => {
  fx = await startFixture();
  home = path.join(fx.dir, 'home');
  await fs.mkdir(home, { recursive: true });
});
afterAll(async () => fx?.stop());

const GATE = (timeout: string) => `  gate:
    - name: updates-need-approval
      when: { sql: { statements: [update] } }
      action: approve
      approvers: ['user:${OS_USER}', 'group:dba']
      timeout: ${timeout}`;

async function pendingFor(store: SessionStore, marker: string): Promise<Approval> {
  for (let i = 0; i < 600; i++) {
    const a = (await store.listApprovals({ state: 'pending' })).find((x) => x.maskedText.includes(marker));
    if (a) return a;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no pending approval for ${marker}`);
}

describe.each([
  { name: 'sqlite', url: async () => fx.storeUrl, ids: [3, 4] },
  { name: 'postgres', url: async () => fx.pg.newDatabase(), ids: [6, 7] },
])('dlpctl approve/deny from another process ($name store)', ({ name, url: makeUrl, ids }) => {
  const [first, second] = ids as [number, number];
  const marker = `Approved By Bin ${name}`;
  let url: string;
  let store: SessionStore;
  let t: TestTunnel;
  let c: pg.Client;
  let direct: pg.Client;

  beforeAll(async () => {
    url = await makeUrl();
    store = url === fx.storeUrl ? fx.store : await openStore(url);
    t = await fx.tunnel({ store, use: ['recommended', 'gate'], policies: GATE('2m') });
    c = await pgClient(t.url);
    direct = await pgClient(fx.dbUrl);
  });
  afterAll(async () => {
    await c?.end();
    await direct?.end();
    await t?.close();
    if (store && store !== fx.store) await store.close();
  });

  const dlpctl = (args: string[]) => runBin([...args, '--store', url], { env: testEnv(home) });

  it('a held UPDATE runs once `dlpctl approve` (second process) approves it; the decision is in the audit trail', async () => {
    const sql = `update customers set name = '${marker}' where id = ${first}`;
    const running = c.query(sql);
    const a = await pendingFor(store, marker);
    expect(a.sha256).toBe(sha256Hex(sql));
    expect((await direct.query(`select name from customers where id = ${first}`)).rows[0].name).not.toBe(marker);

    const listed = await dlpctl(['approvals', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { id: string }[]).map((x) => x.id)).toContain(a.id);

    const r = await dlpctl(['approve', a.id, '--comment', 'ok from e2e']);
    expect(r.code, r.stderr).toBe(0);
    const result = await running;
    expect(result.rowCount).toBe(1);
    expect((await direct.query(`select name from customers where id = ${first}`)).rows[0].name).toBe(marker);
    const after = (await store.getApproval(a.id))!;
    expect(after.state).toBe('consumed');
    const events = await store.listEvents(a.sessionId);
    expect(events.filter((e) => e.type === 'approval.decided' && e.approvalId === a.id).map((e) => (e as { by?: string; state: string }).state)).toEqual(
      expect.arrayContaining(['approved']),
    );
    expect((await store.verify(a.sessionId)).ok).toBe(true);
  });

  it('the same statement with a different literal needs a new request; `dlpctl deny` fails it with the reason', async () => {
    const sql = `update customers set name = '${marker}' where id = ${second}`;
    const failing = queryError(c, sql);
    const a = await pendingFor(store, `where id = ${second}`);
    expect(a.sha256).toBe(sha256Hex(sql));
    expect(a.sha256).not.toBe(sha256Hex(`update customers set name = '${marker}' where id = ${first}`));
    const r = await dlpctl(['deny', a.id, '--reason', 'wrong customer']);
    expect(r.code, r.stderr).toBe(0);
    const err = await failing;
    expect(err.message).toMatch(new RegExp(`${a.id} was denied by ${OS_USER}: wrong customer`));
    expect((await direct.query(`select name from customers where id = ${second}`)).rows[0].name).not.toBe(marker);
    // The session goes on.
    expect((await c.query('select 1 as one')).rows[0].one).toBe(1);
  });

  it('approving a request that is no longer pending exits 5', async () => {
    const consumed = (await store.listApprovals({ state: 'consumed' }))[0]!;
    const r = await dlpctl(['approve', consumed.id]);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/already consumed/);
  });
});

describe('timeout through the tunnel', () => {
  it('nobody decides: the statement fails with "timed out" and the request is expired', async () => {
    const t = await fx.tunnel({ use: ['recommended', 'gate'], policies: GATE('1s') });
    const c = await pgClient(t.url);
    try {
      const err = await queryError(c, `update customers set name = 'Never' where id = 5`);
      expect(err.message).toMatch(/timed out/);
      const a = (await fx.store.listApprovals()).find((x) => x.maskedText.includes('Never'))!;
      expect(a.state).toBe('expired');
    } finally {
      await c.end();
      await t.close();
    }
  });
});
