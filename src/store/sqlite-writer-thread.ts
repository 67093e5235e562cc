/**
 * The tunnel side of the SQLite writer thread (sqlite-worker.ts): posts each write unit, resolves it with
 * the worker's answer. The worker keeps the process alive only while units are in flight, so a pending
 * append is never lost to an exiting event loop and an idle store never holds the process open. If the
 * worker dies, every unit in flight and every later one fails with STORE_UNREACHABLE errors, which
 * the tunnels turn into denials (fail closed).
 */
import { Worker } from 'node:worker_threads';
import { DlpctlError } from '../errors.js';
import { deserializeError, type SerializedError } from './sqlite-thread-errors.js';
import type { SqliteConnectionOptions, WriteOp, WriteValue } from './sqlite-writer.js';

type Answer = { id: number; ok: true; value: WriteValue } | { id: number; ok: false; error: SerializedError };

interface Pending {
  resolve(v: WriteValue): void;
  reject(e: unknown): void;
}

export class SqliteWriterThread {
  private readonly worker: Worker;
  private readonly display: string;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | null = null;
  private closing: Promise<void> | null = null;

  private constructor(worker: Worker, display: string) {
    this.worker = worker;
    this.display = display;
    worker.on('message', (m: Answer | { closed: true } | { ready: true }) => {
      if (!('id' in m)) return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) worker.unref();
      if (m.ok) p.resolve(m.value);
      else p.reject(deserializeError(m.error));
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => {
      if (!this.closing) this.fail(new Error(`the store's writer thread exited (code ${code})`));
    });
  }

  /** Starts the worker; resolves once its connection is open (or rejects with why it could not open). */
  static async start(file: string, display: string, connection: SqliteConnectionOptions): Promise<SqliteWriterThread> {
    const here = import.meta.url;
    // From the TypeScript sources (tests) the worker needs the same loader as this thread.
    const fromSources = here.endsWith('.ts');
    const worker = new Worker(new URL(fromSources ? './sqlite-worker.ts' : './sqlite-worker.js', here), {
      workerData: { file, display, connection },
      // No inherited flags: V8's (--liftoff-only) are process-wide already and a worker refuses them.
      execArgv: fromSources ? ['--import', 'tsx'] : [],
    });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: { ready?: true }) => {
        if (!m.ready) return;
        cleanup();
        resolve();
      };
      const onError = (err: unknown) => {
        cleanup();
        reject(new DlpctlError('STORE_UNREACHABLE', `the store's writer thread for ${display} could not start: ${err instanceof Error ? err.message : String(err)}`));
      };
      const onExit = (code: number) => {
        cleanup();
        reject(new DlpctlError('STORE_UNREACHABLE', `the store's writer thread for ${display} exited at start (code ${code})`));
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
    worker.unref();
    return new SqliteWriterThread(worker, display);
  }

  submit(op: WriteOp): Promise<WriteValue> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new Error('session store is closed'));
    const id = this.nextId++;
    return new Promise<WriteValue>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) this.worker.ref();
      this.worker.postMessage({ id, op });
    });
  }

  /** Lets every unit in flight commit, then stops the worker. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.failure) {
        await this.worker.terminate().catch(() => undefined);
        return;
      }
      this.worker.ref();
      const done = new Promise<void>((resolve) => {
        this.worker.on('message', (m: { closed?: true }) => m.closed && resolve());
        this.worker.once('exit', () => resolve());
      });
      this.worker.postMessage({ close: true });
      await done;
      await this.worker.terminate().catch(() => undefined);
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
