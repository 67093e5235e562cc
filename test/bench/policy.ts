/**
 * Policy engine micro-benchmarks: `npx tsx test/bench/policy.ts`. Prints a markdown table; `run()` returns it
 * for the bench runner.
 */
import { pathToFileURL } from 'node:url';
import type { Policy, Rule } from '../../src/config/types.js';
import { BUILTIN_POLICIES, classifySql, clearSqlCache, evaluate, initSqlParser, type EvaluationContext } from '../../src/policy/index.js';

/** µs per operation: the best of several rounds, so a busy machine disturbs the figure less. */
function timeIt(fn: (i: number) => void, rounds = 7, roundMs = 60): number {
  let n = 0;
  for (let i = 0; i < 500; i++) fn(n++); // warm-up
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    let ops = 0;
    const start = process.hrtime.bigint();
    let elapsed = 0;
    while (elapsed < roundMs * 1e6) {
      for (let k = 0; k < 50; k++) fn(n++);
      ops += 50;
      elapsed = Number(process.hrtime.bigint() - start);
    }
    best = Math.min(best, elapsed / ops / 1000);
  }
  return best;
}

const TYPICAL =
  "SELECT c.id, c.name, c.email, o.total FROM public.customers c JOIN orders o ON o.customer_id = c.id WHERE o.created_at > now() - interval '7 days' AND c.region = $1 ORDER BY o.total DESC LIMIT 50";

export async function run(): Promise<string> {
  await initSqlParser();
  const guard: Policy = {
    name: 'prod-guard',
    rules: [
      { name: 'no-ddl', action: 'deny', when: { sql: { statements: ['drop', 'truncate', 'alter'] } } },
      { name: 'writes', action: 'approve', approvers: ['group:dba'], when: { sql: { statements: ['insert', 'update', 'delete', 'merge'] } } },
      { name: 'bulk', action: 'limit', maxRows: 10_000 },
      { name: 'pii', action: 'mask', columns: ['public.customers.ssn', '*.email'], with: 'redact' },
    ],
  };
  const base: Omit<EvaluationContext, 'action' | 'policies'> = {
    resource: { name: 'pg', kind: 'postgres', default: 'allow', enforce: true },
    identity: { subject: 'ci-bot', groups: ['analytics-agents'], kind: 'machine', verified: true },
  };
  const cachedCtx: EvaluationContext = { ...base, policies: [BUILTIN_POLICIES.recommended!, guard], action: { type: 'sql', text: TYPICAL } };
  classifySql(TYPICAL);
  const cached = timeIt(() => evaluate(cachedCtx));

  // Uncached parse + classify: vary a literal so every text is new (same length class, ~200 chars).
  clearSqlCache();
  const uncached = timeIt((i) => classifySql(TYPICAL.replace('$1', `'r${i}'`)));
  clearSqlCache();

  const many: Rule[] = [];
  for (let i = 0; i < 1000; i++) {
    const k = i % 4;
    many.push(
      k === 0
        ? { name: `t${i}`, action: 'deny', when: { sql: { tables: [`table_${i}`] } } }
        : k === 1
          ? { name: `g${i}`, action: 'allow', when: { identity: { groups: [`group_${i}`] }, sql: { statements: ['select'] } } }
          : k === 2
            ? { name: `f${i}`, action: 'deny', when: { sql: { functions: [`fn_${i}`, `other_${i}*`] } } }
            : { name: `s${i}`, action: 'approve', approvers: ['group:dba'], when: { sql: { statements: ['delete'], tables: [`public.t_${i}`] } } },
    );
  }
  const manyCtx: EvaluationContext = { ...base, policies: [{ name: 'many', rules: many }], action: { type: 'sql', text: TYPICAL } };
  const thousand = timeIt(() => evaluate(manyCtx));

  const rows: [string, number, number][] = [
    ['decision, cached statement (recommended + 4 rules)', cached, 5],
    ['parse + classify, ~200-char statement, uncached', uncached, 50],
    ['evaluate 1,000 rules, cached statement', thousand, 100],
  ];
  const lines = ['| case | µs/op | target µs | ok |', '|---|---:|---:|:---:|'];
  for (const [name, us, target] of rows) lines.push(`| ${name} | ${us.toFixed(2)} | ${target} | ${us <= target ? 'yes' : 'NO'} |`);
  return `${lines.join('\n')}\n\n(statement: ${TYPICAL.length} characters)`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(await run());
}
