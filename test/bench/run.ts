/**
 * `npm run bench`: every benchmark in turn, each printing its side-by-side table. `npm run bench -- dlp
 * store` runs only those. Not part of `npm test`: these machines are shared and noisy, so figures are read
 * by people, never asserted.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ALL = ['cli', 'dlp', 'policy', 'store', 'postgres', 'http', 'ssh', 'audit'];
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const dir = path.dirname(fileURLToPath(import.meta.url));

for (const name of wanted.length ? wanted : ALL) {
  let mod: { run?: () => Promise<string> };
  try {
    mod = (await import(path.join(dir, `${name}.ts`))) as { run?: () => Promise<string> };
  } catch (err) {
    process.stdout.write(`\n## ${name}\n\n(not available: ${(err as Error).message.split('\n')[0]})\n`);
    continue;
  }
  if (!mod.run) continue;
  process.stdout.write(`\n## ${name}\n\n`);
  const started = performance.now();
  try {
    process.stdout.write(`${await mod.run()}\n`);
  } catch (err) {
    process.stdout.write(`failed: ${(err as Error).message}\n`);
  }
  process.stdout.write(`\n_(${((performance.now() - started) / 1000).toFixed(1)} s)_\n`);
}
