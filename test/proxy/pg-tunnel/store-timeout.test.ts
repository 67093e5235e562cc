/**
 * Fail closed on a slow store (DESIGN §5): a PostgreSQL session store frozen with SIGSTOP (every process of
 * its server) makes the tunnel deny statements with STORE_TIMEOUT once the store timeout passes; the session
 * goes on, statements work again after SIGCONT, and nothing reached the database without its event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { openStore } from '../../../src/store/index.js';
import type { SessionStore } from '../../../src/store/types.js';
import { serverPids, signalAll, startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { pgClient, queryError, startFixture, type Fixture } from './fixture.js';

let fx: Fixture;
let storeServer: TestPostgres;
let store: SessionStore;
let frozen: number[] = [];

beforeAll(async () => {
  fx = await startFixture();
  storeServer = await startPostgres({ flags: [] }); // its own server, never the one the tunnel forwards to
  store = await openStore(`${storeServer.url}?timeout=1s`);
});
afterAll(async () => {
  signalAll(frozen, 'SIGCONT');
  await store?.close();
  await storeServer?.stop();
  await fx?.stop();
});

describe('a frozen session store', () => {
  it('denies statements with STORE_TIMEOUT, keeps the session, works again after SIGCONT, and forwards nothing unrecorded', async () => {
    const t = await fx.tunnel({ store, use: ['open'], policies: '  open:\n    - name: everything\n      action: allow' });
    const c = await pgClient(t.url);
    const direct = await pgClient(fx.dbUrl);
    try {
      const insert = (marker: string) => `insert into orders (customer_id, product, quantity) values (1, 'tmo ${marker}', 1)`;
      await c.query(insert('before'));

      frozen = await serverPids(storeServer.url);
      expect(frozen.length).toBeGreaterThan(1);
      signalAll(frozen, 'SIGSTOP');
      const denied: string[] = [];
      for (const marker of ['frozen one', 'frozen two']) {
        const err = await queryError(c, insert(marker));
        expect(err.code).toBe('42501');
        expect(err.message).toContain('did not answer in 1 s');
        expect(err.message).toContain('denied to keep the audit trail complete');
        denied.push(marker);
      }
      // The session went on: the same connection is still usable once the store answers again.
      signalAll(frozen, 'SIGCONT');
      frozen = [];
      await c.query(insert('after'));
      await c.query(insert('after again'));

      const ran = (await direct.query<{ product: string }>(`select product from orders where product like 'tmo %' order by id`)).rows.map((r) => r.product);
      expect(ran).toEqual(['tmo before', 'tmo after', 'tmo after again']);
      for (const marker of denied) expect(ran).not.toContain(`tmo ${marker}`);
      // Every statement that reached the database has its event in the store (events ≥ rows, never fewer).
      const hits = await store.search({ text: 'tmo', limit: 1000 });
      const recorded = hits.flatMap((h) => (h.event.type === 'query' ? [h.event.sql] : []));
      for (const product of ran) expect(recorded.some((sql) => sql.includes(`'${product}'`))).toBe(true);
      expect((await store.verify()).ok).toBe(true);
    } finally {
      await c.end().catch(() => undefined);
      await direct.end().catch(() => undefined);
      await t.close();
    }
  });
});
