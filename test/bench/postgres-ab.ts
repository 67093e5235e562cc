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
 * BENCH_MODES=people instead fetches the 1M-row people table through the tunnel with psql (with
 * BENCH_CONFIG=mask: two columns masked by column rule), and reports the tunnel's CPU ms per fetch and MB/s.
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
import { largeMbps, PEOPLE_SEED, PEOPLE_SQL, pgbenchTps, startTunnel, tunnelConfig, tunnelEnv } from './postgres.js';
import { abRow } from './ab.js';
import { cpuMs } from './proc.js';

const PAIRS = Number(process.env['BENCH_PAIRS'] ?? 6);
const CONFIG = process.env['BENCH_CONFIG'] === 'mask' ? 'mask' : 'audit';
const PG_STORE = process.env['BENCH_STORE'] === 'postgres';
type Mode = 'simple' | 'prepared' | 'people';
const MODES = (process.env['BENCH_MODES'] ?? 'simple').split(',').filter((m): m is Mode => m === 'simple' || m === 'prepared' || m === 'people');

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
    let peopleBytes = 0;
    if (MODES.includes('people')) {
      const pg = (await import('pg')).default;
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      await admin.query(PEOPLE_SEED);
      peopleBytes = Number((await admin.query('SELECT sum(octet_length(id::text) + octet_length(name) + octet_length(ssn) + octet_length(card) + 4)::bigint AS b FROM bench_people')).rows[0].b);
      await admin.end();
    }
    /** One run of `mode` through a tunnel: CPU (µs per statement, or ms per people fetch) and TPS or MB/s. */
    const once = async (t: { url: string; child: { pid?: number | undefined } }, mode: Mode): Promise<{ cpu?: number; rate?: number }> => {
      if (mode !== 'people') {
        const r = await pgbenchTps(t.url, t.child.pid, mode);
        return { ...(r.cpuUs === undefined ? {} : { cpu: r.cpuUs }), ...(r.tps === undefined ? {} : { rate: r.tps }) };
      }
      const c0 = cpuMs(t.child.pid);
      const mbps = await largeMbps(t.url, peopleBytes, PEOPLE_SQL);
      const c1 = cpuMs(t.child.pid);
      return { ...(c0 === undefined || c1 === undefined ? {} : { cpu: c1 - c0 }), ...(mbps === undefined ? {} : { rate: mbps }) };
    };
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
          for (const name of order) await once(tunnels[name], mode); // warm-up
          for (const name of order) {
            const r = await once(tunnels[name], mode);
            if (r.cpu !== undefined) (cpu[`${name} ${mode}`] ??= []).push(r.cpu);
            if (r.rate !== undefined) (tps[`${name} ${mode}`] ??= []).push(r.rate);
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
      `PostgreSQL tunnel A/B on fresh processes (${CONFIG} config, ${PG_STORE ? 'PostgreSQL' : 'SQLite'} store): A ${builds.A}, B ${builds.B}; ${PAIRS} pairs; pgbench -S -c 8 (CPU µs per statement, TPS), people: the 1M-row table by psql (CPU ms per fetch, MB/s).`,
      '',
      '| build, mode | CPU, median | each pair | TPS or MB/s, median | each pair |',
      '|---|---:|---|---:|---|',
    ];
    for (const mode of MODES) {
      for (const name of ['A', 'B']) {
        lines.push(abRow(`${name} ${mode}`, cpu[`${name} ${mode}`] ?? [], tps[`${name} ${mode}`] ?? [], mode === 'people' ? 1 : 0));
      }
    }
    console.log(lines.join('\n'));
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
