/**
 * The identity of a session when the configuration has no `identity` section: the local OS user, marked
 * unverified (DESIGN §3). Policies can still match it by subject; `allow` lists match it only through
 * `user:NAME` entries, never through groups it cannot prove.
 */
import os from 'node:os';
import type { Identity } from '../store/types.js';

export function localIdentity(env: NodeJS.ProcessEnv = process.env): Identity {
  let name = env.USER ?? env.LOGNAME ?? '';
  try {
    name = os.userInfo().username || name;
  } catch {
    /* no passwd entry (some containers): keep the environment's name */
  }
  return { issuer: `local:${os.hostname()}`, subject: name || `uid:${process.getuid?.() ?? '?'}`, groups: [], kind: 'human', verified: false };
}

/** Whether `identity` may open a resource whose `allow` list is `allow` (absent: anyone). */
export function identityAllowed(identity: Identity, allow: readonly string[] | undefined): boolean {
  if (!allow || allow.length === 0) return true;
  return allow.some((entry) => {
    const [kind, ...rest] = entry.split(':');
    const value = rest.join(':');
    if (kind === 'user' || kind === 'subject') return identity.subject === value || identity.email === value;
    if (kind === 'group') return identity.verified && identity.groups.includes(value);
    return false;
  });
}
