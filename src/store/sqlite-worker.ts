/**
 * The SQLite store's writer thread (see sqlite-writer.ts and `writerThread` in OpenStoreOptions): its own
 * connection to the store file runs the group commits, so the tunnel's thread only posts each unit and
 * awaits the answer. Messages in: `{ id, op }` and `{ close: true }`; out: `{ id, ok, value | error }` and
 * `{ closed: true }`. Errors cross as plain data (serializeError) and are rebuilt on the other side.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openSqliteConnection, SqliteWriter, type SqliteConnectionOptions, type WriteOp } from './sqlite-writer.js';
import { serializeError } from './sqlite-thread-errors.js';

interface Init {
  file: string;
  display: string;
  connection: SqliteConnectionOptions;
}

const init = workerData as Init;
const port = parentPort!;
const db = openSqliteConnection(init.file, init.display, init.connection);
const writer = new SqliteWriter(db, init.display, init.connection.busyMs);

port.on('message', (m: { id: number; op: WriteOp } | { close: true }) => {
  if ('close' in m) {
    void writer.close().finally(() => {
      db.close();
      port.postMessage({ closed: true });
      port.close();
    });
    return;
  }
  writer.submit(m.op).then(
    (value) => port.postMessage({ id: m.id, ok: true, value }),
    (err: unknown) => port.postMessage({ id: m.id, ok: false, error: serializeError(err) }),
  );
});
port.postMessage({ ready: true });
