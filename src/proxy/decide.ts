/**
 * What the three tunnels share around the policy engine: the session identity in the policy engine's
 * shape; evaluating an action with the tunnel's policies,
 * identity and audit detectors; naming the rule that decided; the label the audit trail records (observe
 * mode); and the approval request a decision asks for (its approvers, minimum and timeout).
 */
import { DEFAULT_APPROVAL_TIMEOUT_MS, type ApprovalRequest } from '../approvals/request.js';
import { expandEntities, type CustomDetectorSpec, type DlpEngine } from '../dlp/index.js';
import { evaluate, type PolicyIdentity } from '../policy/index.js';
import type { EvaluationContext } from '../policy/types.js';
import type { Decision as PolicyDecision } from '../policy/types.js';
import type { Policy } from '../config/types.js';
import type { Decision as AuditLabel, Identity, SessionStore } from '../store/types.js';

/** The options every kind of tunnel engine takes besides its own. */
export interface EngineBaseOptions {
  /** The resource's policies, resolved (built-ins included). */
  policies: readonly Policy[];
  store: SessionStore;
  /** Who the tunnel's sessions run as. */
  identity: Identity;
  /** `--reason`, stored on each session and shown to approvers. */
  reason?: string;
  /** The configuration's custom detectors, for `entities:` conditions and masking. */
  customDetectors?: readonly CustomDetectorSpec[];
  /** Called when a statement, request or command waits for approval (the CLI prints the approve command). */
  onApprovalPending?: (id: string, text: string) => void;
}

export interface TunnelPolicy {
  resource: EvaluationContext['resource'];
  policies: EvaluationContext['policies'];
  identity: PolicyIdentity;
  /** Finds the entities of `entities` conditions (the tunnel's audit detectors). */
  auditDlp: DlpEngine;
  customDetectors?: readonly CustomDetectorSpec[] | undefined;
}

/** The identity a tunnel's session was opened with, in the shape the policy engine matches on. */
export function policyIdentityOf(identity: Identity): PolicyIdentity {
  return {
    subject: identity.subject,
    groups: identity.groups,
    kind: identity.kind,
    issuer: identity.issuer,
    ...(identity.email ? { email: identity.email } : {}),
    verified: identity.verified,
  };
}

/** A tunnel's policy context, from its options and its audit detectors. */
export function tunnelPolicyOf(
  o: { resource: TunnelPolicy['resource']; policies: TunnelPolicy['policies']; identity: Identity; customDetectors?: readonly CustomDetectorSpec[] | undefined },
  auditDlp: DlpEngine,
): TunnelPolicy {
  return { resource: o.resource, policies: o.policies, identity: policyIdentityOf(o.identity), auditDlp, customDetectors: o.customDetectors };
}

export function decide(t: TunnelPolicy, action: EvaluationContext['action']): PolicyDecision {
  return evaluate({
    resource: t.resource,
    policies: t.policies,
    identity: t.identity,
    action,
    detectEntities: (text) => t.auditDlp.entitiesIn(text),
    expandEntities: (names) => expandEntities(names, (t.customDetectors ?? []).map((d) => d.name)),
  });
}

/** `policy/rule` of the deciding rule, if a rule decided. */
/**
 * The text a client is shown for a denial: `dlpctl: denied by WHERE: MESSAGE`. A rule without a `message`
 * gets the policy engine's generated one ("denied by policy P rule R"), which already names the rule: then
 * it is shown once.
 */
export function denialText(where: string, message: string, rule: PolicyDecision['rule'] | undefined): string {
  if (rule && message === `denied by policy ${rule.policy} rule ${rule.rule}`) return `dlpctl: ${message}`;
  return `dlpctl: denied by ${where}: ${message}`;
}

export function ruleNameOf(d: PolicyDecision): string | undefined {
  return d.rule ? `${d.rule.policy}/${d.rule.rule}` : undefined;
}

/** What the audit trail records: `observe` when observe-only mode let through what a rule would stop. */
export function auditLabel(d: PolicyDecision, action: PolicyDecision['action'] = d.action): AuditLabel {
  return !d.enforced && d.wouldBe !== 'allow' ? 'observe' : action;
}

/** The approval request for an `approve` decision. */
export function approvalRequest(
  d: PolicyDecision,
  what: { sessionId: string; resource: string; exact: string; maskedText: string; requester: Identity; reason?: string | undefined },
): ApprovalRequest {
  return {
    sessionId: what.sessionId,
    resource: what.resource,
    exact: what.exact,
    maskedText: what.maskedText,
    requester: what.requester,
    ...(what.reason ? { reason: what.reason } : {}),
    rule: ruleNameOf(d) ?? 'approve',
    approvers: d.approvers,
    minApprovals: d.minApprovals ?? 1,
    timeoutMs: d.timeout ?? DEFAULT_APPROVAL_TIMEOUT_MS,
  };
}
