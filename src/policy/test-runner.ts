/**
 * `dlpctl policy test`: runs the `tests:` cases of a config against its policies. Pure: the SQL parser must be
 * loaded (`await initSqlParser()`) and entity detection and masking are injected.
 */
import type { Policy, PolicyTestCase, Resource } from '../config/types.js';
import { resolvePolicies } from './builtin.js';
import { evaluate } from './evaluate.js';
import type { Decision, DecisionAction, EvaluationContext, MaskDirective, PolicyAction, PolicyResource } from './types.js';

export interface PolicyTestConfig {
  resources: Readonly<Record<string, Resource | (PolicyResource & { policies: readonly string[] })>>;
  policies: Readonly<Record<string, Policy>>;
}

export interface PolicyTestOptions {
  detectEntities?: (text: string) => ReadonlySet<string>;
  expandEntities?: (names: string[]) => string[];
  /** Masks `sample` as the resource would with the decision's masks. */
  maskSample?: (resource: string, masks: readonly MaskDirective[], sample: string) => string;
}

export interface PolicyTestResult {
  name: string;
  pass: boolean;
  expected: DecisionAction;
  /** What the policy decided (`wouldBe`: observe-only resources are tested as if they enforced). */
  actual: DecisionAction | null;
  expectedRule?: string;
  actualRule: string | null;
  /** Human-readable differences, empty when the case passes. */
  diff: string[];
  masked?: { expected: string; actual: string | null };
  decision?: Decision;
  pos?: PolicyTestCase['pos'];
}

function actionOf(c: PolicyTestCase): PolicyAction | string {
  const n = (c.sql !== undefined ? 1 : 0) + (c.http ? 1 : 0) + (c.ssh ? 1 : 0);
  if (n !== 1) return 'a test case needs exactly one of sql, http, ssh';
  if (c.sql !== undefined) return { type: 'sql', text: c.sql };
  if (c.http) return { type: 'http', method: c.http.method, path: c.http.path, headers: c.http.headers ?? {}, ...(c.http.body !== undefined ? { body: c.http.body } : {}) };
  const ssh = c.ssh!;
  return { type: 'ssh', channel: ssh.channel ?? (ssh.command !== undefined ? 'exec' : 'shell'), ...(ssh.command !== undefined ? { command: ssh.command } : {}) };
}

export function runPolicyTests(config: PolicyTestConfig, cases: readonly PolicyTestCase[], opts: PolicyTestOptions = {}): PolicyTestResult[] {
  return cases.map((c) => runOne(config, c, opts));
}

function runOne(config: PolicyTestConfig, c: PolicyTestCase, opts: PolicyTestOptions): PolicyTestResult {
  const result: PolicyTestResult = { name: c.name, pass: false, expected: c.expect, actual: null, actualRule: null, diff: [] };
  if (c.rule !== undefined) result.expectedRule = c.rule;
  if (c.pos) result.pos = c.pos;
  const resource = Object.hasOwn(config.resources, c.resource) ? config.resources[c.resource] : undefined;
  if (!resource) {
    result.diff.push(`resource ${c.resource} is not defined`);
    return result;
  }
  const action = actionOf(c);
  if (typeof action === 'string') {
    result.diff.push(action);
    return result;
  }
  let policies: Policy[];
  try {
    policies = resolvePolicies(resource.policies, config.policies);
  } catch (err) {
    result.diff.push(err instanceof Error ? err.message : String(err));
    return result;
  }
  const ctx: EvaluationContext = {
    resource: { name: resource.name ?? c.resource, kind: resource.kind, default: resource.default, enforce: true },
    policies,
    identity: { subject: c.as.subject ?? 'policy-test', groups: c.as.groups ?? [], kind: c.as.kind ?? 'machine', verified: true },
    action,
  };
  if (opts.detectEntities) ctx.detectEntities = opts.detectEntities;
  if (opts.expandEntities) ctx.expandEntities = opts.expandEntities;
  const d = evaluate(ctx);
  result.decision = d;
  result.actual = d.wouldBe;
  result.actualRule = d.rule?.rule ?? null;
  const describe = (a: string, r: string | null | undefined): string => `${a}${r ? ` (rule ${r})` : ''}`;
  if (d.wouldBe !== c.expect || (c.rule !== undefined && c.rule !== result.actualRule)) {
    result.diff.push(`- expected: ${describe(c.expect, c.rule)}`);
    result.diff.push(`+ actual:   ${describe(d.wouldBe, result.actualRule ?? (d.basis === 'default' ? 'none: resource default' : 'none: fail closed'))}`);
    result.diff.push(`  message:  ${d.message}`);
  }
  if (c.masked !== undefined) {
    if (c.sample === undefined) result.diff.push('masked is given without a sample to mask');
    else if (!opts.maskSample) {
      result.masked = { expected: c.masked, actual: null };
      result.diff.push('masked is given but no masker is available');
    } else {
      const actual = opts.maskSample(c.resource, d.masks, c.sample);
      result.masked = { expected: c.masked, actual };
      if (actual !== c.masked) {
        result.diff.push(`- masked: ${c.masked}`);
        result.diff.push(`+ masked: ${actual}`);
      }
    }
  }
  result.pass = result.diff.length === 0;
  return result;
}
