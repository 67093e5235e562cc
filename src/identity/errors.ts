import { DlpctlError } from '../errors.js';

/**
 * The identity could not be checked because the provider could not be reached (network, 5xx), as opposed to
 * the provider saying no. An open tunnel keeps its sessions through such a failure until the credential it
 * holds expires; a refusal ends them at once.
 */
export class TransientIdentityError extends DlpctlError {
  readonly transient = true;
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('AUTH_FAILED', message, options);
  }
}

export function isTransient(err: unknown): boolean {
  return err instanceof TransientIdentityError;
}
