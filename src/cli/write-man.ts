/** `npm run man`: regenerates man/ from the code. A test fails when the committed pages are stale. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderManPages } from './man-pages.js';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../man');
await mkdir(dir, { recursive: true });
for (const [name, text] of Object.entries(await renderManPages())) {
  await writeFile(path.join(dir, name), text);
  process.stdout.write(`wrote man/${name}\n`);
}
