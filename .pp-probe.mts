import { loadModule, parseSync } from 'libpg-query';
await loadModule();
const qs = process.argv.slice(2);
for (const q of qs) { try { console.log(q, '\n', JSON.stringify(parseSync(q))); } catch (e:any) { console.log(q, 'ERR', e.message, JSON.stringify(e.sqlDetails)); } }
