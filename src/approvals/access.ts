/**
 * Just-in-time access (a resource with `access: {approvers, maxDuration}`): before `connect` opens the
 * tunnel, it files an access request — an approval whose "statement" is `access <resource> for <subject>`
 * — and waits for it (or, with --no-wait, prints the id and exits 5). An approved request is consumed
 * once into a grant that ends at approval time + maxDuration; the tunnel ends the sessions it allowed
 * when the grant ends.
 */
import { DlpctlError, ExitCode } from '../errors.js';
import type { Approval, Identity, SessionStore } from '../store/types.js';
import { DEFAULT_APPROVAL_TIMEOUT_MS, requestApproval, sha256Hex, type ApprovalOutcome } from './request.js';

export interface AccessRequest {
  /** The session that records the request (the connect session, or one created for it). */
  sessionId: string;
  resource: string;
  identity: Identity;
  reason?: string;
  approvers: string[];
  maxDurationMs: number;
  /** How long to wait for a decision (default 15 minutes). */
  timeoutMs?: number;
}

export interface AccessGrant {
  approval: Approval;
  /** When the access ends. */
  expiresAt: Date;
}

export function accessText(resource: string, identity: Identity, maxDurationMs: number): string {
  const minutes = maxDurationMs / 60_000;
  const span = minutes >= 1 ? `${Math.round(minutes)} min` : `${Math.max(1, Math.round(maxDurationMs / 1000))} s`;
  return `access ${resource} for ${identity.subject} (up to ${span})`;
}

/** When a granted access ends: from the approving decision (the last one) plus maxDuration. */
export function grantExpiry(a: Approval, maxDurationMs: number): Date {
  const approvedAt = a.decisions.filter((d) => d.decision === 'approve').map((d) => Date.parse(d.at));
  const from = approvedAt.length ? Math.max(...approvedAt) : Date.parse(a.createdAt);
  return new Date(from + maxDurationMs);
}

/** Files the access request and waits. Throws APPROVAL_DENIED (exit 5) when denied or timed out. */
export async function requestAccess(
  store: SessionStore,
  req: AccessRequest,
  hooks: { onPending?: (a: Approval) => void; signal?: AbortSignal; now?: () => Date; webhookUrl?: string } = {},
): Promise<AccessGrant> {
  const text = accessText(req.resource, req.identity, req.maxDurationMs);
  const outcome: ApprovalOutcome = await requestApproval(
    store,
    {
      sessionId: req.sessionId,
      resource: req.resource,
      exact: `access\0${req.resource}\0${req.identity.issuer}\0${req.identity.subject}`,
      maskedText: text,
      requester: req.identity,
      ...(req.reason ? { reason: req.reason } : {}),
      rule: `access/${req.resource}`,
      approvers: req.approvers,
      minApprovals: 1,
      timeoutMs: req.timeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS,
    },
    hooks,
  );
  if (!outcome.approved) throw new DlpctlError('APPROVAL_DENIED', `access to ${req.resource}: ${outcome.message}`, { exitCode: ExitCode.approvalDenied });
  return { approval: outcome.approval, expiresAt: grantExpiry(outcome.approval, req.maxDurationMs) };
}

/** --no-wait: file the request and return it; the caller prints the id and exits 5. */
export async function fileAccessRequest(store: SessionStore, req: AccessRequest, now: () => Date = () => new Date()): Promise<Approval> {
  return store.createApproval({
    sessionId: req.sessionId,
    resource: req.resource,
    sha256: sha256Hex(`access\0${req.resource}\0${req.identity.issuer}\0${req.identity.subject}`),
    maskedText: accessText(req.resource, req.identity, req.maxDurationMs),
    requester: req.identity,
    ...(req.reason ? { reason: req.reason } : {}),
    rule: `access/${req.resource}`,
    approvers: req.approvers,
    minApprovals: 1,
    expiresAt: new Date(now().getTime() + (req.timeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS)).toISOString(),
  });
}

/**
 * Calls `onExpire` when the grant ends (at `expiresAt`, re-checked on a coarse timer so a sleeping laptop
 * still ends on time after waking). Returns a function that cancels it.
 */
export function scheduleGrantEnd(grant: AccessGrant, onExpire: () => void, now: () => Date = () => new Date()): () => void {
  let done = false;
  const check = () => {
    if (done) return;
    if (now().getTime() >= grant.expiresAt.getTime()) {
      done = true;
      clearInterval(timer);
      onExpire();
    }
  };
  const timer = setInterval(check, Math.max(50, Math.min(1000, grant.expiresAt.getTime() - now().getTime())));
  timer.unref?.();
  check();
  return () => {
    done = true;
    clearInterval(timer);
  };
}
