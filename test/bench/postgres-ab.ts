/**
 * An A/B of two builds of the PostgreSQL tunnel on fresh processes (`npm run build` in both checkouts first):
 *
 *   BENCH_B_BIN=/path/to/other/checkout/bin/dlpctl.js npx tsx test/bench/postgres-ab.ts
 *
 * One process of a build differs from the next by up to ±10% in CPU per statement (its JIT's choices, where
 * its memory lands), and that difference stays for the process's life: rounds of one pair of tunnels (what
 * `postgres.ts` does with BENCH_B_BIN) measure the pair as much as the change. Here each of BENCH_PAIRS (6)
 * pairs starts a new tunnel of each build, runs `pgbench -S -c 8 -T BENCH_SECONDS (5)` on each in turn (after
 * one warm-up run each; who goes first alternates), and stops them; the report is the median over the pairs
 * of each build's CPU per statement (from /proc, the tunnel process only), with every pair's figure.
 * BENCH_CONFIG=audit (default) or mask (the same configs as postgres.ts); BENCH_MODES=simple,prepared;
 * BENCH_STORE=postgres records into a PostgreSQL store (each tunnel its own new database on the same server)
 * instead of each its own SQLite file. TPS medians are printed beside CPU: with the PostgreSQL store the
 * tunnel waits on the store's round trips, so throughput moves where CPU per statement may not.
 * Not part of `npm run bench` (it needs a second build).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startPostgres } from '../helpers/postgres.js';
import { pgbenchTps, startTunnel, tunnelConfig, tunnelEnv } from './postgres.js';

const PAIRS = Number(process.env['BENCH_PAIRS'] ?? 6);
const CONFIG = process.env['BENCH_CONFIG'] === 'mask' ? 'mask' : 'audit';
const PG_STORE = process.env['BENCH_STORE'] === 'postgres';
const MODES = (process.env['BENCH_MODES'] ?? 'simple').split(',').filter((m): m is 'simple' | 'prepared' => m === 'simple' || m === 'prepared');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const bBin = process.env['BENCH_B_BIN'];
  if (!bBin || !fs.existsSync(bBin)) {
    process.stderr.write('postgres-ab: set BENCH_B_BIN to the other build\'s bin/dlpctl.js (run `npm run build` there first)\n');
    process.exit(2);
  }
  const builds = { A: path.resolve(import.meta.dirname, '../../bin/dlpctl.js'), B: path.resolve(bBin) };
  const server = await startPostgres();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlpctl-bench-ab-'));
  try {
    await promisify(execFile)('pgbench', ['-i', '-q', '-s', '1', server.url]);
    const env = tunnelEnv(server, dir);
    const cpu: Record<string, number[]> = {};
    const tps: Record<string, number[]> = {};
    for (let pair = 0; pair < PAIRS; pair++) {
      const tunnels = {
        A: await startTunnel(dir, `a${pair}`, tunnelConfig(server, CONFIG), env, PG_STORE ? await server.newDatabase() : undefined, builds.A),
        B: await startTunnel(dir, `b${pair}`, tunnelConfig(server, CONFIG), env, PG_STORE ? await server.newDatabase() : undefined, builds.B),
      };
      try {
        const order = pair % 2 === 0 ? (['A', 'B'] as const) : (['B', 'A'] as const);
        for (const mode of MODES) {
          for (const name of order) await pgbenchTps(tunnels[name].url, tunnels[name].child.pid, mode); // warm-up
          for (const name of order) {
            const r = await pgbenchTps(tunnels[name].url, tunnels[name].child.pid, mode);
            if (r.cpuUs !== undefined) (cpu[`${name} ${mode}`] ??= []).push(r.cpuUs);
            if (r.tps !== undefined) (tps[`${name} ${mode}`] ??= []).push(r.tps);
          }
        }
      } finally {
        for (const t of Object.values(tunnels)) {
          t.child.kill('SIGTERM');
          await new Promise((r) => t.child.once('exit', r));
        }
      }
      if (process.env['BENCH_VERBOSE']) process.stderr.write(`postgres-ab: pair ${pair + 1} of ${PAIRS} done\n`);
    }
    const lines = [
      `PostgreSQL tunnel A/B on fresh processes (${CONFIG} config, ${PG_STORE ? 'PostgreSQL' : 'SQLite'} store): A ${builds.A}, B ${builds.B}; ${PAIRS} pairs, pgbench -S -c 8.`,
      '',
      '| build, mode | CPU µs / statement, median | each pair | TPS, median | each pair |',
      '|---|---:|---|---:|---|',
    ];
    for (const mode of MODES) {
      for (const name of ['A', 'B']) {
        const xs = cpu[`${name} ${mode}`] ?? [];
        const ts = tps[`${name} ${mode}`] ?? [];
        lines.push(
          `| ${name} ${mode} | ${xs.length ? median(xs).toFixed(1) : '–'} | ${xs.map((x) => x.toFixed(1)).join(' ')} | ${ts.length ? median(ts).toFixed(0) : '–'} | ${ts.map((x) => x.toFixed(0)).join(' ')} |`,
        );
      }
    }
    console.log(lines.join('\n'));
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
