/**
 * The SQLite store's worker threads (see sqlite-writer.ts and `threads` in OpenStoreOptions), each
 * with its own connection to the store file:
 *
 * - `writer`: runs the group commits, so the tunnel's thread only posts each unit and awaits the answer.
 *   Messages in: `{ units: [{ id, op }…] }` and `{ close: true }`; out: `{ answers: [{ id, ok, value | error }…] }`
 *   (the answers of units that committed together) and `{ closed: true }`.
 *   Errors cross as plain data (serializeError) and are rebuilt on the other side. It never checkpoints
 *   the WAL nor indexes: both would stall the commit that triggered them for milliseconds (a WAL
 *   checkpoint every ~80 statements cost 8–10 ms each, the p99 of the added latency).
 * - `maintenance`: at a tick every MAINTENANCE_MS, once the writer has committed CHECKPOINT_EVENTS events since
 *   the last one (or CHECKPOINT_IDLE_MS after it), a PASSIVE checkpoint (it runs beside the writer, never
 *   blocking it; the writer restarts the WAL past WAL_CHECKPOINT_BYTES, see sqlite-writer.ts); every
 *   INDEX_EVERY_MS, the journal's move into events and the full-text catch-up, in short transactions. The
 *   writer counts its events in `committed`, memory both threads share (no message per commit).
 */
import { parentPort, workerData } from 'node:worker_threads';
import fs from 'node:fs';
import { openSqliteConnection, SqliteWriter, WAL_CHECKPOINT_BYTES, type SqliteConnectionOptions } from './sqlite-writer.js';
import type { Answer, Unit } from './sqlite-threads.js';
import { serializeError } from './sqlite-thread-errors.js';

interface Init {
  role: 'writer' | 'maintenance';
  file: string;
  display: string;
  connection: SqliteConnectionOptions;
  /** Events this process's writer has committed (shared memory; see CHECKPOINT_EVENTS). */
  committed: Int32Array;
}

const MAINTENANCE_MS = 200;
/**
 * The journal's move into events and the full-text catch-up run at most once a second (every tick once the WAL is
 * past half its bound). Each run holds the write lock for a few milliseconds, and a tunnel's commit that meets it
 * waits 1-3 ms: at every 200 ms tick that was a cluster of slow statements, the largest share of the added p99
 * that the tunnel itself causes. Sequential SELECT 1, 20,000 in one run: statements over 1 ms 234 → 191 (simple),
 * 270 → 235 (extended); pgbench CPU per statement unchanged. Readers move what is left themselves (catchUp), and
 * search scans the unindexed tail, so nothing waits for this.
 */
const INDEX_EVERY_MS = 1000;
/**
 * The maintenance thread checkpoints once the writer has committed CHECKPOINT_EVENTS events since its last
 * checkpoint (under load, at every tick), or CHECKPOINT_IDLE_MS after it, not at every tick. A checkpoint that
 * copies the whole log has the next commit start the log again from the top of the file, and that commit
 * writes and fsyncs a new WAL header (synchronous=NORMAL syncs a restarted log's header): 0.35–0.45 ms on the
 * tunnel's thread. At a checkpoint every 200 ms, that was every statement of a client that pauses between
 * statements, as an agent does (an SSE request every ~250 ms through the HTTP tunnel: its commit 0.35–0.5 ms
 * with the restart, 0.07–0.09 without). A thousand events are a few MB of WAL, well within its bound.
 */
const CHECKPOINT_EVENTS = 1000;
const CHECKPOINT_IDLE_MS = 10_000;
/** Rows per full-text transaction: short enough that the writer's wait for the lock stays around a millisecond. */
const INDEX_CHUNK = 256;

const init = workerData as Init;

function walBytes(): number {
  try {
    return fs.statSync(`${init.file}-wal`).size;
  } catch {
    return 0;
  }
}
const port = parentPort!;
const db = openSqliteConnection(init.file, init.display, init.connection);

if (init.role === 'writer') {
  db.exec('PRAGMA wal_autocheckpoint = 0');
  const writer = new SqliteWriter(db, init.display, init.connection.busyMs, { indexing: false, file: init.file });
  writer.countCommitsInto(init.committed);
  /** Answers of the units that committed together, posted in one message once they are all settled. */
  let answers: Answer[] = [];
  const answer = (a: Answer): void => {
    if (answers.push(a) === 1) {
      queueMicrotask(() => {
        const out = answers;
        answers = [];
        port.postMessage({ answers: out });
      });
    }
  };
  port.on('message', (m: { units: Unit[] } | { close: true }) => {
    if ('close' in m) {
      void writer.close().finally(() => {
        db.close();
        port.postMessage({ closed: true });
        port.close();
      });
      return;
    }
    for (const u of m.units) {
      writer.submit(u.op, u.defer).then(
        (value) => answer({ id: u.id, ok: true, value }),
        (err: unknown) => answer({ id: u.id, ok: false, error: serializeError(err) }),
      );
    }
    // The units of one message came from one turn of the tunnel's loop: commit them now rather than after
    // another turn of this one (unless all of them may wait; see AppendOptions.defer).
    if (m.units.some((u) => !u.defer)) writer.flush();
  });
} else {
  const indexer = new SqliteWriter(db, init.display, init.connection.busyMs, { indexing: false });
  const passive = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
  const frameBytes = Number((db.prepare('PRAGMA page_size').get() as { page_size: number }).page_size) + 24;
  /** The writer's count at the last checkpoint, when that was, and how far the log reached then (bytes). */
  let countAtCheckpoint = Atomics.load(init.committed, 0);
  let checkpointAt = Date.now();
  let logAtCheckpoint = 0;
  const tick = (closing = false): void => {
    const now = Date.now();
    const count = Atomics.load(init.committed, 0);
    // (the count wraps at 2^32 events; the difference modulo 2^32 is what was committed since)
    const due = closing || (count - countAtCheckpoint) >>> 0 >= CHECKPOINT_EVENTS || now - checkpointAt >= CHECKPOINT_IDLE_MS;
    // The file passes the bound only when the log does (the writer restarts the log within the file, which
    // keeps the bound's size); below it, how far the log reaches is what the checkpoint reports, and between
    // checkpoints what the last one reported. (The file's size taken for the log's, always past half the bound
    // once the log has restarted, moved the journal at every tick: 84.4 against 79.8 µs per statement through
    // the tunnel on fresh pairs.)
    let log = walBytes();
    try {
      // Past the bound the writer checkpoints the log; a checkpoint here would only hold the lock it needs.
      if (log <= WAL_CHECKPOINT_BYTES) {
        if (due) {
          logAtCheckpoint = Number((passive.get() as { log: number }).log) * frameBytes;
          countAtCheckpoint = count;
          checkpointAt = now;
        }
        log = logAtCheckpoint;
      }
    } catch {
      // busy or failing: the next tick retries; the writer's WAL only grows meanwhile
    }
    if (now - lastIndex < INDEX_EVERY_MS && log <= WAL_CHECKPOINT_BYTES / 2) return;
    lastIndex = now;
    // Past the bound, one chunk per tick. Back-to-back transactions here leave the writer no moment to take the
    // lock its RESTART checkpoint needs: under a pipelining client on a loaded machine the WAL reached 87–124 MB
    // once each chunk had become cheap (sqlite-writer.ts, ingestInTx).
    while (indexer.indexNow(INDEX_CHUNK) === INDEX_CHUNK && walBytes() <= WAL_CHECKPOINT_BYTES);
  };
  let lastIndex = 0;
  const timer = setInterval(tick, MAINTENANCE_MS);
  port.on('message', (m: { close?: true }) => {
    if (!m.close) return;
    clearInterval(timer);
    tick(true);
    void indexer.close().finally(() => {
      db.close();
      port.postMessage({ closed: true });
      port.close();
    });
  });
}
port.postMessage({ ready: true });
