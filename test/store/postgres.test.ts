import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DlpctlError } from '../../src/errors.js';
import { openStore } from '../../src/store/index.js';
import { freePort, serverPids, signalAll, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { alice } from './contract.js';
import { storeContract } from './contract.js';

let server: TestPostgres;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
});

async function exec(url: string, sql: string): Promise<void> {
  const pg = (await import('pg')).default;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

storeContract({ engine: 'postgres', newUrl: () => server.newDatabase(), exec, wakeWithinMs: 200 });

async function errorOf(p: Promise<unknown>): Promise<DlpctlError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(DlpctlError);
  return err as DlpctlError;
}

describe('postgres store specifics', () => {
  it('a wrong password is STORE_AUTH and the message never contains the password', async () => {
    const url = new URL(server.url);
    url.password = 'wrong-Pa55word-xyz';
    const err = await errorOf(openStore(url.toString()));
    expect(err.code).toBe('STORE_AUTH');
    expect(err.message).not.toContain('wrong-Pa55word-xyz');
    expect(err.message).toContain(`postgres://postgres@127.0.0.1:${server.port}/`);
    expect(JSON.stringify({ m: err.message, s: String(err.stack) })).not.toContain('wrong-Pa55word-xyz');
  });

  it('an unreachable server is STORE_UNREACHABLE, naming the URL without its password', async () => {
    const port = await freePort();
    const err = await errorOf(openStore(`postgres://dlp:topsecret@127.0.0.1:${port}/db`));
    expect(err.code).toBe('STORE_UNREACHABLE');
    expect(err.message).toBe(`cannot reach the store at postgres://dlp@127.0.0.1:${port}/db (connection refused); check the URL or start the server`);
  });

  it('a missing database is STORE_NOT_FOUND', async () => {
    const url = new URL(server.url);
    url.pathname = '/no_such_db';
    expect((await errorOf(openStore(url.toString()))).code).toBe('STORE_NOT_FOUND');
  });

  it('a write not committed within the store timeout fails with STORE_TIMEOUT; later writes commit and the chain stays whole', async () => {
    const store = await openStore(`${server.url}?timeout=300ms`);
    const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
    const q = (sql: string) => ({ type: 'query' as const, sql, decision: 'allow' as const, kinds: ['select'], tables: [] });
    await store.append(s.id, q('select 1'));
    const pids = await serverPids(server.url);
    signalAll(pids, 'SIGSTOP');
    let first: unknown;
    let queued: unknown;
    try {
      // The first is sent and waits on the frozen server; the second waits behind it, is given up and never sent.
      const sent = store.append(s.id, q('select 2')).catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 50)); // its batch is on the wire
      [first, queued] = await Promise.all([sent, store.append(s.id, q('select 3')).catch((e: unknown) => e)]);
    } finally {
      signalAll(pids, 'SIGCONT');
    }
    for (const err of [first, queued]) {
      expect(err).toBeInstanceOf(DlpctlError);
      expect((err as DlpctlError).code).toBe('STORE_TIMEOUT');
      expect((err as DlpctlError).message).toMatch(/did not answer in 0\.3 s/);
    }
    const after = await store.append(s.id, q('select 4'));
    const sqls = (await store.listEvents(s.id)).map((e) => (e.type === 'query' ? e.sql : e.type));
    // The one already sent committed late (harmless: its statement was denied); the unsent one was dropped.
    expect(sqls).toEqual(['session.start', 'select 1', 'select 2', 'select 4']);
    expect(after.seq).toBe(4);
    expect((await store.verify(s.id)).ok).toBe(true);
    // Every answered write left the store timeout's watch (nothing waits for a deadline any more).
    expect((store as unknown as { deadlines: { pending: number } }).deadlines.pending).toBe(0);
    await store.close();
  });

  describe('schema 3: appends do not move the session row; an open session\'s head is its newest event', () => {
    const q = (sql: string) => ({ type: 'query' as const, sql, decision: 'allow' as const, kinds: ['select'], tables: [] });
    async function rowHead(url: string, id: string): Promise<{ seq: number; events: number }> {
      const pg = (await import('pg')).default;
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        const r = await c.query('SELECT last_seq AS seq, (SELECT max(seq) FROM events WHERE session_id = $1) AS events FROM sessions WHERE id = $1', [id]);
        return { seq: Number(r.rows[0].seq), events: Number(r.rows[0].events) };
      } finally {
        await c.end();
      }
    }

    it('a batch writes events only; another writer and a crash close chain after the newest event; verify brings the rows up', async () => {
      const url = await server.newDatabase();
      const a = await openStore(url);
      const s = await a.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
      for (let i = 0; i < 3; i++) await a.append(s.id, q(`select ${i}`));
      expect(await rowHead(url, s.id)).toEqual({ seq: 1, events: 4 });
      // Another process (say `dlpctl approve`) appends: it must find the head in the events, not the row.
      const b = await openStore(url);
      expect((await b.append(s.id, q('select b'))).seq).toBe(5);
      // The owner's cached head is stale now: the key refuses, it re-reads and chains after.
      expect((await a.append(s.id, q('select a'))).seq).toBe(6);
      expect(await b.closeCrashed([s.id])).toEqual([s.id]);
      const events = await a.listEvents(s.id);
      expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(events[6]!.type).toBe('session.end');
      expect(await rowHead(url, s.id)).toEqual({ seq: 7, events: 7 });
      expect((await a.verify()).ok).toBe(true);

      const t = await a.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
      await a.append(t.id, q('select 1'));
      expect(await rowHead(url, t.id)).toEqual({ seq: 1, events: 2 });
      expect((await a.verify(t.id)).ok).toBe(true);
      expect(await rowHead(url, t.id)).toEqual({ seq: 2, events: 2 });
      await a.close();
      await b.close();
    });

    it('a batch a second after the last row write brings the lagging rows up in the same statement', async () => {
      const url = await server.newDatabase();
      const store = await openStore(url);
      const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
      const other = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
      await store.append(other.id, q('select other'));
      await new Promise((r) => setTimeout(r, 1100));
      await store.append(s.id, q('select 1'));
      expect(await rowHead(url, s.id)).toEqual({ seq: 2, events: 2 });
      expect(await rowHead(url, other.id)).toEqual({ seq: 2, events: 2 });
      // ... and not again within the second.
      await store.append(s.id, q('select 2'));
      expect(await rowHead(url, s.id)).toEqual({ seq: 2, events: 3 });
      await store.close();
    });

    it('a checkpoint holds an open session\'s newest event, and prune keeps a session whose row is old but whose newest event is not', async () => {
      const url = await server.newDatabase();
      const store = await openStore(url);
      const old = new Date(Date.now() - 10 * 86_400_000).toISOString();
      const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x', startedAt: old });
      const gone = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x', startedAt: old });
      const last = await store.append(s.id, q('select recent'));
      expect(await rowHead(url, s.id)).toEqual({ seq: 1, events: 2 });
      const cp = await store.checkpoint();
      expect((JSON.parse(cp!.body) as { heads: [string, number, string, string][] }).heads).toContainEqual([s.id, 2, last.hash, last.time]);
      const pruned = await store.prune(86_400_000);
      expect(pruned.sessionsRemoved).toBe(1);
      expect(await store.getSession(gone.id)).toBeUndefined();
      expect(await store.getSession(s.id)).toBeDefined();
      expect((await store.verify()).ok).toBe(true);
      await store.close();
    });

    it('a store of schema 2 is migrated and its sessions go on chaining', async () => {
      const { POSTGRES_MIGRATIONS } = await import('../../src/store/postgres-migrations.js');
      const url = await server.newDatabase();
      await exec(
        url,
        `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
         ${POSTGRES_MIGRATIONS.filter((m) => m.version <= 2).map((m) => `${m.sql}; INSERT INTO schema_migrations (version, name) VALUES (${m.version}, 'x');`).join('\n')}`,
      );
      const store = await openStore(url);
      expect((await store.info()).schemaVersion).toBe(3);
      const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
      await store.append(s.id, q('select 1'));
      await store.endSession(s.id, 'ok', (await store.getSession(s.id))!.counters);
      expect(await rowHead(url, s.id)).toEqual({ seq: 3, events: 3 });
      expect((await store.verify()).ok).toBe(true);
      await store.close();
    });
  });

  it('a fault inside the write path fails its own batch only: the lane goes on with the next writes', async () => {
    const store = await openStore(await server.newDatabase());
    const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
    const q = (sql: string) => ({ type: 'query' as const, sql, decision: 'allow' as const, kinds: ['select'], tables: [] });
    const internals = store as unknown as { writeBatch: (...a: unknown[]) => Promise<void> };
    const real = internals.writeBatch;
    internals.writeBatch = async () => {
      internals.writeBatch = real;
      throw new Error('boom');
    };
    await expect(store.append(s.id, q('select 1'))).rejects.toThrow('boom');
    expect((await store.append(s.id, q('select 2'))).seq).toBe(2);
    expect((await store.verify(s.id)).ok).toBe(true);
    await store.close();
  });

  it('info().url carries no password', async () => {
    const s = await openStore(server.url);
    const info = await s.info();
    expect(info.url).not.toContain(server.password);
    expect(info.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/dlpctl_test_/);
    expect(info.sizeBytes).toBeGreaterThan(0);
    await s.close();
  });
});
