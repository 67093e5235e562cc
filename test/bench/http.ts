/**
 * HTTP tunnel benchmark, side by side in one run (each party in its own process):
 *
 *   direct           load generator → upstream
 *   dlpctl pass      → dlpctl HTTP tunnel without policies (token swap, recording to SQLite) → upstream
 *   dlpctl masking   → dlpctl with an LLM policy (pseudonymize + restore, JSON/SSE masking, recording) → upstream
 *   nginx            → nginx reverse proxy (keepalive upstream, no buffering), when /usr/sbin/nginx exists
 *   node proxy       → a reverse proxy in Node with nothing else (node:http server, undici pool, the key
 *                      injected, bodies streamed; no token check, policy, masking or recording), run with the
 *                      tunnel's Node flags: what any Node proxy costs on this machine, the ceiling for dlpctl
 *
 * 1. 1 KB JSON POST (a chat-completions body with an email and a card number), 32 connections, closed loop:
 *    requests/s and p99 latency, the median of BENCH_ROUNDS (3) interleaved rounds.
 * 2. SSE: time to first event (and, through masking, to the first non-empty delta) for a 200-delta stream.
 * 3. 100 MB response pass-through: MB/s (median of interleaved rounds after a warm-up), and the tunnel
 *    process's peak RSS growth.
 *
 *   npx tsx test/bench/http.ts            BENCH_SECONDS=5 (per load run); BENCH_LOAD_ONLY=1 skips 2 and 3;
 *                                         BENCH_PROF=DIR writes the proxies' CPU profiles (BENCH_PERF_MAP=1: their
 *                                         JIT symbols, /tmp/perf-PID.map, for `perf record -p PID`); BENCH_B_DIR=another
 *                                         checkout adds its two tunnels as variants "B" (an A/B in one run)
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Pool, request } from 'undici';
import { TUNNEL_NODE_FLAGS } from '../../src/cli/tunnel-node-flags.js';
import { cpuMs } from './proc.js';

export const self = fileURLToPath(import.meta.url);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);
/** Interleaved load rounds per party (the median round is reported). */
const LOAD_ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
/** Interleaved 100 MB rounds per party after a warm-up transfer (the median is reported). */
const BIG_ROUNDS = Number(process.env['BENCH_BIG_ROUNDS'] ?? 3);
const NGINX = '/usr/sbin/nginx';
const KEY = 'sk-bench-upstream-key-0123456789abcdef';
/** What a model streams: a word per delta. */
const WORDS = 'Sure, here is the summary you asked for: the quarterly numbers look fine and the team is on track.'.split(' ');

// ───────────────────────────── roles (child processes) ─────────────────────────────

async function upstreamRole(): Promise<void> {
  const reply = Buffer.from(JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'Write to <EMAIL_1> soon. '.repeat(30) }, finish_reason: 'stop' }] }));
  const chunk = Buffer.alloc(256 * 1024, 'a');
  const server = http.createServer((req, res) => {
    const u = req.url ?? '/';
    if (u.startsWith('/big')) {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(100 * 1024 * 1024) });
      let sent = 0;
      const pump = (): void => {
        while (sent < 400) {
          sent++;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    if (u.startsWith('/sse')) {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      let i = 0;
      const tick = (): void => {
        if (i === 200) {
          res.end('data: [DONE]\n\n');
          return;
        }
        res.write(`data: ${JSON.stringify({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: `${WORDS[i % WORDS.length]} ` }, finish_reason: null }] })}\n\n`);
        i++;
        setTimeout(tick, 1);
      };
      tick();
      return;
    }
    req.on('data', () => undefined);
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(reply.length) });
      res.end(reply);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.send!({ port: (server.address() as net.AddressInfo).port });
}

/** Answers the driver's RSS questions: current and peak RSS (polled; `rss-reset` restarts the peak). */
function reportRss(): void {
  let peak = process.memoryUsage.rss(); // rss() alone: memoryUsage() walks the heap spaces too, 1% of the tunnel CPU at this polling rate
  setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20).unref();
  process.on('message', (m: { type: string }) => {
    if (m.type === 'rss-reset') peak = process.memoryUsage.rss();
    process.send!({ rss: process.memoryUsage.rss(), peak });
  });
}

/** The reference: a Node reverse proxy doing only what every proxy must (forward, inject the key, stream). */
async function nodeProxyRole(target: string): Promise<void> {
  const pool = new Pool(target, { connections: 64 });
  const server = http.createServer((req, res) => {
    const headers: Record<string, string> = { authorization: `Bearer ${KEY}` };
    if (req.headers['content-type']) headers['content-type'] = req.headers['content-type'];
    pool
      .request({ method: req.method as 'POST', path: req.url ?? '/', headers, body: req })
      .then(async (r) => {
        const out: Record<string, string> = {};
        for (const name of ['content-type', 'content-length']) if (typeof r.headers[name] === 'string') out[name] = r.headers[name];
        res.writeHead(r.statusCode, out);
        res.flushHeaders();
        await pipeline(r.body, res);
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  reportRss();
  process.on('SIGTERM', () => process.exit(0));
  process.send!({ port: (server.address() as net.AddressInfo).port });
}

async function tunnelRole(target: string, mode: 'pass' | 'mask'): Promise<void> {
  // The built code, as `dlpctl connect` runs it (the sources through tsx carry its helpers into every closure);
  // the sources only when nothing is built.
  const dist = path.resolve(path.dirname(self), '../../dist');
  const built = fs.existsSync(path.join(dist, 'proxy/http/factory.js'));
  if (!built) process.stderr.write('http bench: dist/ not built (npm run build); the tunnels run the sources through tsx\n');
  const root = built ? dist : path.resolve(path.dirname(self), '../../src');
  const imp = <T>(p: string): Promise<T> => import(pathToFileURL(path.join(root, built ? p : p.replace(/\.js$/, '.ts'))).href) as Promise<T>;
  const { parseConfig, resolveSecret } = await imp<typeof import('../../src/config/index.js')>('config/index.js');
  const { resolvePolicies } = await imp<typeof import('../../src/policy/index.js')>('policy/index.js');
  const { createHttpEngine } = await imp<typeof import('../../src/proxy/http/factory.js')>('proxy/http/factory.js');
  const { Tunnel } = await imp<typeof import('../../src/proxy/tunnel.js')>('proxy/tunnel.js');
  const { openStore } = await imp<typeof import('../../src/store/index.js')>('store/index.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlpctl-bench-http-'));
  process.env['BENCH_KEY'] = KEY;
  const cfg = parseConfig(
    `version: 1
resources:
  api:
    kind: http
    target: ${target}
    headers: { Authorization: "Bearer \${env:BENCH_KEY}" }
    policies: [${mode === 'mask' ? 'llm' : ''}]
policies:
  llm:
    - name: prompts
      action: mask
      entities: [email, phone, credit_card, us_ssn, iban, secrets]
      with: pseudonymize
      restore: true
`,
    'bench.yaml',
  );
  const res = cfg.resources['api']!;
  if (res.kind !== 'http') throw new Error('unreachable');
  const store = await openStore(`sqlite:${path.join(dir, 'store.db')}`, { sqliteSynchronous: 'normal', threads: 'tunnel' }); // as `dlpctl connect` opens it
  const opened = await createHttpEngine({
    resource: res,
    config: cfg,
    policies: resolvePolicies(res.policies, cfg.policies),
    store,
    identity: { issuer: 'local', subject: 'bench', groups: [], kind: 'machine', verified: false },
    resolve: (s) => resolveSecret(s, { env: process.env }),
    env: process.env,
    homedir: os.homedir(),
  });
  const tunnel = new Tunnel({ resource: 'api', kind: 'http', clientTls: false, engine: opened.engine });
  const addr = await tunnel.open();
  reportRss();
  process.on('SIGTERM', () => process.exit(0)); // a normal exit, so --cpu-prof writes its profile
  process.send!({ port: addr.port, token: tunnel.secret });
}

// ───────────────────────────── the driver ─────────────────────────────

export interface Party {
  name: string;
  url: string;
  headers: Record<string, string>;
  child?: ChildProcess;
}

export function startRole(args: string[], script = self): Promise<{ child: ChildProcess; msg: { port: number; token?: string } }> {
  // A tunnel runs as `dlpctl connect` runs it (with the flags bin/dlpctl.js adds), and so does the reference
  // proxy; BENCH_PROF=DIR writes their CPU profiles, BENCH_PERF_MAP=1 their JIT symbols for `perf record -p`.
  const proxy = args[1] === 'tunnel' || args[1] === 'node-proxy';
  const prof = proxy && process.env['BENCH_PROF'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_PROF']}`] : proxy && process.env['BENCH_PERF_MAP'] ? ['--perf-basic-prof'] : [];
  const child = fork(script, args, { execArgv: [...(proxy ? TUNNEL_NODE_FLAGS : []), ...prof, '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (msg) => resolve({ child, msg: msg as { port: number; token?: string } }));
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

function ask<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as T));
    child.send({ type });
  });
}

async function startNginx(upstreamPort: number): Promise<{ port: number; stop: () => void } | null> {
  if (!fs.existsSync(NGINX)) return null;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlpctl-bench-nginx-'));
  const port = await new Promise<number>((resolve) => {
    const s = http.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const conf = `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream u { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; proxy_request_buffering off; }
  }
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const child = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const ok = await request(`http://127.0.0.1:${port}/`, { method: 'POST', body: '{}' }).then(
      async (r) => (await r.body.dump(), true),
      () => false,
    );
    if (ok) return { port, stop: () => child.kill('SIGTERM') };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  return null;
}

const BODY = JSON.stringify({
  model: 'gpt-test',
  messages: [
    { role: 'system', content: 'You are a helpful assistant. '.repeat(10) },
    { role: 'user', content: `Please email alice.smith@example.com about card 4111 1111 1111 1111. ${'Context words here. '.repeat(28)}` },
  ],
});
/**
 * The request: valid JSON of exactly 1,024 bytes, so the tunnels take their JSON path. (Until 2026-12 the body
 * was cut at 1,024 characters, which left it unterminated: the masking tunnel masked it as text.)
 */
const BODY_1K = BODY.replace('Context', `${' '.repeat(1024 - BODY.length)}Context`);
if (Buffer.byteLength(BODY_1K) !== 1024 || (JSON.parse(BODY_1K) as { model?: string }).model !== 'gpt-test') throw new Error('http bench: the request body is not 1 KB of JSON');

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/**
 * 32 connections in a closed loop for SECONDS: req/s and latency after a 0.5 s warm-up, and the proxy's CPU
 * per request over the whole run (warm-up included, from /proc/PID/stat: steadier than req/s on a shared VM).
 */
export async function load(p: Party): Promise<{ rps: number; p50: number; p99: number; errors: number; cpuUs?: number }> {
  const pool = new Pool(p.url, { connections: 32, pipelining: 1 });
  const cpu0 = cpuMs(p.child?.pid);
  let all = 0;
  const lat: number[] = [];
  let errors = 0;
  const until = performance.now() + SECONDS * 1000;
  const warm = performance.now() + 500;
  let count = 0;
  let started = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      const t0 = performance.now();
      try {
        const r = await pool.request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', ...p.headers }, body: BODY_1K });
        await r.body.dump();
        if (r.statusCode !== 200) errors++;
      } catch {
        errors++;
      }
      const t1 = performance.now();
      all++;
      if (t0 >= warm) {
        if (!started) started = t0;
        lat.push(t1 - t0);
        count++;
      }
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  const cpu1 = cpuMs(p.child?.pid);
  const elapsed = (until - Math.max(warm, started || warm)) / 1000;
  await pool.close();
  lat.sort((a, b) => a - b);
  return { rps: count / elapsed, p50: pct(lat, 50), p99: pct(lat, 99), errors, ...(cpu0 !== undefined && cpu1 !== undefined && all > 0 ? { cpuUs: ((cpu1 - cpu0) * 1000) / all } : {}) };
}

async function ttft(p: Party): Promise<{ first: number; firstContent: number; total: number }> {
  const firsts: number[] = [];
  const contents: number[] = [];
  const totals: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    const r = await request(`${p.url}/sse`, { method: 'POST', headers: { 'content-type': 'application/json', ...p.headers }, body: '{"stream":true}' });
    let first = 0;
    let content = 0;
    for await (const c of r.body) {
      const s = (c as Buffer).toString();
      if (!first && s.includes('data:')) first = performance.now() - t0;
      if (!content && /"content":"[^"]/.test(s)) content = performance.now() - t0;
    }
    totals.push(performance.now() - t0);
    if (i >= 5) {
      firsts.push(first);
      contents.push(content);
    }
  }
  firsts.sort((a, b) => a - b);
  contents.sort((a, b) => a - b);
  totals.sort((a, b) => a - b);
  return { first: pct(firsts, 50), firstContent: pct(contents, 50), total: pct(totals, 50) };
}

async function big(p: Party): Promise<{ mbps: number; rssGrowthMb: number | null }> {
  const before = p.child ? (await ask<{ rss: number }>(p.child, 'rss-reset')).rss : null;
  const t0 = performance.now();
  const r = await request(`${p.url}/big`, { headers: p.headers });
  let n = 0;
  for await (const c of r.body) n += (c as Buffer).length;
  const s = (performance.now() - t0) / 1000;
  let rssGrowthMb: number | null = null;
  if (p.child) {
    const m = await ask<{ rss: number; peak: number }>(p.child, 'rss');
    rssGrowthMb = (m.peak - before!) / 1024 / 1024;
  }
  if (n !== 100 * 1024 * 1024) throw new Error(`${p.name}: got ${n} bytes`);
  return { mbps: n / 1024 / 1024 / s, rssGrowthMb };
}

function progress(s: string): void {
  if (process.env['BENCH_VERBOSE']) process.stderr.write(`[http bench] ${s}\n`);
}

export async function run(): Promise<string> {
  const upstream = await startRole(['--role', 'upstream']);
  const target = `http://127.0.0.1:${upstream.msg.port}`;
  const pass = await startRole(['--role', 'tunnel', target, 'pass']);
  const mask = await startRole(['--role', 'tunnel', target, 'mask']);
  const nodeProxy = await startRole(['--role', 'node-proxy', target]);
  // BENCH_B_DIR=another checkout: its pass-through and masking tunnels (run from its own sources) as variants
  // "B", in the same interleaved rounds: an A/B of a change, free of the VM's phases.
  const bDir = process.env['BENCH_B_DIR'];
  const bScript = bDir ? path.resolve(bDir, 'test/bench/http.ts') : null;
  const passB = bScript ? await startRole(['--role', 'tunnel', target, 'pass'], bScript) : null;
  const maskB = bScript ? await startRole(['--role', 'tunnel', target, 'mask'], bScript) : null;
  const nginx = await startNginx(upstream.msg.port);
  const parties: Party[] = [
    { name: 'direct', url: target, headers: { authorization: `Bearer ${KEY}` } },
    { name: 'dlpctl pass-through', url: `http://127.0.0.1:${pass.msg.port}`, headers: { authorization: `Bearer ${pass.msg.token!}` }, child: pass.child },
    { name: 'dlpctl masking', url: `http://127.0.0.1:${mask.msg.port}`, headers: { authorization: `Bearer ${mask.msg.token!}` }, child: mask.child },
  ];
  if (passB) parties.push({ name: 'dlpctl pass-through B', url: `http://127.0.0.1:${passB.msg.port}`, headers: { authorization: `Bearer ${passB.msg.token!}` }, child: passB.child });
  if (maskB) parties.push({ name: 'dlpctl masking B', url: `http://127.0.0.1:${maskB.msg.port}`, headers: { authorization: `Bearer ${maskB.msg.token!}` }, child: maskB.child });
  if (nginx) parties.push({ name: 'nginx', url: `http://127.0.0.1:${nginx.port}`, headers: {} });
  parties.push({ name: 'node proxy (reference)', url: `http://127.0.0.1:${nodeProxy.msg.port}`, headers: {}, child: nodeProxy.child });
  const rows: string[] = [];
  try {
    // The load in LOAD_ROUNDS interleaved rounds (the order reversed every other round); each party's median
    // round by req/s is reported, with its latencies.
    const loadRuns = new Map<string, Awaited<ReturnType<typeof load>>[]>(parties.map((p) => [p.name, []]));
    for (let round = 0; round < LOAD_ROUNDS; round++) {
      for (const p of round % 2 ? [...parties].reverse() : parties) {
        progress(`load ${p.name} (round ${round + 1})`);
        loadRuns.get(p.name)!.push(await load(p));
      }
    }
    const loads = new Map([...loadRuns].map(([name, runs]) => [name, [...runs].sort((a, b) => a.rps - b.rps)[Math.floor(runs.length / 2)]!]));
    // BENCH_LOAD_ONLY=1: the 1 KB POST rounds only (a CPU profile of the tunnels then shows that load alone).
    const loadOnly = process.env['BENCH_LOAD_ONLY'] === '1';
    const ttfts = new Map<string, Awaited<ReturnType<typeof ttft>>>();
    for (const p of loadOnly ? [] : parties) {
      progress(`sse ${p.name}`);
      ttfts.set(p.name, await ttft(p));
    }
    // 100 MB: one warm-up transfer per party, then BIG_ROUNDS rounds taking the parties in turn; the median
    // of each party's rounds. A single transfer swung 170-1,900 MB/s direct on this VM from one run to the next.
    const bigs = new Map<string, Awaited<ReturnType<typeof big>>>();
    const bigRuns = new Map<string, Awaited<ReturnType<typeof big>>[]>(parties.map((p) => [p.name, []]));
    for (const p of loadOnly ? [] : parties) await big(p);
    for (let round = 0; round < (loadOnly ? 0 : BIG_ROUNDS); round++) {
      for (const p of parties) {
        progress(`100 MB ${p.name} (round ${round + 1})`);
        bigRuns.get(p.name)!.push(await big(p));
      }
    }
    for (const [name, runs] of bigRuns) {
      if (runs.length === 0) continue;
      const byRate = [...runs].sort((a, b) => a.mbps - b.mbps);
      const growth = runs.map((r) => r.rssGrowthMb).filter((g): g is number => g !== null);
      bigs.set(name, { mbps: byRate[Math.floor(byRate.length / 2)]!.mbps, rssGrowthMb: growth.length ? Math.max(...growth) : null });
    }
    const d = loads.get('direct')!;
    const ng = loads.get('nginx');
    const none = { first: Number.NaN, firstContent: Number.NaN, mbps: Number.NaN, rssGrowthMb: null };
    const dt = ttfts.get('direct') ?? none;
    const db = bigs.get('direct') ?? none;
    rows.push(`1 KB JSON POST, 32 connections, ${SECONDS}s closed loop (the median of ${LOAD_ROUNDS} interleaved rounds); SSE 200 deltas (median of 25); 100 MB response (median of ${BIG_ROUNDS} interleaved rounds after a warm-up; RSS growth: the largest). ${os.cpus().length} CPUs, each party its own process, store SQLite synchronous=NORMAL.`);
    rows.push('');
    const ref = loads.get('node proxy (reference)')!;
    rows.push('| party | req/s | × direct | × nginx | × node proxy | proxy CPU µs / request | × node proxy | p50 ms | p99 ms | +p99 ms | errors | SSE first event ms | first content ms | 100 MB MB/s | × direct | proxy peak RSS growth MB |');
    rows.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const p of parties) {
      const l = loads.get(p.name)!;
      const t = ttfts.get(p.name) ?? none;
      const b = bigs.get(p.name) ?? none;
      const cpu = l.cpuUs === undefined ? '–' : l.cpuUs.toFixed(1);
      const cpuRatio = l.cpuUs === undefined || ref.cpuUs === undefined ? '–' : (l.cpuUs / ref.cpuUs).toFixed(2);
      rows.push(
        `| ${p.name} | ${l.rps.toFixed(0)} | ${(l.rps / d.rps).toFixed(2)} | ${ng ? (l.rps / ng.rps).toFixed(2) : 'n/a'} | ${(l.rps / ref.rps).toFixed(2)} | ${cpu} | ${cpuRatio} | ${l.p50.toFixed(2)} | ${l.p99.toFixed(2)} | ${(l.p99 - d.p99).toFixed(2)} | ${l.errors} | ${t.first.toFixed(2)} (+${(t.first - dt.first).toFixed(2)}) | ${t.firstContent.toFixed(2)} | ${b.mbps.toFixed(0)} | ${(b.mbps / db.mbps).toFixed(2)} | ${b.rssGrowthMb === null ? '–' : b.rssGrowthMb.toFixed(1)} |`,
      );
    }
    if (!nginx) rows.push('', `nginx: not run (${NGINX} not found).`);
  } finally {
    nginx?.stop();
    for (const c of [upstream.child, pass.child, mask.child, nodeProxy.child, passB?.child, maskB?.child]) c?.kill();
  }
  return rows.join('\n');
}

const role = process.argv.indexOf('--role');
if (role !== -1) {
  const which = process.argv[role + 1];
  if (which === 'upstream') await upstreamRole();
  else if (which === 'node-proxy') await nodeProxyRole(process.argv[role + 2]!);
  else await tunnelRole(process.argv[role + 2]!, process.argv[role + 3] as 'pass' | 'mask');
} else if (process.argv[1] && path.resolve(process.argv[1]) === self) {
  process.stdout.write(`${await run()}\n`);
}
