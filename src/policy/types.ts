/**
 * The values the policy engine takes and returns. Policy is pure: everything it needs (classification,
 * entity detection) comes in through the context.
 */
import type { Policy, Resource, ResourceKind, MaskerName, SshChannelKind, SqlStatementKind } from '../config/types.js';
import type { SqlClassification } from './sql/classify.js';

export type DecisionAction = 'allow' | 'deny' | 'approve';

export interface PolicyIdentity {
  subject: string;
  groups: readonly string[];
  kind: 'human' | 'machine';
  issuer?: string;
  email?: string;
  verified: boolean;
}

export type PolicyAction =
  | { type: 'sql'; text: string; classification?: SqlClassification }
  | { type: 'http'; method: string; path: string; headers: Readonly<Record<string, string | readonly string[]>>; body?: string }
  | { type: 'ssh'; channel: SshChannelKind; command?: string; target?: string; path?: string };

/** The resource fields the engine reads. A full `Resource` fits. */
export type PolicyResource = Pick<Resource, 'name' | 'default' | 'enforce'> & { kind: ResourceKind };

export interface EvaluationContext {
  resource: PolicyResource;
  /** The resource's policies, resolved (built-ins included), in the resource's order. */
  policies: readonly Policy[];
  identity: PolicyIdentity;
  action: PolicyAction;
  /** Entity names found in a text. Required when a rule has an `entities` condition (else: deny). */
  detectEntities?: (text: string) => ReadonlySet<string>;
  /** Expands group names such as `secrets` into entity names. Defaults to the identity. */
  expandEntities?: (names: string[]) => string[];
}

export interface RuleRef {
  policy: string;
  rule: string;
}

export interface MatchedRule extends RuleRef {
  action: Policy['rules'][number]['action'];
  /** Index of the SQL statement the rule matched (SQL actions only). */
  statement?: number;
}

export interface MaskDirective extends RuleRef {
  columns?: readonly string[];
  entities?: readonly string[];
  with?: MaskerName;
  keep?: number;
  restore?: boolean;
}

export interface Limits {
  maxRows?: number;
  maxBytes?: number;
  maxBodyBytes?: number;
  ratePerMinute?: number;
}

/** For each limit in `Limits`, the rule whose value won. */
export type LimitSources = Partial<Record<keyof Limits, RuleRef>>;

/** Why the decision is what it is. */
export type DecisionBasis = 'rule' | 'default' | 'fail_closed';

export interface StatementDecision {
  index: number;
  text: string;
  kind: SqlStatementKind;
  action: DecisionAction;
  basis: DecisionBasis;
  rule: RuleRef | null;
  message: string;
  matched: MatchedRule[];
}

export interface Decision {
  /** What the proxy does: with `enforce: false` always `allow`. */
  action: DecisionAction;
  /** False when the resource is in observe-only mode (`enforce: false`). */
  enforced: boolean;
  /** What the policy decided, enforced or not. Equal to `action` when enforced. */
  wouldBe: DecisionAction;
  basis: DecisionBasis;
  /** The rule that decided (null for the resource default and for some fail-closed denials). */
  rule: RuleRef | null;
  /** The deciding rule's message, or a generated one saying why. */
  message: string;
  /** Every rule that matched (mask and limit rules included). */
  matched: MatchedRule[];
  /** Every matching mask rule, in policy order. Applied whether or not the resource enforces decisions. */
  masks: MaskDirective[];
  /** The strictest value of each limit among the matching limit rules. */
  limits: Limits;
  limitSources: LimitSources;
  /** For `approve`: who may approve, how many, how long to wait (from the deciding rule). */
  approvers: string[];
  minApprovals?: number;
  timeout?: number;
  /** SQL: one decision per statement. */
  statements?: StatementDecision[];
}
