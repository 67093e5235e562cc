/**
 * What an intruder with write access to the store does, and `audit verify` catching it (DESIGN §5, §8). One
 * suite for both engines (tamper.test.ts); `sql` holds the statements that differ between them. Each test
 * records two finished sessions with a signed checkpoint after each, tampers with raw SQL, and verifies.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runAuditVerify } from '../../src/cli/commands/audit.js';
import { canonicalJson, chainHash, GENESIS_HASH, openStore, type NewEvent, type SessionStore, type StoreEvent } from '../../src/store/index.js';
import { buildCheckpoint, generateSigningKeyPair } from '../../src/store/checkpoint.js';
import { AGENT, HUMAN } from './fixture.js';
import { testContext } from './ctx.js';

export interface TamperHarness {
  engine: 'sqlite' | 'postgres';
  newUrl(): Promise<string>;
  exec(url: string, sql: string): Promise<void>;
  sql: {
    /** Moves event `seq` of session `id` one hour later in the time column only. */
    shiftTime(id: string, seq: number): string;
    /** Copies session `id`'s events under the session id `to`. */
    copyEvents(id: string, to: string): string;
  };
}

const KEY = generateSigningKeyPair();

function lit(s: string | null): string {
  return s === null ? 'NULL' : `'${s.replace(/'/g, "''")}'`;
}

export function tamperSuite(h: TamperHarness): void {
  const open: SessionStore[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  async function recorded(): Promise<{ store: SessionStore; url: string; db: string; web: string }> {
    const url = await h.newUrl();
    const store = await openStore(url);
    open.push(store);
    const db = (await store.createSession({ resource: 'shop-db', kind: 'postgres', identity: AGENT, clientAddr: '127.0.0.1:50001', reason: 'weekly report' })).id;
    await store.appendMany(db, [
      { type: 'query', sql: 'SELECT email FROM customers', decision: 'allow', kinds: ['select'], tables: ['customers'] },
      { type: 'result', rows: 3, bytes: 120, durationMs: 2 },
      { type: 'query', sql: 'DROP TABLE customers', decision: 'deny', rule: 'recommended/no-drop', kinds: ['drop'], tables: ['customers'] },
    ] as NewEvent[]);
    await store.endSession(db, 'ok', { statements: 2, denied: 1, masked: 0, rows: 3, bytesIn: 40, bytesOut: 120 });
    expect(await store.checkpoint({ signingKey: KEY.privateKey })).toMatchObject({ n: 1 });
    const web = (await store.createSession({ resource: 'crm-api', kind: 'http', identity: HUMAN, clientAddr: '127.0.0.1:50002' })).id;
    await store.append(web, { type: 'http.request', method: 'GET', path: '/v1/customers', decision: 'allow', status: 200 });
    await store.endSession(web, 'ok', { statements: 1, denied: 0, masked: 0, rows: 0, bytesIn: 0, bytesOut: 0 });
    expect(await store.checkpoint({ signingKey: KEY.privateKey })).toMatchObject({ n: 2 });
    const before = await store.verify({ publicKey: KEY.publicKey });
    expect(before).toMatchObject({ ok: true, sessionsChecked: 2, eventsChecked: 8, checkpoints: { count: 2, signed: 2, vouchedCheckpoint: 2, eventsAfter: 0 } });
    return { store, url, db, web };
  }

  async function caught(store: SessionStore, sessionId: string, reason: RegExp, publicKey?: string): Promise<void> {
    const r = await store.verify(publicKey === undefined ? {} : { publicKey });
    expect(r.ok, JSON.stringify(r)).toBe(false);
    expect(r.firstBad?.sessionId).toBe(sessionId);
    expect(r.firstBad?.reason).toMatch(reason);
  }

  /** Rewrites `id`'s chain from its events (edited by `edit`) and its head, as a careful intruder would. */
  async function rewriteChain(url: string, store: SessionStore, id: string, edit: (e: StoreEvent) => StoreEvent | null): Promise<string[]> {
    const events = (await store.listEvents(id)).map(edit).filter((e): e is StoreEvent => e !== null);
    const { eventDecision, eventText } = await import('../../src/store/common.js');
    const stmts = [`DELETE FROM events WHERE session_id = '${id}'`];
    let prev = GENESIS_HASH;
    events.forEach((e, i) => {
      const { hash: _h, ...rest } = e;
      const body = canonicalJson({ ...rest, seq: i + 1 });
      prev = chainHash(prev, body);
      const cols =
        h.engine === 'sqlite'
          ? `(session_id, seq, type, time_ms, decision, text, body, hash) VALUES ('${id}', ${i + 1}, '${e.type}', ${Date.parse(e.time)}`
          : `(session_id, seq, type, time, subject, decision, text, body, hash) VALUES ('${id}', ${i + 1}, '${e.type}', '${e.time}', ${lit(e.subject)}`;
      stmts.push(`INSERT INTO events ${cols}, ${lit(eventDecision(e))}, ${lit(eventText(e))}, ${lit(body)}, '${prev}')`);
    });
    stmts.push(`UPDATE sessions SET last_seq = ${events.length}, last_hash = '${prev}' WHERE id = '${id}'`);
    await h.exec(url, stmts.join(';\n'));
    return [prev, String(events.length)];
  }

  /** Rebuilds the checkpoint chain from the store's heads, unsigned (the intruder has no private key). */
  async function rewriteCheckpoints(url: string, store: SessionStore): Promise<void> {
    const old = await store.listCheckpoints();
    const stmts = ['DELETE FROM checkpoints'];
    let prev: { n: number; hash: string } | undefined;
    for (const r of old) {
      const body = JSON.parse(r.body) as { heads: [string, number, string, string][] };
      const heads = [];
      for (const [id, , , lastTime] of body.heads) {
        const evs = await store.listEvents(id);
        const last = evs[evs.length - 1]!;
        heads.push({ id, seq: last.seq, hash: last.hash, lastTime });
      }
      const c = buildCheckpoint(prev, heads, r.time);
      stmts.push(`INSERT INTO checkpoints (n, time, body, hash, signature) VALUES (${c.n}, '${c.time}', ${lit(c.body)}, '${c.hash}', NULL)`);
      prev = c;
    }
    await h.exec(url, stmts.join(';\n'));
  }

  describe(`${h.engine}: audit verify catches tampering`, () => {
    it('editing the search text column (search no longer finds the DROP)', async () => {
      const { store, url, db } = await recorded();
      await h.exec(url, `UPDATE events SET text = 'select 42' WHERE text = 'DROP TABLE customers'`);
      expect(await store.search({ text: 'drop' })).toHaveLength(0);
      await caught(store, db, /search text column/);
    });

    it('editing the decision column (deny → allow)', async () => {
      const { store, url, db } = await recorded();
      await h.exec(url, `UPDATE events SET decision = 'allow' WHERE decision = 'deny'`);
      await caught(store, db, /decision column says allow but the event says deny/);
    });

    it('editing the type column', async () => {
      const { store, url, db } = await recorded();
      await h.exec(url, `UPDATE events SET type = 'error' WHERE decision = 'deny'`);
      await caught(store, db, /type column says error/);
    });

    it('editing the time column', async () => {
      const { store, url, db } = await recorded();
      await h.exec(url, h.sql.shiftTime(db, 4));
      await caught(store, db, /time column/);
    });

    it("editing the session row's identity", async () => {
      const { store, url, web } = await recorded();
      await h.exec(url, `UPDATE sessions SET email = 'root@example.test', identity = ${lit(JSON.stringify({ ...HUMAN, email: 'root@example.test' }))} WHERE id = '${web}'`);
      await caught(store, web, /identity does not match its session\.start/);
    });

    it("deleting a session's events and its row", async () => {
      const { store, url, db } = await recorded();
      await h.exec(url, `DELETE FROM events WHERE session_id = '${db}'; DELETE FROM sessions WHERE id = '${db}'`);
      await caught(store, db, /session is missing \(deleted\): checkpoint 1 holds its head/);
    });

    it("deleting only a session's row", async () => {
      const { store, url, db } = await recorded();
      await h.exec(url, `DELETE FROM sessions WHERE id = '${db}'`);
      await caught(store, db, /events without a session row/);
    });

    it('orphan events (events of a session that has no row)', async () => {
      const { store, url, db } = await recorded();
      await h.exec(url, h.sql.copyEvents(db, 'ZZFORGEDSESSION0000000000'));
      await caught(store, 'ZZFORGEDSESSION0000000000', /events without a session row/);
    });

    it('deleting the last event and rolling the head and the row back', async () => {
      const { store, url, db } = await recorded();
      const evs = await store.listEvents(db);
      const n = evs.length;
      await h.exec(
        url,
        `DELETE FROM events WHERE session_id = '${db}' AND seq = ${n};
         UPDATE sessions SET last_seq = ${n - 1}, last_hash = '${evs[n - 2]!.hash}', ended_at = NULL, outcome = NULL,
           counters = '{"bytesIn":0,"bytesOut":0,"denied":0,"masked":0,"rows":0,"statements":0}' WHERE id = '${db}'`,
      );
      await caught(store, db, new RegExp(`events ${n}\\.\\.${n} were removed: checkpoint 1 holds the head at event ${n}`));
    });

    it('a consistent rewrite with recomputed hashes and checkpoints: only the signature shows it', async () => {
      const { store, url, db } = await recorded();
      await rewriteChain(url, store, db, (e) => (e.type === 'query' && e.sql.startsWith('DROP') ? ({ ...e, sql: 'select 42', decision: 'allow', rule: undefined } as StoreEvent) : e));
      await rewriteCheckpoints(url, store);
      const hits = await store.search({ text: '42' });
      expect(hits.map((x) => x.event.type === 'query' && x.event.sql)).toEqual(['select 42']);
      // Without the key, a careful rewrite is indistinguishable from the truth: that is what the key is for.
      expect((await store.verify()).ok).toBe(true);
      await caught(store, '(checkpoints)', /no checkpoint is signed by key/, KEY.publicKey);
    });

    it('a consistent rewrite that keeps the earlier signed checkpoint is caught at the first rewritten one', async () => {
      const { store, url, web } = await recorded();
      await rewriteChain(url, store, web, (e) => (e.type === 'http.request' ? ({ ...e, path: '/v1/health' } as StoreEvent) : e));
      // Checkpoint 1 does not cover `web`; rebuild checkpoint 2 unsigned over the rewritten head.
      const [c1, c2] = await store.listCheckpoints();
      const heads = (JSON.parse(c2!.body) as { heads: [string, number, string, string][] }).heads;
      const last = (await store.listEvents(web)).at(-1)!;
      const forged = buildCheckpoint(c1, heads.map(([id, seq, hash, t]) => (id === web ? { id, seq: last.seq, hash: last.hash, lastTime: t } : { id, seq, hash, lastTime: t })), c2!.time);
      await h.exec(url, `DELETE FROM checkpoints WHERE n = 2; INSERT INTO checkpoints (n, time, body, hash, signature) VALUES (2, '${forged.time}', ${lit(forged.body)}, '${forged.hash}', NULL)`);
      await caught(store, '(checkpoints)', /checkpoint is not signed by key .* though earlier ones are/, KEY.publicKey);
    });

    it('truncating the oldest history (sessions and their checkpoint)', async () => {
      const { store, url, db } = await recorded();
      await h.exec(url, `DELETE FROM events WHERE session_id = '${db}'; DELETE FROM sessions WHERE id = '${db}'; DELETE FROM checkpoints WHERE n = 1`);
      await caught(store, '(checkpoints)', /checkpoint 1 is missing/, KEY.publicKey);
    });

    it('truncating the newest history back to an older signed checkpoint: the external copy shows it', async () => {
      const { store, url, web } = await recorded();
      const copy = (await store.listCheckpoints()).map((r) => JSON.stringify(r)).join('\n');
      await h.exec(url, `DELETE FROM events WHERE session_id = '${web}'; DELETE FROM sessions WHERE id = '${web}'; DELETE FROM checkpoints WHERE n = 2`);
      // What is left is a validly signed, shorter history…
      expect(await store.verify({ publicKey: KEY.publicKey })).toMatchObject({ ok: true, checkpoints: { vouchedCheckpoint: 1 } });
      // …and the copy kept outside the store is what shows the cut, through the CLI as an auditor runs it.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlpctl-tamper-'));
      fs.writeFileSync(path.join(dir, 'audit.pub'), KEY.publicKey);
      fs.writeFileSync(path.join(dir, 'checkpoints.jsonl'), `${copy}\n`);
      const t = testContext({ store: url });
      t.ctx.cwd = dir;
      expect(await runAuditVerify(t.ctx, { publicKey: 'audit.pub', checkpoints: 'checkpoints.jsonl' })).toBe(1);
      expect(t.out()).toMatch(/tampering or loss: checkpoint 2: the store ends at checkpoint 1, but the external copy holds checkpoint 2 .*: history was truncated or the store replaced/);
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('replacing the store with an empty one', async () => {
      const { store } = await recorded();
      const copy = await store.listCheckpoints();
      const empty = await openStore(await h.newUrl());
      open.push(empty);
      await caught(empty, '(checkpoints)', /no checkpoint is signed by key/, KEY.publicKey);
      const r = await empty.verify({ publicKey: KEY.publicKey, externalCheckpoints: copy });
      expect(r.firstBad?.reason).toMatch(/the store has no checkpoints, but the external copy holds checkpoint 1/);
    });

    it('an untouched store verifies, and says how far back the key vouches', async () => {
      const { store, url, db } = await recorded();
      await store.append((await store.createSession({ resource: 'shop-db', kind: 'postgres', identity: AGENT, clientAddr: '127.0.0.1:50003' })).id, {
        type: 'query',
        sql: 'SELECT 1',
        decision: 'allow',
        kinds: ['select'],
        tables: [],
      });
      const t = testContext({ store: url });
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlpctl-tamper-'));
      fs.writeFileSync(path.join(dir, 'audit.pub'), KEY.publicKey);
      t.ctx.cwd = dir;
      expect(await runAuditVerify(t.ctx, { publicKey: 'audit.pub' })).toBe(0);
      expect(t.out()).toMatch(/signed by key [0-9a-f]{16}: history up to checkpoint 2 \(.*\) cannot have been rewritten or cut/);
      expect(t.out()).toMatch(/2 events after the newest checkpoint: covered by the hash chains only/);
      expect((await store.verify(db)).ok).toBe(true);
      fs.rmSync(dir, { recursive: true, force: true });
    });
  });
}
