/** The identity a tunnel's session was opened with, in the shape the policy engine matches on. */
import type { PolicyIdentity } from '../policy/index.js';
import type { Identity } from '../store/types.js';

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
