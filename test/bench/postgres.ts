/**
 * PostgreSQL tunnel benchmark, side by side in one run (`npm run build` first; `npx tsx test/bench/postgres.ts`):
 *
 *   direct        straight to the embedded PostgreSQL
 *   dlpctl audit  `dlpctl connect` (the built binary, its own process) with a permissive policy, no masks:
 *                 every statement classified, decided and recorded durably before it is forwarded
 *   dlpctl mask   the same with masking: the recommended entity masks plus a column rule (no row limit, so the
 *                 large result is not cut at 100000 rows)
 *   pgbouncer     /usr/sbin/pgbouncer in session mode, when installed (the row is skipped otherwise)
 *   node relay    a TCP relay in Node with nothing else (two sockets piped, no protocol, policy or recording),
 *                 run with the tunnel's Node flags: what any Node proxy costs on this machine, the ceiling for
 *                 dlpctl
 *
 * Measured, for each path:
 * - first, on the fresh tunnel: two large results streamed by psql to /dev/null, `SELECT g, md5(g::text) FROM
 *   generate_series(1, 1000000) g` (nothing in it to mask: the pass-through cost) and a 1M-row people table
 *   whose ssn and card columns the masking path masks by column rule (every row rebuilt), in MB/s, then the
 *   tunnel's peak RSS (VmHWM);
 * - then BENCH_ROUNDS (3) interleaved rounds, the paths in turn: both large results again and `pgbench -S -c 8
 *   -T BENCH_SECONDS (5)`, simple protocol then `-M prepared` (every Execute recorded); each path's median is
 *   reported, with the proxy's CPU per statement from /proc (BENCH_STRACE=DIR / BENCH_PERF=DIR run each tunnel
 *   under `strace -c` / `perf record`; BENCH_CPU_PROF=DIR writes V8 profiles; BENCH_PATHS=name,… keeps only
 *   the paths whose names contain one of these, BENCH_MODES=simple or prepared only that pgbench mode;
 *   BENCH_B_BIN=…/bin/dlpctl.js of another built checkout and/or BENCH_B_NODE_FLAGS (space-separated) add the audit tunnel again
 *   as "dlpctl policy + audit B", for an A/B of a change in the same rounds);
 *   The table shows, beside each simple run, how much of the machine's CPU stayed idle (/proc/stat): where a
 *   path's TPS lags its CPU, it is the latency of its round trip that the clients wait on.
 * - last, the latency of a sequential `SELECT 1` (2000 queries, node-postgres) p50/p99 and what each path adds
 *   to direct, and the same with a parameter (extended protocol). The peak RSS over the whole run goes to stderr.
 * Targets: pgbench ≥ 0.7× direct; large result ≥ 0.9× (pass-through) / ≥ 0.5× (two masked columns); RSS ≤
 * 150 MB; added latency p50 ≤ 0.3 ms, p99 ≤ 1 ms. BENCH_VERBOSE=1 prints progress; BENCH_LATENCY_N (2000) statements, BENCH_LATENCY_PACE_MS
 * (0) apart (20: an agent's pace; use a smaller N); BENCH_LATENCY_DUMP=DIR writes each
 * latency statement's start and time per path (to see where a tail comes from); BENCH_SPLIT=1 with a variant B splits
 * pgbench's 8 clients over the two tunnel processes at once (would a tunnel on both cores go faster?).
 */
import { execFile, fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { TUNNEL_NODE_FLAGS } from '../../src/cli/tunnel-node-flags.js';
import { demoSeedSql } from '../../src/demo/seed.js';
import { freePort, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { cpuMs, idlePercent, machineTicks, vmHwmMb } from './proc.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/dlpctl.js');
const PGBOUNCER = '/usr/sbin/pgbouncer';
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);
/** Interleaved rounds per path (the medians are reported). */
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const LATENCY_N = Number(process.env['BENCH_LATENCY_N'] ?? 2000);
/** A pause between the latency statements, ms (0: back to back): an agent's pace, where code and caches go cold between statements. */
const LATENCY_PACE_MS = Number(process.env['BENCH_LATENCY_PACE_MS'] ?? 0);
const LARGE_SQL = 'SELECT g, md5(g::text) FROM generate_series(1, 1000000) g';
/** 1M rows of which the masking tunnel masks two columns by column rule (the issue's "two masked columns"). */
export const PEOPLE_SQL = 'SELECT * FROM bench_people';
export const PEOPLE_SEED = `CREATE TABLE bench_people AS SELECT g AS id, 'name ' || g AS name, lpad((g::bigint * 7919 % 1000000000)::text, 9, '0') AS ssn,
  '4111 1111 1111 ' || lpad((g % 10000)::text, 4, '0') AS card FROM generate_series(1, 1000000) g`;

interface Path {
  name: string;
  url: string;
  pid?: number;
  note?: string;
}
interface Row {
  name: string;
  tps?: number;
  /** pgbench -S -c 8 -M prepared (every Execute recorded through dlpctl), and the proxy's CPU per statement. */
  ptps?: number;
  pcpuUs?: number;
  /** The proxy's CPU per pgbench statement, µs (its own process only). */
  cpuUs?: number;
  /**
   * The share of the whole machine's CPU left idle during the simple pgbench run: with every party on one 2-core
   * machine, what a path leaves idle is latency (clients waiting on it, or on a commit), not work.
   */
  idlePct?: number;
  p50?: number;
  p99?: number;
  /** The same with a parameter (extended protocol). */
  xp50?: number;
  xp99?: number;
  mbps?: number;
  /** The 1M-row people result (two columns masked through `dlpctl + masking`). */
  peopleMbps?: number;
  /** The same two results' first run, on a fresh tunnel. */
  firstMbps?: number;
  firstPeopleMbps?: number;
  rssMb?: number;
  note?: string;
}

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, encoding: 'utf8', maxBuffer: 16 << 20, timeout: 300_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0, stdout, stderr });
    });
  });
}

/**
 * The tunnel's config: `audit`, every statement allowed and recorded; `mask`, the recommended entity masks plus
 * column rules (the demo's customers.ssn, the bench's people table).
 */
export function tunnelConfig(server: TestPostgres, kind: 'audit' | 'mask'): string {
  const db = decodeURIComponent(new URL(server.url).pathname.slice(1));
  const resource = `version: 1
resources:
  db:
    kind: postgres
    target: postgres://${server.user}@127.0.0.1:${server.port}/${db}
    password: \${env:BENCH_PG_PASSWORD}
    tls: { mode: disable }
    policies: [${kind === 'audit' ? 'open' : 'masking'}]
`;
  if (kind === 'audit') return `${resource}policies:\n  open:\n    - name: everything\n      action: allow\n`;
  return `${resource}policies:
  masking:
    - name: pii
      action: mask
      entities: [credit_card, us_ssn, email, phone, iban, secrets]
      with: partial
    - name: ssn-column
      action: mask
      columns: [public.customers.ssn]
    - name: people-columns
      action: mask
      columns: [public.bench_people.ssn, public.bench_people.card]
      with: partial
`;
}

/** The tunnels' environment: the target's password, and a home of their own in `dir`. */
export function tunnelEnv(server: TestPostgres, dir: string): NodeJS.ProcessEnv {
  return { ...process.env, BENCH_PG_PASSWORD: server.password, HOME: dir, XDG_DATA_HOME: dir, NO_COLOR: '1' };
}

/** Starts `dlpctl connect db` as its own process and resolves with the URL it prints. */
export async function startTunnel(dir: string, name: string, yaml: string, env: NodeJS.ProcessEnv, store = `sqlite:${path.join(dir, `${name}.db`)}`, bin = BIN, nodeFlags: string[] = []): Promise<{ url: string; child: ChildProcess }> {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, yaml);
  // BENCH_CPU_PROF=DIR: each tunnel writes a V8 CPU profile there when it exits.
  const prof = process.env['BENCH_CPU_PROF'];
  // BENCH_STRACE=DIR: each tunnel runs under `strace -c -f`, its syscall counts written to DIR/NAME.txt;
  // BENCH_PERF=DIR: under `perf record -g` (JS frames named by --perf-basic-prof) into DIR/NAME.data.
  const straceDir = process.env['BENCH_STRACE'];
  const perfDir = process.env['BENCH_PERF'];
  const args = [
    ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []),
    ...(perfDir ? ['--perf-basic-prof-only-functions'] : []),
    ...nodeFlags,
    bin, 'connect', 'db', '--config', file, '--store', store,
  ];
  const [cmd, argv] = straceDir
    ? ['strace', ['-c', '-f', '-o', path.join(straceDir, `${name}.txt`), process.execPath, ...args]]
    : perfDir
      ? ['perf', ['record', '-F', '1999', '-g', '-o', path.join(perfDir, `${name}.data`), process.execPath, ...args]]
      : [process.execPath, args];
  const child = spawn(cmd, argv, {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl).trim());
    });
    child.once('exit', (code) => reject(new Error(`dlpctl connect exited (${code}): ${err}`)));
  });
  return { url, child };
}

/** pgbench -S -c CLIENTS (8; simple protocol by default): TPS, statements, and the proxy's CPU per statement when its pid is known. */
export async function pgbenchTps(url: string, pid?: number, mode: 'simple' | 'prepared' = 'simple', clients = 8): Promise<{ tps?: number; cpuUs?: number; n?: number; idlePct?: number }> {
  const cpu0 = cpuMs(pid);
  const ticks0 = machineTicks();
  const r = await sh('pgbench', ['-n', '-S', '-c', String(clients), '-j', '2', '-T', String(SECONDS), '-M', mode, url]);
  const cpu1 = cpuMs(pid);
  const idlePct = idlePercent(ticks0, machineTicks());
  const m = /tps = ([\d.]+)/.exec(r.stdout);
  const n = /number of transactions actually processed: (\d+)/.exec(r.stdout);
  if (!m) process.stderr.write(`pgbench failed: ${r.stderr.slice(0, 300)}\n`);
  return {
    ...optional('tps', m ? Number(m[1]) : undefined),
    ...optional('n', n ? Number(n[1]) : undefined),
    ...optional('cpuUs', cpu0 !== undefined && cpu1 !== undefined && n ? ((cpu1 - cpu0) * 1000) / Number(n[1]) : undefined),
    ...optional('idlePct', idlePct),
  };
}

/** Sequential statements: `SELECT 1` (simple protocol), or with a parameter (extended: Parse/Bind/Describe/Execute/Sync). */
async function latency(url: string, extended = false, name = ''): Promise<{ p50: number; p99: number }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const q = extended ? () => c.query('SELECT $1::int AS n', [1]) : () => c.query('SELECT 1');
  for (let i = 0; i < 200; i += 1) await q();
  const times: number[] = [];
  const starts: number[] = [];
  for (let i = 0; i < LATENCY_N; i += 1) {
    const t0 = performance.now();
    await q();
    times.push(performance.now() - t0);
    starts.push(t0);
    if (LATENCY_PACE_MS > 0) await new Promise((r) => setTimeout(r, LATENCY_PACE_MS));
  }
  await c.end();
  // BENCH_LATENCY_DUMP=DIR: each statement's start (ms) and time, one file per path and protocol (where a tail comes from)
  const dump = process.env['BENCH_LATENCY_DUMP'];
  if (dump) {
    fs.mkdirSync(dump, { recursive: true });
    fs.writeFileSync(path.join(dump, `${name.replace(/[^a-z0-9]+/gi, '-')}${extended ? '-extended' : ''}.tsv`), starts.map((t, i) => `${(t - starts[0]!).toFixed(3)}\t${times[i]!.toFixed(3)}`).join('\n'));
  }
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(times.length * 0.5)]!, p99: times[Math.floor(times.length * 0.99)]! };
}

export async function largeMbps(url: string, bytes: number, sql = LARGE_SQL): Promise<number | undefined> {
  const t0 = performance.now();
  const r = await sh('psql', ['-X', '-At', '-o', '/dev/null', '-c', sql, url]);
  const s = (performance.now() - t0) / 1000;
  if (r.code !== 0) {
    process.stderr.write(`large result failed: ${r.stderr.slice(0, 300)}\n`);
    return undefined;
  }
  return bytes / 1e6 / s;
}

async function startPgbouncer(dir: string, server: TestPostgres, db: string): Promise<{ url: string; child: ChildProcess } | null> {
  if (!fs.existsSync(PGBOUNCER)) return null;
  const port = await freePort();
  const users = path.join(dir, 'userlist.txt');
  fs.writeFileSync(users, `"${server.user}" "${server.password}"\n`);
  const ini = path.join(dir, 'pgbouncer.ini');
  fs.writeFileSync(
    ini,
    `[databases]\n${db} = host=127.0.0.1 port=${server.port} dbname=${db} user=${server.user} password=${server.password}\n` +
      `[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = ${port}\nunix_socket_dir =\nauth_type = scram-sha-256\nauth_file = ${users}\n` +
      `pool_mode = session\nmax_client_conn = 100\ndefault_pool_size = 20\nlogfile = ${path.join(dir, 'pgbouncer.log')}\n`,
  );
  const asRoot = process.getuid?.() === 0;
  if (asRoot) fs.chmodSync(dir, 0o777);
  const child = spawn(asRoot ? 'runuser' : PGBOUNCER, asRoot ? ['-u', 'postgres', '--', PGBOUNCER, ini] : [ini], { stdio: 'ignore' });
  const url = `postgres://${server.user}:${server.password}@127.0.0.1:${port}/${db}`;
  for (let i = 0; i < 50; i += 1) {
    const r = await sh('psql', ['-X', '-At', '-c', 'select 1', url]);
    if (r.code === 0) return { url, child };
    await new Promise((res) => setTimeout(res, 100));
  }
  child.kill();
  return null;
}

/** The reference relay (its own process): accepts on a free port, pipes each connection to the server. */
function nodeRelayRole(targetPort: number): void {
  const server = net.createServer({ noDelay: true }, (client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort, noDelay: true });
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as net.AddressInfo).port }));
  process.on('SIGTERM', () => process.exit(0));
}

function startNodeRelay(server: TestPostgres): Promise<{ url: string; child: ChildProcess }> {
  const child = fork(fileURLToPath(import.meta.url), ['--role', 'node-relay', String(server.port)], {
    execArgv: [...TUNNEL_NODE_FLAGS, '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve({ url: server.url.replace(`:${server.port}/`, `:${(m as { port: number }).port}/`), child }));
    child.once('exit', (code) => reject(new Error(`node relay exited with ${code}`)));
  });
}

function progress(s: string): void {
  if (process.env['BENCH_VERBOSE']) process.stderr.write(`[postgres bench] ${s}\n`);
}

function push(into: number[], v: number | undefined): void {
  if (v !== undefined) into.push(v);
}

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** `{ [key]: value }`, or nothing when the value is undefined (exactOptionalPropertyTypes). */
function optional<K extends string>(key: K, v: number | undefined): { [P in K]?: number } {
  return (v === undefined ? {} : { [key]: v }) as { [P in K]?: number };
}

function f(n: number | undefined, digits = 0): string {
  return n === undefined ? '–' : n.toFixed(digits);
}

export async function run(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlpctl-bench-pg-'));
  const server = await startPostgres();
  const children: ChildProcess[] = [];
  try {
    const db = decodeURIComponent(new URL(server.url).pathname.slice(1));
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(demoSeedSql(50));
    const bytes = Number(
      (await admin.query(`SELECT sum(octet_length(g::text) + octet_length(md5(g::text)) + 2)::bigint AS b FROM generate_series(1, 1000000) g`)).rows[0].b,
    );
    await admin.query(PEOPLE_SEED);
    const peopleBytes = Number(
      (await admin.query(`SELECT sum(octet_length(id::text) + octet_length(name) + octet_length(ssn) + octet_length(card) + 4)::bigint AS b FROM bench_people`)).rows[0].b,
    );
    await admin.end();
    const init = await sh('pgbench', ['-i', '-q', '-s', '1', server.url]);
    if (init.code !== 0) throw new Error(`pgbench -i: ${init.stderr}`);

    const env = tunnelEnv(server, dir);
    const audit = await startTunnel(dir, 'audit', tunnelConfig(server, 'audit'), env);
    children.push(audit.child);
    const masked = await startTunnel(dir, 'mask', tunnelConfig(server, 'mask'), env);
    children.push(masked.child);
    // The same audit tunnel recording into a PostgreSQL store (on the same server, its own database).
    // BENCH_B_BIN=…/bin/dlpctl.js (another checkout, built) and/or BENCH_B_NODE_FLAGS: the audit tunnel again
    // as a variant "B", measured in the same interleaved rounds (an A/B of a change, free of the VM's phases).
    const variantPath = async (): Promise<Path[]> => {
      const bBin = process.env['BENCH_B_BIN'];
      const bFlags = process.env['BENCH_B_NODE_FLAGS']?.split(' ').filter(Boolean) ?? [];
      if (!bBin && bFlags.length === 0) return [];
      const b = await startTunnel(dir, 'audit-b', tunnelConfig(server, 'audit'), env, undefined, bBin ? path.resolve(bBin) : BIN, bFlags);
      children.push(b.child);
      return [{ name: 'dlpctl policy + audit B', url: b.url, ...(b.child.pid ? { pid: b.child.pid } : {}) }];
    };
    const pgStore = await startTunnel(dir, 'audit-pg', tunnelConfig(server, 'audit'), env, await server.newDatabase());
    children.push(pgStore.child);
    const paths: Path[] = [
      { name: 'direct', url: server.url },
      { name: 'dlpctl policy + audit', url: audit.url, ...(audit.child.pid ? { pid: audit.child.pid } : {}) },
      ...(await variantPath()),
      { name: 'dlpctl + masking', url: masked.url, ...(masked.child.pid ? { pid: masked.child.pid } : {}) },
      { name: 'dlpctl audit, PostgreSQL store', url: pgStore.url, ...(pgStore.child.pid ? { pid: pgStore.child.pid } : {}) },
    ];
    const bouncer = await startPgbouncer(dir, server, db);
    if (bouncer) {
      children.push(bouncer.child);
      paths.push({ name: 'pgbouncer (session)', url: bouncer.url });
    }
    const relay = await startNodeRelay(server);
    children.push(relay.child);
    paths.push({ name: 'node relay (reference)', url: relay.url, ...(relay.child.pid ? { pid: relay.child.pid } : {}) });
    // BENCH_PATHS=a,b: only the paths whose names contain one of these (to profile one tunnel quickly).
    const only = process.env['BENCH_PATHS']?.split(',').filter(Boolean);
    if (only) paths.splice(0, paths.length, ...paths.filter((p) => only.some((o) => p.name.includes(o))));
    // BENCH_MODES=simple or prepared: only that pgbench mode.
    const modes = process.env['BENCH_MODES'] ?? 'simple,prepared';

    // 1. On each fresh tunnel, first: the two large results (their peak RSS is what results of that size
    //    cost, the target being ≤ 150 MB whatever the size, not what eight pgbench sessions left behind).
    const first = new Map<string, { mbps?: number; peopleMbps?: number; rssMb?: number }>();
    // BENCH_PGBENCH_ONLY=1: only the pgbench rounds (TPS and the proxy's CPU per statement).
    const pgbenchOnly = process.env['BENCH_PGBENCH_ONLY'] === '1';
    for (const p of pgbenchOnly ? [] : paths) {
      progress(`${p.name}: large results on a fresh tunnel`);
      const mbps = await largeMbps(p.url, bytes);
      const peopleMbps = await largeMbps(p.url, peopleBytes, PEOPLE_SQL);
      first.set(p.name, { ...optional('mbps', mbps), ...optional('peopleMbps', peopleMbps), ...optional('rssMb', vmHwmMb(p.pid)) });
    }
    // 2. ROUNDS interleaved rounds (the paths in turn, the order reversed every other round): the large
    //    results warm, then pgbench. A single run per path moved a ratio by 0.2 with the VM's phases.
    const runs = new Map<string, { mbps: number[]; peopleMbps: number[]; tps: number[]; cpuUs: number[]; idlePct: number[]; ptps: number[]; pcpuUs: number[] }>(
      paths.map((p) => [p.name, { mbps: [], peopleMbps: [], tps: [], cpuUs: [], idlePct: [], ptps: [], pcpuUs: [] }]),
    );
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const p of round % 2 ? [...paths].reverse() : paths) {
        progress(`${p.name}: round ${round + 1} of ${ROUNDS}`);
        const r = runs.get(p.name)!;
        if (!pgbenchOnly) {
          push(r.mbps, await largeMbps(p.url, bytes));
          push(r.peopleMbps, await largeMbps(p.url, peopleBytes, PEOPLE_SQL));
        }
        if (modes.includes('simple')) {
          const b = await pgbenchTps(p.url, p.pid);
          push(r.tps, b.tps);
          push(r.cpuUs, b.cpuUs);
          push(r.idlePct, b.idlePct);
        }
        if (modes.includes('prepared')) {
          const pb = await pgbenchTps(p.url, p.pid, 'prepared');
          push(r.ptps, pb.tps);
          push(r.pcpuUs, pb.cpuUs);
        }
      }
    }
    // BENCH_SPLIT=1 (with a variant B): the 8 pgbench clients split over two tunnel processes, 4 each at once, against
    // one tunnel with all 8 in the same window: what a tunnel that used both cores would reach (each its own store).
    if (process.env['BENCH_SPLIT'] === '1') {
      const a = paths.find((p) => p.name === 'dlpctl policy + audit');
      const b = paths.find((p) => p.name === 'dlpctl policy + audit B');
      if (a && b) {
        for (let round = 0; round < ROUNDS; round += 1) {
          const one = await pgbenchTps(a.url, a.pid);
          const [x, y] = await Promise.all([pgbenchTps(a.url, a.pid, 'simple', 4), pgbenchTps(b.url, b.pid, 'simple', 4)]);
          const n = (x.n ?? 0) + (y.n ?? 0);
          const cpuUs = n ? ((x.cpuUs ?? 0) * (x.n ?? 0) + (y.cpuUs ?? 0) * (y.n ?? 0)) / n : undefined;
          process.stdout.write(
            `split round ${round + 1}: one tunnel, 8 clients: ${f(one.tps)} TPS at ${f(one.cpuUs, 1)} µs; two tunnels, 4 clients each: ${f((x.tps ?? 0) + (y.tps ?? 0))} TPS at ${f(cpuUs, 1)} µs\n`,
          );
        }
      }
    }
    const rows: Row[] = [];
    for (const p of paths) {
      progress(`${p.name}: latency`);
      const lat = pgbenchOnly ? { p50: 0, p99: 0 } : await latency(p.url, false, p.name);
      const ext = pgbenchOnly ? { p50: 0, p99: 0 } : await latency(p.url, true, p.name);
      const overall = vmHwmMb(p.pid);
      if (overall !== undefined) process.stderr.write(`bench: ${p.name} peak RSS over the whole run (pgbench included) ${overall.toFixed(1)} MB\n`);
      const r = runs.get(p.name)!;
      const f0 = first.get(p.name) ?? {};
      rows.push({
        name: p.name,
        ...optional('tps', median(r.tps)),
        ...optional('cpuUs', median(r.cpuUs)),
        ...optional('idlePct', median(r.idlePct)),
        ...optional('ptps', median(r.ptps)),
        ...optional('pcpuUs', median(r.pcpuUs)),
        p50: lat.p50,
        p99: lat.p99,
        xp50: ext.p50,
        xp99: ext.p99,
        ...optional('mbps', median(r.mbps)),
        ...optional('peopleMbps', median(r.peopleMbps)),
        ...optional('firstMbps', f0.mbps),
        ...optional('firstPeopleMbps', f0.peopleMbps),
        ...optional('rssMb', f0.rssMb),
      });
    }
    if (!bouncer) rows.push({ name: 'pgbouncer', note: `skipped: ${PGBOUNCER} is not installed (Debian package pgbouncer)` });

    const base = rows[0]!;
    const bouncerRow = rows.find((r) => r.name.startsWith('pgbouncer') && r.tps !== undefined);
    const relayRow = rows.find((r) => r.name.startsWith('node relay'));
    const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? `${(a / b).toFixed(2)}×` : '–');
    const lines = [
      `PostgreSQL tunnel, ${os.cpus().length} CPUs. Medians of ${ROUNDS} interleaved rounds: pgbench -S -c 8 -T ${SECONDS} (simple, then -M prepared), and two 1M-row results: generate_series with md5 (${(bytes / 1e6).toFixed(1)} MB of text, nothing to mask) and a people table (${(peopleBytes / 1e6).toFixed(1)} MB) whose ssn and card columns the masking path masks by column rule; "first" is each result's first run, on a fresh tunnel (cold), and the RSS is read after it. SELECT 1 ×${LATENCY_N} sequential${LATENCY_PACE_MS > 0 ? `, ${LATENCY_PACE_MS} ms apart` : ''} (simple protocol; then SELECT $1 with a parameter: extended protocol).`,
      '',
      '| path | pgbench TPS | vs direct | vs pgbouncer | proxy CPU µs / statement | vs node relay | machine idle % | -M prepared TPS | vs pgbouncer | CPU µs / statement | vs node relay | SELECT 1 p50 ms | p99 ms | added p50 / p99 ms | SELECT $1 p50 / p99 ms | added p50 / p99 ms | large result MB/s | vs direct | first, vs direct | people, 2 masked columns, MB/s | vs direct | first, vs direct | peak RSS after the first large results, MB |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ];
    for (const r of rows) {
      if (r.note) {
        lines.push(`| ${r.name} | ${r.note} | | | | | | | | | | | | | | | | | | | | | |`);
        continue;
      }
      const added = r === base ? '–' : `${f((r.p50 ?? 0) - (base.p50 ?? 0), 3)} / ${f((r.p99 ?? 0) - (base.p99 ?? 0), 3)}`;
      const xadded = r === base ? '–' : `${f((r.xp50 ?? 0) - (base.xp50 ?? 0), 3)} / ${f((r.xp99 ?? 0) - (base.xp99 ?? 0), 3)}`;
      const vs = (a: number | undefined, b: number | undefined) => (r === base ? '1.00×' : ratio(a, b));
      lines.push(
        `| ${r.name} | ${f(r.tps)} | ${vs(r.tps, base.tps)} | ${ratio(r.tps, bouncerRow?.tps)} | ${f(r.cpuUs, 1)} | ${ratio(r.cpuUs, relayRow?.cpuUs)} | ${f(r.idlePct, 1)} | ${f(r.ptps)} | ${ratio(r.ptps, bouncerRow?.ptps)} | ${f(r.pcpuUs, 1)} | ${ratio(r.pcpuUs, relayRow?.pcpuUs)} | ${f(r.p50, 3)} | ${f(r.p99, 3)} | ${added} | ${f(r.xp50, 3)} / ${f(r.xp99, 3)} | ${xadded} | ${f(r.mbps, 1)} | ${vs(r.mbps, base.mbps)} | ${vs(r.firstMbps, base.firstMbps)} | ${f(r.peopleMbps, 1)} | ${vs(r.peopleMbps, base.peopleMbps)} | ${vs(r.firstPeopleMbps, base.firstPeopleMbps)} | ${f(r.rssMb, 1)} |`,
      );
    }
    return lines.join('\n');
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const role = process.argv.indexOf('--role');
if (role !== -1 && process.argv[role + 1] === 'node-relay') nodeRelayRole(Number(process.argv[role + 2]));
else if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(await run());
}
