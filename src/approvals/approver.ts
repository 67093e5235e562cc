/**
 * Who is deciding, and whether they may. `currentApprover` is the one place the CLI asks "who am I" for
 * approvals: the verified identity from `dlpctl login` / `DLPCTL_TOKEN` / client credentials when the
 * configuration has an `identity` section, else the local OS user (unverified).
 *
 * Approver entries (the rule's `approvers`):
 *   group:NAME    — the identity must be verified AND carry NAME in its groups (an unverified local user
 *                   cannot claim a group);
 *   user:NAME     — matches the subject (or email), verified or not: naming a person explicitly is the
 *   subject:NAME    operator's choice, and on a single machine the OS user is all there is.
 */
import type { CommandContext } from '../cli/context.js';
import type { Identity } from '../store/types.js';

export async function currentApprover(ctx: Pick<CommandContext, 'env'> & Partial<CommandContext>): Promise<Identity> {
  const { localIdentity } = await import('../identity/local.js');
  if (!ctx.globals || !ctx.io || ctx.homedir === undefined || ctx.cwd === undefined) return localIdentity(ctx.env);
  const { loadCliConfig } = await import('../cli/load.js');
  const config = await loadCliConfig(ctx as CommandContext, { required: false });
  if (!config?.identity) return localIdentity(ctx.env);
  const { currentIdentity } = await import('../identity/index.js');
  return currentIdentity({ config, env: ctx.env, homedir: ctx.homedir, ...(ctx.signal ? { signal: ctx.signal } : {}) });
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
