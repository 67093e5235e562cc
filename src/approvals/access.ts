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

/** The store's fingerprint of an access request: resource and identity (a grant is for this pair only). */
export function accessSha(resource: string, identity: Pick<Identity, 'issuer' | 'subject'>): string {
  return sha256Hex(`access\0${resource}\0${identity.issuer}\0${identity.subject}`);
}

/**
 * Uses an approved access request, once: `connect --request ID` names it; without an id, the newest
 * approved, unused request of this identity for this resource whose grant has not ended (so the
 * `--no-wait` flow is: file, get it approved, run `connect` again). Consumes it (approved → consumed, one
 * atomic update, so two connects cannot both use it) and returns the grant; `null` when no id was given and
 * none is waiting. A named request that cannot be used is an error that says why.
 */
export async function useApprovedAccess(
  store: SessionStore,
  req: { id?: string; resource: string; identity: Identity; maxDurationMs: number },
  now: () => Date = () => new Date(),
): Promise<AccessGrant | null> {
  const sha = accessSha(req.resource, req.identity);
  let candidate: Approval | null | undefined;
  if (req.id !== undefined) {
    const id = req.id.trim().toUpperCase();
    candidate = await store.getApproval(id);
    const refuse = (why: string, exitCode: number = ExitCode.approvalDenied) => new DlpctlError('APPROVAL_DENIED', `--request ${id}: ${why}`, { exitCode });
    if (!candidate) throw refuse(`no such request; list them with dlpctl approvals --all`, ExitCode.usage);
    if (!candidate.rule.startsWith('access/')) throw refuse(`it is not an access request (it is for a statement in session ${candidate.sessionId})`, ExitCode.usage);
    if (candidate.resource !== req.resource) throw refuse(`it is a request for ${candidate.resource}, not ${req.resource}`, ExitCode.usage);
    if (candidate.sha256 !== sha) throw refuse(`it was filed by ${candidate.requester.subject}, not ${req.identity.subject}; a grant is for the identity that asked`, ExitCode.auth);
    if (candidate.state === 'pending') {
      const expired = Date.parse(candidate.expiresAt) <= now().getTime();
      throw refuse(expired ? `it expired at ${candidate.expiresAt} without a decision; file a new one` : `it is still pending; an approver (${candidate.approvers.join(', ')}) runs: dlpctl approve ${id}`);
    }
    if (candidate.state === 'denied') {
      const last = candidate.decisions.findLast((d) => d.decision === 'deny');
      throw refuse(`it was ${candidate.decisions.some((d) => d.decision === 'approve') ? 'revoked' : 'denied'}${last ? ` by ${last.by}${last.comment ? `: ${last.comment}` : ''}` : ''}`);
    }
    if (candidate.state === 'expired') throw refuse('it expired without a decision; file a new one');
    if (candidate.state === 'consumed') throw refuse('it was already used by an earlier connect (a grant opens one tunnel); file a new one');
  } else {
    const approved = await store.listApprovals({ state: 'approved' });
    candidate = approved
      .filter((a) => a.rule === `access/${req.resource}` && a.resource === req.resource && a.sha256 === sha && grantExpiry(a, req.maxDurationMs).getTime() > now().getTime())
      .sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))[0];
    if (!candidate) return null;
  }
  const expiresAt = grantExpiry(candidate, req.maxDurationMs);
  if (expiresAt.getTime() <= now().getTime()) {
    throw new DlpctlError('APPROVAL_DENIED', `--request ${candidate.id}: its grant ended at ${expiresAt.toISOString()} (approval + maxDuration); file a new one`, { exitCode: ExitCode.approvalDenied });
  }
  const consumed = await store.updateApproval(candidate.id, (a) => (a.state === 'approved' ? { ...a, state: 'consumed' } : undefined));
  if (!consumed.changed) {
    throw new DlpctlError('APPROVAL_DENIED', `request ${candidate.id} is ${consumed.approval.state} (another connect used it first); file a new one`, { exitCode: ExitCode.approvalDenied });
  }
  return { approval: consumed.approval, expiresAt };
}

/**
 * Calls `onRevoked` when an approver revokes the grant (`dlpctl deny ID --reason …` on an approved or in-use
 * access request): waits on the store's change notifications (PostgreSQL: LISTEN/NOTIFY; SQLite: polling,
 * `approvalPollMs`, 250 ms by default). Returns a function that stops watching.
 */
export function watchGrantRevocation(store: SessionStore, grant: AccessGrant, onRevoked: (a: Approval) => void): () => void {
  const stop = new AbortController();
  void (async () => {
    let version = grant.approval.version;
    while (!stop.signal.aborted) {
      let a: Approval;
      try {
        a = await store.waitForApprovalChange(grant.approval.id, stop.signal, version);
      } catch {
        return; // stopped, or the store closed with the tunnel
      }
      version = a.version;
      if (a.state === 'denied') {
        if (!stop.signal.aborted) onRevoked(a);
        return;
      }
    }
  })();
  return () => stop.abort();
}
