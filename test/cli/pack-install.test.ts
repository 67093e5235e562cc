/**
 * The package as a user gets it: `npm pack` the checkout (the dist/ that `npm test`'s pretest just built), then
 * `npm install -g --prefix TMP TARBALL` and run the installed `dlpctl` from a directory outside the repository:
 * `--version`, `demo --script` (a real embedded PostgreSQL, so the runtime dependencies are really there) and
 * `man dlpctl` / `man 5 dlpctl.yaml` from the installed man pages. Dependencies come from the npm cache;
 * package metadata the cache lacks is read from the npm registry (--prefer-offline).
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli.js';

const run = promisify(execFile);
const pkg = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string; man: string[]; files: string[]; engines: { node: string } };

let tmp: string;
let prefix: string;
let dlpctl: string;
/** Node 24 first on PATH (the system node may be older than the package's engines); no npm_* of an outer `npm test`. */
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-pack-'));
  // As root the demo's PostgreSQL runs as the `postgres` user, which must reach the installed binaries.
  await chmod(tmp, 0o755);
  prefix = path.join(tmp, 'prefix');
  dlpctl = path.join(prefix, 'bin', 'dlpctl');
  env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_') || k === 'npm_config_cache'));
  env.PATH = `${path.join(repoRoot, 'node_modules', '.bin')}${path.delimiter}${process.env.PATH ?? ''}`;
  await stat(path.join(repoRoot, 'dist', 'cli', 'main.js')).catch(() => {
    throw new Error('dist/ is missing: run npm run build (npm test does it in pretest)');
  });
  const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: repoRoot, env, maxBuffer: 64 * 1024 * 1024 });
  const [info] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
  (globalThis as { packedFiles?: string[] }).packedFiles = info.files.map((f) => f.path);
  await run('npm', ['install', '-g', '--prefix', prefix, path.join(tmp, info.filename), '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: tmp,
    env,
    maxBuffer: 64 * 1024 * 1024,
  });
}, 150_000);

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('npm pack + npm install -g', () => {
  it('the tarball holds every man page (listed under "man"), the launcher, dist, docs and examples, and no sources or source maps', async () => {
    const files = (globalThis as { packedFiles?: string[] }).packedFiles!;
    const pages = (await readdir(path.join(repoRoot, 'man'))).sort();
    expect(pkg.man.map((m) => path.basename(m)).sort()).toEqual(pages);
    for (const page of pages) expect(files).toContain(`man/${page}`);
    for (const f of ['bin/dlpctl.js', 'dist/cli/main.js', 'dist/cli/node-support.js', 'README.md', 'docs/ci.md', 'examples/dlpctl.yaml', 'examples/github-actions.yml', 'examples/gitlab-ci.yml']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/') || f.endsWith('.map'))).toEqual([]);
    expect(pkg.engines.node).toBe('>=22.13 <23 || >=23.4');
  });

  it('the installed dlpctl answers --version from outside the repository', async () => {
    const { stdout } = await run(dlpctl, ['--version'], { cwd: tmp, env });
    expect(stdout.trim()).toBe(pkg.version);
  });

  it('the installed dlpctl runs demo --script: embedded PostgreSQL, masking, a denial, an intact audit chain', async () => {
    const home = path.join(tmp, 'home');
    await mkdir(home, { recursive: true });
    const { stdout, stderr } = await run(dlpctl, ['demo', '--script'], {
      cwd: tmp,
      env: { ...env, HOME: home, XDG_CONFIG_HOME: path.join(home, 'c'), XDG_DATA_HOME: path.join(home, 'd'), XDG_STATE_HOME: path.join(home, 's'), NO_COLOR: '1' },
      timeout: 90_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const all = stdout + stderr;
    expect(all).toMatch(/deny \[recommended\/no-drop-truncate\]\s+DROP TABLE customers/);
    expect(all).toMatch(/mask\.summary\s+column:ssn×5/);
    expect(all).toMatch(/hash chain: intact \(\d+ events\)/);
  });

  it('man finds the installed pages: dlpctl(1) and dlpctl.yaml(5)', async () => {
    const manEnv = { ...env, MANPAGER: 'cat', PAGER: 'cat', MANWIDTH: '100', LANG: 'C.UTF-8' };
    const one = await run('man', ['-M', path.join(prefix, 'share', 'man'), 'dlpctl'], { cwd: tmp, env: manEnv, maxBuffer: 8 * 1024 * 1024 });
    expect(one.stdout).toMatch(/^NAME\n\s+dlpctl/m);
    expect(one.stdout).toContain('dlpctl connect');
    expect(one.stdout).toContain('--id-token-var');
    const five = await run('man', ['-M', path.join(prefix, 'share', 'man'), '5', 'dlpctl.yaml'], { cwd: tmp, env: manEnv, maxBuffer: 8 * 1024 * 1024 });
    expect(five.stdout).toContain('identity.workload.gitlabVariable');
  });

  it('an older Node gets the engines answer, exit 1, not a stack trace', async () => {
    const system = await run('/usr/bin/node', ['--version']).then((r) => r.stdout.trim(), () => '');
    const major = Number(/^v(\d+)/.exec(system)?.[1] ?? 'NaN');
    // This machine's system Node is 20; where it is newer, the check below runs the launcher's own test.
    const node = major < 22 ? '/usr/bin/node' : process.execPath;
    const launcher = path.join(prefix, 'lib', 'node_modules', 'dlpctl', 'bin', 'dlpctl.js');
    const res = await run(node, [launcher, 'resources'], { cwd: tmp, env }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    if (major < 22) {
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/^dlpctl: this is Node\.js 20\.[\d.]+; dlpctl needs 22\.13 or newer/);
    } else {
      expect(res.stderr).not.toMatch(/needs 22\.13/);
    }
  });
});
