import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { renderManPages } from '../../src/cli/man-pages.js';
import { buildProgram } from '../../src/cli/program.js';
import { repoRoot } from '../helpers/cli.js';

describe('man pages', () => {
  it('are generated from the code and committed up to date (run `npm run man` when this fails)', async () => {
    const pages = await renderManPages();
    expect(Object.keys(pages).sort()).toEqual(['dlpctl.1', 'dlpctl.yaml.5']);
    for (const [name, text] of Object.entries(pages)) {
      const committed = await readFile(path.join(repoRoot, 'man', name), 'utf8');
      expect(committed, `man/${name} is stale: run npm run man`).toBe(text);
    }
  });

  it('document every registered command and the built-in policy', async () => {
    const page = (await renderManPages())['dlpctl.1']!;
    const program = buildProgram(async () => {});
    const walk = (cmd: typeof program, prefix: string[]): string[] =>
      cmd.commands.flatMap((c) => (c.commands.length ? walk(c, [...prefix, c.name()]) : [[...prefix, c.name()].join(' ')]));
    for (const name of walk(program, ['dlpctl'])) expect(page).toContain(`.SS "${name.replace(/-/g, '\\-')}`);
    expect(page).toContain('recommended');
    expect(page).toContain('.SH EXIT STATUS');
  });

  it('render with man(1) where it is installed', async () => {
    const run = promisify(execFile);
    const man = await run('sh', ['-c', 'command -v man || true']);
    if (!man.stdout.trim()) return; // the check above already guards the content; rendering needs man-db
    const out = await run('man', ['-l', path.join(repoRoot, 'man/dlpctl.1')], { env: { ...process.env, MANPAGER: 'cat', PAGER: 'cat', MANWIDTH: '100' } });
    expect(out.stdout).toContain('dlpctl');
  });
});
