import { loadModule, parseSync, scanSync } from 'libpg-query';
await loadModule();
let q = 'SELECT 1';
for (let i=0;i<1000;i++) q = `SELECT * FROM (${q}) s${i}`;
try { const r = parseSync(q); console.log('ok deep', JSON.stringify(r).length); } catch (e:any) { console.log('deep ERR', e.message); }
let q2 = 'SELECT 1';
for (let i=0;i<200;i++) q2 = `SELECT * FROM (${q2}) s${i}`;
try { const r = parseSync(q2); console.log('ok deep200', JSON.stringify(r).length); } catch (e:any) { console.log('deep ERR', e.message); }
console.log(JSON.stringify(scanSync("SELECT 'é'; DR/**/OP TABLE t; select 2")));
console.log(JSON.stringify(parseSync("SELECT 'é'; select 2;  select 3")));
for (const s of ["PREPARE p AS DELETE FROM t", "EXECUTE p", "CALL f(1)", "ALTER SYSTEM SET x = 1", "GRANT SELECT ON t TO u", "REVOKE SELECT ON t FROM u","TRUNCATE a, b","MERGE INTO t USING s ON t.id=s.id WHEN MATCHED THEN DELETE","SELECT * INTO x FROM y", "select f() from t, lateral g(t.a) x", "BEGIN", "SHOW x", "RESET x", "DEALLOCATE p", "insert into t select nextval('s'), now()"]) { try { console.log(s, JSON.stringify(parseSync(s))); } catch (e:any) { console.log(s, 'ERR', e.message);} }
