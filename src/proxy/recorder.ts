/**
 * Audit through intent-named hooks: a tunnel session calls `statement`, `result`, `masked`, `failed`,
 * `end`, and the recorder turns them into store events. `statement` resolves only when the event is durable
 * (the caller forwards the statement after that); when the store cannot take it, it throws and the caller
 * denies the statement (fail closed). Masking is recorded as counts per entity, never the values.
 */
import { DlpctlError } from '../errors.js';
import type { AppendOptions, Counters, EventBody, Identity, Outcome, SessionStore } from '../store/types.js';
import { zeroCounters } from '../store/types.js';
import { thisOwner } from '../audit/checkpointer.js';

export interface RecorderStart {
  resource: string;
  kind: 'postgres' | 'http' | 'ssh';
  identity: Identity;
  clientAddr: string;
  reason?: string;
}

export class SessionRecorder {
  readonly counters: Counters = zeroCounters();
  private readonly store: SessionStore;
  private sessionId: string | null = null;
  private ended = false;
  /** Entity counts waiting to be written with the next result (one summary event per statement). */
  private pendingMasks: Record<string, number> = {};

  private constructor(store: SessionStore) {
    this.store = store;
  }

  static async start(store: SessionStore, start: RecorderStart): Promise<SessionRecorder> {
    const r = new SessionRecorder(store);
    try {
      const s = await store.createSession({
        resource: start.resource,
        kind: start.kind,
        identity: start.identity,
        clientAddr: start.clientAddr,
        ...(start.reason ? { reason: start.reason } : {}),
        // A session this process leaves open when it dies is closed as `crashed` by the next tunnel here.
        owner: thisOwner(),
      });
      r.sessionId = s.id;
    } catch (err) {
      throw storeFailure(err);
    }
    return r;
  }

  get id(): string {
    if (!this.sessionId) throw new Error('recorder not started');
    return this.sessionId;
  }

  /**
   * Durable before the caller acts on it; throws a DlpctlError the caller turns into a denial. `defer` for
   * what is recorded after the fact (a result the client already has): it commits with the next writes.
   */
  async record(body: EventBody, options?: AppendOptions): Promise<void> {
    try {
      await this.store.append(this.id, body, options);
    } catch (err) {
      throw storeFailure(err);
    }
  }

  /** Counts masked values by entity (or `column:NAME`); written with the next `flushMasks`. */
  masked(entity: string, count = 1): void {
    this.pendingMasks[entity] = (this.pendingMasks[entity] ?? 0) + count;
    this.counters.masked += count;
  }

  /** Whether masked values were counted since the last summary (`flushMasks` has something to write). */
  get hasPendingMasks(): boolean {
    for (const _ in this.pendingMasks) return true;
    return false;
  }

  /** Records the counts gathered since the last summary (always after the fact, so deferred). */
  async flushMasks(rule?: string): Promise<void> {
    if (!this.hasPendingMasks) return;
    const entities = this.pendingMasks;
    this.pendingMasks = {};
    await this.record({ type: 'mask.summary', entities, ...(rule ? { rule } : {}) }, { defer: true });
  }

  async end(outcome: Outcome): Promise<void> {
    if (this.ended || !this.sessionId) return;
    this.ended = true;
    try {
      await this.flushMasks();
      await this.store.endSession(this.sessionId, outcome, this.counters);
    } catch (err) {
      throw storeFailure(err);
    }
  }
}

function storeFailure(err: unknown): DlpctlError {
  if (err instanceof DlpctlError) {
    return new DlpctlError(err.code, `the session store cannot record this (${err.message}); denied to keep the audit trail complete`, { cause: err });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new DlpctlError('STORE_UNREACHABLE', `the session store cannot record this (${msg}); denied to keep the audit trail complete`, { cause: err });
}
