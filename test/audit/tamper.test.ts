/** The tamper suite (tamper.ts) against the SQLite store and a PostgreSQL store. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll } from 'vitest';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { tamperSuite } from './tamper.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlpctl-tamper-sqlite-'));
let n = 0;
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

tamperSuite({
  engine: 'sqlite',
  newUrl: async () => `sqlite:${path.join(dir, `s${++n}`, 'store.db')}`,
  exec: async (url, sql) => {
    const db = new DatabaseSync(url.slice('sqlite:'.length));
    try {
      db.exec('PRAGMA busy_timeout = 5000');
      db.exec(sql);
    } finally {
      db.close();
    }
  },
  sql: {
    shiftTime: (id, seq) => `UPDATE events SET time_ms = time_ms + 3600000 WHERE session_id = '${id}' AND seq = ${seq}`,
    copyEvents: (id, to) =>
      `INSERT INTO events (session_id, seq, type, time_ms, decision, text, body, hash) SELECT '${to}', seq, type, time_ms, decision, text, body, hash FROM events WHERE session_id = '${id}'`,
  },
});

let server: TestPostgres;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
});

tamperSuite({
  engine: 'postgres',
  newUrl: () => server.newDatabase(),
  exec: async (url, sql) => {
    const pg = (await import('pg')).default;
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  },
  sql: {
    shiftTime: (id, seq) => `UPDATE events SET time = time + interval '1 hour' WHERE session_id = '${id}' AND seq = ${seq}`,
    copyEvents: (id, to) =>
      `INSERT INTO events (session_id, seq, type, time, subject, decision, text, body, hash) SELECT '${to}', seq, type, time, subject, decision, text, body, hash FROM events WHERE session_id = '${id}'`,
  },
});
