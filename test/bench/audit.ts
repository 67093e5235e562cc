/**
 * Audit and approvals benchmark, SQLite and PostgreSQL (embedded, or DLPCTL_TEST_PG_URL) side by side.
 *
 *   npx tsx test/bench/audit.ts                   # 1,000,000 events (seeding takes a while)
 *   BENCH_EVENTS=200000 npx tsx test/bench/audit.ts
 *
 * 1. `audit search` latency (p50/p95, the code path of the command: `auditSearch`, which also drops
 *    non-action events and applies --kind) over BENCH_EVENTS events seeded with the bulk path
 *    (`appendMany`, 500 events per commit) across 5 resources, 3 identities, postgres and http sessions.
 *    Query shapes: one word, two words + resource, --decision deny, --kind http, no filter (latest actions),
 *    --identity + --since 24h, a rare word.
 * 2. Approval wake-up: a waiter in one store connection, the decision through a second connection; time
 *    from the decision's commit to the waiter resolving (target ≤ 200 ms PostgreSQL, ≤ 1 s SQLite).
 * 3. Approvals screen refresh: listing 50 pending requests.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { decideApproval } from '../../src/approvals/decide.js';
import { auditSearch, type AuditSearchOptions } from '../../src/audit/search.js';
import { openStore, type Identity, type NewEvent, type SessionStore } from '../../src/store/index.js';
import { startPostgres } from '../helpers/postgres.js';

const TABLES = Array.from({ length: 200 }, (_, i) => `tbl${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))}x`);
const COLUMNS = ['id', 'email', 'name', 'created_at', 'amount', 'status', 'customer_id', 'ssn', 'phone', 'notes'];
const IDENTITIES: Identity[] = ['bench-bot', 'etl-job', 'analyst'].map((subject) => ({ issuer: 'https://idp.bench', subject, groups: ['agents'], kind: 'machine', verified: true }));
const approver: Identity = { issuer: 'https://idp.bench', subject: 'dba-1', groups: ['dba'], kind: 'human', verified: true };

let seed = 7;
function rnd(n: number): number {
  seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff; // imul: the plain product loses its low bits past 2^53
  return seed % n;
}
function pick<T>(a: readonly T[]): T {
  return a[rnd(a.length)]!;
}

function randomEvent(i: number, http: boolean): NewEvent {
  const t = pick(TABLES);
  const r = rnd(10);
  if (i % 50_000 === 1) return { type: 'query', sql: 'SELECT zanzibar_marker FROM rare', decision: 'allow', kinds: ['select'], tables: ['rare'] };
  if (http) {
    if (r < 8) return { type: 'http.request', method: pick(['GET', 'POST', 'DELETE']), path: `/v1/${t}/${rnd(10_000)}`, decision: rnd(25) === 0 ? 'deny' : 'allow', status: 200 };
    return { type: 'result', rows: 0, bytes: rnd(100_000), durationMs: rnd(500) / 10 };
  }
  if (r < 6) {
    return { type: 'query', sql: `SELECT ${pick(COLUMNS)}, ${pick(COLUMNS)} FROM public.${t} WHERE ${pick(COLUMNS)} = ? LIMIT 50`, decision: rnd(25) === 0 ? 'deny' : 'allow', kinds: ['select'], tables: [t] };
  }
  if (r < 7) return { type: 'query', sql: `UPDATE ${t} SET ${pick(COLUMNS)} = ? WHERE id = ?`, decision: 'approve', rule: 'gate/writes', kinds: ['update'], tables: [t] };
  if (r < 8) return { type: 'mask.summary', entities: { email: rnd(5) + 1 } };
  return { type: 'result', rows: rnd(1000), bytes: rnd(100_000), durationMs: rnd(500) / 10 };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function seedEvents(store: SessionStore, total: number, log: (s: string) => void): Promise<number> {
  const perSession = 2000;
  const t0 = performance.now();
  let done = 0;
  let next = 0;
  const sessions = Math.ceil(total / perSession);
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let k = next++; k < sessions; k = next++) {
        const http = k % 5 === 4;
        const s = await store.createSession({ resource: http ? 'crm-api' : `db${k % 4}`, kind: http ? 'http' : 'postgres', identity: IDENTITIES[k % 3]!, clientAddr: 'seed' });
        for (let j = 0; j < perSession && k * perSession + j < total; j += 500) {
          const n = Math.min(500, perSession - j, total - (k * perSession + j));
          await store.appendMany(s.id, Array.from({ length: n }, (_, x) => randomEvent(k * perSession + j + x, http)));
          const before = done;
          done += n;
          if (Math.floor(before / 100_000) !== Math.floor(done / 100_000)) log(`  seeded ${Math.floor(done / 100_000) * 100_000} (${Math.round(done / ((performance.now() - t0) / 1000))}/s)`);
        }
      }
    }),
  );
  return done / ((performance.now() - t0) / 1000);
}

const SHAPES: [string, AuditSearchOptions][] = [
  ['one word', { text: 'email' }],
  ['two words + --resource', { text: 'customer_id tblaax', resource: 'db1' }],
  ['--decision deny', { decision: 'deny' }],
  ['--kind http', { kind: 'http' }],
  ['no filter (latest actions)', {}],
  ['--identity + --since 24h', { identity: 'etl-job', since: new Date(Date.now() - 86_400_000).toISOString() }],
  ['rare word', { text: 'zanzibar_marker' }],
  ['prefix word*', { text: 'tblb*' }],
];

async function searchLatency(store: SessionStore, o: AuditSearchOptions, runs: number): Promise<{ p50: number; p95: number; hits: number }> {
  const times: number[] = [];
  let hits = 0;
  await auditSearch(store, o); // warm
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    hits = (await auditSearch(store, o)).length;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { p50: pct(times, 50), p95: pct(times, 95), hits };
}

async function wakeLatency(url: string, runs: number): Promise<{ p50: number; p95: number }> {
  const waiter = await openStore(url);
  const decider = await openStore(url);
  try {
    const s = await waiter.createSession({ resource: 'db0', kind: 'postgres', identity: IDENTITIES[0]!, clientAddr: '' });
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const a = await waiter.createApproval({ sessionId: s.id, resource: 'db0', sha256: 'x', maskedText: 'UPDATE t SET x = ?', requester: IDENTITIES[0]!, rule: 'g/r', approvers: ['group:dba'], minApprovals: 1, expiresAt: new Date(Date.now() + 60_000).toISOString() });
      const woke = waiter.waitForApprovalChange(a.id, undefined, a.version).then(() => performance.now());
      await new Promise((r) => setTimeout(r, 20 + rnd(200)));
      // From the moment the approver's command starts deciding to the moment the waiter has the result.
      const decideStart = performance.now();
      await decideApproval(decider, { id: a.id, decision: 'approve', identity: approver });
      times.push((await woke) - decideStart);
    }
    times.sort((x, y) => x - y);
    return { p50: pct(times, 50), p95: pct(times, 95) };
  } finally {
    await waiter.close();
    await decider.close();
  }
}

async function listLatency(store: SessionStore): Promise<number> {
  const s = await store.createSession({ resource: 'db0', kind: 'postgres', identity: IDENTITIES[0]!, clientAddr: '' });
  for (let i = 0; i < 50; i++) {
    await store.createApproval({ sessionId: s.id, resource: 'db0', sha256: 'x', maskedText: `UPDATE t SET x = ? WHERE id = ${i}`, requester: IDENTITIES[0]!, rule: 'g/r', approvers: ['group:dba'], minApprovals: 1, expiresAt: new Date(Date.now() + 60_000).toISOString() });
  }
  const times: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    await store.listApprovals({ state: 'pending' });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return pct(times, 95);
}

export async function run(log: (s: string) => void = (s) => process.stderr.write(`${s}\n`)): Promise<string> {
  const total = Number(process.env['BENCH_EVENTS'] ?? 1_000_000);
  const runs = Number(process.env['BENCH_RUNS'] ?? 40);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlpctl-bench-audit-'));
  const pg = await startPostgres();
  const rows: string[] = [];
  const results = new Map<string, Map<string, string>>();
  const put = (metric: string, engine: string, value: string) => {
    if (!results.has(metric)) results.set(metric, new Map());
    results.get(metric)!.set(engine, value);
  };
  try {
    for (const engine of ['sqlite', 'postgres'] as const) {
      const url = engine === 'sqlite' ? `sqlite:${path.join(dir, 'bench.db')}` : pg.url;
      const store = await openStore(url, { sqliteSynchronous: 'normal' });
      try {
        log(`${engine}: seeding ${total} events`);
        const rate = await seedEvents(store, total, log);
        put('bulk seed, events/s', engine, Math.round(rate).toLocaleString('en'));
        for (const [name, o] of SHAPES) {
          const r = await searchLatency(store, o, runs);
          put(`audit search ${name}: p50 / p95 ms (hits)`, engine, `${r.p50.toFixed(1)} / ${r.p95.toFixed(1)} (${r.hits}) ${r.p95 <= 200 ? '✓' : '✗'}`);
        }
        const w = await wakeLatency(url, 15);
        put('approval wake-up: p50 / p95 ms', engine, `${w.p50.toFixed(1)} / ${w.p95.toFixed(1)} ${w.p95 <= (engine === 'postgres' ? 200 : 1000) ? '✓' : '✗'}`);
        put('approvals list (50 pending), p95 ms', engine, `${(await listLatency(store)).toFixed(1)}`);
      } finally {
        await store.close();
      }
    }
  } finally {
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  rows.push(`Audit over ${total.toLocaleString('en')} events, ${runs} runs per query; ${os.cpus().length} CPUs, Node ${process.version}. Targets: search p95 ≤ 200 ms; wake-up ≤ 200 ms (PostgreSQL), ≤ 1 s (SQLite).`, '');
  rows.push('| metric | SQLite | PostgreSQL |', '|---|---:|---:|');
  for (const [metric, m] of results) rows.push(`| ${metric} | ${m.get('sqlite') ?? ''} | ${m.get('postgres') ?? ''} |`);
  return `${rows.join('\n')}\n`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  run()
    .then((table) => process.stdout.write(table))
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    });
}
