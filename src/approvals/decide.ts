/**
 * Deciding an approval request: `dlpctl approve` / `dlpctl deny` and the `a`/`d` keys of the approvals
 * screen all come here. The check of who may decide happens first (it depends only on the identity and the
 * request's approvers), then ONE atomic read-modify-write on the request (so two approvers racing are
 * serialised), then the decision is appended to the requester's session as an `approval.decided` event.
 *
 *   approve: refused for the requester themself, for a second vote by the same approver, for a request that
 *            is no longer pending or has expired (an expired one is marked `expired`). The request becomes
 *            `approved` once `minApprovals` distinct approvers approved; before that it stays `pending`.
 *   deny:    one deny by an approver ends it (`denied`); the reason is kept as the decision's comment. On an
 *            access request that was approved (or is in use by a tunnel) it revokes the grant.
 */
import { DlpctlError, ExitCode } from '../errors.js';
import type { Approval, ApprovalDecision, Identity, SessionStore, StoreEvent } from '../store/types.js';
import { matchingApproverEntries, samePerson } from './approver.js';

export interface DecideInput {
  id: string;
  decision: 'approve' | 'deny';
  identity: Identity;
  /** approve: optional comment; deny: the reason (required). */
  comment?: string;
  now?: () => Date;
}

export interface DecideResult {
  approval: Approval;
  /** Distinct approvals so far and how many are needed. */
  approvals: number;
  required: number;
  event: StoreEvent | undefined;
}

export function approvedBy(a: Approval): string[] {
  return [...new Set(a.decisions.filter((d) => d.decision === 'approve').map((d) => d.by))];
}

export function isExpired(a: Approval, now: Date): boolean {
  return a.state === 'pending' && Date.parse(a.expiresAt) <= now.getTime();
}

type Refusal = { code: 'APPROVAL_DENIED' | 'POLICY_DENIED'; message: string; exitCode?: number };

export async function decideApproval(store: SessionStore, input: DecideInput): Promise<DecideResult> {
  const now = input.now ?? (() => new Date());
  const { identity } = input;
  if (input.decision === 'deny' && !input.comment?.trim()) {
    throw new DlpctlError('USAGE', 'a denial needs a reason: dlpctl deny ID --reason TEXT');
  }
  const before = await store.getApproval(input.id);
  if (!before) throw new DlpctlError('STORE_NOT_FOUND', `no approval request ${input.id.trim().toUpperCase()}; list pending ones with \`dlpctl approvals\``);

  const entries = matchingApproverEntries(identity, before.approvers);
  if (entries.length === 0) {
    const groupsOnly = before.approvers.every((a) => a.startsWith('group:'));
    const hint = groupsOnly && !identity.verified ? ` (group membership needs a verified identity; ${identity.subject} is not verified — run dlpctl login)` : '';
    throw new DlpctlError(
      'POLICY_DENIED',
      `${identity.subject} may not decide ${before.id}: approvers are ${before.approvers.join(', ') || '(none)'}${hint}`,
    );
  }
  if (input.decision === 'approve' && samePerson(identity, before.requester)) {
    throw new DlpctlError('POLICY_DENIED', `${identity.subject} requested ${before.id} and cannot approve it; ask another approver (${before.approvers.join(', ')})`);
  }

  let refusal: Refusal | undefined;
  const at = now();
  const update = await store.updateApproval(before.id, (a) => {
    refusal = undefined;
    if (isExpired(a, at)) {
      refusal = { code: 'APPROVAL_DENIED', message: `approval ${a.id} expired at ${a.expiresAt}; the requester must run the statement again for a new request` };
      return { ...a, state: 'expired' };
    }
    // Revoking a just-in-time access grant early: a deny on an approved (or in use) access request ends it;
    // the tunnel that uses it watches the request and ends its sessions.
    const revoking = input.decision === 'deny' && a.rule.startsWith('access/') && (a.state === 'approved' || a.state === 'consumed');
    if (a.state !== 'pending' && !revoking) {
      refusal = { code: 'APPROVAL_DENIED', message: `approval ${a.id} is already ${a.state}; nothing to decide` };
      return undefined;
    }
    if (input.decision === 'approve' && approvedBy(a).includes(identity.subject)) {
      refusal = {
        code: 'APPROVAL_DENIED',
        message: `${identity.subject} already approved ${a.id}; it needs ${a.minApprovals - approvedBy(a).length} more approval(s) from other approvers`,
        exitCode: ExitCode.error,
      };
      return undefined;
    }
    const d: ApprovalDecision = {
      by: identity.subject,
      groups: entries,
      decision: input.decision,
      ...(input.comment?.trim() ? { comment: input.comment.trim() } : {}),
      at: at.toISOString(),
    };
    const decisions = [...a.decisions, d];
    const next: Approval = { ...a, decisions };
    if (input.decision === 'deny') next.state = 'denied';
    else if (approvedBy(next).length >= Math.max(1, a.minApprovals)) next.state = 'approved';
    return next;
  });
  const approval = update.approval;
  if (refusal) {
    const r = refusal as Refusal;
    if (update.changed) await recordDecision(store, approval, undefined).catch(() => undefined);
    throw new DlpctlError(r.code, r.message, r.exitCode === undefined ? {} : { exitCode: r.exitCode });
  }
  // A failed audit write is a failure: the decision stands in the request, but the caller must know.
  const event = await recordDecision(store, approval, identity.subject);
  return { approval, approvals: approvedBy(approval).length, required: Math.max(1, approval.minApprovals), event };
}

/** Appends `approval.decided` to the requester's session (the session may already have ended). */
async function recordDecision(store: SessionStore, a: Approval, by: string | undefined): Promise<StoreEvent | undefined> {
  try {
    return await store.append(a.sessionId, { type: 'approval.decided', approvalId: a.id, state: a.state, ...(by ? { by } : {}) });
  } catch (err) {
    if (err instanceof DlpctlError && err.code === 'STORE_NOT_FOUND') return undefined; // session pruned
    throw new DlpctlError('INTERNAL', `the decision on ${a.id} is stored but its audit event could not be written: ${(err as Error).message}`, { cause: err });
  }
}
