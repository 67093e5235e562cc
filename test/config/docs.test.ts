import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderConfigManPage, renderConfigMarkdownReference, schemaKeyPaths } from '../../src/config/index.js';

/** Undoes the roff escapes used by the renderer so paths can be searched as written. */
const plain = (roff: string): string => roff.replace(/\\-/g, '-').replace(/\\e/g, '\\').replace(/\\f[BRI]/g, '').replace(/\\&/g, '');

describe('dlpctl.yaml(5)', () => {
  const man = plain(renderConfigManPage());
  const paths = schemaKeyPaths().map((e) => e.path);

  it('walks a schema with the expected paths', () => {
    for (const p of ['resources.<name>.tls.mode', 'resources.<name>.hostKey', 'policies.<name>[].when.sql.statements', 'tests[].http.method', 'detectors[].pattern', 'identity.groupsClaim']) {
      expect(paths).toContain(p);
    }
  });

  it('documents every key path of the schema', () => {
    const missing = paths.filter((p) => !man.includes(`.B ${p}\n`));
    expect(missing).toEqual([]);
  });

  it('has the required sections and embeds the example', () => {
    for (const s of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'SECRET REFERENCES', 'DURATIONS AND SIZES', 'EXAMPLE', 'FILES', 'SEE ALSO']) {
      expect(man).toContain(`.SH ${s}\n`);
    }
    const example = readFileSync(new URL('../../examples/dlpctl.yaml', import.meta.url), 'utf8');
    for (const line of example.split('\n').filter((l) => l.trim() !== '')) expect(man).toContain(line);
    expect(renderConfigManPage('version: 1\n.dangerous: x\n')).toContain('\\&.dangerous');
  });

  it('renders a Markdown reference from the same schema', () => {
    const md = renderConfigMarkdownReference();
    for (const p of paths) expect(md).toContain(`\`${p}\``);
  });
});
