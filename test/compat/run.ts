/**
 * `npm run compat`: real clients' own test suites and the command-line clients, each run directly, through a
 * tunnel with a permissive policy (`default: allow`, no policies) and through one with `recommended`; prints
 * one row per suite and every failure that happens only through a tunnel, with its reason.
 *
 *   npm run compat -- [--sources DIR] [--suites builtin,node-postgres,psycopg] [--modes direct,permissive,recommended]
 *                     [--only REGEX] [--json FILE]
 *
 * The suites' sources are never downloaded here: see test/compat/README.md for putting them in --sources
 * (default $DLPCTL_COMPAT_SOURCES or ~/.cache/dlpctl-compat).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers/postgres.js';
import { startFixture, type Fixture } from '../proxy/pg-tunnel/fixture.js';
import { runBuiltin } from './builtin.js';
import { DENIAL, MODES, runProc, type Mode, type SuiteRun, type Target, type TimedDenial } from './common.js';
import type { TunnelEvent } from '../../src/proxy/tunnel.js';
import { runNodePostgres } from './node-postgres.js';
import { runPsycopg } from './psycopg.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Args {
  sources: string;
  suites: string[];
  modes: Mode[];
  only?: RegExp;
  json?: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    sources: process.env['DLPCTL_COMPAT_SOURCES'] ?? path.join(os.homedir(), '.cache', 'dlpctl-compat'),
    suites: ['builtin', 'node-postgres', 'psycopg'],
    modes: [...MODES],
  };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--sources': a.sources = path.resolve(v!); i++; break;
      case '--suites': a.suites = v!.split(','); i++; break;
      case '--modes': a.modes = v!.split(',') as Mode[]; i++; break;
      case '--only': a.only = new RegExp(v!); i++; break;
      case '--json': a.json = path.resolve(v!); i++; break;
      default: throw new Error(`unknown option ${argv[i]}; see the header of test/compat/run.ts`);
    }
  }
  return a;
}

interface Server {
  port: number;
  password: string;
  stop(): Promise<void>;
}

/**
 * Debian's PostgreSQL server of pg_dump's major version, for the dump check: pg_dump refuses a newer server
 * than itself, and the embedded server is newer than the Debian client tools.
 */
async function startDebianPostgres(tmp: string): Promise<Server | null> {
  const major = /(\d+)/.exec(execFileSync('pg_dump', ['--version'], { encoding: 'utf8' }).replace(/^\D+/, ''))?.[1];
  const bin = `/usr/lib/postgresql/${major}/bin`;
  try {
    await fs.access(path.join(bin, 'postgres'));
  } catch {
    return null;
  }
  const dir = path.join(tmp, 'pg-dump-server');
  await fs.mkdir(dir, { recursive: true });
  const password = randomBytes(12).toString('hex');
  await fs.writeFile(path.join(dir, 'pw'), password);
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    await fs.chmod(tmp, 0o755);
    execFileSync('chown', ['-R', 'postgres', dir]);
  }
  const as = (cmd: string, args: string[]): [string, string[]] => (asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]);
  const port = await freePort();
  const data = path.join(dir, 'data');
  const run = async (cmd: string, args: string[]): Promise<void> => {
    const [c, a] = as(cmd, args);
    const p = await runProc(c, a, { timeoutMs: 120_000 });
    if (p.code !== 0) throw new Error(`${cmd} failed: ${p.stderr}`);
  };
  await run(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${path.join(dir, 'pw')}`, '-E', 'UTF8', '--no-sync']);
  await run(path.join(bin, 'pg_ctl'), ['-D', data, '-w', '-l', path.join(dir, 'log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
  return { port, password, stop: () => run(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', 'stop']).catch(() => undefined) };
}

interface Row {
  suite: string;
  tests: number;
  pass: Record<Mode, number | null>;
  /** Failures through a tunnel of tests that pass directly, by mode. */
  tunnelOnly: Record<Mode, { name: string; detail: string }[]>;
  /** Failures directly (the suite's or this machine's, not the tunnel's). */
  directFailures: { name: string; detail: string }[];
  notes: string[];
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-compat-'));
  const started = new Date();
  process.stderr.write(`compat: sources ${args.sources}, suites ${args.suites.join(',')}, modes ${args.modes.join(',')}\n`);
  const fx: Fixture = await startFixture({ customers: 5 });
  const dumpServer = args.suites.includes('builtin') ? await startDebianPostgres(tmp).catch((e: Error) => (process.stderr.write(`compat: no pg_dump server: ${e.message}\n`), null)) : null;
  const nodeModules = [path.join(ROOT, 'node_modules'), path.join(args.sources, 'npm', 'node_modules')];
  const rows: Row[] = [];
  try {
    for (const suite of args.suites) {
      const runs: Partial<Record<Mode, SuiteRun>> = {};
      for (const mode of args.modes) {
        // A fresh database per suite and mode: suites leave tables behind, and a tunnel serves one database.
        const directUrl = await fx.pg.newDatabase();
        const database = decodeURIComponent(new URL(directUrl).pathname.slice(1));
        const target = await targetFor(fx, mode, database, directUrl, fx.pg.port, fx.pg.password);
        let dumpTarget: Target | null = null;
        if (dumpServer && suite === 'builtin') {
          const dumpUrl = `postgres://postgres:${dumpServer.password}@127.0.0.1:${dumpServer.port}/postgres`;
          const db = `compat_${mode}`;
          await runProc('psql', ['-X', '-q', '-c', `DROP DATABASE IF EXISTS ${db}`, '-c', `CREATE DATABASE ${db}`, dumpUrl], { timeoutMs: 60_000 });
          dumpTarget = await targetFor(fx, mode, db, dumpUrl.replace(/\/postgres$/, `/${db}`), dumpServer.port, dumpServer.password);
        }
        const t0 = Date.now();
        process.stderr.write(`compat: ${suite} ${mode}…\n`);
        runs[mode] =
          suite === 'builtin' ? await runBuiltin(target, dumpTarget, { tmp, timeoutMs: 180_000 })
          : suite === 'node-postgres' ? await runNodePostgres(args.sources, target, { tmp, timeoutMs: 60_000, nodeModules, ...(args.only ? { only: args.only } : {}) })
          : suite === 'psycopg' ? await runPsycopg(args.sources, target, { tmp, timeoutMs: 600_000, ...(args.only ? { only: args.only } : {}) })
          : { outcomes: [], notes: [`unknown suite ${suite}`] };
        const r = runs[mode]!;
        process.stderr.write(`compat: ${suite} ${mode}: ${r.outcomes.filter((o) => o.pass).length}/${r.outcomes.length} in ${Math.round((Date.now() - t0) / 1000)} s${r.notes.length ? ` (${r.notes.join('; ')})` : ''}\n`);
      }
      rows.push(summarise(suite, runs));
    }
  } finally {
    await dumpServer?.stop();
    await fx.stop();
    await fs.rm(tmp, { recursive: true, force: true });
  }
  print(rows, started);
  if (args.json) await fs.writeFile(args.json, JSON.stringify({ date: started.toISOString(), rows }, null, 2));
}

async function targetFor(fx: Fixture, mode: Mode, database: string, directUrl: string, port: number, password: string): Promise<Target> {
  if (mode === 'direct') return { mode, host: '127.0.0.1', port, user: 'postgres', password, database, directUrl };
  const t = await fx.tunnel(
    mode === 'permissive'
      ? { use: [], resource: '    default: allow', database, port, password }
      : { use: ['recommended'], resource: '    default: allow', database, port, password },
  );
  // each denial stamped as it is decided, for the suites that match denials to a test's span
  const log: TimedDenial[] = [];
  t.tunnel.on('event', (e: TunnelEvent) => {
    if (e.type === 'decision' && e.action === 'deny') log.push({ at: Date.now(), line: `denied by rule ${e.rule ?? '(none)'}: ${e.summary.replace(/\s+/g, ' ').slice(0, 160)}` });
  });
  let seen = 0;
  const denials = (): string[] => {
    const fresh = log.slice(seen);
    seen = log.length;
    return fresh.map((d) => d.line);
  };
  return { mode, host: '127.0.0.1', port: t.port, user: 'postgres', password: t.secret, database, directUrl, denials, denialLog: () => log };
}

function summarise(suite: string, runs: Partial<Record<Mode, SuiteRun>>): Row {
  const names = new Set<string>();
  for (const r of Object.values(runs)) for (const o of r!.outcomes) names.add(o.name);
  const row: Row = { suite, tests: names.size, pass: { direct: null, permissive: null, recommended: null }, tunnelOnly: { direct: [], permissive: [], recommended: [] }, directFailures: (runs.direct?.outcomes ?? []).filter((o) => !o.pass).map((o) => ({ name: o.name, detail: o.detail ?? '' })), notes: [] };
  const direct = new Map(runs.direct?.outcomes.map((o) => [o.name, o]));
  for (const mode of MODES) {
    const r = runs[mode];
    if (!r) continue;
    row.pass[mode] = r.outcomes.filter((o) => o.pass).length;
    row.notes.push(...r.notes.map((n) => `${mode}: ${n}`));
    if (mode === 'direct') continue;
    for (const o of r.outcomes) {
      if (o.pass) continue;
      const d = direct.get(o.name);
      if (runs.direct && (!d || !d.pass)) continue; // fails directly too: not the tunnel's
      row.tunnelOnly[mode].push({ name: o.name, detail: o.detail ?? '' });
    }
  }
  return row;
}

function print(rows: Row[], started: Date): void {
  const cell = (n: number | null): string => (n === null ? '–' : String(n));
  const out: string[] = [];
  out.push(`\nCompatibility run of ${started.toISOString().slice(0, 10)}\n`);
  out.push('| suite | tests | pass direct | pass tunnel (permissive) | pass tunnel (recommended) | tunnel-only failures |');
  out.push('|---|---:|---:|---:|---:|---|');
  for (const r of rows) {
    const only = [...r.tunnelOnly.permissive.map((f) => `permissive: ${f.name}`), ...r.tunnelOnly.recommended.map((f) => `recommended: ${f.name}`)];
    out.push(`| ${r.suite} | ${r.tests} | ${cell(r.pass.direct)} | ${cell(r.pass.permissive)} | ${cell(r.pass.recommended)} | ${only.length ? only.join('<br>') : 'none'} |`);
  }
  for (const r of rows) {
    for (const n of r.notes) out.push(`note (${r.suite}) ${n}`);
    for (const f of r.directFailures) out.push(`\n[direct] ${r.suite}: ${f.name}\n${f.detail.split('\n').slice(-8).map((l) => '    ' + l).join('\n')}`);
    for (const mode of ['permissive', 'recommended'] as const) {
      for (const f of r.tunnelOnly[mode]) {
        const denial = DENIAL.exec(f.detail)?.[0];
        out.push(`\n[${mode}] ${r.suite}: ${f.name}\n  ${denial ? `denial: ${denial}` : `NOT A NAMED DENIAL:\n${f.detail.split('\n').map((l) => '    ' + l).join('\n')}`}`);
      }
    }
  }
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`compat: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
