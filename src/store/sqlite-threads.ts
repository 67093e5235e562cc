/**
 * The tunnel side of the SQLite store's threads (sqlite-worker.ts).
 *
 * SqliteMaintenanceThread checkpoints the WAL and keeps the full-text index up, off the thread that relays
 * traffic. SqliteWriterThread adds a writer: it posts each write unit there and resolves it with the answer.
 * The writer keeps the process alive only while units are in flight, so a pending append is never lost to
 * an exiting event loop and an idle store never holds the process open. If the writer dies, every unit in
 * flight and every later one fails with STORE_UNREACHABLE, which the tunnels turn into denials (fail closed).
 */
import { Worker } from 'node:worker_threads';
import { DlpctlError } from '../errors.js';
import { deserializeError, type SerializedError } from './sqlite-thread-errors.js';
import type { SqliteConnectionOptions, WriteOp, WriteValue } from './sqlite-writer.js';

export type Answer = { id: number; ok: true; value: WriteValue } | { id: number; ok: false; error: SerializedError };
export interface Unit {
  id: number;
  op: WriteOp;
  /** AppendOptions.defer */
  defer?: true;
}

interface Pending {
  resolve(v: WriteValue): void;
  reject(e: unknown): void;
}

/** Checkpoints and full-text indexing on their own thread and connection. */
export class SqliteMaintenanceThread {
  private readonly worker: Worker;
  /** The events this process's writer has committed, counted in shared memory (SqliteWriter.countCommitsInto). */
  readonly committed: Int32Array;

  private constructor(worker: Worker, committed: Int32Array) {
    this.worker = worker;
    this.committed = committed;
    // A failed maintenance thread costs only a growing WAL and a longer unindexed tail (searched anyway).
    worker.on('error', () => undefined);
  }

  /** `committed`: the writer's count, when the writer is another thread that shares it (else a new one). */
  static async start(file: string, display: string, connection: SqliteConnectionOptions, committed = sharedCounter()): Promise<SqliteMaintenanceThread> {
    return new SqliteMaintenanceThread(await spawn('maintenance', file, display, connection, committed), committed);
  }

  /** Checkpoints and indexes one last time, then stops. */
  close(): Promise<void> {
    return stop(this.worker);
  }
}

export class SqliteWriterThread {
  private readonly worker: Worker;
  private readonly maintenance: SqliteMaintenanceThread;
  private readonly display: string;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Units submitted in this turn of the event loop, posted together (see `submit`). */
  private outbox: Unit[] = [];
  private failure: Error | null = null;
  private closing: Promise<void> | null = null;

  private constructor(worker: Worker, maintenance: SqliteMaintenanceThread, display: string) {
    this.worker = worker;
    this.maintenance = maintenance;
    this.display = display;
    worker.on('message', (m: { answers: Answer[] } | { closed: true } | { ready: true }) => {
      if (!('answers' in m)) return;
      for (const a of m.answers) {
        const p = this.pending.get(a.id);
        if (!p) continue;
        this.pending.delete(a.id);
        if (a.ok) p.resolve(a.value);
        else p.reject(deserializeError(a.error));
      }
      if (this.pending.size === 0) worker.unref();
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => {
      if (!this.closing) this.fail(new Error(`the store's writer thread exited (code ${code})`));
    });
  }

  /** Starts the writer and maintenance threads; resolves once their connections are open. */
  static async start(file: string, display: string, connection: SqliteConnectionOptions): Promise<SqliteWriterThread> {
    const committed = sharedCounter();
    const [writer, maintenance] = await Promise.allSettled([spawn('writer', file, display, connection, committed), SqliteMaintenanceThread.start(file, display, connection, committed)]);
    if (writer.status === 'rejected' || maintenance.status === 'rejected') {
      if (writer.status === 'fulfilled') await writer.value.terminate().catch(() => undefined);
      if (maintenance.status === 'fulfilled') await maintenance.value.close().catch(() => undefined);
      throw writer.status === 'rejected' ? writer.reason : (maintenance as PromiseRejectedResult).reason;
    }
    return new SqliteWriterThread(writer.value, maintenance.value, display);
  }

  /**
   * Queues one unit for the writer. Units submitted during one turn of the event loop (every socket that
   * was readable in it) cross to the writer in one message, posted after the turn: one wake-up of the writer
   * instead of one per unit, and the writer commits them together.
   */
  submit(op: WriteOp, defer = false): Promise<WriteValue> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new Error('session store is closed'));
    const id = this.nextId++;
    return new Promise<WriteValue>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) this.worker.ref();
      if (this.outbox.push(defer ? { id, op, defer } : { id, op }) === 1) setImmediate(this.post);
    });
  }

  private readonly post = (): void => {
    if (this.outbox.length === 0) return;
    const units = this.outbox;
    this.outbox = [];
    this.worker.postMessage({ units });
  };

  /** Lets every unit in flight commit, then stops both threads (the maintenance one checkpoints and indexes last). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.post();
      if (!this.failure) await stop(this.worker);
      await this.maintenance.close();
    })();
    return this.closing;
  }

  private fail(err: unknown): void {
    if (this.failure) return;
    const why = err instanceof Error ? err.message : String(err);
    this.failure = new DlpctlError('STORE_UNREACHABLE', `the store ${this.display} cannot record: its writer thread failed (${why}); restart the tunnel`);
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }
}

/** Asks a thread to finish its work and close its connection; then ends it. */
async function stop(worker: Worker): Promise<void> {
  worker.ref();
  const done = new Promise<void>((resolve) => {
    worker.on('message', (m: { closed?: true }) => m.closed && resolve());
    worker.once('exit', () => resolve());
    worker.once('error', () => resolve());
  });
  worker.postMessage({ close: true });
  await done;
  await worker.terminate().catch(() => undefined);
}

/** One 32-bit counter in memory both threads see (a count of events: they compare it modulo 2^32). */
function sharedCounter(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4));
}

function spawn(role: 'writer' | 'maintenance', file: string, display: string, connection: SqliteConnectionOptions, committed: Int32Array): Promise<Worker> {
  const here = import.meta.url;
  // From the TypeScript sources (tests) the worker needs the same loader as this thread.
  const fromSources = here.endsWith('.ts');
  const worker = new Worker(new URL(fromSources ? './sqlite-worker.ts' : './sqlite-worker.js', here), {
    workerData: { role, file, display, connection, committed },
    // No inherited flags: V8's (--liftoff-only) are process-wide already and a worker refuses them.
    execArgv: fromSources ? ['--import', 'tsx'] : [],
  });
  return new Promise<Worker>((resolve, reject) => {
    const onMessage = (m: { ready?: true }) => {
      if (!m.ready) return;
      cleanup();
      worker.unref();
      resolve(worker);
    };
    const onError = (err: unknown) => {
      cleanup();
      reject(new DlpctlError('STORE_UNREACHABLE', `the store's ${role} thread for ${display} could not start: ${err instanceof Error ? err.message : String(err)}`));
    };
    const onExit = (code: number) => {
      cleanup();
      reject(new DlpctlError('STORE_UNREACHABLE', `the store's ${role} thread for ${display} exited at start (code ${code})`));
    };
    const cleanup = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}
