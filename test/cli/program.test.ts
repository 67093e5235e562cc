import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nodeSupportProblem } from '../../src/cli/node-support.js';
import { runBin, runCli } from '../helpers/cli.js';
import { VERSION } from '../../src/cli/program.js';

/** A Node.js on this machine too old for dlpctl (Debian's nodejs package is one), or null. */
function oldNode(): string | null {
  for (const bin of ['/usr/bin/node', '/usr/local/bin/node']) {
    if (!fs.existsSync(bin)) continue;
    const v = execFileSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
    if (nodeSupportProblem(v) !== null) return bin;
  }
  return null;
}

describe('dlpctl program', () => {
  it('prints its version', async () => {
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(VERSION);
  });

  it('runs on the Node.js versions where node:sqlite needs no flag, and names the fix on others', () => {
    for (const v of ['22.13.0', '22.20.1', '23.4.0', '23.11.1', '24.0.0', '24.21.0', '25.2.0']) expect(nodeSupportProblem(v), v).toBeNull();
    for (const v of ['18.20.8', '20.20.2', '22.5.1', '22.12.0', '23.0.0', '23.3.0']) {
      const p = nodeSupportProblem(v);
      expect(p, v).toContain(`this is Node.js ${v}`);
      expect(p, v).toContain('needs 22.13 or newer');
    }
  });

  it('on a Node.js without node:sqlite, says which version to install and exits 1, instead of an internal error', async (ctx) => {
    const node = oldNode();
    if (!node) return ctx.skip('no Node.js older than 22.13 on this machine to run it with');
    const r = await runBin(['resources'], { node });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dlpctl: this is Node\.js \d+\.\d+\.\d+; dlpctl needs 22\.13 or newer/);
    expect(r.stderr).not.toContain('internal error');
  });

  it('lists only the commands that are registered, with the global options and exit codes', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['config', 'resources', 'store']) expect(r.stdout).toMatch(new RegExp(`^  ${cmd}\\b`, 'm'));
    for (const opt of ['--config <file>', '--store <url>', '--json', '--no-color', '--verbose']) expect(r.stdout).toContain(opt);
    expect(r.stdout).toContain('Exit codes:');
    expect(r.stdout).toContain('4  denied by policy');
  });

  it('has --help on every command', async () => {
    for (const args of [['config', 'validate'], ['config', 'get'], ['config', 'set'], ['resources'], ['store', 'migrate'], ['store', 'info'], ['store', 'prune']]) {
      const r = await runCli([...args, '--help']);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout, args.join(' ')).toContain(`Usage: dlpctl ${args.join(' ')}`);
    }
  });

  it('documents the --json output of commands that have one', async () => {
    const r = await runCli(['store', 'info', '--help']);
    expect(r.stdout).toContain('JSON output (--json):');
    expect(r.stdout).toContain('"schemaVersion"');
  });

  it('exits 2 on an unknown command or option, with a suggestion', async () => {
    const unknown = await runCli(['resorces']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'resorces'");
    expect(unknown.stderr).toContain('resources');
    const badOpt = await runCli(['resources', '--frobnicate']);
    expect(badOpt.code).toBe(2);
    expect(badOpt.stderr).toContain('--frobnicate');
  });

  it('exits 2 with the help on stderr when no command is given', async () => {
    const r = await runCli([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Usage: dlpctl');
    expect(r.stdout).toBe('');
  });

  it('runs as a built binary', async () => {
    const r = await runBin(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(VERSION);
  });
});

describe('version', () => {
  it('matches package.json', async () => {
    const { readFile } = await import('node:fs/promises');
    const { repoRoot } = await import('../helpers/cli.js');
    const pkg = JSON.parse(await readFile(`${repoRoot}/package.json`, 'utf8')) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });
});
