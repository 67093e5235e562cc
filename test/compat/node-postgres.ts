/**
 * node-postgres `packages/pg` integration tests (test/integration/**\/*-tests.js), each file run by plain node
 * as its Makefile does. Its harness (test/suite.js) exits the process at the first failing test, so a preload
 * records every test start and pass in a side file, and a failed file is rerun with the failed tests turned
 * into skips until it completes: every test gets a result.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { tunnelDenials, denialOf, pgEnv, runProc, tail, type Outcome, type SuiteRun, type Target } from './common.js';

const PRELOAD = `'use strict'
const fs = require('fs')
const path = require('path')
const Suite = require(path.join(process.cwd(), 'test', 'suite.js'))
const out = process.env.DLPCTL_COMPAT_LOG
const skip = new Set(JSON.parse(process.env.DLPCTL_COMPAT_SKIP || '[]'))
const log = (o) => fs.appendFileSync(out, JSON.stringify(o) + '\\n')
const test = Suite.prototype.test
Suite.prototype.test = function (name, cb) {
  return test.call(this, name, skip.has(name) ? undefined : cb)
}
const run = Suite.prototype.run
Suite.prototype.run = function (t, cb) {
  if (!t.action) return run.call(this, t, cb)
  log({ start: t.name })
  return run.call(this, t, (err) => {
    if (!err) log({ pass: t.name })
    cb(err)
  })
}
`;

async function files(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('-tests.js')) found.push(path.join(e.parentPath, e.name));
  }
  return found.sort();
}

export async function runNodePostgres(sources: string, t: Target, o: { tmp: string; only?: RegExp; timeoutMs: number; nodeModules: string[] }): Promise<SuiteRun> {
  const pkg = path.join(sources, 'node-postgres', 'packages', 'pg');
  const notes: string[] = [];
  const outcomes: Outcome[] = [];
  try {
    await fs.access(path.join(pkg, 'test', 'suite.js'));
  } catch {
    return { outcomes, notes: [`node-postgres sources missing at ${pkg} (see test/compat/README.md)`] };
  }
  const preload = path.join(o.tmp, 'np-preload.cjs');
  await fs.writeFile(preload, PRELOAD);
  const integ = path.join(pkg, 'test', 'integration');
  for (const file of await files(integ)) {
    const rel = path.relative(integ, file);
    if (o.only && !o.only.test(rel)) continue;
    // pg-native is not installed: those files test the native binding only.
    if (/native/.test(rel)) continue;
    const skip: string[] = [];
    const passed = new Set<string>();
    const failed = new Map<string, string>();
    for (let round = 0; round < 40; round++) {
      tunnelDenials(t); // drop what earlier runs left
      const logFile = path.join(o.tmp, `np-${process.pid}.log`);
      await fs.rm(logFile, { force: true });
      const p = await runProc(process.execPath, ['-r', preload, file], {
        cwd: pkg,
        env: { ...pgEnv(t), NODE_PATH: o.nodeModules.join(path.delimiter), DLPCTL_COMPAT_LOG: logFile, DLPCTL_COMPAT_SKIP: JSON.stringify(skip) },
        timeoutMs: o.timeoutMs,
      });
      const lines = (await fs.readFile(logFile, 'utf8').catch(() => '')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { start?: string; pass?: string });
      let open: string | null = null;
      for (const l of lines) {
        if (l.start !== undefined) open = l.start;
        if (l.pass !== undefined) {
          passed.add(`${rel} › ${l.pass}`);
          open = null;
        }
      }
      const ok = p.code === 0 && !p.timedOut;
      if (ok) break;
      const why = p.timedOut ? `watchdog: no end after ${o.timeoutMs / 1000} s\n` : '';
      if (open === null) {
        // The file failed outside any test (at load, in a top-level callback, or after its last test).
        failed.set(`${rel} › (file)`, why + tail(p.stdout + p.stderr));
        break;
      }
      failed.set(`${rel} › ${open}`, why + tunnelDenials(t) + denialOf(p.stdout + p.stderr) + tail(p.stdout + p.stderr));
      skip.push(open);
    }
    if (passed.size === 0 && failed.size === 0) passed.add(`${rel} › (file)`);
    for (const n of passed) outcomes.push({ name: n, pass: true });
    for (const [n, d] of failed) outcomes.push({ name: n, pass: false, detail: d });
  }
  return { outcomes, notes };
}
