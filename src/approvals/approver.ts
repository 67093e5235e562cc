/**
 * Who is deciding, and whether they may. `currentApprover` is the one place the CLI asks "who am I" for
 * approvals: today the local OS user (unverified); when the identity work lands it returns the verified
 * identity from `dlpctl login` / `DLPCTL_TOKEN`, and nothing else changes.
 *
 * Approver entries (the rule's `approvers`):
 *   group:NAME    — the identity must be verified AND carry NAME in its groups (an unverified local user
 *                   cannot claim a group);
 *   user:NAME     — matches the subject (or email), verified or not: naming a person explicitly is the
 *   subject:NAME    operator's choice, and on a single machine the OS user is all there is.
 */
import type { CommandContext } from '../cli/context.js';
import { localIdentity } from '../identity/local.js';
import type { Identity } from '../store/types.js';

export async function currentApprover(ctx: Pick<CommandContext, 'env'>): Promise<Identity> {
  return localIdentity(ctx.env);
}

/** The approver entries `identity` satisfies (empty: it may not decide). */
export function matchingApproverEntries(identity: Identity, approvers: readonly string[]): string[] {
  return approvers.filter((entry) => {
    const i = entry.indexOf(':');
    const kind = i < 0 ? 'group' : entry.slice(0, i);
    const value = i < 0 ? entry : entry.slice(i + 1);
    if (kind === 'group') return identity.verified && identity.groups.includes(value);
    if (kind === 'user' || kind === 'subject') return identity.subject === value || (identity.email !== undefined && identity.email === value);
    return false;
  });
}

/** Same person? Subject within the same issuer; an email shared by both also counts. */
export function samePerson(a: Identity, b: Identity): boolean {
  if (a.subject === b.subject) return true;
  return a.email !== undefined && b.email !== undefined && a.email.toLowerCase() === b.email.toLowerCase();
}
