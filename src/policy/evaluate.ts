/**
 * Evaluation of the rules of a resource's policies against one action → `Decision` (DESIGN §4).
 *
 * - Among the matching allow/deny/approve rules the strictest wins (deny > approve > allow; the first one in
 *   policy and rule order among equals decides, except that an approve rule naming approvers goes before one
 *   naming none); with none, the resource's `default`.
 * - An approval nobody could give is denied at once: when the deciding approve rule names no approvers (the
 *   built-in `recommended` policy's cannot know yours), holding the statement would only end in a denial at
 *   the timeout, so it is denied now with a message saying how to name approvers.
 * - Every matching mask rule applies; each limit takes its strictest (smallest) value.
 * - SQL is decided statement by statement; the message gets the strictest statement decision, so one denied
 *   statement denies the whole message.
 * - Fail closed (deny, with a message saying which and why):
 *     · a statement the parser could not parse — always (it cannot be told apart from anything else);
 *     · a statement of kind `unknown` (EXECUTE, LOAD, a body with dynamic SQL or in another language, …; the message
 *       says why when the classifier knows: `opaque`) while an allow/deny/approve rule that applies to the
 *       identity names statement kinds, tables, functions or noWhere — unless a matching rule names `unknown`
 *       explicitly in `statements` (that is the opt-out: `{ when: { sql: { statements: [unknown] } }, action:
 *       allow }` lets such statements through to the normal precedence);
 *     · an `entities` condition without an entity detector;
 *     · an SSH command line that cannot be resolved statically (policy/ssh/shell.ts: `$CMD args`, `sh -c "$X"`,
 *       a shell fed by a pipe) while a deny/approve rule with a `command` condition applies to the identity and
 *       matches nothing that could be resolved (an allow rule never covers such a line);
 *     · any error while evaluating (an invalid regular expression, an exception).
 *   A deny rule that matches outright decides instead of a fail-closed denial (same outcome, a better reason).
 *   Mask and limit rules that cannot be evaluated are applied (the conservative reading).
 * - SSH file reads (an action with `path`: sftp open for reading, each scp -f source) are decided by the rules
 *   with an `ssh.paths` condition only; the channel they run on was decided already, so without one they pass.
 * - `enforce: false`: `action` is `allow`, `wouldBe` what would have happened. Masks and limits still apply:
 *   observe-only mode relaxes the allow/deny/approve outcome, not data protection.
 */
import type { Policy, Rule } from '../config/types.js';
import { classifySql, type SqlStatement } from './sql/classify.js';
import { compileRules, matchRule, unitContent, INDETERMINATE, NO, type CompiledRule, type MatchEnv, type IndeterminateCause } from './match.js';
import type {
  Decision, DecisionAction, DecisionBasis, EvaluationContext, LimitSources, Limits, MaskDirective, MatchedRule,
  RuleRef, StatementDecision,
} from './types.js';

const LIMIT_KEYS = ['maxRows', 'maxBytes', 'maxBodyBytes', 'ratePerMinute'] as const;
const ACTION_STRICTNESS: Record<DecisionAction, number> = { allow: 1, approve: 2, deny: 3 };

/** The result of deciding one unit (statement, request, channel). */
interface UnitResult {
  action: DecisionAction;
  basis: DecisionBasis;
  rule: RuleRef | null;
  decidingRule: Rule | null;
  message: string;
  matched: MatchedRule[];
  masks: MaskDirective[];
  limits: Limits;
  limitSources: LimitSources;
}

const identityExpand = (names: string[]): string[] => names;

function makeEnv(ctx: EvaluationContext, stmt: SqlStatement | null): MatchEnv {
  let found: ReadonlySet<string> | null | undefined;
  return {
    action: ctx.action,
    identity: ctx.identity,
    stmt,
    expandEntities: ctx.expandEntities ?? identityExpand,
    entities: () => {
      if (found === undefined) found = ctx.detectEntities ? ctx.detectEntities(unitContent(ctx.action, stmt)) : null;
      return found;
    },
  };
}

function maskOf(policy: Policy, rule: Rule): MaskDirective {
  const m: MaskDirective = { policy: policy.name, rule: rule.name };
  if (rule.columns) m.columns = rule.columns;
  if (rule.entities) m.entities = rule.entities;
  if (rule.with) m.with = rule.with;
  if (rule.keep !== undefined) m.keep = rule.keep;
  if (rule.restore !== undefined) m.restore = rule.restore;
  return m;
}

function applyLimit(limits: Limits, sources: LimitSources, policy: Policy, rule: Rule): void {
  for (const k of LIMIT_KEYS) {
    const v = rule[k];
    if (v === undefined) continue;
    const cur = limits[k];
    if (cur === undefined || v < cur) {
      limits[k] = v;
      sources[k] = { policy: policy.name, rule: rule.name };
    }
  }
}

function describeCondition(c: CompiledRule): string {
  const s = c.sql;
  if (s?.statements) return 'names statement kinds';
  if (s?.tables) return 'names tables';
  if (s?.functions) return 'names functions';
  if (s?.commands) return 'names statement commands';
  if (s?.noWhere !== undefined) return 'has a noWhere condition';
  return 'has an entities condition';
}

/** Whether an (approve) rule names anyone who could approve. */
export function namesApprovers(rule: Rule | null): boolean {
  return (rule?.approvers?.length ?? 0) > 0;
}

function ruleMessage(rule: Rule, policy: Policy): string {
  return rule.message ?? `${rule.action === 'approve' ? 'needs approval' : rule.action === 'deny' ? 'denied' : 'allowed'} by policy ${policy.name} rule ${rule.name}`;
}

/** Decides one unit. Throws on an evaluation error (the caller fails closed). */
function decideUnit(ctx: EvaluationContext, stmt: SqlStatement | null, index: number | undefined): UnitResult {
  const env = makeEnv(ctx, stmt);
  const matched: MatchedRule[] = [];
  const masks: MaskDirective[] = [];
  const limits: Limits = {};
  const limitSources: LimitSources = {};
  let best = 0;
  let bestRule: Rule | null = null;
  let bestPolicy: Policy | null = null;
  let indet: { policy: Policy; rule: CompiledRule; cause: IndeterminateCause; opaque?: string } | null = null;
  let unknownOptOut = false;

  // A file read of an already decided SSH channel (sftp open, scp -f) is decided by `paths` rules alone.
  const fileRead = ctx.action.type === 'ssh' && ctx.action.path !== undefined;
  for (const policy of ctx.policies) {
    const compiled = compileRules(policy.rules);
    for (let ri = 0; ri < compiled.length; ri++) {
      const c = compiled[ri]!;
      const rule = c.rule;
      if (fileRead && !c.ssh?.paths) continue;
      env.cause = undefined;
      const r = matchRule(c, env);
      if (r === NO) continue;
      if (r === INDETERMINATE) {
        if (c.strictness > 0) {
          indet ??= { policy, rule: c, cause: env.cause ?? 'unclassified', ...(env.opaque !== undefined ? { opaque: env.opaque } : {}) };
          continue;
        }
        // mask / limit that cannot be evaluated: apply it.
      }
      const m: MatchedRule = { policy: policy.name, rule: rule.name, action: rule.action };
      if (index !== undefined) m.statement = index;
      matched.push(m);
      if (rule.action === 'mask') masks.push(maskOf(policy, rule));
      else if (rule.action === 'limit') applyLimit(limits, limitSources, policy, rule);
      else {
        if (stmt?.kind === 'unknown' && c.sql?.statements?.has('unknown')) unknownOptOut = true;
        if (c.strictness > best || (c.strictness === best && rule.action === 'approve' && !namesApprovers(bestRule) && namesApprovers(rule))) {
          best = c.strictness;
          bestRule = rule;
          bestPolicy = policy;
        }
      }
    }
  }

  const base = { matched, masks, limits, limitSources };
  if (stmt?.error !== undefined) {
    return {
      ...base,
      action: 'deny',
      basis: 'fail_closed',
      rule: null,
      decidingRule: null,
      message: `could not parse this statement (${stmt.error}); denied: dlpctl fails closed on SQL it cannot parse`,
    };
  }
  // A rule that denies outright says more than a fail-closed denial, and the outcome is the same.
  const definiteDeny = bestRule?.action === 'deny';
  if (indet && !definiteDeny && !(indet.cause === 'unclassified' && unknownOptOut)) {
    const { policy, rule, cause } = indet;
    const message =
      cause === 'no_detector'
        ? `no entity detector is available; denied because policy ${policy.name} rule ${rule.rule.name} has an entities condition`
        : cause === 'opaque_command'
          ? `cannot tell statically what this command line runs (${indet.opaque ?? 'unresolved'}); denied because policy ${policy.name} rule ${rule.rule.name} has a command condition (write the command without expansions in its name, or run it through a script the rule allows)`
          : `could not classify this statement (${stmt?.command ?? 'unknown'}${stmt?.opaque !== undefined ? `: ${stmt.opaque}` : ''}); denied because policy ${policy.name} rule ${rule.rule.name} ${describeCondition(rule)}`;
    return {
      ...base,
      action: 'deny',
      basis: 'fail_closed',
      rule: { policy: policy.name, rule: rule.rule.name },
      decidingRule: rule.rule,
      message,
    };
  }
  if (bestRule && bestPolicy && bestRule.action === 'approve' && !namesApprovers(bestRule)) {
    return {
      ...base,
      action: 'deny',
      basis: 'fail_closed',
      rule: { policy: bestPolicy.name, rule: bestRule.name },
      decidingRule: bestRule,
      message:
        `${ruleMessage(bestRule, bestPolicy)}; denied now, because no matching approve rule names approvers, so nobody could approve it ` +
        '(add an approve rule with approvers, e.g. approvers: [group:dba], for these statements)',
    };
  }
  if (bestRule && bestPolicy) {
    return {
      ...base,
      action: bestRule.action as DecisionAction,
      basis: 'rule',
      rule: { policy: bestPolicy.name, rule: bestRule.name },
      decidingRule: bestRule,
      message: ruleMessage(bestRule, bestPolicy),
    };
  }
  const d = fileRead ? 'allow' : ctx.resource.default;
  return {
    ...base,
    action: d,
    basis: 'default',
    rule: null,
    decidingRule: null,
    message: fileRead ? 'no paths rule matches this file' : `no rule decided; the default of resource ${ctx.resource.name} is ${d}`,
  };
}

function finish(ctx: EvaluationContext, u: UnitResult, statements?: StatementDecision[]): Decision {
  const enforced = ctx.resource.enforce !== false;
  const d: Decision = {
    action: enforced ? u.action : 'allow',
    enforced,
    wouldBe: u.action,
    basis: u.basis,
    rule: u.rule,
    message: enforced || u.action === 'allow' ? u.message : `observe only (enforce: false), would have been ${u.action === 'deny' ? 'denied' : 'held for approval'}: ${u.message}`,
    matched: u.matched,
    masks: u.masks,
    limits: u.limits,
    limitSources: u.limitSources,
    approvers: [],
  };
  const r = u.decidingRule;
  if (u.action === 'approve' && r) {
    d.approvers = r.approvers ? [...r.approvers] : [];
    if (r.minApprovals !== undefined) d.minApprovals = r.minApprovals;
    if (r.timeout !== undefined) d.timeout = r.timeout;
  }
  if (statements) d.statements = statements;
  return d;
}

function failClosed(ctx: EvaluationContext, err: unknown): Decision {
  const why = err instanceof Error ? err.message : String(err);
  return finish(ctx, {
    action: 'deny',
    basis: 'fail_closed',
    rule: null,
    decidingRule: null,
    message: `policy evaluation failed (${why}); denied: dlpctl fails closed`,
    matched: [],
    masks: [],
    limits: {},
    limitSources: {},
  });
}

/** Decides an action. Never throws: an evaluation error is a denial that says why. */
export function evaluate(ctx: EvaluationContext): Decision {
  try {
    return evaluateUnsafe(ctx);
  } catch (err) {
    return failClosed(ctx, err);
  }
}

function evaluateUnsafe(ctx: EvaluationContext): Decision {
  if (ctx.action.type !== 'sql') return finish(ctx, decideUnit(ctx, null, undefined));
  const classification = ctx.action.classification ?? classifySql(ctx.action.text);
  const stmts = classification.statements;
  if (stmts.length === 0) return finish(ctx, decideUnit(ctx, null, undefined), []);
  if (stmts.length === 1) {
    const u = decideUnit(ctx, stmts[0]!, 0);
    return finish(ctx, u, [statementDecision(u, stmts[0]!, 0)]);
  }
  const units = stmts.map((s, i) => decideUnit(ctx, s, i));
  let winner = units[0]!;
  for (const u of units) if (ACTION_STRICTNESS[u.action] > ACTION_STRICTNESS[winner.action]) winner = u;
  const matched: MatchedRule[] = [];
  const masks: MaskDirective[] = [];
  const seenMask = new Set<string>();
  const limits: Limits = {};
  const limitSources: LimitSources = {};
  for (const u of units) {
    matched.push(...u.matched);
    for (const m of u.masks) {
      const key = `${m.policy}\u0000${m.rule}`;
      if (!seenMask.has(key)) {
        seenMask.add(key);
        masks.push(m);
      }
    }
    for (const k of LIMIT_KEYS) {
      const v = u.limits[k];
      if (v !== undefined && (limits[k] === undefined || v < limits[k]!)) {
        limits[k] = v;
        limitSources[k] = u.limitSources[k]!;
      }
    }
  }
  const wi = units.indexOf(winner);
  const message = stmts.length > 1 && winner.action !== 'allow' ? `statement ${wi + 1} of ${stmts.length}: ${winner.message}` : winner.message;
  return finish(
    ctx,
    { ...winner, message, matched, masks, limits, limitSources },
    units.map((u, i) => statementDecision(u, stmts[i]!, i)),
  );
}

function statementDecision(u: UnitResult, s: SqlStatement, index: number): StatementDecision {
  return { index, text: s.text, kind: s.kind, action: u.action, basis: u.basis, rule: u.rule, message: u.message, matched: u.matched };
}

/** Internal: used by explain to decide with the same machinery. */
export { makeEnv as _makeEnv };
