/**
 * The store's cost per statement in the pattern a PostgreSQL tunnel writes under `pgbench -S -c 8`: 8 sessions,
 * each awaiting a durable `query` event, then recording its `result` deferred, in a loop; CPU of this process per
 * statement (user + system, all threads) and the commits it took. `npx tsx test/bench/store-pattern.ts [sqlite|postgres]`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore, type Identity } from '../../src/store/index.js';

const identity: Identity = { issuer: 'https://idp.bench', subject: 'bench-bot', groups: ['agents'], kind: 'machine', verified: true };
const CLIENTS = Number(process.env['BENCH_CLIENTS'] ?? 8);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 4);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlpctl-store-pattern-'));
const store = await openStore(`sqlite:${path.join(dir, 'a.db')}`, { sqliteSynchronous: 'normal' });
await store.migrate();
await (store as unknown as { startThreads?(t: string): Promise<void> }).startThreads?.('tunnel');
const sessions = await Promise.all(
  Array.from({ length: CLIENTS }, () => store.createSession({ resource: 'db', kind: 'postgres', identity, clientAddr: '127.0.0.1:1' })),
);
let n = 0;
const until = Date.now() + SECONDS * 1000;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await Promise.all(
  sessions.map(async (s) => {
    while (Date.now() < until) {
      await store.append(s.id, { type: 'query', sql: `SELECT abalance FROM pgbench_accounts WHERE aid = ${n % 100000};`, decision: 'allow', kinds: ['select'], tables: ['pgbench_accounts'] });
      void store.append(s.id, { type: 'result', rows: 1, bytes: 12, ms: 0.1, columns: ['abalance'], sample: [['0']] } as never, { defer: true });
      n++;
    }
  }),
);
const cpu = process.cpuUsage(cpu0);
const secs = (performance.now() - t0) / 1000;
await store.close();
console.log(`${n} statements in ${secs.toFixed(1)} s: ${(n / secs).toFixed(0)}/s, CPU ${(((cpu.user + cpu.system) / n)).toFixed(1)} µs per statement`);
fs.rmSync(dir, { recursive: true, force: true });
