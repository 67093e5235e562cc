/**
 * The requester's side of an approval: a tunnel meets a rule that says `approve`, files the request in
 * the shared store and holds the statement until someone decides, the request expires, or the session
 * ends. An approval releases exactly the statement it was filed for, once: the request carries the
 * SHA-256 of the exact bytes, and the tunnel consumes it (approved → consumed) before forwarding.
 */
import { createHash } from 'node:crypto';
import type { Approval, Identity, SessionStore } from '../store/types.js';

/** How long an approval waits when the rule names no timeout. */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 15 * 60_000;

export interface ApprovalRequest {
  sessionId: string;
  resource: string;
  /** The exact statement / request / command bytes. */
  exact: string | Buffer;
  /** What approvers see: the text with detected values masked. */
  maskedText: string;
  requester: Identity;
  reason?: string;
  rule: string;
  approvers: string[];
  minApprovals: number;
  timeoutMs: number;
}

export type ApprovalOutcome =
  | { approved: true; approval: Approval }
  | { approved: false; approval: Approval | null; message: string };

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Files the request, reports it through `onPending`, and waits for the outcome. */
export async function requestApproval(
  store: SessionStore,
  req: ApprovalRequest,
  hooks: {
    onPending?: (a: Approval) => void;
    signal?: AbortSignal;
    now?: () => Date;
    /** The resolved `approvals.webhook` URL: posted (not awaited) when the request is filed and when it expires. */
    webhookUrl?: string;
    /** Where a failed webhook post is reported. */
    onWarning?: (message: string) => void;
  } = {},
): Promise<ApprovalOutcome> {
  const now = hooks.now ?? (() => new Date());
  const created = await store.createApproval({
    sessionId: req.sessionId,
    resource: req.resource,
    sha256: sha256Hex(req.exact),
    maskedText: req.maskedText,
    requester: req.requester,
    ...(req.reason ? { reason: req.reason } : {}),
    rule: req.rule,
    approvers: req.approvers,
    minApprovals: req.minApprovals,
    expiresAt: new Date(now().getTime() + req.timeoutMs).toISOString(),
  });
  hooks.onPending?.(created);
  const notify = (event: 'created' | 'decided', a: Approval): void => {
    if (!hooks.webhookUrl) return;
    const url = hooks.webhookUrl;
    void import('./webhook.js')
      .then((w) => w.postWebhook(url, event, a))
      .then((problem) => problem && hooks.onWarning?.(problem));
  };
  notify('created', created);

  const timeout = AbortSignal.timeout(req.timeoutMs);
  const signal = hooks.signal ? AbortSignal.any([hooks.signal, timeout]) : timeout;
  let current = created;
  for (;;) {
    if (current.state === 'approved') {
      // Consume it: one approval releases one statement, once.
      const consumed = await store.updateApproval(current.id, (a) => (a.state === 'approved' ? { ...a, state: 'consumed' } : undefined));
      if (consumed.changed) return { approved: true, approval: consumed.approval };
      return { approved: false, approval: consumed.approval, message: `approval ${current.id} was already used` };
    }
    if (current.state === 'denied') {
      const last = current.decisions.findLast((d) => d.decision === 'deny');
      return {
        approved: false,
        approval: current,
        message: `approval ${current.id} was denied${last ? ` by ${last.by}${last.comment ? `: ${last.comment}` : ''}` : ''}`,
      };
    }
    if (current.state === 'expired' || current.state === 'consumed') {
      return { approved: false, approval: current, message: `approval ${current.id} is ${current.state}` };
    }
    try {
      current = await store.waitForApprovalChange(current.id, signal, current.version);
    } catch {
      const expired = await store
        .updateApproval(created.id, (a) => (a.state === 'pending' ? { ...a, state: 'expired' } : undefined))
        .catch(() => null);
      if (expired && expired.approval.state !== 'expired' && expired.approval.state !== 'pending') {
        current = expired.approval;
        continue;
      }
      if (expired?.changed) notify('decided', expired.approval);
      const why = hooks.signal?.aborted ? 'the session ended' : `nobody decided within ${Math.round(req.timeoutMs / 1000)}s`;
      return { approved: false, approval: expired?.approval ?? null, message: `approval ${created.id} timed out: ${why}` };
    }
  }
}
