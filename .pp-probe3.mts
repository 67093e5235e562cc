import { loadModule, parseSync } from 'libpg-query';
await loadModule();
for (const n of [300, 500, 700, 1000]) {
let q = 'SELECT 1';
for (let i=0;i<n;i++) q = `SELECT * FROM (${q}) s${i}`;
try { const r = parseSync(q); console.log('ok', n); } catch (e:any) { console.log(n, 'ERR', e.message, e.stack.split('\n').slice(0,6).join('|')); }
}
