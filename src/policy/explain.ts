/**
 * `dlpctl policy explain`: the decision, what the classifier saw, and for every rule of every policy whether it
 * matched and, when not, which condition failed and why.
 */
import type { RuleAction, SqlStatementKind } from '../config/types.js';
import { evaluate, _makeEnv } from './evaluate.js';
import { compileRule, matchRule, INDETERMINATE, YES } from './match.js';
import { classifySql, type SqlClassification, type SqlStatement } from './sql/classify.js';
import type { Decision, EvaluationContext } from './types.js';

export interface RuleExplanation {
  policy: string;
  rule: string;
  action: RuleAction;
  /** SQL: the statement this line is about. */
  statement?: number;
  result: 'matched' | 'not matched' | 'indeterminate';
  /** Failing (or indeterminate) conditions; empty when matched. */
  reasons: string[];
  /** This rule made the decision (of its statement). */
  decided: boolean;
}

export interface StatementSummary {
  index: number;
  text: string;
  kind: SqlStatementKind;
  effects: readonly SqlStatementKind[];
  command: string;
  tables: string[];
  functions: readonly string[];
  noWhere: boolean;
  error?: string;
  /** Why part of the statement cannot be analysed (dynamic SQL in a body, another language). */
  opaque?: string;
}

export interface Explanation {
  decision: Decision;
  classification?: { statements: StatementSummary[]; error?: string };
  rules: RuleExplanation[];
}

function summarize(s: SqlStatement, index: number): StatementSummary {
  const out: StatementSummary = {
    index, text: s.text, kind: s.kind, effects: s.effects, command: s.command,
    tables: [...new Set([...s.reads, ...s.writes])], functions: s.functions, noWhere: s.noWhere,
  };
  if (s.error !== undefined) out.error = s.error;
  if (s.opaque !== undefined) out.opaque = s.opaque;
  return out;
}

export function explain(ctx: EvaluationContext): Explanation {
  let classification: SqlClassification | undefined;
  let classifyError: string | undefined;
  if (ctx.action.type === 'sql') {
    try {
      classification = ctx.action.classification ?? classifySql(ctx.action.text);
    } catch (err) {
      classifyError = err instanceof Error ? err.message : String(err);
    }
  }
  const decision = evaluate(classification && ctx.action.type === 'sql' ? { ...ctx, action: { ...ctx.action, classification } } : ctx);
  const rules: RuleExplanation[] = [];
  const units: (SqlStatement | null)[] = classification && classification.statements.length > 0 ? [...classification.statements] : [null];
  units.forEach((stmt, i) => {
    const env = _makeEnv(ctx, stmt);
    const decidedBy = stmt && decision.statements ? decision.statements[i]?.rule : decision.rule;
    for (const policy of ctx.policies) {
      for (const rule of policy.rules) {
        const why: string[] = [];
        let r: number;
        try {
          r = matchRule(compileRule(rule), env, why);
        } catch (err) {
          r = INDETERMINATE;
          why.push(`evaluation error: ${err instanceof Error ? err.message : String(err)}`);
        }
        const line: RuleExplanation = {
          policy: policy.name,
          rule: rule.name,
          action: rule.action,
          result: r === YES ? 'matched' : r === INDETERMINATE ? 'indeterminate' : 'not matched',
          reasons: r === YES ? [] : why,
          decided: decidedBy?.policy === policy.name && decidedBy.rule === rule.name,
        };
        if (stmt) line.statement = i;
        rules.push(line);
      }
    }
  });
  const x: Explanation = { decision, rules };
  if (classification) {
    x.classification = { statements: classification.statements.map(summarize) };
    if (classification.error !== undefined) x.classification.error = classification.error;
  } else if (classifyError !== undefined) {
    x.classification = { statements: [], error: classifyError };
  }
  return x;
}

/** Plain text for people (no colour: the CLI adds it). */
export function formatExplanation(x: Explanation): string {
  const d = x.decision;
  const out: string[] = [];
  const by = d.rule ? `policy ${d.rule.policy} rule ${d.rule.rule}` : d.basis === 'default' ? 'resource default' : 'fail closed';
  out.push(`decision: ${d.action}${d.enforced ? '' : ` (observe only; would be ${d.wouldBe})`} — ${by}`);
  out.push(`message:  ${d.message}`);
  if (d.approvers.length) out.push(`approvers: ${d.approvers.join(', ')}${d.timeout !== undefined ? `; timeout ${Math.round(d.timeout / 1000)}s` : ''}`);
  for (const m of d.masks) {
    const what = [m.columns?.length ? `columns ${m.columns.join(', ')}` : '', m.entities?.length ? `entities ${m.entities.join(', ')}` : ''].filter(Boolean).join('; ');
    out.push(`mask:     ${m.policy}/${m.rule}: ${what}${m.with ? ` with ${m.with}` : ''}`);
  }
  const limits = Object.entries(d.limits).map(([k, v]) => `${k} ${String(v)}`);
  if (limits.length) out.push(`limits:   ${limits.join(', ')}`);
  if (x.classification) {
    out.push('', 'statements:');
    if (x.classification.statements.length === 0) out.push(`  (none)${x.classification.error ? ` — ${x.classification.error}` : ''}`);
    for (const s of x.classification.statements) {
      const sd = d.statements?.[s.index];
      out.push(`  ${s.index + 1}. ${oneLine(s.text)}`);
      out.push(`     kind ${s.kind}${s.effects.length > 1 ? ` (effects ${s.effects.join(', ')})` : ''}; command ${s.command}`);
      out.push(`     tables ${s.tables.length ? s.tables.join(', ') : '-'}; functions ${s.functions.length ? s.functions.join(', ') : '-'}; noWhere ${s.noWhere ? 'yes' : 'no'}`);
      if (s.error) out.push(`     parse error: ${s.error}`);
      if (s.opaque) out.push(`     not analysable: ${s.opaque}`);
      if (sd) out.push(`     → ${sd.action}: ${sd.message}`);
    }
  }
  out.push('', 'rules:');
  const multi = (x.classification?.statements.length ?? 0) > 1;
  for (const r of x.rules) {
    const where = multi && r.statement !== undefined ? ` [statement ${r.statement + 1}]` : '';
    const mark = r.decided ? '  (decided)' : '';
    out.push(`  ${r.policy}/${r.rule} (${r.action})${where}: ${r.result}${mark}`);
    for (const why of r.reasons) out.push(`      ${why}`);
  }
  return out.join('\n');
}

function oneLine(s: string): string {
  const t = s.replace(/\s+/g, ' ');
  return t.length > 120 ? `${t.slice(0, 117)}...` : t;
}
