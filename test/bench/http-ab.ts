/**
 * An A/B of two builds of the HTTP tunnel on fresh processes (`npm run build` in both checkouts first):
 *
 *   BENCH_B_DIR=/path/to/other/checkout npx tsx test/bench/http-ab.ts
 *
 * As postgres-ab.ts for the PostgreSQL tunnel: one tunnel process differs from the next by tens of µs per
 * request for its whole life (the masking tunnel read 249–387 µs over one session's runs), so the rounds of
 * one pair that `http.ts` runs with BENCH_B_DIR can read a change either way. Here each of BENCH_PAIRS (6)
 * pairs starts a new tunnel of each build (BENCH_HTTP_MODE=mask, the default, or pass), runs the 1 KB JSON
 * POST load of http.ts (32 connections, BENCH_SECONDS (5)) on each in turn after one warm-up run each (who
 * goes first alternates), and stops them; the report is the median over the pairs of each build's CPU per
 * request (from /proc, the tunnel process only) and req/s, with every pair's figure. One upstream serves all.
 * Not part of `npm run bench` (it needs a second build).
 */
import fs from 'node:fs';
import path from 'node:path';
import { abRow } from './ab.js';
import { load, self, startRole, type Party } from './http.js';

const PAIRS = Number(process.env['BENCH_PAIRS'] ?? 6);
const MODE = process.env['BENCH_HTTP_MODE'] === 'pass' ? 'pass' : 'mask';

async function main(): Promise<void> {
  const bDir = process.env['BENCH_B_DIR'];
  const bScript = bDir ? path.resolve(bDir, 'test/bench/http.ts') : '';
  if (!bDir || !fs.existsSync(bScript) || !fs.existsSync(path.resolve(bDir, 'dist/proxy/http/factory.js'))) {
    process.stderr.write('http-ab: set BENCH_B_DIR to another checkout, built (npm run build there first)\n');
    process.exit(2);
  }
  const scripts = { A: self, B: bScript };
  const upstream = await startRole(['--role', 'upstream']);
  const target = `http://127.0.0.1:${upstream.msg.port}`;
  const cpu: Record<string, number[]> = { A: [], B: [] };
  const rps: Record<string, number[]> = { A: [], B: [] };
  try {
    for (let pair = 0; pair < PAIRS; pair++) {
      const parties: Record<'A' | 'B', Party> = { A: undefined!, B: undefined! };
      for (const name of ['A', 'B'] as const) {
        const t = await startRole(['--role', 'tunnel', target, MODE], scripts[name]);
        parties[name] = { name, url: `http://127.0.0.1:${t.msg.port}`, headers: { authorization: `Bearer ${t.msg.token!}` }, child: t.child };
      }
      try {
        const order = pair % 2 === 0 ? (['A', 'B'] as const) : (['B', 'A'] as const);
        for (const name of order) await load(parties[name]); // warm-up
        for (const name of order) {
          const r = await load(parties[name]);
          if (r.cpuUs !== undefined) cpu[name]!.push(r.cpuUs);
          rps[name]!.push(r.rps);
        }
      } finally {
        for (const p of Object.values(parties)) {
          p.child!.kill('SIGTERM');
          await new Promise((r) => p.child!.once('exit', r));
        }
      }
      if (process.env['BENCH_VERBOSE']) process.stderr.write(`http-ab: pair ${pair + 1} of ${PAIRS} done\n`);
    }
  } finally {
    upstream.child.kill();
  }
  const lines = [
    `HTTP tunnel A/B on fresh processes (${MODE}): A ${path.resolve(path.dirname(self), '../..')}, B ${path.resolve(bDir)}; ${PAIRS} pairs, 1 KB JSON POST, 32 connections.`,
    '',
    '| build | CPU µs / request, median | each pair | req/s, median | each pair |',
    '|---|---:|---|---:|---|',
  ];
  for (const name of ['A', 'B']) {
    lines.push(abRow(name, cpu[name]!, rps[name]!));
  }
  console.log(lines.join('\n'));
}

await main();
