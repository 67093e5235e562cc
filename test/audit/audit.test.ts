/**
 * `dlpctl audit …` against both real stores, seeded with a PostgreSQL, an HTTP and an SSH session:
 * search filters, the timeline, verify (and tampering with a row caught), JSONL and asciicast export,
 * replay pacing (injected sleep), and tail picking up events another store connection appends.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAuditReplay, runAuditSearch, runAuditTail } from '../../src/cli/commands/audit.js';
import { replaySession } from '../../src/audit/replay.js';
import { canonicalJson, chainHash, GENESIS_HASH, openStore } from '../../src/store/index.js';
import type { SessionStore, StoreEvent } from '../../src/store/types.js';
import { runCli, testEnv } from '../helpers/cli.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { testContext } from './ctx.js';
import { AGENT, at, clock, seed, type Seeded } from './fixture.js';

let dir: string;
let server: TestPostgres | undefined;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-audit-'));
});
afterAll(async () => {
  await server?.stop();
  await fs.rm(dir, { recursive: true, force: true });
});

const engines = [
  { name: 'sqlite', url: async () => `sqlite:${path.join(dir, `audit-${Math.random().toString(36).slice(2)}.db`)}` },
  {
    name: 'postgres',
    url: async () => {
      server ??= await startPostgres();
      return server.newDatabase();
    },
  },
];

describe.each(engines)('dlpctl audit ($name store)', ({ name, url: makeUrl }) => {
  let url: string;
  let store: SessionStore;
  let ids: Seeded;
  let env: NodeJS.ProcessEnv;
  const cli = (args: string[]) => runCli([...args, '--store', url], { env });

  beforeAll(async () => {
    url = await makeUrl();
    clock.ms = Date.parse(at(0));
    store = await openStore(url, { now: clock.now, sqliteSynchronous: 'normal' });
    ids = await seed(store);
    env = testEnv(dir);
  });
  afterAll(async () => store?.close());

  describe('search', () => {
    it('TEXT finds statements with session, time, identity, decision and rule (JSON)', async () => {
      const r = await cli(['audit', 'search', 'customers', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const hits = JSON.parse(r.stdout) as { id: string; text: string; decision: string; rule: string | null; identity: string; resource: string; time: string }[];
      expect(hits.map((h) => h.text)).toEqual(['DELETE /v1/customers/42', 'GET /v1/customers?email=<EMAIL>', 'DROP TABLE customers', 'SELECT email, phone FROM customers WHERE id = ?']);
      expect(hits[2]).toMatchObject({ id: `${ids.pg}:5`, decision: 'deny', rule: 'recommended/no-drop', identity: 'agent-7', resource: 'shop-db', time: at(2) });
    });

    it('a word ending in * matches as a prefix', async () => {
      const hits = JSON.parse((await cli(['audit', 'search', 'custom*', '--kind', 'http', '--json'])).stdout) as { text: string }[];
      expect(hits.map((h) => h.text)).toEqual(['DELETE /v1/customers/42', 'GET /v1/customers?email=<EMAIL>']);
      expect(JSON.parse((await cli(['audit', 'search', 'custom', '--json'])).stdout)).toEqual([]);
    });

    it('without TEXT only actions are listed (no results, masks, session starts); filters combine', async () => {
      const all = JSON.parse((await cli(['audit', 'search', '--json'])).stdout) as { type: string; decision: string }[];
      expect(all).toHaveLength(6);
      expect(new Set(all.map((h) => h.type))).toEqual(new Set(['query', 'http.request', 'ssh.channel']));
      const denied = JSON.parse((await cli(['audit', 'search', '--decision', 'deny', '--json'])).stdout) as { text: string }[];
      expect(denied.map((h) => h.text)).toEqual(['DELETE /v1/customers/42', 'DROP TABLE customers']);
      const http = JSON.parse((await cli(['audit', 'search', '--kind', 'http', '--json'])).stdout) as { kind: string }[];
      expect(http.map((h) => h.kind)).toEqual(['http', 'http']);
      const alice = JSON.parse((await cli(['audit', 'search', '--identity', 'alice', '--json'])).stdout) as { resource: string }[];
      expect(alice.map((h) => h.resource)).toEqual(['bastion']);
      const byEmail = JSON.parse((await cli(['audit', 'search', '--identity', 'agent7@example.test', '--resource', 'shop-db', '--limit', '2', '--json'])).stdout) as { text: string }[];
      expect(byEmail.map((h) => h.text)).toEqual(['UPDATE orders SET status = ? WHERE id = ?', 'DROP TABLE customers']);
      const window = JSON.parse((await cli(['audit', 'search', '--since', at(1.5), '--until', at(101), '--json'])).stdout) as { text: string }[];
      expect(window.map((h) => h.text)).toEqual(['UPDATE orders SET status = ? WHERE id = ?', 'DROP TABLE customers']);
    });

    it('--since accepts a duration ago (clock injected)', async () => {
      const { ctx, out } = testContext({ store: url, json: true });
      await runAuditSearch(ctx, { since: '10m', now: () => new Date(Date.parse(at(700))) });
      expect((JSON.parse(out()) as { resource: string }[]).map((h) => h.resource)).toEqual(['bastion', 'crm-api', 'crm-api']);
    });

    it('a plain table when piped; bad flags exit 2', async () => {
      const r = await cli(['audit', 'search', 'drop']);
      expect(r.stdout.split('\n')[0]).toMatch(/^TIME\s+SESSION\s+RESOURCE\s+IDENTITY\s+DECISION\s+RULE\s+TEXT$/);
      expect(r.stdout).toContain(`2030-03-04 10:00:02Z  ${ids.pg}:5`);
      expect((await cli(['audit', 'search', '--since', 'yesterday'])).code).toBe(2);
      expect((await cli(['audit', 'search', '--decision', 'maybe'])).code).toBe(2);
      expect((await cli(['audit', 'search', '--kind', 'ftp'])).code).toBe(2);
    });

    it('an HTTP request recorded before forwarding and again with its response is one hit, the decision record', async () => {
      // A store of its own: the shared one's counts are pinned by the other tests.
      const own = await makeUrl();
      const st = await openStore(own, { sqliteSynchronous: 'normal' });
      const s = await st.createSession({ resource: 'llm-api', kind: 'http', identity: AGENT, clientAddr: '127.0.0.1:50009', startedAt: at(200) });
      await st.appendMany(s.id, [
        { type: 'http.request', method: 'POST', path: '/v1/chat/completions', decision: 'allow', phase: 'request', time: at(201) },
        { type: 'http.request', method: 'POST', path: '/v1/chat/completions', decision: 'allow', phase: 'response', status: 200, durationMs: 12, time: at(202) },
      ]);
      await st.close();
      const ownCli = (args: string[]) => runCli([...args, '--store', own], { env });
      for (const args of [['audit', 'search', 'completions'], ['audit', 'search', '--resource', 'llm-api'], ['audit', 'search', '--resource', 'llm-api', '--decision', 'allow']]) {
        const hits = JSON.parse((await ownCli([...args, '--json'])).stdout) as { id: string }[];
        expect(hits.map((h) => h.id), args.join(' ')).toEqual([`${s.id}:2`]);
      }
      // The session's timeline still shows both records.
      expect((await ownCli(['audit', 'show', s.id])).stdout).toMatch(/POST \/v1\/chat\/completions → 200/);
    });
  });

  it('show: the timeline with decisions, masking counts, rows, bytes and approvals', async () => {
    const r = await cli(['audit', 'show', ids.pg]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/identity\s+agent-7 <agent7@example.test> verified groups agents/);
    expect(r.stdout).toContain('reason "weekly report"');
    expect(r.stdout).toMatch(/5\s+\+2\.000s\s+query\s+deny\s+recommended\/no-drop\s+DROP TABLE customers/);
    expect(r.stdout).toMatch(/mask\.summary\s+pii\/contact\s+masked email×3 phone×2/);
    expect(r.stdout).toContain('3 rows, 420 bytes, 4 ms');
    expect(r.stdout).toContain('approval K7QF2M approved by bob');
    expect(r.stdout).toMatch(/ok: 3 statements, 1 denied, 5 masked, 4 rows, 420 bytes out/);
    const j = JSON.parse((await cli(['audit', 'show', ids.pg, '--json'])).stdout) as { session: { id: string }; events: StoreEvent[] };
    expect(j.session.id).toBe(ids.pg);
    expect(j.events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect((await cli(['audit', 'show', 'NOPE'])).code).toBe(1);
  });

  it('export jsonl: one stored event per line, and the hash chain can be recomputed from the file alone', async () => {
    const file = path.join(dir, `${name}.jsonl`);
    const r = await cli(['audit', 'export', '--output', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/wrote 21 events from 3 sessions/);
    const lines = (await fs.readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as StoreEvent);
    expect(lines).toHaveLength(21);
    expect([...new Set(lines.map((e) => e.sessionId))]).toEqual([ids.pg, ids.http, ids.ssh]);
    const prev = new Map<string, string>();
    for (const e of lines) {
      const { hash, ...rest } = e;
      expect(chainHash(prev.get(e.sessionId) ?? GENESIS_HASH, canonicalJson(rest))).toBe(hash);
      prev.set(e.sessionId, hash);
    }
    const one = await cli(['audit', 'export', '--session', ids.http]);
    expect(one.stdout.trim().split('\n').map((l) => (JSON.parse(l) as StoreEvent).type)).toEqual(['session.start', 'http.request', 'http.request', 'session.end']);
  });

  it('export asciicast: a v2 header and the SSH frames', async () => {
    const r = await cli(['audit', 'export', '--format', 'asciicast', '--session', ids.ssh]);
    expect(r.code, r.stderr).toBe(0);
    const [header, ...frames] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(header).toMatchObject({ version: 2, width: 80, height: 24, timestamp: Math.floor(Date.parse(at(200)) / 1000) });
    expect(frames).toEqual([
      [0.5, 'o', '$ '],
      [1.5, 'i', 'ls\r\n'],
      [1.75, 'o', 'customers.csv\r\n$ '],
      [9.75, 'o', 'exit\r\n'],
    ]);
    expect((await cli(['audit', 'export', '--format', 'asciicast'])).code).toBe(2);
  });

  it('export asciicast: the header has the size and TERM of the pty the session requested', async () => {
    const st = await openStore(url);
    let id: string;
    try {
      const s = await st.createSession({ resource: 'bastion', kind: 'ssh', identity: AGENT, clientAddr: '127.0.0.1:50009', startedAt: at(300) });
      id = s.id;
      await st.appendMany(s.id, [
        { type: 'ssh.channel', channel: 'shell', decision: 'allow', pty: true, cols: 100, rows: 20, term: 'xterm', time: at(300.1) },
        { type: 'terminal.output', t: 0.2, data: '$ ', time: at(300.2) },
      ]);
      await st.endSession(s.id, 'ok', { statements: 0, denied: 0, masked: 0, rows: 0, bytesIn: 0, bytesOut: 2 });
    } finally {
      await st.close();
    }
    const r = await cli(['audit', 'export', '--format', 'asciicast', '--session', id]);
    expect(r.code, r.stderr).toBe(0);
    const [header, ...frames] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(header).toMatchObject({ version: 2, width: 100, height: 20, env: { TERM: 'xterm' } });
    expect(frames).toEqual([[0.2, 'o', '$ ']]);
  });

  it('replay: SSH as terminal playback, PostgreSQL as a paced transcript (sleep injected)', async () => {
    const waits: number[] = [];
    const sleep = async (ms: number) => void waits.push(ms);
    const term = testContext({ store: url });
    await runAuditReplay(term.ctx, { session: ids.ssh, speed: '2', sleep });
    expect(term.out()).toBe('$ customers.csv\r\n$ exit\r\n');
    expect(waits).toEqual([250, 625, 2000]); // (0.5)/2, (1.75-0.5)/2, min(2s, 8/2)
    waits.length = 0;
    const tr = testContext({ store: url });
    await runAuditReplay(tr.ctx, { session: ids.pg, speed: '1', maxIdle: '5s', sleep });
    const lines = tr.out().trim().split('\n');
    expect(lines[0]).toMatch(/^\+0\.000s session\.start\s+agent-7 opened shop-db \(postgres\)/);
    expect(lines[4]).toMatch(/^\+2\.000s query\s+deny \[recommended\/no-drop\] DROP TABLE customers$/);
    expect(waits).toEqual([1000, 200, 100, 700, 1000, 100, 5000, 100, 900]);
    const fast = await cli(['audit', 'replay', ids.http, '--speed', 'max']);
    expect(fast.stdout).toContain('DELETE /v1/customers/42');
  });

  it('tail: prints events another connection appends, then stops on abort', async () => {
    const other = await openStore(url);
    const ac = new AbortController();
    const { ctx, out } = testContext({ store: url, signal: ac.signal });
    let ready!: () => void;
    const started = new Promise<void>((r) => (ready = r));
    const tailing = runAuditTail(ctx, { interval: '20', onReady: ready });
    await started;
    const s = await other.createSession({ resource: 'tail-db', kind: 'postgres', identity: { issuer: 'x', subject: 'tailer', groups: [], kind: 'human', verified: false }, clientAddr: '' });
    await other.append(s.id, { type: 'query', sql: 'SELECT 42 AS answer', decision: 'allow', kinds: ['select'], tables: [] });
    for (let i = 0; i < 500 && !out().includes('SELECT 42'); i++) await new Promise((r) => setTimeout(r, 20));
    ac.abort();
    expect(await tailing).toBe(0);
    await other.close();
    const lines = out().trim().split('\n');
    expect(lines.some((l) => /tail-db tailer .*:1 session\.start/.test(l))).toBe(true);
    expect(lines.some((l) => /tail-db tailer .*:2 query allow SELECT 42 AS answer/.test(l))).toBe(true);
    expect(out()).not.toContain('shop-db'); // history is not replayed
  });

  it('verify: counts when intact; tampering with a stored row names the event and exits 1', async () => {
    const ok = await cli(['audit', 'verify']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/verified \d+ events in \d+ sessions/);
    const one = JSON.parse((await cli(['audit', 'verify', ids.http, '--json'])).stdout) as { ok: boolean; eventsChecked: number };
    expect(one).toMatchObject({ ok: true, sessionsChecked: 1, eventsChecked: 4 });

    // An auditor-unfriendly edit: turn the denied DROP into an allowed one, directly in the store.
    if (name === 'sqlite') {
      const db = new DatabaseSync(url.slice('sqlite:'.length));
      const row = db.prepare('SELECT body FROM events WHERE session_id = ? AND seq = 5').get(ids.pg) as { body: string };
      db.prepare('UPDATE events SET body = ? WHERE session_id = ? AND seq = 5').run(row.body.replace('"decision":"deny"', '"decision":"allow"'), ids.pg);
      db.close();
    } else {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(`UPDATE events SET body = replace(body, '"decision":"deny"', '"decision":"allow"') WHERE session_id = $1 AND seq = 5`, [ids.pg]);
      await c.end();
    }
    const bad = await cli(['audit', 'verify']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain(`session ${ids.pg} event 5: hash does not match`);
    const j = JSON.parse((await cli(['audit', 'verify', ids.pg, '--json'])).stdout) as { ok: boolean; firstBad: { seq: number } };
    expect(j).toMatchObject({ ok: false, firstBad: { sessionId: ids.pg, seq: 5 } });
    expect((await cli(['audit', 'verify', ids.http])).code).toBe(0);
  });
});

describe('a store path with nothing at it', () => {
  it('audit, approval and store info/prune commands say so (exit 1) and create nothing; store migrate creates it', async () => {
    const missing = path.join(dir, 'typo', 'store.db');
    const env = testEnv(dir);
    for (const args of [['audit', 'search', 'DROP'], ['audit', 'verify'], ['approvals'], ['approve', 'K7QF2M'], ['store', 'info'], ['store', 'prune', '--older-than', '90d']]) {
      const r = await runCli([...args, '--store', `sqlite:${missing}`], { env });
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/no store at sqlite:.*typo.*nothing has been recorded there.*check --store/);
    }
    await expect(fs.stat(path.dirname(missing))).rejects.toThrow(/ENOENT/);
    // `store migrate` is the command that creates it.
    const made = await runCli(['store', 'migrate', '--store', `sqlite:${missing}`], { env });
    expect(made.code, made.stderr).toBe(0);
    expect((await runCli(['store', 'info', '--store', `sqlite:${missing}`], { env })).code).toBe(0);
  });
});

describe('replaySession', () => {
  it('speed divides waits, max idle caps them, speed max does not wait', async () => {
    const ev = (s: number, seq: number): StoreEvent => ({ type: 'error', message: `e${seq}`, sessionId: 's', seq, time: at(s), subject: 'x', hash: '' });
    const events = [ev(0, 1), ev(4, 2), ev(104, 3)];
    const run = async (speed: number) => {
      const waits: number[] = [];
      const lines: string[] = [];
      await replaySession(events, { speed, maxIdleMs: 10_000, sleep: async (ms) => void waits.push(ms), writeRaw: () => {}, writeLine: (l) => lines.push(l) });
      return { waits, lines };
    };
    expect((await run(1)).waits).toEqual([4000, 10_000]);
    expect((await run(4)).waits).toEqual([1000, 10_000]);
    const max = await run(Infinity);
    expect(max.waits).toEqual([]);
    expect(max.lines).toHaveLength(3);
  });
});
