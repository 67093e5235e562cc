/**
 * Built-in checks with the real command-line clients of Debian's PostgreSQL (pgbench, psql, pg_dump,
 * pg_restore) and node-postgres. Set-up and verification go directly to the database; only the step a check
 * names goes through the target, so a tunnel failure is that step's.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { pgEnv, runProc, tail, targetUrl, type Outcome, type SuiteRun, type Target } from './common.js';

async function sql(url: string, q: string): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(q);
  } finally {
    await c.end();
  }
}

async function cli(cmd: string, args: string[], t: Target, timeoutMs = 120_000): Promise<void> {
  const p = await runProc(cmd, args, { env: pgEnv(t), timeoutMs });
  if (p.timedOut) throw new Error(`watchdog: ${cmd} did not end within ${timeoutMs / 1000} s\n${tail(p.stdout + p.stderr)}`);
  if (p.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${p.code}\n${tail(p.stderr + p.stdout)}`);
}

async function psql(t: Target, ...commands: string[]): Promise<void> {
  await cli('psql', ['-X', '-v', 'ON_ERROR_STOP=1', ...commands.flatMap((c) => ['-c', c])], t);
}

async function pgbenchTables(t: Target): Promise<void> {
  const r = await sql(t.directUrl, "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'pgbench_accounts'");
  if (r.rows[0].n === 0) {
    const p = await runProc('pgbench', ['-i', '-s', '1', '-q', t.directUrl], { timeoutMs: 120_000 });
    if (p.code !== 0) throw new Error(`set-up (direct pgbench -i) failed: ${p.stderr}`);
  }
}

type Check = [name: string, fn: (t: Target, tmp: string) => Promise<void>];

export const CHECKS: Check[] = [
  ['pgbench -i (init, scale 1)', async (t) => cli('pgbench', ['-i', '-s', '1', '-q'], t)],
  ['pgbench TPC-B (simple, 2 clients, 300 transactions)', async (t) => {
    await pgbenchTables(t);
    await cli('pgbench', ['-c', '2', '-t', '150', '-M', 'simple'], t);
  }],
  ...(['simple', 'extended', 'prepared'] as const).map((m): Check => [`pgbench -S -M ${m} (2 clients, 1000 transactions)`, async (t) => {
    await pgbenchTables(t);
    await cli('pgbench', ['-n', '-S', '-c', '2', '-t', '500', '-M', m], t);
  }]),
  ['psql \\copy out and in (10,000 rows)', async (t, tmp) => {
    await sql(t.directUrl, `DROP TABLE IF EXISTS compat_copy_src, compat_copy_dst;
      CREATE TABLE compat_copy_src AS SELECT g AS id, md5(g::text) AS txt, now() AS at FROM generate_series(1, 10000) g;
      CREATE TABLE compat_copy_dst (LIKE compat_copy_src)`);
    const f = path.join(tmp, `copy-${t.mode}.csv`);
    await psql(t, `\\copy compat_copy_src TO '${f}' WITH (FORMAT csv)`);
    await psql(t, `\\copy compat_copy_dst FROM '${f}' WITH (FORMAT csv)`);
    const r = await sql(t.directUrl, 'SELECT (SELECT count(*) FROM compat_copy_dst)::int AS n, (SELECT count(*) FROM (SELECT * FROM compat_copy_src EXCEPT SELECT * FROM compat_copy_dst) d)::int AS diff');
    if (r.rows[0].n !== 10000 || r.rows[0].diff !== 0) throw new Error(`copied ${r.rows[0].n} rows, ${r.rows[0].diff} differ`);
  }],
  ['psql \\lo_import and \\lo_export (3 MB)', async (t, tmp) => {
    const src = path.join(tmp, `lo-${t.mode}.bin`);
    const back = path.join(tmp, `lo-${t.mode}.out`);
    const data = Buffer.alloc(3 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
    await fs.writeFile(src, data);
    const p = await runProc('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-c', `\\lo_import '${src}'`], { env: pgEnv(t), timeoutMs: 60_000 });
    const oid = /lo_import (\d+)/.exec(p.stdout)?.[1];
    if (p.code !== 0 || !oid) throw new Error(`\\lo_import failed (${p.code})\n${tail(p.stderr + p.stdout)}`);
    await psql(t, `\\lo_export ${oid} '${back}'`);
    const a = createHash('sha256').update(data).digest('hex');
    const b = createHash('sha256').update(await fs.readFile(back)).digest('hex');
    if (a !== b) throw new Error('exported large object differs from the imported file');
  }],
  ['LISTEN/NOTIFY (node-postgres, payload and sender pid)', async (t) => {
    const listener = new pg.Client({ connectionString: targetUrl(t) });
    const sender = new pg.Client({ connectionString: targetUrl(t) });
    listener.on('error', () => undefined);
    sender.on('error', () => undefined);
    await listener.connect();
    await sender.connect();
    try {
      await listener.query('LISTEN compat_channel');
      const got = new Promise<pg.Notification>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no notification within 10 s')), 10_000);
        listener.once('notification', (n) => {
          clearTimeout(timer);
          resolve(n);
        });
      });
      const pid = (await sender.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      await sender.query("NOTIFY compat_channel, 'héllo ✓'");
      const n = await got;
      if (n.channel !== 'compat_channel' || n.payload !== 'héllo ✓' || n.processId !== pid) throw new Error(`got ${JSON.stringify(n)}, sender pid ${pid}`);
      await listener.query('UNLISTEN *');
    } finally {
      await listener.end().catch(() => undefined);
      await sender.end().catch(() => undefined);
    }
  }],
];

/** pg_dump -b of a database with large objects, then pg_restore into it after its objects were dropped. */
export const DUMP_CHECK: Check = ['pg_dump -Fc -b + pg_restore (table and 2 large objects)', async (t, tmp) => {
  const dump = path.join(tmp, `dump-${t.mode}.custom`);
  await sql(t.directUrl, `DROP TABLE IF EXISTS compat_docs; SELECT lo_unlink(oid) FROM pg_largeobject_metadata;
    CREATE TABLE compat_docs (id int PRIMARY KEY, title text, body oid);
    INSERT INTO compat_docs SELECT g, 'doc ' || g, lo_from_bytea(0, convert_to(repeat('page ' || g || ' ', 50000), 'UTF8')) FROM generate_series(1, 2) g`);
  const before = await sql(t.directUrl, 'SELECT id, title, md5(lo_get(body)) AS h FROM compat_docs ORDER BY id');
  await cli('pg_dump', ['-Fc', '-b', '-f', dump], t);
  await sql(t.directUrl, 'DROP TABLE compat_docs; SELECT lo_unlink(oid) FROM pg_largeobject_metadata');
  await cli('pg_restore', ['--no-owner', '-d', t.database, dump], t);
  const after = await sql(t.directUrl, 'SELECT id, title, md5(lo_get(body)) AS h FROM compat_docs ORDER BY id');
  if (JSON.stringify(after.rows) !== JSON.stringify(before.rows)) throw new Error(`restored ${JSON.stringify(after.rows)}, dumped ${JSON.stringify(before.rows)}`);
}];

export async function runBuiltin(t: Target, dumpTarget: Target | null, o: { tmp: string; timeoutMs: number }): Promise<SuiteRun> {
  const outcomes: Outcome[] = [];
  const notes: string[] = [];
  const one = async ([name, fn]: Check, target: Target): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        fn(target, o.tmp),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`watchdog: no end within ${o.timeoutMs / 1000} s`)), o.timeoutMs))),
      ]);
      outcomes.push({ name, pass: true });
    } catch (err) {
      outcomes.push({ name, pass: false, detail: (err as Error).message });
    } finally {
      clearTimeout(timer);
    }
  };
  for (const c of CHECKS) await one(c, t);
  if (dumpTarget) await one(DUMP_CHECK, dumpTarget);
  else notes.push('pg_dump check not run: no server of the pg_dump major version');
  return { outcomes, notes };
}
