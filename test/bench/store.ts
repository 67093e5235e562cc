/**
 * Session store benchmark: SQLite and PostgreSQL (embedded, or DLPCTL_TEST_PG_URL) side by side.
 *
 *   npx tsx test/bench/store.ts                 # full run: 1,000,000 events for search
 *   BENCH_EVENTS=100000 npx tsx test/bench/store.ts
 *
 * 1. Durable append throughput: 8 writers (one session each), each awaiting every append before the next,
 *    as a proxy does (the statement is forwarded only once its event is durable); then the same writers with
 *    16 appends in flight each. Group commit is what makes this fast. Also measured, appends only: SQLite
 *    with `synchronous=NORMAL` (not power-loss durable) and PostgreSQL with 4 write lanes.
 * 2. Text search latency (p50/p95) over BENCH_EVENTS events seeded with the bulk path (`appendMany`, many
 *    events per commit): words that match ~0.5 % of events, two-word queries, a rare word and a very common
 *    word, and prefix queries (`tbla*`); each with the default limit (100), newest first.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { openStore, type Identity, type NewEvent, type SessionStore } from '../../src/store/index.js';
import { startPostgres } from '../helpers/postgres.js';

const TABLES = Array.from({ length: 200 }, (_, i) => `tbl${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))}x`);
const COLUMNS = ['id', 'email', 'name', 'created_at', 'amount', 'status', 'customer_id', 'ssn', 'phone', 'notes'];
const identity: Identity = { issuer: 'https://idp.bench', subject: 'bench-bot', groups: ['agents'], kind: 'machine', verified: true };

let seed = 42;
function rnd(n: number): number {
  seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff; // imul: the plain product loses its low bits past 2^53
  return seed % n;
}
function pick<T>(a: readonly T[]): T {
  return a[rnd(a.length)]!;
}

function randomEvent(i: number): NewEvent {
  const t = pick(TABLES);
  const c = pick(COLUMNS);
  const r = rnd(10);
  if (r < 6) {
    return { type: 'query', sql: `SELECT ${c}, ${pick(COLUMNS)} FROM public.${t} WHERE ${pick(COLUMNS)} = ${rnd(1_000_000)} LIMIT 50`, decision: rnd(20) === 0 ? 'deny' : 'allow', kinds: ['select'], tables: [t] };
  }
  if (r < 8) return { type: 'query', sql: `UPDATE ${t} SET ${c} = '***' WHERE id = ${i}`, decision: 'approve', rule: 'writes-need-dba', kinds: ['update'], tables: [t] };
  if (r < 9) return { type: 'http.request', method: 'POST', path: `/v1/${t}/${rnd(10_000)}`, decision: 'allow', status: 200 };
  return { type: 'result', rows: rnd(1000), bytes: rnd(100_000), durationMs: rnd(500) / 10 };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function appendThroughput(store: SessionStore, writers: number, inFlight: number, ms: number): Promise<{ rate: number; cpuUs: number }> {
  const sessions = await Promise.all(Array.from({ length: writers }, (_, w) => store.createSession({ resource: 'bench', kind: 'postgres', identity, clientAddr: `10.0.0.${w}:1` })));
  let count = 0;
  const end = performance.now() + ms;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(
    sessions.flatMap((s) =>
      Array.from({ length: inFlight }, async () => {
        while (performance.now() < end) {
          await store.append(s.id, randomEvent(count));
          count++;
        }
      }),
    ),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  for (const s of sessions) await store.endSession(s.id, 'ok', { statements: 0, denied: 0, masked: 0, rows: 0, bytesIn: 0, bytesOut: 0 });
  return { rate: count / elapsed, cpuUs: (cpu.user + cpu.system) / count };
}

async function seedEvents(store: SessionStore, total: number, log: (s: string) => void): Promise<number> {
  const perSession = 1000;
  const batch = 500;
  const t0 = performance.now();
  let done = 0;
  const sessionsNeeded = Math.ceil(total / perSession);
  let next = 0;
  // A few sessions written at once, each with large appendMany batches (one commit per batch).
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < sessionsNeeded) {
        next++;
        const s = await store.createSession({ resource: `db${rnd(5)}`, kind: 'postgres', identity, clientAddr: 'seed' });
        for (let k = 0; k < perSession && done < total; k += batch) {
          const n = Math.min(batch, perSession - k, total - done);
          done += n;
          const crossed = Math.floor(done / 100_000) > Math.floor((done - n) / 100_000);
          await store.appendMany(s.id, Array.from({ length: n }, (_, j) => randomEvent(k + j)));
          if (crossed) log(`  seeded ~${Math.floor(done / 100_000) * 100_000} events (${Math.round(done / ((performance.now() - t0) / 1000))}/s)`);
        }
      }
    }),
  );
  return done / ((performance.now() - t0) / 1000);
}

async function searchLatency(store: SessionStore): Promise<{ p50: number; p95: number; max: number; queries: number; avgHits: number }> {
  const queries: string[] = [];
  for (let i = 0; i < 60; i++) queries.push(pick(TABLES)); // ~0.5 % each
  for (let i = 0; i < 20; i++) queries.push(`${pick(TABLES)} ${pick(COLUMNS)}`);
  for (let i = 0; i < 10; i++) queries.push(`${rnd(1_000_000)}`); // rare
  for (let i = 0; i < 10; i++) queries.push(pick(['select', 'update', 'public', 'limit'])); // very common
  for (let i = 0; i < 10; i++) queries.push(`${pick(TABLES).slice(0, 4)}*`); // prefix shared by ~8 table names (~4 % of events)
  for (const q of queries.slice(0, 5)) await store.search({ text: q }); // warm up
  const times: number[] = [];
  let hits = 0;
  for (const q of queries) {
    const t0 = performance.now();
    hits += (await store.search({ text: q })).length;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { p50: pct(times, 50), p95: pct(times, 95), max: times[times.length - 1]!, queries: queries.length, avgHits: hits / queries.length };
}

interface Row {
  engine: string;
  metric: string;
  value: string;
  target: string;
  ok: string;
}

export async function run(log: (s: string) => void = (s) => process.stderr.write(`${s}\n`)): Promise<string> {
  const total = Number(process.env['BENCH_EVENTS'] ?? 1_000_000);
  const seconds = Number(process.env['BENCH_SECONDS'] ?? 5);
  const rows: Row[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlpctl-bench-'));
  const pg = await startPostgres();
  try {
    const only = process.env['BENCH_ENGINES']?.split(',');
    const engines: [string, string, number, Parameters<typeof openStore>[1]][] = [
      ['sqlite', `sqlite:${path.join(dir, 'store.db')}`, 20_000, {}],
      ['sqlite-normal', `sqlite:${path.join(dir, 'normal.db')}`, 20_000, { sqliteSynchronous: 'normal' as const }],
      // As `dlpctl connect` opens the default store: commits on this thread, a maintenance thread beside.
      ['sqlite-tunnel', `sqlite:${path.join(dir, 'tunnel.db')}`, 20_000, { sqliteSynchronous: 'normal' as const, threads: 'tunnel' as const }],
      ['postgres', pg.url, 10_000, {}],
      ['postgres-4-lanes', await pg.newDatabase(), 10_000, { postgresWriteLanes: 4 }],
    ];
    for (const [engine, url, target, opts] of engines) {
      if (only && !only.includes(engine)) continue;
      const store = await openStore(url, opts);
      const appendOnly = engine === 'sqlite-normal' || engine === 'sqlite-tunnel' || engine === 'postgres-4-lanes';
      try {
        log(`${engine}: append, 8 writers x 1 in flight, ${seconds} s`);
        const a1 = await appendThroughput(store, 8, 1, seconds * 1000);
        rows.push({ engine, metric: 'durable appends/s, 8 writers × 1 in flight', value: Math.round(a1.rate).toLocaleString('en'), target: `≥ ${target.toLocaleString('en')}`, ok: a1.rate >= target ? '✓' : '✗' });
        rows.push({ engine, metric: 'CPU µs per append (whole process), 8 writers × 1 in flight', value: a1.cpuUs.toFixed(1), target: '', ok: '' });
        log(`${engine}: append, 8 writers x 16 in flight, ${seconds} s`);
        const a16 = await appendThroughput(store, 8, 16, seconds * 1000);
        rows.push({ engine, metric: 'durable appends/s, 8 writers × 16 in flight', value: Math.round(a16.rate).toLocaleString('en'), target: `≥ ${target.toLocaleString('en')}`, ok: a16.rate >= target ? '✓' : '✗' });
        rows.push({ engine, metric: 'CPU µs per append (whole process), 8 writers × 16 in flight', value: a16.cpuUs.toFixed(1), target: '', ok: '' });
        if (engine.startsWith('sqlite')) {
          const file = new URL(url.replace(/^sqlite:/, 'file://')).pathname;
          const wal = fs.existsSync(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0;
          rows.push({ engine, metric: 'WAL file after the append runs', value: `${(wal / 1e6).toFixed(1)} MB`, target: '≤ 64 MB', ok: wal <= 64e6 ? '✓' : '✗' });
        }
        if (appendOnly) continue;
        log(`${engine}: seeding ${total} events`);
        const rate = await seedEvents(store, total, log);
        rows.push({ engine, metric: `bulk seed (appendMany ×500) events/s`, value: Math.round(rate).toLocaleString('en'), target: '', ok: '' });
        if (engine === 'postgres') {
          const c = new (await import('pg')).default.Client({ connectionString: url });
          await c.connect();
          await c.query('VACUUM ANALYZE events');
          await c.end();
        }
        const info = await store.info();
        log(`${engine}: searching over ${info.events} events`);
        const s = await searchLatency(store);
        rows.push({
          engine,
          metric: `text search over ${info.events.toLocaleString('en')} events (${s.queries} queries, avg ${Math.round(s.avgHits)} hits): p50 / p95 / max ms`,
          value: `${s.p50.toFixed(1)} / ${s.p95.toFixed(1)} / ${s.max.toFixed(1)}`,
          target: 'p95 ≤ 200',
          ok: s.p95 <= 200 ? '✓' : '✗',
        });
        rows.push({ engine, metric: 'store size', value: `${Math.round((info.sizeBytes ?? 0) / 1e6)} MB`, target: '', ok: '' });
        const t0 = performance.now();
        const v = await store.verify();
        rows.push({ engine, metric: `verify all chains (${v.eventsChecked.toLocaleString('en')} events)`, value: `${((performance.now() - t0) / 1000).toFixed(1)} s ${v.ok ? 'ok' : 'BAD'}`, target: '', ok: '' });
      } finally {
        await store.close();
      }
    }
  } finally {
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const header = `| engine | metric | value | target | |\n|---|---|---:|---|---|\n`;
  return `Session store on ${os.cpus().length} CPUs, ${os.platform()} ${os.release()}, Node ${process.version}\n\n${header}${rows
    .map((r) => `| ${r.engine} | ${r.metric} | ${r.value} | ${r.target} | ${r.ok} |`)
    .join('\n')}\n`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  run()
    .then((table) => {
      process.stdout.write(table);
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    });
}
