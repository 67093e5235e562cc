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
