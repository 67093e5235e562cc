/**
 * What a running tunnel does for the integrity of the store (DESIGN §5):
 *
 *   - checkpoints: every `intervalMs` and soon after each session end, the heads of the chains that moved are
 *     checkpointed (signed when `audit.signingKey` is set), and each new checkpoint is also appended to
 *     `audit.checkpointFile` and POSTed to `audit.checkpointWebhook`, copies that whoever can write the store
 *     cannot reach;
 *   - crashed sessions: when the tunnel opens, sessions left open by a dlpctl process of this host that no
 *     longer runs are closed with outcome `crashed` (their counters taken from their events).
 */
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { CheckpointRecord, SessionOwner, SessionStore } from '../store/types.js';

export interface CheckpointerOptions {
  store: SessionStore;
  /** PKCS#8 PEM; unsigned checkpoints without it. */
  signingKey?: string;
  intervalMs: number;
  file?: string;
  webhook?: string;
  /** A copy that could not be written, or a checkpoint that failed (never fatal to the tunnel). */
  onError(message: string): void;
}

export class Checkpointer {
  private readonly o: CheckpointerOptions;
  private timer: NodeJS.Timeout | undefined;
  private pending: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private lastRun = 0;

  constructor(o: CheckpointerOptions) {
    this.o = o;
  }

  start(): void {
    this.timer = setInterval(() => void this.run(), this.o.intervalMs);
    this.timer.unref();
  }

  /**
   * A checkpoint shortly: sessions that end together share one, and at most one a second follows session ends
   * (each scans the sessions table for heads that moved).
   */
  soon(): void {
    if (this.closed || this.pending !== undefined) return;
    const wait = Math.max(50, this.lastRun + 1000 - Date.now());
    this.pending = setTimeout(() => {
      this.pending = undefined;
      void this.run();
    }, wait);
    this.pending.unref();
  }

  /** One checkpoint now, after any running one; resolves with it (undefined: nothing moved). */
  run(): Promise<CheckpointRecord | undefined> {
    const next = this.chain.then(() => this.once());
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async once(): Promise<CheckpointRecord | undefined> {
    this.lastRun = Date.now();
    let rec: CheckpointRecord | undefined;
    try {
      rec = await this.o.store.checkpoint(this.o.signingKey === undefined ? {} : { signingKey: this.o.signingKey });
    } catch (err) {
      this.o.onError(`cannot write a checkpoint: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    }
    if (rec === undefined) return undefined;
    const line = JSON.stringify(rec);
    if (this.o.file !== undefined) {
      try {
        await fs.mkdir(path.dirname(this.o.file), { recursive: true });
        await fs.appendFile(this.o.file, `${line}\n`, { flag: 'a' });
      } catch (err) {
        this.o.onError(`cannot append checkpoint ${rec.n} to ${this.o.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
    }
    if (this.o.webhook !== undefined) {
      try {
        const res = await fetch(this.o.webhook, { method: 'POST', headers: { 'content-type': 'application/json' }, body: line, signal: AbortSignal.timeout(5000) });
        if (!res.ok) this.o.onError(`the checkpoint webhook answered ${res.status} for checkpoint ${rec.n}`);
      } catch (err) {
        // The URL may hold a secret: name the failure, not the address.
        this.o.onError(`cannot POST checkpoint ${rec.n} to audit.checkpointWebhook: ${err instanceof Error ? err.name : 'error'}`);
      }
    }
    return rec;
  }

  /** Stops the timer and writes a last checkpoint (the sessions that ended on the way out). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.pending !== undefined) clearTimeout(this.pending);
    await this.run();
  }
}

/** The owner to record on a session this process creates. */
export function thisOwner(): SessionOwner {
  const boot = bootId();
  const start = processStart(process.pid);
  return { pid: process.pid, host: os.hostname(), ...(boot !== undefined ? { boot } : {}), ...(start !== undefined ? { start } : {}) };
}

function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Linux: field 22 of /proc/PID/stat (after the parenthesised command name, which may hold spaces). */
function processStart(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const v = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a process with this id runs on this host (EPERM: it runs, as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the owner, a process of this host, still runs: same boot, pid alive, and not a reused pid. */
export function ownerAlive(owner: SessionOwner, alive: (pid: number) => boolean = processAlive): boolean {
  const boot = bootId();
  if (owner.boot !== undefined && boot !== undefined && owner.boot !== boot) return false;
  if (!alive(owner.pid)) return false;
  if (owner.start !== undefined && alive === processAlive) {
    const start = processStart(owner.pid);
    if (start !== undefined && start !== owner.start) return false;
  }
  return true;
}

/**
 * Closes, as `crashed`, the open sessions whose owner is a process of this host that no longer runs. Sessions
 * of other hosts are left alone: from here there is no telling whether their process lives.
 */
export async function closeCrashedSessions(store: SessionStore, o: { host?: string; alive?: (pid: number) => boolean } = {}): Promise<string[]> {
  const host = o.host ?? os.hostname();
  const dead = (await store.openSessions()).filter((s) => s.owner !== undefined && s.owner.host === host && s.owner.pid !== process.pid && !ownerAlive(s.owner, o.alive));
  return store.closeCrashed(dead.map((s) => s.id));
}
