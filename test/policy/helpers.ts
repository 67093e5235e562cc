import type { Policy, Rule } from '../../src/config/types.js';
import type { EvaluationContext, PolicyAction, PolicyIdentity } from '../../src/policy/index.js';

export const bot: PolicyIdentity = { subject: 'ci-bot', groups: ['analytics-agents'], kind: 'machine', verified: true };
export const alice: PolicyIdentity = { subject: 'alice', groups: ['dba'], kind: 'human', email: 'Alice@Example.com', verified: true };

export function policy(name: string, ...rules: Rule[]): Policy {
  return { name, rules };
}

export function sql(text: string): PolicyAction {
  return { type: 'sql', text };
}

export function ctx(
  policies: Policy[],
  action: PolicyAction,
  over: Partial<Omit<EvaluationContext, 'policies' | 'action'>> & { default?: 'allow' | 'deny'; enforce?: boolean } = {},
): EvaluationContext {
  const { default: def, enforce, ...rest } = over;
  const kind = action.type === 'sql' ? 'postgres' : action.type;
  return {
    resource: { name: 'res', kind, default: def ?? 'allow', enforce: enforce ?? true },
    policies,
    identity: bot,
    action,
    ...rest,
  };
}
