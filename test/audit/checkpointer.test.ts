/** The tunnel's checkpointer (periodic, on session end, copies) and the closing of crashed sessions. */
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Checkpointer, closeCrashedSessions, ownerAlive, thisOwner } from '../../src/audit/checkpointer.js';
import { generateSigningKeyPair } from '../../src/store/checkpoint.js';
import { openStore, type SessionStore } from '../../src/store/index.js';
import { AGENT } from './fixture.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlpctl-cp-'));
let n = 0;
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function fresh(): Promise<SessionStore> {
  return openStore(`sqlite:${path.join(dir, `s${++n}.db`)}`);
}

describe('Checkpointer', () => {
  it('checkpoints on its interval while sessions record, and writes nothing when no chain moved', async () => {
    const store = await fresh();
    const key = generateSigningKeyPair();
    const cp = new Checkpointer({ store, signingKey: key.privateKey, intervalMs: 100, onError: (m) => expect.fail(m) });
    cp.start();
    const s = await store.createSession({ resource: 'db', kind: 'postgres', identity: AGENT, clientAddr: '127.0.0.1:1' });
    for (let i = 0; i < 200 && (await store.listCheckpoints()).length < 1; i++) await new Promise((r) => setTimeout(r, 50));
    await store.append(s.id, { type: 'query', sql: 'select 1', decision: 'allow', kinds: ['select'], tables: [] });
    for (let i = 0; i < 200 && (await store.listCheckpoints()).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    const list = await store.listCheckpoints();
    expect(list.map((c) => c.n)).toEqual([1, 2]);
    expect(JSON.parse(list[1]!.body)).toMatchObject({ n: 2, prev: list[0]!.hash, heads: [[s.id, 2, expect.any(String), expect.any(String)]], key: key.keyId });
    // Nothing moved since: the next runs write nothing.
    expect(await cp.run()).toBeUndefined();
    await cp.close();
    expect(await store.listCheckpoints()).toHaveLength(2);
    expect(await store.verify({ publicKey: key.publicKey })).toMatchObject({ ok: true, checkpoints: { signed: 2, vouchedCheckpoint: 2, eventsAfter: 0 } });
    await store.close();
  });

  it('appends each checkpoint to the file and POSTs it to the webhook; a failing copy is reported, not fatal', async () => {
    const store = await fresh();
    const got: string[] = [];
    const hook = http.createServer((req, res) => {
      let b = '';
      req.on('data', (d: Buffer) => (b += d.toString()));
      req.on('end', () => {
        got.push(b);
        res.end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    const file = path.join(dir, 'copies', 'cp.jsonl');
    const errors: string[] = [];
    const cp = new Checkpointer({ store, intervalMs: 60_000, file, webhook: `http://127.0.0.1:${(hook.address() as net.AddressInfo).port}/cp`, onError: (m) => errors.push(m) });
    await store.createSession({ resource: 'db', kind: 'postgres', identity: AGENT, clientAddr: '127.0.0.1:1' });
    const rec = (await cp.run())!;
    expect(fs.readFileSync(file, 'utf8')).toBe(`${JSON.stringify(rec)}\n`);
    expect(got).toEqual([JSON.stringify(rec)]);
    expect(errors).toEqual([]);
    await new Promise<void>((r) => hook.close(() => r()));
    await store.createSession({ resource: 'db', kind: 'postgres', identity: AGENT, clientAddr: '127.0.0.1:2' });
    expect(await cp.run()).toMatchObject({ n: 2 });
    expect(errors).toEqual([expect.stringMatching(/cannot POST checkpoint 2 to audit.checkpointWebhook/)]);
    expect(fs.readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(2);
    await cp.close();
    await store.close();
  });
});

describe('closeCrashedSessions', () => {
  it('closes only sessions whose owner is on this host and dead, with the counters their events show', async () => {
    const store = await fresh();
    const mk = (owner?: { pid: number; host: string }) =>
      store.createSession({ resource: 'db', kind: 'postgres', identity: AGENT, clientAddr: '127.0.0.1:1', ...(owner ? { owner } : {}) });
    const dead = await mk({ pid: 999_999_1, host: 'here' });
    const alive = await mk({ pid: 4242, host: 'here' });
    const elsewhere = await mk({ pid: 999_999_1, host: 'there' });
    const ownerless = await mk();
    await store.appendMany(dead.id, [
      { type: 'query', sql: 'select 1', decision: 'allow', kinds: ['select'], tables: [] },
      { type: 'result', rows: 1, bytes: 10, durationMs: 1 },
      { type: 'query', sql: 'drop table t', decision: 'deny', kinds: ['drop'], tables: ['t'] },
      { type: 'mask.summary', entities: { email: 2 } },
    ]);
    const closed = await closeCrashedSessions(store, { host: 'here', alive: (pid) => pid === 4242 });
    expect(closed).toEqual([dead.id]);
    expect(await store.getSession(dead.id)).toMatchObject({ outcome: 'crashed', counters: { statements: 2, denied: 1, masked: 2, rows: 1, bytesIn: 0, bytesOut: 10 } });
    for (const s of [alive, elsewhere, ownerless]) expect((await store.getSession(s.id))!.outcome).toBeUndefined();
    // The end is a chained event like any other.
    expect((await store.listEvents(dead.id)).at(-1)).toMatchObject({ type: 'session.end', outcome: 'crashed', seq: 6 });
    expect((await store.verify()).ok).toBe(true);
    // Idempotent: a second tunnel finds nothing more to close.
    expect(await closeCrashedSessions(store, { host: 'here', alive: (pid) => pid === 4242 })).toEqual([]);
    await store.close();
  });
});

describe('ownerAlive', () => {
  it('this process is alive; another boot, a reused pid or a dead pid is not', () => {
    const me = thisOwner();
    expect(me).toMatchObject({ pid: process.pid, host: os.hostname(), boot: expect.any(String), start: expect.any(Number) });
    expect(ownerAlive(me)).toBe(true);
    expect(ownerAlive({ ...me, boot: 'another-boot' })).toBe(false);
    expect(ownerAlive({ ...me, start: me.start! + 1 })).toBe(false);
    expect(ownerAlive({ ...me, pid: 999_999_1 })).toBe(false);
  });
});
