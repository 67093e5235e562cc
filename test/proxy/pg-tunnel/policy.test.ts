import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { BackendType, decodeBackend, encodeFrontend, encodeQuery, encodeSync } from '../../../src/proxy/postgres/protocol.js';
import { pgClient, queryError, RawClient, startFixture, type Fixture, type TestTunnel } from './fixture.js';

let fx: Fixture;
let t: TestTunnel;
let direct: pg.Client;

beforeAll(async () => {
  fx = await startFixture();
  t = await fx.tunnel();
  direct = await pgClient(fx.dbUrl);
});
afterAll(async () => {
  await direct?.end();
  await fx?.stop();
});

async function tableExists(name: string): Promise<boolean> {
  return (await direct.query('select to_regclass($1) is not null as e', [name])).rows[0].e as boolean;
}

describe('policy', () => {
  it('DROP and TRUNCATE are denied with 42501 and the rule name; the session continues', async () => {
    const c = await pgClient(t.url);
    const drop = await queryError(c, 'DROP TABLE orders');
    expect(drop.code).toBe('42501');
    expect(drop.message).toContain('recommended rule no-drop-truncate');
    const trunc = await queryError(c, 'TRUNCATE orders');
    expect(trunc.code).toBe('42501');
    expect((await c.query('select count(*)::int as n from orders')).rows[0].n).toBe(20);
    await c.end();
    expect(await tableExists('orders')).toBe(true);
  });

  it('a multi-statement query with one denied statement is denied as a whole', async () => {
    await direct.query('create table t_multi (x int)');
    const c = await pgClient(t.url);
    const err = await queryError(c, 'SELECT 1; DROP TABLE t_multi');
    expect(err.code).toBe('42501');
    await c.end();
    expect(await tableExists('t_multi')).toBe(true);
  });

  it('inside a transaction a denial aborts it (25P02 next) and ROLLBACK recovers', async () => {
    const c = await pgClient(t.url);
    await c.query('BEGIN');
    await c.query(`insert into orders (customer_id, product, quantity) values (1, 'tx-probe', 1)`);
    expect((await queryError(c, 'TRUNCATE orders')).code).toBe('42501');
    expect((await queryError(c, 'select 1')).code).toBe('25P02');
    await c.query('ROLLBACK');
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    await c.end();
    expect((await direct.query(`select count(*)::int as n from orders where product = 'tx-probe'`)).rows[0].n).toBe(0);
  });

  it('extended protocol: parameterized and named prepared statements, allowed and denied', async () => {
    const c = await pgClient(t.url);
    expect((await c.query('select id from customers where id = $1', [3])).rows).toEqual([{ id: 3 }]);
    const s1 = { name: 's1', text: 'select id from customers where id = $1', values: [4] };
    expect((await c.query(s1)).rows).toEqual([{ id: 4 }]);
    expect((await c.query({ ...s1, values: [5] })).rows).toEqual([{ id: 5 }]);
    const denied = await queryError(c, { name: 's2', text: 'drop table payments', values: [] });
    expect(denied.code).toBe('42501');
    const deniedParam = await queryError(c, 'select pg_read_file($1)', ['/etc/passwd']);
    expect(deniedParam.code).toBe('42501');
    expect((await c.query({ ...s1, values: [6] })).rows).toEqual([{ id: 6 }]);
    await c.end();
    expect(await tableExists('payments')).toBe(true);
  });

  it('a pipelined batch whose 2nd of 3 statements is denied', async () => {
    const raw = await RawClient.connect(t.port);
    await raw.startup('postgres', fx.database, t.secret);
    const stmts = ['select 1 as a', 'truncate orders', 'select 3 as c'];
    const batch: Buffer[] = [];
    for (const q of stmts) {
      batch.push(
        encodeFrontend({ kind: 'Parse', name: '', query: q, paramTypes: [] }),
        encodeFrontend({ kind: 'Bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] }),
        encodeFrontend({ kind: 'Execute', portal: '', maxRows: 0 }),
        encodeSync(),
      );
    }
    raw.write(Buffer.concat(batch));
    const results = [await raw.untilReady(), await raw.untilReady(), await raw.untilReady()];
    const tags = results.map((fs) =>
      fs.map((f) => {
        const m = decodeBackend(f);
        return m.kind === 'CommandComplete' ? `C:${m.tag}` : m.kind === 'ErrorResponse' ? `E:${m.code}` : m.kind === 'DataRow' ? 'D' : m.kind;
      }),
    );
    expect(tags[0]).toEqual(['ParseComplete', 'BindComplete', 'D', 'C:SELECT 1', 'ReadyForQuery']);
    expect(tags[1]).toEqual(['E:42501', 'ReadyForQuery']);
    expect(tags[2]).toEqual(['ParseComplete', 'BindComplete', 'D', 'C:SELECT 1', 'ReadyForQuery']);
    raw.close();
    expect((await direct.query('select count(*)::int as n from orders')).rows[0].n).toBeGreaterThan(0);
  });

  it('pg_read_file inside a subquery is denied', async () => {
    const c = await pgClient(t.url);
    const err = await queryError(c, `select * from customers where name = (select pg_read_file('/etc/hostname'))`);
    expect(err.code).toBe('42501');
    expect(err.message).toContain('no-server-file-access');
    await c.end();
  });

  it('enforce: false forwards and records the decision `observe`', async () => {
    const obs = await fx.tunnel({ resource: '    enforce: false' });
    await direct.query('create table t_observe (x int)');
    const c = await pgClient(obs.url);
    await c.query('drop table t_observe');
    await c.end();
    expect(await tableExists('t_observe')).toBe(false);
    const hits = await fx.store.search({ text: 't_observe' });
    const q = hits.map((h) => h.event).find((e) => e.type === 'query' && e.sql.includes('drop table t_observe'));
    expect(q && q.type === 'query' ? q.decision : null).toBe('observe');
    expect(q && q.type === 'query' ? q.rule : null).toBe('recommended/no-drop-truncate');
    await obs.close();
  });

  it('enforce: false: a result past maxRows passes whole (masked), its result event records the limit as observed', async () => {
    const obs = await fx.tunnel({
      use: ['recommended', 'capped'],
      policies: `  capped:\n    - name: five-rows\n      action: limit\n      maxRows: 5\n    - name: hide-ssn\n      action: mask\n      columns: [public.customers.ssn]\n      with: redact`,
      resource: '    enforce: false',
    });
    const c = await pgClient(obs.url);
    const r = await c.query<{ id: number; ssn: string }>('select id, ssn, 1 as observe_limit_marker from customers order by id');
    await c.end();
    await obs.close();
    expect(r.rows).toHaveLength(20);
    expect(r.rows.every((row) => !/\d{3}-\d{2}-\d{4}/.test(row.ssn))).toBe(true); // masking is not relaxed
    const q = (await fx.store.search({ text: 'observe_limit_marker' })).map((h) => h.event).find((e) => e.type === 'query');
    expect(q).toBeDefined();
    const events = await fx.store.listEvents(q!.sessionId);
    const result = events.find((e) => e.type === 'result' && e.seq > q!.seq);
    expect(result && result.type === 'result' ? result.observed : undefined).toBe('observe only (enforce: false): the result has more than 5 rows, the limit of rule capped/five-rows; not cut');
    expect(events.some((e) => e.type === 'error' && e.code === '54000')).toBe(false);
  });

  it('default: deny denies an unmatched statement', async () => {
    const strict = await fx.tunnel({
      use: ['reads'],
      policies: `  reads:\n    - name: selects\n      when: { sql: { statements: [select] } }\n      action: allow`,
      resource: '    default: deny',
    });
    const c = await pgClient(strict.url);
    expect((await c.query('select 1 as x')).rows).toEqual([{ x: 1 }]);
    const err = await queryError(c, `insert into orders (customer_id, product, quantity) values (1, 'nope', 1)`);
    expect(err.code).toBe('42501');
    expect(err.message).toContain('default');
    await c.end();
    await strict.close();
    expect((await direct.query(`select count(*)::int as n from orders where product = 'nope'`)).rows[0].n).toBe(0);
  });

  it('the FunctionCall sub-protocol is decided by policy as the SQL call it amounts to: pg_read_file denied, the session goes on', async () => {
    const raw = await RawClient.connect(t.port);
    await raw.startup('postgres', fx.database, t.secret);
    const oid = (await direct.query(`select 'pg_read_file(text)'::regprocedure::oid::int as oid`)).rows[0].oid as number;
    raw.write(encodeFrontend({ kind: 'FunctionCall', functionOid: oid, argFormats: [0], args: [Buffer.from('/etc/hostname')], resultFormat: 0 }));
    const frames = await raw.untilReady();
    const err = frames.map((f) => decodeBackend(f)).find((m) => m.kind === 'ErrorResponse');
    expect(err && err.kind === 'ErrorResponse' ? err.code : null).toBe('42501');
    expect(err && err.kind === 'ErrorResponse' ? err.message : '').toContain('recommended rule no-server-file-access');
    expect(frames.some((f) => f.type === BackendType.FunctionCallResponse)).toBe(false);
    raw.write(encodeQuery('select 7'));
    const again = await raw.untilReady();
    expect(again.some((f) => f.type === BackendType.DataRow)).toBe(true);
    raw.close();
  });
});
