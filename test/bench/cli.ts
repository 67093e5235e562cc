/**
 * Start-up time of the built binary: `dlpctl --version` and `dlpctl --help`, wall time over repeated runs
 * (median and p95), beside `node -e 0` as the floor. Target: --version ≤ 150 ms.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function time(args: string[], runs = 30): { p50: number; p95: number } {
  const samples: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}`);
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return { p50: samples[Math.floor(runs / 2)]!, p95: samples[Math.floor(runs * 0.95)]! };
}

export async function run(): Promise<string> {
  const rows: [string, { p50: number; p95: number }][] = [
    ['node -e 0 (floor)', time(['-e', '0'])],
    ['dlpctl --version', time(['bin/dlpctl.js', '--version'])],
    ['dlpctl --help', time(['bin/dlpctl.js', '--help'])],
  ];
  return [
    '| command | p50 ms | p95 ms |',
    '|---|---:|---:|',
    ...rows.map(([name, t]) => `| ${name} | ${t.p50.toFixed(1)} | ${t.p95.toFixed(1)} |`),
  ].join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  run().then((t) => process.stdout.write(`${t}\n`));
}
