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
import { fileURLToPath } from 'node:url';
import { DENIAL, denialOf, runProc, tail, targetUrl, tunnelDenialsBetween, type Outcome, type SuiteRun, type Target } from './common.js';

/** test/compat, where the runner's pytest plugin (pytest_timeline.py) is. */
const HERE = path.dirname(fileURLToPath(import.meta.url));

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
    PYTHONPATH: [path.join(repo, 'psycopg'), path.join(repo, 'psycopg_pool'), HERE].join(path.delimiter),
    PYTHONDONTWRITEBYTECODE: '1',
  };
  for (const k of ['PGHOST', 'PGPORT', 'PGUSER', 'PGPASSWORD', 'PGDATABASE']) delete env[k];
  // A fresh cache per file: conftest flags a run as crashed in the cache until it ends, so a file the
  // watchdog killed would otherwise make every later run refuse to start.
  let n = 0;
  for (const file of await testFiles(path.join(repo, 'tests'))) {
    if (o.only && !o.only.test(file)) continue;
    const timeline = path.join(o.tmp, `pytest-timeline-${n}.jsonl`);
    const p = await runProc(
      python,
      ['-m', 'pytest', file, '--test-dsn', dsn, '-m', 'not proxy and not mypy', '-p', 'no:randomly', '-p', 'pytest_timeline', '-o', `cache_dir=${path.join(o.tmp, `pytest-cache-${n++}`)}`, '-q', '-rA', '--timeout=60', '--color=no', '-o', 'addopts='],
      { cwd: repo, env: { ...env, DLPCTL_COMPAT_TIMELINE: timeline }, timeoutMs: o.timeoutMs },
    );
    const spans = await testSpans(timeline);
    const seen = new Set<string>();
    for (const line of p.stdout.split('\n')) {
      const m = outcomeLine(line, spans);
      if (!m) continue;
      const name = m[2]!;
      if (seen.has(name)) continue; // a test that failed and then errored in teardown counts once
      seen.add(name);
      const pass = m[1] === 'PASSED' || m[1] === 'XFAIL' || m[1] === 'XPASS';
      if (pass) {
        outcomes.push({ name, pass });
        continue;
      }
      // pytest heads a class's test `Class.test`, where its node id says `Class::test`
      const section = name.split('::').slice(1).join('.');
      let detail = (m[3] ?? '') + '\n' + denialOf(sectionOf(p.stdout, section, 1e6));
      // No denial in the client's error text (the test failed on a later assertion, or a denial in its set-up
      // left a table behind): the tunnel's denials while this test ran.
      const span = spans.get(name);
      if (!DENIAL.test(detail) && span) detail += tunnelDenialsBetween(t, span.start, span.end);
      outcomes.push({ name, pass, detail: detail + sectionOf(p.stdout, section) });
    }
    if (p.timedOut) outcomes.push({ name: `${file}::(file)`, pass: false, detail: `watchdog: pytest did not end within ${o.timeoutMs / 1000} s; last output:\n${tail(p.stdout)}` });
    else if (seen.size === 0 && p.code !== 0 && p.code !== 5) outcomes.push({ name: `${file}::(file)`, pass: false, detail: tail(p.stdout + p.stderr) });
  }
  return { outcomes, notes: [] };
}

/**
 * One line of pytest's `-rA` summary: `STATUS node-id[ - short reason]`. A parameter may hold spaces or " - ",
 * so the node id is one the plugin saw start when it can be (the longest that fits), else the file's path,
 * `::` and the test up to the first " - ". Captured log lines such as `ERROR    psycopg:…` are no outcome.
 */
function outcomeLine(line: string, spans: ReadonlyMap<string, unknown>): [string, string, string, string | undefined] | null {
  const m = /^(PASSED|FAILED|ERROR|XFAIL|XPASS) (\S+\.py(?:::.*?)?)(?: - (.*))?$/.exec(line);
  if (!m) return null;
  const head = `${m[1]} `;
  let best: string | null = null;
  for (const id of spans.keys()) {
    if (line.startsWith(head + id) && (best === null || id.length > best.length)) {
      const rest = line.slice(head.length + id.length);
      if (rest === '' || rest.startsWith(' - ')) best = id;
    }
  }
  if (best === null) return [m[0], m[1]!, m[2]!, m[3]];
  const rest = line.slice(head.length + best.length);
  return [line, m[1]!, best, rest === '' ? undefined : rest.slice(3)];
}

/** When each test started and ended, from the runner's pytest plugin (pytest_timeline.py). */
async function testSpans(file: string): Promise<Map<string, { start: number; end: number }>> {
  const spans = new Map<string, { start: number; end: number }>();
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line) as { test: string; start?: number; end?: number };
    const s = spans.get(e.test) ?? { start: Infinity, end: Infinity };
    if (e.start !== undefined) s.start = e.start;
    if (e.end !== undefined) s.end = e.end;
    spans.set(e.test, s);
  }
  return spans;
}

/** The traceback section pytest prints for one test (`____ name ____`), to read the error text. */
function sectionOf(out: string, test: string, max = 2500): string {
  const at = out.indexOf(` ${test} _`);
  if (at < 0) return '';
  const next = out.indexOf('\n____', at + 1);
  return tail(out.slice(at, next < 0 ? undefined : next), max);
}
