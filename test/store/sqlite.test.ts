import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { DlpctlError } from '../../src/errors.js';
import { DEFER_WRITE_MS } from '../../src/store/common.js';
import { defaultStoreUrl, openStore, redactStoreUrl, type NewEvent } from '../../src/store/index.js';
import type { SqliteStore } from '../../src/store/sqlite.js';
import { SqliteWriter } from '../../src/store/sqlite-writer.js';
import { alice, storeContract } from './contract.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlpctl-sqlite-'));
let n = 0;
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * Raw SQL against the file, as an attacker with write access would run it. A statement on `events` runs on the
 * events journal too: a recent event may still be there (sqlite-migrations.ts, schema 3), and the tamper tests
 * mean "edit the stored event", wherever it is stored.
 */
async function exec(url: string, sql: string): Promise<void> {
  const db = new DatabaseSync(url.slice('sqlite:'.length));
  try {
    db.exec('PRAGMA busy_timeout = 5000');
    db.exec(sql);
    if (/\bevents\b/.test(sql)) db.exec(sql.replace(/\bevents\b/g, 'events_journal'));
  } finally {
    db.close();
  }
}

storeContract({
  engine: 'sqlite',
  newUrl: async () => `sqlite:${path.join(dir, `s${++n}`, 'store.db')}`,
  exec,
  wakeWithinMs: 1000,
});

// The same contract as `dlpctl connect` opens the store (commits here, a maintenance thread beside), and
// with the writes on a worker thread (what it uses with sync=full).
for (const threads of ['tunnel', 'writer'] as const) {
  storeContract({
    engine: 'sqlite',
    label: `sqlite (threads: ${threads})`,
    options: { threads },
    newUrl: async () => `sqlite:${path.join(dir, `s${++n}`, 'store.db')}`,
    exec,
    wakeWithinMs: 1000,
  });
}

async function codeOf(p: Promise<unknown>): Promise<DlpctlError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(DlpctlError);
  return err as DlpctlError;
}

describe('sqlite store specifics', () => {
  it('a group commit lands in the events journal; a read moves it into events first; an event edited in the journal fails verify; close empties it', async () => {
    const file = path.join(dir, 'journal', 'store.db');
    const store = await openStore(`sqlite:${file}`);
    const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:1' });
    for (let i = 0; i < 5; i++) await store.append(s.id, { type: 'query', sql: `SELECT ${i} FROM customers`, decision: 'allow', kinds: ['select'], tables: [] });
    const raw = new DatabaseSync(file);
    raw.exec('PRAGMA busy_timeout = 5000');
    const count = (table: string) => (raw.prepare(`SELECT count(*) AS n FROM ${table} WHERE session_id = ?`).get(s.id) as { n: number }).n;
    try {
      expect([count('events_journal'), count('events')]).toEqual([6, 0]);
      expect((await store.listEvents(s.id)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      expect([count('events_journal'), count('events')]).toEqual([0, 6]);
      expect((raw.prepare('SELECT group_concat(seq) AS s FROM (SELECT seq FROM events WHERE session_id = ? ORDER BY id)').get(s.id) as { s: string }).s).toBe('1,2,3,4,5,6');
      // an event edited while it is still in the journal
      await store.append(s.id, { type: 'query', sql: 'SELECT 7 FROM customers', decision: 'deny', kinds: ['select'], tables: [] });
      expect(count('events_journal')).toBe(1);
      raw.exec(`UPDATE events_journal SET body = replace(body, '"deny"', '"allow"') WHERE session_id = '${s.id}' AND seq = 7`);
      const r = await store.verify(s.id);
      expect(r.ok).toBe(false);
      expect(r.firstBad).toMatchObject({ sessionId: s.id, seq: 7 });
      await store.append(s.id, { type: 'query', sql: 'SELECT 8', decision: 'allow', kinds: ['select'], tables: [] });
      await store.close();
      expect([count('events_journal'), count('events')]).toEqual([0, 8]);
    } finally {
      raw.close();
    }
  });

  it('the journal moves into events in bounded chunks, oldest first, also after it emptied and its ids started over', async () => {
    const file = path.join(dir, 'chunks', 'store.db');
    // (the store's own catch-up, a second after a commit, would move the journal behind the test's back)
    const idle = vi.spyOn(SqliteWriter.prototype, 'indexNow').mockReturnValue(0);
    const store = await openStore(`sqlite:${file}`);
    const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:1' });
    const append = async (n: number) => {
      for (let i = 0; i < n; i++) await store.append(s.id, { type: 'query', sql: `SELECT ${i}`, decision: 'allow', kinds: ['select'], tables: [] });
    };
    await append(9); // 10 journal rows with the session's start
    const raw = new DatabaseSync(file);
    raw.exec('PRAGMA busy_timeout = 5000');
    const mover = new SqliteWriter(raw, 'chunks', 5000);
    const move = (max: number) => {
      raw.exec('BEGIN IMMEDIATE');
      const n = mover.ingestInTx(max);
      raw.exec('COMMIT');
      return n;
    };
    const seqs = () => (raw.prepare('SELECT group_concat(seq) AS s FROM (SELECT seq FROM events WHERE session_id = ? ORDER BY id)').get(s.id) as { s: string | null }).s;
    const journal = () => (raw.prepare('SELECT count(*) AS n, min(id) AS lo FROM events_journal').get() as { n: number; lo: number | null });
    try {
      expect(journal().n).toBe(10);
      expect(move(4)).toBe(4);
      expect(seqs()).toBe('1,2,3,4');
      expect(move(4)).toBe(4);
      expect(move(4)).toBe(2);
      expect(move(4)).toBe(0);
      expect(seqs()).toBe('1,2,3,4,5,6,7,8,9,10');
      // emptied, the journal hands out ids from 1 again: the bound follows its oldest row, not a remembered one
      await append(3);
      expect(journal()).toEqual({ n: 3, lo: 1 });
      expect(move(2)).toBe(2);
      expect(move(Infinity)).toBe(1);
      expect(seqs()).toBe('1,2,3,4,5,6,7,8,9,10,11,12,13');
      expect((await store.verify(s.id)).ok).toBe(true);
    } finally {
      raw.close();
      await store.close();
      idle.mockRestore();
    }
  });

  it('another writer chains after events still in the journal, and the owner after it', async () => {
    const file = path.join(dir, 'heads', 'store.db');
    const owner = await openStore(`sqlite:${file}`);
    const other = await openStore(`sqlite:${file}`);
    const raw = new DatabaseSync(file);
    raw.exec('PRAGMA busy_timeout = 5000');
    try {
      const s = await owner.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:1' });
      for (let i = 0; i < 4; i++) await owner.append(s.id, { type: 'query', sql: `SELECT ${i}`, decision: 'allow', kinds: ['select'], tables: [] });
      const head = () => raw.prepare('SELECT last_seq AS seq, (SELECT count(*) FROM events_journal WHERE session_id = ?1) AS journal FROM sessions WHERE id = ?1').get(s.id) as { seq: number; journal: number };
      // commits leave the session's row alone (schema 4): its head is the newest of its events in the journal
      expect(head()).toEqual({ seq: 0, journal: 5 });
      // a second writer (`dlpctl approve` appending to a tunnel's session) chains after them
      expect((await other.append(s.id, { type: 'approval.decided', approvalId: 'K7QF2M', state: 'approved' })).seq).toBe(6);
      // and the owner, whose cached head another connection's commit made stale, reads it again
      const seventh = await owner.append(s.id, { type: 'query', sql: 'SELECT 7', decision: 'allow', kinds: ['select'], tables: [] });
      expect(seventh.seq).toBe(7);
      expect(head()).toEqual({ seq: 0, journal: 7 });
      // a checkpoint holds the head from the journal, which stays where it is
      const cp = await owner.checkpoint();
      expect((JSON.parse(cp!.body) as { heads: unknown[][] }).heads.find((h) => h[0] === s.id)?.slice(0, 3)).toEqual([s.id, 7, seventh.hash]);
      expect(head()).toEqual({ seq: 0, journal: 7 });
      // moving the journal into events brings the row's head up to date, as verify (which compares them) sees
      expect(await other.verify(s.id)).toMatchObject({ ok: true, eventsChecked: 7 });
      expect(head()).toEqual({ seq: 7, journal: 0 });
      expect(raw.prepare('SELECT last_hash AS h FROM sessions WHERE id = ?').get(s.id)).toEqual({ h: seventh.hash });
    } finally {
      raw.close();
      await other.close();
      await owner.close();
    }
  });

  it('a writer keeps its cached heads through other tunnels\' commits and the journal\'s moves; an append after a read head or a prune drops them', async () => {
    const file = path.join(dir, 'epoch', 'store.db');
    const a = await openStore(`sqlite:${file}`);
    const b = await openStore(`sqlite:${file}`);
    const reads = vi.spyOn(SqliteWriter.prototype as unknown as { readHead(id: string): unknown }, 'readHead');
    const q = (i: number): NewEvent => ({ type: 'query', sql: `SELECT ${i}`, decision: 'allow', kinds: ['select'], tables: [] });
    try {
      const sa = await a.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:1' });
      const sb = await b.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:2' });
      reads.mockClear();
      for (let i = 0; i < 5; i++) {
        await a.append(sa.id, q(i));
        await b.append(sb.id, q(i));
        if (i === 2) expect((await b.verify(sb.id)).ok).toBe(true); // moves the journal into events
      }
      // each commit of the other tunnel moved data_version; neither read a head it had written itself
      expect(reads).not.toHaveBeenCalled();
      // `dlpctl approve` (here: b) appending to a's session reads its head, and a reads it again after
      expect((await b.append(sa.id, { type: 'approval.decided', approvalId: 'K7QF2M', state: 'approved' })).seq).toBe(7);
      expect((await a.append(sa.id, q(7))).seq).toBe(8);
      expect(reads.mock.calls.map((c) => c[0])).toEqual([sa.id, sa.id]);
      // with the epoch's row removed by hand, every other connection's commit drops the cache again (as before schema 4)
      const raw = new DatabaseSync(file);
      raw.exec('PRAGMA busy_timeout = 5000; DELETE FROM head_epoch');
      raw.close();
      expect((await b.append(sa.id, { type: 'approval.decided', approvalId: 'K7QF2N', state: 'denied' })).seq).toBe(9);
      expect((await a.append(sa.id, q(9))).seq).toBe(10);
      // a prune by another connection (its clock a day ahead) removes both sessions, a's cached one too
      expect(await b.prune(1000, new Date(Date.now() + 86_400_000))).toEqual({ sessionsRemoved: 2, eventsRemoved: 16 });
      expect((await codeOf(a.append(sa.id, q(10)))).code).toBe('STORE_NOT_FOUND');
      expect((await a.verify()).ok).toBe(true);
    } finally {
      reads.mockRestore();
      await b.close();
      await a.close();
    }
  });

  it('a write not committed within the store timeout fails with STORE_TIMEOUT; it commits later, and so do the next writes, the chain whole', async () => {
    const file = path.join(dir, 'timeout', 'store.db');
    const store = await openStore(`sqlite:${file}`, { timeoutMs: 300, busyTimeoutMs: 10_000 });
    const raw = new DatabaseSync(file);
    try {
      const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:1' });
      raw.exec('BEGIN IMMEDIATE'); // another process holds the write lock
      const t0 = performance.now();
      const late = store.append(s.id, { type: 'query', sql: 'SELECT 1', decision: 'allow', kinds: ['select'], tables: [] });
      const err = await codeOf(late);
      expect(err.code).toBe('STORE_TIMEOUT');
      expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
      raw.exec('COMMIT');
      // the unit was not cancelled: it commits with (or before) the next write, which is answered as usual
      expect((await store.append(s.id, { type: 'query', sql: 'SELECT 2', decision: 'allow', kinds: ['select'], tables: [] })).seq).toBe(3);
      expect((await store.listEvents(s.id)).map((e) => (e as { sql?: string }).sql ?? e.type)).toEqual(['session.start', 'SELECT 1', 'SELECT 2']);
      expect(await store.verify(s.id)).toMatchObject({ ok: true, eventsChecked: 3 });
      // nothing waits any more: no timer holds the process open
      const deadlines = (store as unknown as { deadlines: { pending: number; timer: NodeJS.Timeout | undefined } }).deadlines;
      expect([deadlines.pending, deadlines.timer?.hasRef() ?? false]).toEqual([0, false]);
    } finally {
      raw.close();
      await store.close();
    }
  });

  it('a store at schema 3 (heads moved by every commit) carries on at schema 4, recorded as such', async () => {
    const file = path.join(dir, 'schema3', 'store.db');
    const first = await openStore(`sqlite:${file}`);
    await first.close();
    const raw = new DatabaseSync(file);
    raw.exec('PRAGMA busy_timeout = 5000');
    try {
      raw.exec('DROP TABLE head_epoch; DELETE FROM schema_migrations WHERE version >= 4');
      // as a schema-3 dlpctl writes: the head in the row at every commit, events in the journal
      const old = await openStore(`sqlite:${file}`, { migrate: false });
      const s = await old.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:1' });
      for (let i = 0; i < 3; i++) await old.append(s.id, { type: 'query', sql: `SELECT ${i}`, decision: 'allow', kinds: ['select'], tables: [] });
      const head = () => raw.prepare('SELECT last_seq AS seq, (SELECT count(*) FROM events_journal WHERE session_id = ?1) AS journal FROM sessions WHERE id = ?1').get(s.id) as { seq: number; journal: number };
      expect(head()).toEqual({ seq: 4, journal: 4 });
      // the next opener migrates; it chains after the journal's events and leaves the row to the journal's move
      const next = await openStore(`sqlite:${file}`);
      expect((await next.append(s.id, { type: 'approval.decided', approvalId: 'K7QF2M', state: 'approved' })).seq).toBe(5);
      expect(head()).toEqual({ seq: 4, journal: 5 });
      expect(await next.verify(s.id)).toMatchObject({ ok: true, eventsChecked: 5 });
      expect(head()).toEqual({ seq: 5, journal: 0 });
      // recorded as schema 4, which a dlpctl that would still read the head from the row refuses (STORE_TOO_NEW, the contract)
      expect(raw.prepare('SELECT max(version) AS v FROM schema_migrations').get()).toEqual({ v: 4 });
      await next.close();
      await old.close();
    } finally {
      raw.close();
    }
  });

  it('a lone append commits on the next turn; appends that keep arriving turn after turn join one commit', async () => {
    const store = await openStore(`sqlite:${path.join(dir, 'gather', 'store.db')}`);
    try {
      const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:1' });
      const writer = (store as unknown as { local: { commitBatch(batch: unknown[]): void } }).local;
      const batches: number[] = [];
      const commit = writer.commitBatch.bind(writer);
      writer.commitBatch = (batch: unknown[]) => {
        batches.push(batch.length);
        commit(batch);
      };
      const q = (sql: string): NewEvent => ({ type: 'query', sql, decision: 'allow', kinds: ['select'], tables: [] });
      await store.append(s.id, q('SELECT 1'));
      expect(batches).toEqual([1]);
      // two in this turn, a third in the next one (a client whose statement arrived a turn later)
      const first = [store.append(s.id, q('SELECT 2')), store.append(s.id, q('SELECT 3'))];
      const third = new Promise<unknown>((resolve) => setImmediate(() => resolve(store.append(s.id, q('SELECT 4')))));
      const seqs = (await Promise.all([...first, third])).map((e) => (e as { seq: number }).seq);
      expect(seqs).toEqual([3, 4, 5]);
      expect(batches).toEqual([1, 3]);
    } finally {
      await store.close();
    }
  });

  it.each(['tunnel', 'writer'] as const)('with threads: %s, close() lets every append in flight commit, in order, with a valid chain', async (threads) => {
    const url = `sqlite:${path.join(dir, `thread-close-${threads}`, 'store.db')}`;
    const store = await openStore(url, { threads });
    const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:1' });
    const pending = Array.from({ length: 500 }, (_, i) => store.append(s.id, { type: 'query', sql: `select ${i}`, decision: 'allow', kinds: ['select'], tables: [] }));
    await store.close();
    const seqs = (await Promise.all(pending)).map((e) => e.seq);
    expect(seqs).toEqual(Array.from({ length: 500 }, (_, i) => i + 2));
    const again = await openStore(url);
    const events = await again.listEvents(s.id, { limit: 1000 });
    expect(events.map((e) => (e as { sql?: string }).sql).slice(1)).toEqual(Array.from({ length: 500 }, (_, i) => `select ${i}`));
    expect((await again.verify()).ok).toBe(true);
    await again.close();
  });

  it('a deferred append waits for the next urgent write and commits with it, or for DEFER_WRITE_MS alone', async () => {
    const file = path.join(dir, 'deferred', 'store.db');
    const store = await openStore(`sqlite:${file}`);
    const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:1' });
    const raw = new DatabaseSync(file, { readOnly: true });
    const committed = () =>
      (raw.prepare('SELECT (SELECT count(*) FROM events WHERE session_id = ?1) + (SELECT count(*) FROM events_journal WHERE session_id = ?1) AS n').get(s.id) as { n: number }).n;
    const turns = async (n: number) => {
      for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
    };
    const ev = (sql: string): NewEvent => ({ type: 'query', sql, decision: 'allow', kinds: ['select'], tables: [] });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      let settled = false;
      const deferred = store.append(s.id, ev('select 1'), { defer: true }).then((e) => ((settled = true), e));
      await turns(5);
      expect(settled).toBe(false);
      expect(committed()).toBe(1); // session.start only: the deferred append is still waiting
      await store.append(s.id, ev('select 2')); // an urgent write carries it along, without the timer
      expect((await deferred).seq).toBe(2);
      expect(committed()).toBe(3);
      settled = false;
      const alone = store.append(s.id, ev('select 3'), { defer: true }).then((e) => ((settled = true), e));
      await turns(5);
      expect(settled).toBe(false);
      vi.advanceTimersByTime(DEFER_WRITE_MS);
      expect((await alone).seq).toBe(4);
      expect(committed()).toBe(4);
    } finally {
      vi.useRealTimers();
      raw.close();
      await store.close();
    }
  });

  it('tunnel threads commit on this thread with sync=normal, and on a writer thread with sync=full (an fsync never stalls the traffic)', async () => {
    const threadOf = (st: unknown) => (st as { thread: unknown }).thread;
    const normal = await openStore(`sqlite:${path.join(dir, 'threads-normal', 'store.db')}`, { threads: 'tunnel' });
    const full = await openStore(`sqlite:${path.join(dir, 'threads-full', 'store.db')}?sync=full`, { threads: 'tunnel' });
    expect(threadOf(normal)).toBeNull();
    expect(threadOf(full)).not.toBeNull();
    // Checkpoints and indexing are the maintenance thread's: neither may stall a commit on this thread.
    const inner = normal as unknown as { db: DatabaseSync; local: { indexing: boolean } };
    expect(inner.db.prepare('PRAGMA wal_autocheckpoint').get()).toEqual({ wal_autocheckpoint: 0 });
    expect(inner.local.indexing).toBe(false);
    for (const st of [normal, full]) {
      const s = await st.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:1' });
      await st.append(s.id, { type: 'query', sql: 'select 1', decision: 'allow', kinds: ['select'], tables: [] });
      expect((await st.verify()).ok).toBe(true);
      await st.close();
    }
  });

  it.each(['tunnel', 'writer'] as const)('with threads: %s, a maintenance thread checkpoints the WAL and brings the full-text index up, off the commit path', async (threads) => {
    const file = path.join(dir, `thread-maintenance-${threads}`, 'store.db');
    const store = await openStore(`sqlite:${file}`, { threads });
    const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:1' });
    const before = fs.statSync(file).size;
    // (more events than the maintenance thread lets the log hold before it checkpoints: CHECKPOINT_EVENTS)
    await Promise.all(Array.from({ length: 1200 }, (_, i) => store.append(s.id, { type: 'query', sql: `select tblmaint${i} from x`, decision: 'allow', kinds: ['select'], tables: [] })));
    const raw = new DatabaseSync(file, { readOnly: true });
    try {
      // The journal is moved into `events` at most once a second, and a checkpoint may come first: wait for
      // all three (journal empty, index up to the last event, pages in the database file).
      const state = () => raw.prepare('SELECT (SELECT indexed_upto FROM fts_state) AS upto, (SELECT max(id) FROM events) AS max, (SELECT count(*) FROM events_journal) AS waiting').get() as { upto: number; max: number | null; waiting: number };
      const done = () => { const st = state(); return st.waiting === 0 && st.max !== null && st.upto === st.max && fs.statSync(file).size > before; };
      for (let i = 0; i < 100 && !done(); i += 1) await new Promise((r) => setTimeout(r, 100));
      expect(state().waiting).toBe(0);
      expect(state().max).not.toBeNull();
      expect(state().upto).toBe(state().max);
      // Only a checkpoint copies pages from the WAL into the database file.
      expect(fs.statSync(file).size).toBeGreaterThan(before);
    } finally {
      raw.close();
    }
    expect((await store.search({ text: 'tblmaint1199' })).length).toBe(1);
    await store.close();
  });

  it('the maintenance thread leaves a trickle of events in the WAL (the commit after a checkpoint of the whole log pays an fsync) and checkpoints once a thousand have come', async () => {
    const file = path.join(dir, 'thread-trickle', 'store.db');
    const store = await openStore(`sqlite:${file}`, { threads: 'tunnel' }); // as `dlpctl connect` opens it
    const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:1' });
    const inDbFile = (marker: string) => fs.readFileSync(file).includes(marker);
    const inWal = (marker: string) => fs.readFileSync(`${file}-wal`).includes(marker);
    // An agent's pace: a statement now and then, across several of the thread's 200 ms ticks.
    for (let i = 0; i < 8; i++) {
      await store.append(s.id, { type: 'query', sql: `select trickle_${i} from x`, decision: 'allow', kinds: ['select'], tables: [] });
      await new Promise((r) => setTimeout(r, 120));
    }
    await new Promise((r) => setTimeout(r, 500));
    // Durable (in the WAL, which every reader sees), but not copied into the database file: no checkpoint ran.
    expect(inWal('trickle_7')).toBe(true);
    expect(inDbFile('trickle_7')).toBe(false);
    expect((await store.search({ text: 'trickle_7' })).length).toBe(1);
    // A thousand more events: the next tick checkpoints.
    await Promise.all(Array.from({ length: 1000 }, (_, i) => store.append(s.id, { type: 'query', sql: `select burst_${i} from x`, decision: 'allow', kinds: ['select'], tables: [] })));
    for (let i = 0; i < 50 && !inDbFile('trickle_7'); i += 1) await new Promise((r) => setTimeout(r, 100));
    expect(inDbFile('trickle_7')).toBe(true);
    await store.close();
    expect((await (await openStore(`sqlite:${file}`)).verify(s.id)).ok).toBe(true);
  });

  it('a client pipelining 100,000 statements keeps the WAL within 64 MB while it writes and after close', async () => {
    const file = path.join(dir, 'wal-bound', 'store.db');
    const store = await openStore(`sqlite:${file}`, { threads: 'tunnel' }); // as `dlpctl connect` opens it
    const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:1' });
    const walSize = () => (fs.existsSync(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0);
    const samples: number[] = [];
    const sampler = setInterval(() => samples.push(walSize()), 5);
    // About 1 KB of statement per event: unbounded, these 100,000 events leave hundreds of MB of WAL.
    const pad = 'x'.repeat(1000);
    const total = 100_000;
    let inFlight: Promise<unknown>[] = [];
    for (let i = 0; i < total; i++) {
      inFlight.push(store.append(s.id, { type: 'query', sql: `select '${pad}', ${i}`, decision: 'allow', kinds: ['select'], tables: [] }));
      if (inFlight.length === 2000) {
        await Promise.all(inFlight);
        inFlight = [];
        samples.push(walSize());
      }
    }
    await Promise.all(inFlight);
    samples.push(walSize());
    clearInterval(sampler);
    expect((await store.info()).events).toBe(total + 1);
    await store.close();
    samples.push(walSize());
    expect(samples.length).toBeGreaterThan(50);
    expect(Math.max(...samples)).toBeLessThanOrEqual(64 * 1024 * 1024);
    const again = await openStore(`sqlite:${file}`);
    expect((await again.verify(s.id)).ok).toBe(true);
    await again.close();
  });

  it('after a writer was killed with a large WAL, the next opener checkpoints it down', async () => {
    const file = path.join(dir, 'wal-killed', 'store.db');
    (await openStore(`sqlite:${file}`)).close();
    // A process that writes ~100 MB of WAL without checkpoints and dies without closing (kill -9).
    const script = `
      const { DatabaseSync } = require('node:sqlite');
      const db = new DatabaseSync(${JSON.stringify(file)});
      db.exec('PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE IF NOT EXISTS filler (b BLOB)');
      const ins = db.prepare('INSERT INTO filler (b) VALUES (randomblob(100000))');
      for (let i = 0; i < 1000; i++) ins.run();
      process.kill(process.pid, 'SIGKILL');`;
    await new Promise<void>((resolve) => spawn(process.execPath, ['-e', script], { stdio: 'ignore' }).on('exit', () => resolve()));
    expect(fs.statSync(`${file}-wal`).size).toBeGreaterThan(64 * 1024 * 1024);
    const store = await openStore(`sqlite:${file}`);
    expect(fs.statSync(`${file}-wal`).size).toBeLessThanOrEqual(64 * 1024 * 1024);
    await store.close();
  });

  it('with the writer thread gone, writes fail with a store error instead of hanging (the tunnels then deny)', async () => {
    const store = (await openStore(`sqlite:${path.join(dir, 'thread-dies', 'store.db')}`, { threads: 'writer' })) as SqliteStore;
    const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:1' });
    await (store as unknown as { thread: { worker: { terminate(): Promise<number> } } }).thread.worker.terminate();
    const err = await codeOf(store.append(s.id, { type: 'query', sql: 'select 1', decision: 'allow', kinds: ['select'], tables: [] }));
    expect(err.code).toBe('STORE_UNREACHABLE');
    expect(err.message).toMatch(/writer thread/);
    await store.close();
  });

  it('searches across the bulk-indexed part and the not-yet-indexed tail, and survives edits of indexed rows', async () => {
    const url = `sqlite:${path.join(dir, 'fts', 'store.db')}`;
    const store = (await openStore(url)) as SqliteStore;
    const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
    for (let i = 0; i < 5; i++) await store.append(s.id, { type: 'query', sql: `SELECT ${i} FROM customers`, decision: 'allow', kinds: [], tables: [] });
    expect(store.indexNow()).toBeGreaterThan(0);
    for (let i = 5; i < 10; i++) await store.append(s.id, { type: 'query', sql: `SELECT ${i} FROM customers`, decision: 'allow', kinds: [], tables: [] });
    const sqls = async (limit: number) => (await store.search({ text: 'customers', limit })).map((h) => (h.event as { sql: string }).sql);
    expect(await sqls(100)).toEqual(Array.from({ length: 10 }, (_, i) => `SELECT ${9 - i} FROM customers`));
    expect(await sqls(7)).toHaveLength(7);
    expect((await sqls(7))[6]).toBe('SELECT 3 FROM customers');
    // Editing or deleting indexed and unindexed rows keeps the external-content index consistent.
    const db = new DatabaseSync(url.slice('sqlite:'.length));
    db.exec(`UPDATE events SET text = 'SELECT x FROM orders' WHERE session_id = '${s.id}' AND seq IN (3, 9)`);
    db.exec(`DELETE FROM events WHERE session_id = '${s.id}' AND seq IN (4, 10)`);
    db.close();
    // seq = i + 2: SELECT 1 and 7 became orders, SELECT 2 and 8 are gone.
    const left = ['SELECT 9 FROM customers', 'SELECT 6 FROM customers', 'SELECT 5 FROM customers', 'SELECT 4 FROM customers', 'SELECT 3 FROM customers', 'SELECT 0 FROM customers'];
    expect(await sqls(100)).toEqual(left);
    expect(await store.search({ text: 'orders' })).toHaveLength(2);
    store.indexNow();
    expect(await store.search({ text: 'orders' })).toHaveLength(2);
    expect(await sqls(100)).toEqual(left);
    await store.close();
    const db2 = new DatabaseSync(url.slice('sqlite:'.length));
    db2.exec("INSERT INTO events_fts (events_fts) VALUES ('integrity-check')");
    db2.close();
  });

  it('maps a file that is not a database to STORE_CORRUPT', async () => {
    const file = path.join(dir, 'garbage.db');
    fs.writeFileSync(file, 'this is not an sqlite database, just some text that is long enough to fill a header '.repeat(20));
    const err = await codeOf(openStore(`sqlite:${file}`));
    expect(err.code).toBe('STORE_CORRUPT');
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/move the file aside/);
  });

  it('maps an unwritable location to STORE_READONLY', async () => {
    // Root ignores permission bits, so as root use a path on a file system that refuses new entries.
    let target: string;
    if (process.getuid?.() === 0) {
      target = '/sys/dlpctl-test/store.db';
    } else {
      const ro = path.join(dir, 'ro');
      fs.mkdirSync(ro);
      fs.chmodSync(ro, 0o500);
      target = path.join(ro, 'sub', 'store.db');
    }
    const err = await codeOf(openStore(`sqlite:${target}`));
    expect(err.code).toBe('STORE_READONLY');
    expect(err.message).toMatch(/--store/);
  });

  it('maps a read-only existing store to STORE_READONLY on write', async () => {
    if (process.getuid?.() === 0) return; // root can write anything
    const file = path.join(dir, 'readonly.db');
    (await openStore(`sqlite:${file}`)).close();
    fs.chmodSync(file, 0o444);
    const err = await codeOf(openStore(`sqlite:${file}`).then((s) => s.createSession({ resource: 'r', kind: 'ssh', identity: alice, clientAddr: 'x' })));
    expect(err.code).toBe('STORE_READONLY');
  });

  it('maps a write lock held past the busy timeout to STORE_LOCKED, without blocking the event loop', async () => {
    const file = path.join(dir, 'locked', 'store.db');
    const store = await openStore(`sqlite:${file}`, { busyTimeoutMs: 300 });
    const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
    const other = new DatabaseSync(file);
    other.exec('BEGIN IMMEDIATE');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const err = await codeOf(store.append(s.id, { type: 'error', message: 'x' }));
    clearInterval(timer);
    expect(err.code).toBe('STORE_LOCKED');
    expect(ticks).toBeGreaterThan(10);
    other.exec('ROLLBACK');
    other.close();
    expect((await store.append(s.id, { type: 'error', message: 'y' })).seq).toBe(2);
    await store.close();
  });

  it('creates missing directories, and refuses to create with create:false', async () => {
    const file = path.join(dir, 'a', 'b', 'c', 'store.db');
    const s = await openStore(`sqlite:${file}`);
    await s.close();
    expect(fs.existsSync(file)).toBe(true);
    const err = await codeOf(openStore(`sqlite:${path.join(dir, 'absent.db')}`, { create: false }));
    expect(err.code).toBe('STORE_NOT_FOUND');
  });

  it('rejects unsupported URLs with STORE_URL, without echoing a password', async () => {
    for (const url of ['mysql://root:hunter2@db/x', 'sqlite:', 'store.db', 'postgres://', `sqlite:sqlite:${dir}/x.db`]) {
      const err = await codeOf(openStore(url));
      expect(err.code).toBe('STORE_URL');
      expect(err.message).not.toContain('hunter2');
    }
    expect(redactStoreUrl('postgres://dlp:s3cret@h:5432/db?sslpassword=x')).toBe('postgres://dlp@h:5432/db?sslpassword=REDACTED');
  });

  it('expands ~ and computes the default URL from XDG_DATA_HOME', async () => {
    expect(defaultStoreUrl({ XDG_DATA_HOME: '/data' }, '/home/u')).toBe('sqlite:/data/dlpctl/store.db');
    expect(defaultStoreUrl({}, '/home/u')).toBe('sqlite:/home/u/.local/share/dlpctl/store.db');
    const s = await openStore('sqlite:~/x/store.db', { homedir: dir });
    expect((await s.info()).url).toBe(`sqlite:${path.join(dir, 'x', 'store.db')}`);
    await s.close();
  });

  it('keeps chains intact when two processes append to their own sessions at once', async () => {
    // Long enough that the two overlap for many lock hand-overs: a process locked out retries every 1-2 ms and
    // takes the lock in one of the other's gaps between commits, so the hand-overs grow with the overlap. 600
    // per session gave about 10 (the bar itself) with the whole file running, once commits had become cheaper;
    // 2,000 gave 46-72 there, 67-95 alone.
    const PER_SESSION = 2000;
    const url = `sqlite:${path.join(dir, 'multi', 'store.db')}`;
    const store = await openStore(url);
    const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'append-worker.ts');
    let started!: () => void;
    let go!: () => void;
    const childStarted = new Promise<void>((r) => (started = r));
    const runChild = () =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', worker, url, '4', String(PER_SESSION)], { stdio: ['pipe', 'pipe', 'pipe'] });
        go = () => child.stdin.end('go\n');
        let out = '';
        let errOut = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('started')) started();
        });
        child.stderr.on('data', (d: Buffer) => (errOut += d.toString()));
        child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`worker exited ${code}: ${errOut}`))));
      });
    const child = runChild();
    // Once the child is writing, this process appends to its own sessions at the same time.
    await childStarted;
    const mine = await Promise.all(Array.from({ length: 4 }, () => store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' })));
    go();
    await Promise.all(mine.map(async (s) => {
      for (let i = 0; i < PER_SESSION; i++) await store.append(s.id, { type: 'query', sql: `SELECT ${i}`, decision: 'allow', kinds: ['select'], tables: [] });
    }));
    const childSessions = JSON.parse((await child).split('\n').find((l) => l.startsWith('['))!) as string[];
    expect(childSessions).toHaveLength(4);
    const r = await store.verify();
    expect(r).toMatchObject({ ok: true, sessionsChecked: 8, eventsChecked: 8 * (PER_SESSION + 1) });
    // The two processes really wrote at the same time: their event rows interleave.
    const db = new DatabaseSync(url.slice('sqlite:'.length));
    const owners = (db.prepare('SELECT session_id FROM events ORDER BY id').all() as { session_id: string }[]).map((r) => childSessions.includes(r.session_id));
    db.close();
    const switches = owners.filter((c, i) => i > 0 && c !== owners[i - 1]).length;
    expect(switches).toBeGreaterThan(10); // neither process starved the other
    await store.close();
  }, 60_000);
});

describe('sqlite store URL durability parameter', () => {
  it('defaults to synchronous=NORMAL, takes ?sync=full, and rejects unknown parameters', async () => {
    const { parseStoreUrl } = await import('../../src/store/url.js');
    expect(parseStoreUrl('sqlite:/tmp/a.db', '/root')).toEqual({ engine: 'sqlite', path: '/tmp/a.db', display: 'sqlite:/tmp/a.db' });
    expect(parseStoreUrl('sqlite:/tmp/a.db?sync=full', '/root')).toMatchObject({ path: '/tmp/a.db', synchronous: 'full' });
    expect(() => parseStoreUrl('sqlite:/tmp/a.db?fsync=yes', '/root')).toThrow(/sync=full/);
    const { openStore } = await import('../../src/store/index.js');
    const { DatabaseSync } = await import('node:sqlite');
    const dir = await import('node:fs/promises').then((fs) => fs.mkdtemp('/tmp/dlpctl-sync-'));
    for (const [suffix, expected] of [['', 1], ['?sync=full', 2]] as const) {
      const file = `${dir}/s${expected}.db`;
      const store = await openStore(`sqlite:${file}${suffix}`);
      // PRAGMA synchronous is per connection: read it through the store's own connection.
      const db = (store as unknown as { db: InstanceType<typeof DatabaseSync> }).db;
      expect((db.prepare('PRAGMA synchronous').get() as { synchronous: number }).synchronous).toBe(expected);
      await store.close();
    }
  });
});

describe('store URL timeout parameter', () => {
  it('takes ?timeout=DURATION on both engines (taken out of the URL the PostgreSQL driver gets) and rejects one without a unit', async () => {
    const { parseStoreUrl } = await import('../../src/store/url.js');
    expect(parseStoreUrl('sqlite:/tmp/a.db?sync=full&timeout=2s', '/root')).toEqual({
      engine: 'sqlite',
      path: '/tmp/a.db',
      display: 'sqlite:/tmp/a.db?sync=full&timeout=2s',
      synchronous: 'full',
      timeoutMs: 2000,
    });
    expect(parseStoreUrl('postgres://dlp:pw@db:5432/x?sslmode=require&timeout=750ms', '/h')).toEqual({
      engine: 'postgres',
      url: 'postgres://dlp:pw@db:5432/x?sslmode=require',
      display: 'postgres://dlp@db:5432/x?sslmode=require&timeout=750ms',
      timeoutMs: 750,
    });
    expect(() => parseStoreUrl('sqlite:/tmp/a.db?timeout=5', '/root')).toThrow(/timeout=5s/);
  });
});
