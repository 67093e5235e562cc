/**
 * The one behaviour contract of a `SessionStore`, run against every engine (sqlite.test.ts, postgres.test.ts).
 * Each test opens a fresh, empty store from `harness.newUrl()`; `harness.exec` runs raw SQL against it, the
 * way an attacker with database access would (the SQL used here is valid on both engines).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DlpctlError } from '../../src/errors.js';
import {
  canonicalJson,
  chainHash,
  GENESIS_HASH,
  MAINTENANCE_SESSION_ID,
  openStore,
  APPROVAL_ID_ALPHABET,
  type Approval,
  type Identity,
  type NewEvent,
  type OpenStoreOptions,
  type SessionStore,
} from '../../src/store/index.js';
import { generateSigningKeyPair } from '../../src/store/checkpoint.js';

export interface StoreHarness {
  engine: 'sqlite' | 'postgres';
  /** Names the variant in the test titles (default: the engine). */
  label?: string;
  /** Extra options for every store the contract opens (for example the SQLite writer thread). */
  options?: OpenStoreOptions;
  newUrl(): Promise<string>;
  exec(url: string, sql: string): Promise<void>;
  /** How quickly waitForApprovalChange must wake after another instance's update. */
  wakeWithinMs: number;
}

export const alice: Identity = { issuer: 'https://idp.test', subject: 'alice', email: 'alice@example.com', groups: ['dba'], kind: 'human', verified: true };
export const bot: Identity = { issuer: 'https://idp.test', subject: 'ci-bot', groups: ['agents'], kind: 'machine', verified: true };

function q(sql: string, decision: 'allow' | 'deny' | 'approve' | 'observe' = 'allow', time?: string): NewEvent {
  return { type: 'query', sql, decision, rule: decision === 'allow' ? undefined : 'no-ddl', kinds: ['select'], tables: ['customers'], ...(time ? { time } : {}) } as NewEvent;
}

async function expectCode(p: Promise<unknown>, code: string): Promise<DlpctlError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(DlpctlError);
  expect((err as DlpctlError).code).toBe(code);
  return err as DlpctlError;
}

export function storeContract(harness: StoreHarness): void {
  const open: SessionStore[] = [];
  async function fresh(url?: string, now?: () => Date): Promise<{ store: SessionStore; url: string }> {
    const u = url ?? (await harness.newUrl());
    const store = await openStore(u, { ...harness.options, pollIntervalMs: 100, ...(now ? { now } : {}) });
    open.push(store);
    return { store, url: u };
  }
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  describe(`${harness.label ?? harness.engine} store contract`, () => {
    it('migrates automatically on open, and again is a no-op; concurrent migrators agree', async () => {
      const url = await harness.newUrl();
      const [a, b] = await Promise.all([openStore(url, harness.options), openStore(url, harness.options)]);
      open.push(a, b);
      const info = await a.info();
      expect(info.engine).toBe(harness.engine);
      expect(info.schemaVersion).toBe(info.binaryVersion);
      expect(info.schemaVersion).toBeGreaterThan(0);
      expect(await a.migrate()).toEqual({ from: info.schemaVersion, to: info.schemaVersion });
      expect(info).toMatchObject({ sessions: 0, events: 0, approvals: 0 });
    });

    it('refuses a store migrated by a newer binary', async () => {
      const { store, url } = await fresh();
      await store.close();
      await harness.exec(url, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', '2030-01-01T00:00:00Z')");
      const err = await expectCode(openStore(url, harness.options), 'STORE_TOO_NEW');
      expect(err.message).toMatch(/schema 999, this binary knows \d+\); upgrade dlpctl/);
    });

    it('round-trips sessions and every event type, in order, with seq and hash chain', async () => {
      const { store } = await fresh();
      const s = await store.createSession({ resource: 'postgres-prod', kind: 'postgres', identity: alice, clientAddr: '127.0.0.1:50000', reason: 'INC-1' });
      expect(s.id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
      expect(await store.getSession(s.id)).toEqual(s);
      const bodies: NewEvent[] = [
        q('SELECT * FROM customers WHERE id = $1'),
        { type: 'mask.summary', entities: { email: 3, us_ssn: 1 }, rule: 'pii' },
        { type: 'result', rows: 3, bytes: 812, durationMs: 4.5 },
        { type: 'http.request', method: 'POST', path: '/v1/chat/completions', decision: 'allow', status: 200 },
        { type: 'ssh.channel', channel: 'exec', decision: 'allow' },
        { type: 'ssh.command', command: 'ls -la /var/log', decision: 'deny', rule: 'destructive' },
        { type: 'terminal.output', t: 0.25, data: 'total 0\r\n', stream: 'o' },
        { type: 'error', message: 'relation "nope" does not exist', code: '42P01' },
        { type: 'approval.requested', approvalId: 'K7QF2M', rule: 'writes-need-dba' },
        { type: 'approval.decided', approvalId: 'K7QF2M', state: 'approved', by: 'bob' },
      ];
      const stored = [];
      for (const b of bodies) stored.push(await store.append(s.id, b));
      const many = await store.appendMany(s.id, [q('SELECT 1'), q('SELECT 2')]);
      expect(many.map((e) => e.seq)).toEqual([12, 13]);
      const counters = { statements: 3, denied: 1, masked: 4, rows: 3, bytesIn: 100, bytesOut: 812 };
      const ended = await store.endSession(s.id, 'ok', counters);
      expect(ended).toMatchObject({ id: s.id, outcome: 'ok', counters });
      expect(ended.endedAt).toBeDefined();
      expect(await store.getSession(s.id)).toEqual(ended);

      const events = await store.listEvents(s.id);
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 14 }, (_, i) => i + 1));
      expect(events[0]).toMatchObject({ type: 'session.start', resource: 'postgres-prod', identity: alice, reason: 'INC-1', subject: 'alice' });
      expect(events[13]).toMatchObject({ type: 'session.end', outcome: 'ok', counters });
      for (let i = 0; i < bodies.length; i++) {
        expect(events[i + 1]).toMatchObject(JSON.parse(JSON.stringify(bodies[i])) as object);
        expect(events[i + 1]).toEqual(stored[i]);
        expect(events[i + 1]!.sessionId).toBe(s.id);
        expect(events[i + 1]!.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      }
      let prev = GENESIS_HASH;
      for (const e of events) {
        const { hash, ...rest } = e;
        expect(hash).toBe(chainHash(prev, canonicalJson(rest)));
        prev = hash;
      }
      expect((await store.listEvents(s.id, { afterSeq: 10, limit: 2 })).map((e) => e.seq)).toEqual([11, 12]);
      expect(await store.getSession('NOPE')).toBeUndefined();
      await expectCode(store.append('NOPE', q('SELECT 1')), 'STORE_NOT_FOUND');
      expect(await store.verify()).toMatchObject({ ok: true, sessionsChecked: 1, eventsChecked: 14 });
    });

    it('deferred appends keep their order among urgent ones, resolve once durable, and close commits them', async () => {
      const { store, url } = await fresh();
      const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
      const done = await Promise.all([
        store.append(s.id, q('SELECT 1'), { defer: true }),
        store.append(s.id, q('SELECT 2')),
        store.appendMany(s.id, [q('SELECT 3'), q('SELECT 4')], { defer: true }),
      ]);
      expect(done.flat().map((e) => e.seq)).toEqual([2, 3, 4, 5]);
      // Alone, a deferred append still commits (after the short wait) and is then visible elsewhere.
      const alone = await store.append(s.id, q('SELECT 5'), { defer: true });
      const other = await openStore(url, harness.options);
      open.push(other);
      expect((await other.listEvents(s.id)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, alone.seq]);
      // Closing commits a deferred append at once rather than losing it.
      const last = store.append(s.id, q('SELECT 6'), { defer: true });
      await store.close();
      expect((await last).seq).toBe(7);
      expect((await other.listEvents(s.id)).map((e) => (e as { sql?: string }).sql).slice(1)).toEqual(['SELECT 1', 'SELECT 2', 'SELECT 3', 'SELECT 4', 'SELECT 5', 'SELECT 6']);
      expect((await other.verify(s.id)).ok).toBe(true);
    });

    it('verify names the first edited event', async () => {
      const { store, url } = await fresh();
      const a = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
      const b = await store.createSession({ resource: 'db', kind: 'postgres', identity: bot, clientAddr: 'x' });
      for (let i = 0; i < 5; i++) {
        await store.append(a.id, q(`SELECT * FROM customers LIMIT ${i}`));
        await store.append(b.id, q(`SELECT * FROM orders LIMIT ${i}`));
      }
      await harness.exec(url, `UPDATE events SET body = replace(body, 'LIMIT 2', 'LIMIT 9') WHERE session_id = '${a.id}' AND seq = 4`);
      const r = await store.verify(a.id);
      expect(r.ok).toBe(false);
      expect(r.firstBad).toMatchObject({ sessionId: a.id, seq: 4 });
      expect(r.firstBad!.reason).toMatch(/edited/);
      expect((await store.verify(b.id)).ok).toBe(true);
      expect((await store.verify()).firstBad).toMatchObject({ sessionId: a.id, seq: 4 });
      // Re-hashing the edited row is not enough: the next event chains from the original hash.
      await harness.exec(url, `UPDATE events SET hash = (CASE WHEN substr(hash, 1, 1) = 'f' THEN 'e' ELSE 'f' END) || substr(hash, 2) WHERE session_id = '${b.id}' AND seq = 3`);
      expect((await store.verify(b.id)).firstBad).toMatchObject({ seq: 3 });
    });

    it('verify detects a deleted event and a deleted tail', async () => {
      const { store, url } = await fresh();
      const a = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
      const b = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
      for (let i = 0; i < 4; i++) {
        await store.append(a.id, q(`SELECT ${i}`));
        await store.append(b.id, q(`SELECT ${i}`));
      }
      await harness.exec(url, `DELETE FROM events WHERE session_id = '${a.id}' AND seq = 3`);
      const r = await store.verify(a.id);
      expect(r.firstBad).toMatchObject({ sessionId: a.id, seq: 3 });
      expect(r.firstBad!.reason).toMatch(/missing/);
      await harness.exec(url, `DELETE FROM events WHERE session_id = '${b.id}' AND seq = 5`);
      expect((await store.verify(b.id)).firstBad).toMatchObject({ sessionId: b.id, seq: 5, reason: expect.stringMatching(/missing/) });
    });

    it('checkpoints chain the heads that moved, signed when given a key; prune after a checkpoint still verifies', async () => {
      let clock = Date.parse('2020-01-01T00:00:02.000Z');
      const { store } = await fresh(undefined, () => new Date(clock));
      const key = generateSigningKeyPair();
      const a = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x', startedAt: '2020-01-01T00:00:00.000Z' });
      await store.append(a.id, q('SELECT 1', 'allow', '2020-01-01T00:00:01.000Z'));
      await store.endSession(a.id, 'ok', { statements: 1, denied: 0, masked: 0, rows: 0, bytesIn: 0, bytesOut: 0 });
      const c1 = (await store.checkpoint({ signingKey: key.privateKey }))!;
      expect(JSON.parse(c1.body)).toMatchObject({ v: 1, n: 1, prev: GENESIS_HASH, heads: [[a.id, 3, (await store.listEvents(a.id))[2]!.hash, expect.any(String)]], key: key.keyId });
      expect(await store.checkpoint({ signingKey: key.privateKey })).toBeUndefined();
      clock = Date.now();
      const b = await store.createSession({ resource: 'db', kind: 'postgres', identity: bot, clientAddr: 'y' });
      const c2 = (await store.checkpoint({ signingKey: key.privateKey }))!;
      expect(JSON.parse(c2.body)).toMatchObject({ n: 2, prev: c1.hash, heads: [[b.id, 1, expect.any(String), expect.any(String)]] });
      expect(await store.listCheckpoints()).toEqual([c1, c2]);
      expect(await store.verify({ publicKey: key.publicKey })).toMatchObject({ ok: true, checkpoints: { count: 2, signed: 2, vouchedCheckpoint: 2 } });
      // A prune removes a checkpointed session; the checkpoint after it vouches for the prune.
      expect(await store.prune(365 * 86_400_000, new Date())).toMatchObject({ sessionsRemoved: 1 });
      expect((await store.verify({ publicKey: key.publicKey })).firstBad).toMatchObject({ sessionId: a.id, reason: expect.stringMatching(/missing/) });
      await store.checkpoint({ signingKey: key.privateKey });
      expect(await store.verify({ publicKey: key.publicKey })).toMatchObject({ ok: true, checkpoints: { count: 3 } });
      expect((await store.verify()).ok).toBe(true);
    });

    it('lists open sessions with their owners and closes crashed ones with the counters their events show', async () => {
      const { store } = await fresh();
      const dead = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x', owner: { pid: 12345, host: 'h1' } });
      const other = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
      const done = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
      await store.endSession(done.id, 'ok', { statements: 0, denied: 0, masked: 0, rows: 0, bytesIn: 0, bytesOut: 0 });
      await store.appendMany(dead.id, [q('SELECT 1', 'allow', '2030-01-01T00:00:01.000Z'), q('DROP TABLE t', 'deny', '2030-01-01T00:00:02.000Z'), { type: 'result', rows: 5, bytes: 50, durationMs: 1, time: '2030-01-01T00:00:03.000Z' }]);
      const open = await store.openSessions();
      expect(open.map((o) => o.id).sort()).toEqual([dead.id, other.id].sort());
      expect(open.find((o) => o.id === dead.id)!.owner).toEqual({ pid: 12345, host: 'h1' });
      expect(await store.closeCrashed([dead.id, done.id])).toEqual([dead.id]);
      expect(await store.getSession(dead.id)).toMatchObject({ outcome: 'crashed', endedAt: '2030-01-01T00:00:03.000Z', counters: { statements: 2, denied: 1, rows: 5, bytesOut: 50 } });
      expect(await store.closeCrashed([dead.id])).toEqual([]);
      expect((await store.verify()).ok).toBe(true);
    });

    it('searches by text, resource, identity, time range, decision, with a limit, newest first', async () => {
      const { store: first, url } = await fresh();
      const store0 = first;
      const s1 = await store0.createSession({ resource: 'postgres-prod', kind: 'postgres', identity: alice, clientAddr: 'x', startedAt: '2025-01-01T00:00:00.000Z' });
      const s2 = await store0.createSession({ resource: 'openai', kind: 'http', identity: bot, clientAddr: 'x', startedAt: '2025-01-01T00:00:00.000Z' });
      const s3 = await store0.createSession({ resource: 'bastion', kind: 'ssh', identity: bot, clientAddr: 'x', startedAt: '2025-01-01T00:00:00.000Z' });
      await store0.append(s1.id, q('SELECT email FROM public.customers', 'allow', '2025-01-01T10:00:00.000Z'));
      await store0.append(s1.id, q('DROP TABLE customers', 'deny', '2025-01-02T10:00:00.000Z'));
      await store0.append(s1.id, q('SELECT * FROM orders WHERE customer_id = 7', 'allow', '2025-01-03T10:00:00.000Z'));
      await store0.append(s2.id, { type: 'http.request', method: 'POST', path: '/v1/customers/search', decision: 'approve', time: '2025-01-02T12:00:00.000Z' });
      await store0.append(s3.id, { type: 'ssh.command', command: 'cat /etc/customers.csv', decision: 'observe', time: '2025-01-04T00:00:00.000Z' });
      await store0.append(s3.id, { type: 'terminal.output', t: 1, data: 'customers customers', time: '2025-01-04T00:00:01.000Z' });

      // Twice: right after the appends, and after reopening (SQLite indexes text in bulk after commits).
      let store = first;
      for (const round of [1, 2]) {
        if (round === 2) {
          await first.close();
          store = (await fresh(url)).store;
        }
        const texts = async (query: Parameters<SessionStore['search']>[0]): Promise<string[]> =>
          (await store.search(query)).map((h) => ('sql' in h.event ? h.event.sql : 'path' in h.event ? h.event.path : 'command' in h.event ? h.event.command : h.event.type));
        expect(await texts({ text: 'customers' })).toEqual(['cat /etc/customers.csv', '/v1/customers/search', 'DROP TABLE customers', 'SELECT email FROM public.customers']);
        expect(await texts({ text: 'CUSTOMER' })).toEqual(['SELECT * FROM orders WHERE customer_id = 7']); // whole words, any case
        expect(await texts({ text: 'custom*' })).toHaveLength(5); // prefix
        expect(await texts({ text: 'public.cust*' })).toEqual(['SELECT email FROM public.customers']);
        expect(await texts({ text: 'drop customers' })).toEqual(['DROP TABLE customers']);
        expect(await texts({ text: 'nothing-like-this' })).toEqual([]);
        expect(await texts({ text: '  %%% ' })).toEqual([]);
        expect(await texts({ text: 'customers', resource: 'openai' })).toEqual(['/v1/customers/search']);
        expect(await texts({ text: 'customers', identity: 'alice@example.com' })).toEqual(['DROP TABLE customers', 'SELECT email FROM public.customers']);
        expect(await texts({ identity: 'alice', decision: 'allow' })).toEqual(['SELECT * FROM orders WHERE customer_id = 7', 'SELECT email FROM public.customers']);
        expect(await texts({ decision: 'deny' })).toEqual(['DROP TABLE customers']);
        expect(await texts({ text: 'customers', since: '2025-01-02T00:00:00Z', until: '2025-01-03T00:00:00Z' })).toEqual(['/v1/customers/search', 'DROP TABLE customers']);
        expect(await texts({ text: 'customers', limit: 1 })).toEqual(['cat /etc/customers.csv']);
        const [hit] = await store.search({ decision: 'deny' });
        expect(hit!.session).toEqual(await store.getSession(s1.id));
        expect(hit!.event).toMatchObject({ type: 'query', decision: 'deny', rule: 'no-ddl', subject: 'alice', sessionId: s1.id });
        expect(await store.search({ since: '2025-01-03T00:00:00Z', limit: 10 })).toHaveLength(3);
      }
    });

    it('prunes whole sessions older than the duration and records it', async () => {
      let clock = new Date('2025-01-01T00:00:02.000Z');
      const { store } = await fresh(undefined, () => clock);
      const now = new Date('2025-06-01T00:00:00.000Z');
      const old = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x', startedAt: '2025-01-01T00:00:00.000Z' });
      await store.append(old.id, q('SELECT 1', 'allow', '2025-01-01T00:00:01.000Z'));
      await store.endSession(old.id, 'ok', { statements: 1, denied: 0, masked: 0, rows: 1, bytesIn: 1, bytesOut: 1 });
      clock = now;
      // Started long ago but still active recently: kept.
      const longRunning = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x', startedAt: '2025-01-01T00:00:00.000Z' });
      await store.append(longRunning.id, q('SELECT 2', 'allow', '2025-05-30T00:00:00.000Z'));
      const recent = await store.createSession({ resource: 'db', kind: 'postgres', identity: bot, clientAddr: 'x', startedAt: '2025-05-31T00:00:00.000Z' });
      await store.append(recent.id, q('SELECT 3', 'allow', '2025-05-31T00:00:01.000Z'));
      await store.createApproval({
        sessionId: old.id, resource: 'db', sha256: 'a'.repeat(64), maskedText: 'DELETE FROM t', requester: alice, rule: 'r', approvers: ['dba'], minApprovals: 1, expiresAt: '2025-01-01T01:00:00.000Z',
      });

      const ninetyDays = 90 * 24 * 3600 * 1000;
      expect(await store.prune(ninetyDays, now)).toEqual({ sessionsRemoved: 1, eventsRemoved: 3 });
      expect(await store.getSession(old.id)).toBeUndefined();
      expect(await store.listEvents(old.id)).toEqual([]);
      expect(await store.listApprovals()).toEqual([]);
      expect(await store.getSession(longRunning.id)).toBeDefined();
      expect(await store.getSession(recent.id)).toBeDefined();
      expect(await store.prune(ninetyDays, now)).toEqual({ sessionsRemoved: 0, eventsRemoved: 0 });
      const log = await store.listEvents(MAINTENANCE_SESSION_ID);
      expect(log.map((e) => e.type)).toEqual(['store.prune', 'store.prune']);
      expect(log[0]).toMatchObject({ type: 'store.prune', olderThanMs: ninetyDays, sessionsRemoved: 1, eventsRemoved: 3, cutoff: '2025-03-03T00:00:00.000Z', seq: 1 });
      expect(log[1]).toMatchObject({ seq: 2, sessionsRemoved: 0 });
      expect((await store.verify()).ok).toBe(true);
      expect((await store.info()).sessions).toBe(2);
    });

    it('creates, gets, lists and updates approvals; ids are short and typeable', async () => {
      const { store } = await fresh();
      const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: bot, clientAddr: 'x' });
      const a = await store.createApproval({
        sessionId: s.id, resource: 'db', sha256: 'b'.repeat(64), maskedText: 'UPDATE t SET x = 1', requester: bot, reason: 'fix', rule: 'writes-need-dba',
        approvers: ['dba'], minApprovals: 1, expiresAt: new Date(Date.now() + 900_000).toISOString(),
      });
      expect(a.id).toMatch(new RegExp(`^[${APPROVAL_ID_ALPHABET}]{6}$`));
      expect(a).toMatchObject({ state: 'pending', decisions: [], version: 1 });
      expect(await store.getApproval(a.id.toLowerCase())).toEqual(a);
      expect(await store.listApprovals({ state: 'pending' })).toEqual([a]);
      expect(await store.listApprovals({ state: 'approved' })).toEqual([]);
      const r = await store.updateApproval(a.id, (cur) => ({
        ...cur, state: 'approved', decisions: [...cur.decisions, { by: 'bob', groups: ['dba'], decision: 'approve', comment: 'ok', at: new Date().toISOString() }],
      }));
      expect(r.changed).toBe(true);
      expect(r.approval).toMatchObject({ id: a.id, state: 'approved', version: 2 });
      expect(await store.getApproval(a.id)).toEqual(r.approval);
      const noop = await store.updateApproval(a.id, () => undefined);
      expect(noop).toEqual({ approval: r.approval, changed: false });
      await expectCode(store.updateApproval('ZZZZZZ', (c) => c), 'STORE_NOT_FOUND');
      expect(await store.getApproval('ZZZZZZ')).toBeUndefined();
    });

    it('two racing approvers (two store instances) do not both win', async () => {
      const { store, url } = await fresh();
      const other = (await fresh(url)).store;
      const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: bot, clientAddr: 'x' });
      for (let round = 0; round < 5; round++) {
        const a = await store.createApproval({
          sessionId: s.id, resource: 'db', sha256: 'c'.repeat(64), maskedText: 'DELETE FROM t', requester: bot, rule: 'r', approvers: ['dba'], minApprovals: 1,
          expiresAt: new Date(Date.now() + 60_000).toISOString(),
        });
        const decide = (st: SessionStore, by: string, decision: 'approve' | 'deny') =>
          st.updateApproval(a.id, (cur): Approval | undefined =>
            cur.state !== 'pending'
              ? undefined
              : { ...cur, state: decision === 'approve' ? 'approved' : 'denied', decisions: [...cur.decisions, { by, groups: ['dba'], decision, at: new Date().toISOString() }] },
          );
        const results = await Promise.all([decide(store, 'bob', 'approve'), decide(other, 'carol', 'deny'), decide(other, 'dave', 'approve'), decide(store, 'erin', 'deny')]);
        expect(results.filter((x) => x.changed)).toHaveLength(1);
        const final = await store.getApproval(a.id);
        expect(final!.decisions).toHaveLength(1);
        expect(final!.version).toBe(2);
      }
    });

    it('waitForApprovalChange wakes when another instance updates the approval; abort rejects', async () => {
      const { store, url } = await fresh();
      const other = (await fresh(url)).store;
      const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: bot, clientAddr: 'x' });
      const a = await store.createApproval({
        sessionId: s.id, resource: 'db', sha256: 'd'.repeat(64), maskedText: 'DELETE FROM t', requester: bot, rule: 'r', approvers: ['dba'], minApprovals: 1,
        expiresAt: new Date(Date.now() + 60_000).toISOString(),
      });
      const waiting = store.waitForApprovalChange(a.id);
      await new Promise((r) => setTimeout(r, 300));
      const t0 = performance.now();
      await other.updateApproval(a.id, (cur) => ({ ...cur, state: 'denied' }));
      const changed = await waiting;
      const latency = performance.now() - t0;
      expect(changed).toMatchObject({ id: a.id, state: 'denied', version: 2 });
      expect(latency).toBeLessThan(harness.wakeWithinMs);
      // A change that happened before the wait started is seen through sinceVersion.
      await other.updateApproval(a.id, (cur) => ({ ...cur, state: 'expired' }));
      expect(await store.waitForApprovalChange(a.id, undefined, 2)).toMatchObject({ state: 'expired', version: 3 });
      const ac = new AbortController();
      const aborted = store.waitForApprovalChange(a.id, ac.signal);
      setTimeout(() => ac.abort(new Error('gave up')), 50);
      await expect(aborted).rejects.toThrow('gave up');
    });

    it('keeps every chain valid with 8 concurrent writers', async () => {
      const { store, url } = await fresh();
      const other = (await fresh(url)).store;
      const per = 150;
      const writers = await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          const st = w % 2 === 0 ? store : other;
          const s = await st.createSession({ resource: `db${w % 3}`, kind: 'postgres', identity: w % 2 ? alice : bot, clientAddr: `10.0.0.${w}:1` });
          return { st, s };
        }),
      );
      await Promise.all(
        writers.map(async ({ st, s }, w) => {
          for (let i = 0; i < per; i++) {
            if (i % 10 === 0) await Promise.all([st.append(s.id, q(`SELECT ${w}, ${i}`)), st.append(s.id, q(`SELECT ${w}, ${i}b`))]);
            else await st.append(s.id, q(`SELECT ${w}, ${i}`));
          }
        }),
      );
      const total = 8 * (1 + per + per / 10);
      expect(await store.verify()).toMatchObject({ ok: true, sessionsChecked: 8, eventsChecked: total });
      for (const { s } of writers) {
        const evs = await store.listEvents(s.id);
        expect(evs.map((e) => e.seq)).toEqual(Array.from({ length: evs.length }, (_, i) => i + 1));
      }
    });

    it('an append is visible to another instance as soon as it resolves', async () => {
      const { store, url } = await fresh();
      const other = (await fresh(url)).store;
      const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: alice, clientAddr: 'x' });
      for (let i = 0; i < 20; i++) {
        const e = await store.append(s.id, q(`SELECT ${i}`));
        const seen = await other.listEvents(s.id, { afterSeq: e.seq - 1 });
        expect(seen).toEqual([e]);
      }
      // The other instance may append to the same session too (cold head); the chain stays valid.
      await other.append(s.id, q('SELECT from-other'));
      await store.append(s.id, q('SELECT from-owner-again'));
      expect(await other.verify(s.id)).toMatchObject({ ok: true, eventsChecked: 23 });
    });
  });
}
