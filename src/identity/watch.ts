/**
 * Keeps an open tunnel's identity current (DESIGN §6, issue 8 §4). Every `recheckMs` (default 45 s, so a
 * disabled account is noticed within 60 s), and in any case shortly before the credential expires, the
 * credential is renewed: refresh for people, re-read and re-verify of the token file / `DLPCTL_TOKEN`, a new
 * client-credentials grant for services. When the provider says no, or the token no longer verifies,
 * `revoked` fires once with a reason and the watch stops. A network failure is retried until the credential
 * actually expires, then it also revokes.
 */
import { EventEmitter } from 'node:events';
import { isDlpctlError } from '../errors.js';
import type { Identity } from '../store/types.js';
import type { Clock } from './clock.js';
import { isTransient } from './errors.js';
import type { VerifiedToken } from './verify.js';

export interface Renewable {
  /** Returns the renewed, verified credential; throws when it cannot be renewed. */
  renew(): Promise<VerifiedToken>;
}

export interface IdentityWatchOptions {
  clock: Clock;
  /** Longest time between two checks (default 45 s). */
  recheckMs?: number;
  /** Renew this long before expiry (default 30 s). */
  leadMs?: number;
  /** `identity.maxSessionDuration` in ms, passed through for the tunnel. */
  maxSessionDuration?: number;
}

export interface IdentityWatchEvents {
  /** The credential was renewed; `identity` may carry new groups. */
  refreshed: [identity: Identity, expiresAt: number];
  /** The identity is gone: end every session and refuse new ones. Fires at most once. */
  revoked: [reason: string];
}

export class IdentityWatch extends EventEmitter<IdentityWatchEvents> {
  identity: Identity;
  /** When the current credential expires (ms since the epoch). */
  expiresAt: number;
  /** `identity.maxSessionDuration` (ms): each session ends this long after it started, whatever the credential says. */
  readonly maxSessionDuration: number | undefined;
  /** Set once revoked: the reason given to `revoked`. */
  revokedReason: string | undefined;
  readonly #source: Renewable;
  readonly #clock: Clock;
  readonly #recheckMs: number;
  readonly #leadMs: number;
  #cancel: (() => void) | undefined;
  #checking: Promise<void> | undefined;
  #closed = false;

  constructor(source: Renewable, current: VerifiedToken, opts: IdentityWatchOptions) {
    super();
    this.#source = source;
    this.identity = current.identity;
    this.expiresAt = current.expiresAt;
    this.#clock = opts.clock;
    this.#recheckMs = opts.recheckMs ?? 45_000;
    this.#leadMs = opts.leadMs ?? 30_000;
    this.maxSessionDuration = opts.maxSessionDuration;
    this.#schedule();
  }

  /** Whether the identity is still good; a tunnel asks this before accepting a session. */
  get valid(): boolean {
    return this.revokedReason === undefined && this.#clock.now() < this.expiresAt;
  }

  /** When a session started at `startedAt` must end at the latest (ms), from `maxSessionDuration`. */
  sessionDeadline(startedAt: number): number | undefined {
    return this.maxSessionDuration === undefined ? undefined : startedAt + this.maxSessionDuration;
  }

  #schedule(): void {
    if (this.#closed) return;
    const untilExpiry = this.expiresAt - this.#leadMs - this.#clock.now();
    const delay = Math.max(1_000, Math.min(this.#recheckMs, untilExpiry));
    this.#cancel = this.#clock.schedule(delay, () => void this.check());
  }

  /** Re-checks now (also what the timer calls). Resolves when done; never rejects. */
  check(): Promise<void> {
    this.#checking ??= this.#run().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  async #run(): Promise<void> {
    if (this.#closed) return;
    this.#cancel?.();
    try {
      const next = await this.#source.renew();
      if (this.#closed) return;
      if (next.identity.subject !== this.identity.subject || next.identity.issuer !== this.identity.issuer) {
        this.#revoke(`the credential now names another identity (${next.identity.subject}) than the one the tunnel was opened for (${this.identity.subject})`);
        return;
      }
      this.identity = next.identity;
      this.expiresAt = next.expiresAt;
      this.emit('refreshed', next.identity, next.expiresAt);
    } catch (err) {
      if (this.#closed) return;
      const why = isDlpctlError(err) ? err.message : 'the identity could not be checked';
      if (!isTransient(err)) {
        this.#revoke(why);
        return;
      }
      if (this.#clock.now() >= this.expiresAt) {
        this.#revoke(`${why}, and the credential has expired`);
        return;
      }
    }
    this.#schedule();
  }

  #revoke(reason: string): void {
    if (this.revokedReason !== undefined) return;
    this.revokedReason = `identity ${this.identity.subject} is no longer valid: ${reason}`;
    this.#closed = true;
    this.#cancel?.();
    this.emit('revoked', this.revokedReason);
  }

  /** Stops checking (the tunnel closed). */
  close(): void {
    this.#closed = true;
    this.#cancel?.();
  }
}
