/**
 * psycopg 3's own tests (`pytest tests/ --test-dsn DSN`), pure-Python implementation on the system libpq
 * (PSYCOPG_IMPL=python), one pytest per file under a watchdog so that one hang costs one file.
 *
 * Left out on every side (so they never count): tests that use the `proxy` fixture (they need pproxy, not
 * installable here), test_typing.py and the mypy-marked tests (mypy runs, not the wire), gevent, Windows and
 * DNS SRV tests (no such modules or resolvers), test_tstring* (Python ≥ 3.14 only; pytest ignores them).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { denialOf, runProc, tail, targetUrl, type Outcome, type SuiteRun, type Target } from './common.js';

const EXCLUDED_FILES = new Set(['test_typing.py', 'test_gevent.py', 'test_windows.py', 'test_dns_srv.py', 'test_dns.py', 'test_tstring.py', 'test_tstring_async.py']);

async function testFiles(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await fs.readdir(root, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && /^test_.*\.py$/.test(e.name) && !EXCLUDED_FILES.has(e.name)) found.push(path.relative(path.dirname(root), path.join(e.parentPath, e.name)));
  }
  return found.sort();
}

export function psycopgPython(sources: string): string {
  return path.join(sources, 'venv', 'bin', 'python');
}

export async function runPsycopg(sources: string, t: Target, o: { tmp: string; only?: RegExp; timeoutMs: number }): Promise<SuiteRun> {
  const repo = path.join(sources, 'psycopg');
  const python = psycopgPython(sources);
  const outcomes: Outcome[] = [];
  try {
    await fs.access(path.join(repo, 'tests', 'conftest.py'));
    await fs.access(python);
  } catch {
    return { outcomes, notes: [`psycopg sources or venv missing under ${sources} (see test/compat/README.md)`] };
  }
  const dsn = `${targetUrl(t)}?sslmode=disable`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PSYCOPG_IMPL: 'python',
    PYTHONPATH: [path.join(repo, 'psycopg'), path.join(repo, 'psycopg_pool')].join(path.delimiter),
    PYTHONDONTWRITEBYTECODE: '1',
  };
  for (const k of ['PGHOST', 'PGPORT', 'PGUSER', 'PGPASSWORD', 'PGDATABASE']) delete env[k];
  // A fresh cache per file: conftest flags a run as crashed in the cache until it ends, so a file the
  // watchdog killed would otherwise make every later run refuse to start.
  let n = 0;
  for (const file of await testFiles(path.join(repo, 'tests'))) {
    if (o.only && !o.only.test(file)) continue;
    const p = await runProc(
      python,
      ['-m', 'pytest', file, '--test-dsn', dsn, '-m', 'not proxy and not mypy', '-p', 'no:randomly', '-o', `cache_dir=${path.join(o.tmp, `pytest-cache-${n++}`)}`, '-q', '-rA', '--timeout=60', '--color=no', '-o', 'addopts='],
      { cwd: repo, env, timeoutMs: o.timeoutMs },
    );
    const seen = new Set<string>();
    for (const line of p.stdout.split('\n')) {
      const m = /^(PASSED|FAILED|ERROR|XFAIL|XPASS) (\S+)(?: - (.*))?$/.exec(line);
      if (!m) continue;
      const name = m[2]!;
      if (seen.has(name)) continue; // a test that failed and then errored in teardown counts once
      seen.add(name);
      const pass = m[1] === 'PASSED' || m[1] === 'XFAIL' || m[1] === 'XPASS';
      outcomes.push(pass ? { name, pass } : { name, pass, detail: (m[3] ?? '') + '\n' + denialOf(sectionOf(p.stdout, name.split('::').slice(1).join('::'), 1e6)) + sectionOf(p.stdout, name.split('::').slice(1).join('::')) });
    }
    if (p.timedOut) outcomes.push({ name: `${file}::(file)`, pass: false, detail: `watchdog: pytest did not end within ${o.timeoutMs / 1000} s; last output:\n${tail(p.stdout)}` });
    else if (seen.size === 0 && p.code !== 0 && p.code !== 5) outcomes.push({ name: `${file}::(file)`, pass: false, detail: tail(p.stdout + p.stderr) });
  }
  return { outcomes, notes: [] };
}

/** The traceback section pytest prints for one test (`____ name ____`), to read the error text. */
function sectionOf(out: string, test: string, max = 2500): string {
  const at = out.indexOf(` ${test} _`);
  if (at < 0) return '';
  const next = out.indexOf('\n____', at + 1);
  return tail(out.slice(at, next < 0 ? undefined : next), max);
}
