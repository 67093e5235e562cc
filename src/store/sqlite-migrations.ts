/**
 * SQLite schema, as numbered migrations. Never edit a released migration: add the next one.
 *
 * `events.body` is the canonical JSON of the event without its hash (exactly the bytes hashed), so
 * verification needs nothing else. `sessions.last_seq/last_hash` is each chain's head as of the events table
 * (schema 4: events still in the journal are newer), and verify, which moves the journal first, compares it
 * with the last event (a deleted tail is detected).
 * `events_fts` is an external-content FTS5 index over the statement / request / command text. It is filled
 * in bulk after commits rather than by an insert trigger: FTS5 writes a new segment at every transaction,
 * which made each small group commit several times slower. `fts_state.indexed_upto` is the watermark;
 * search reads the index up to it and scans the (short) rest of the table directly, in one snapshot.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'sessions, events, full-text index, approvals',
    sql: `
CREATE TABLE sessions (
  id          TEXT PRIMARY KEY,
  resource    TEXT NOT NULL,
  kind        TEXT NOT NULL,
  subject     TEXT NOT NULL,
  email       TEXT,
  identity    TEXT NOT NULL,
  client_addr TEXT NOT NULL,
  reason      TEXT,
  started_at  TEXT NOT NULL,
  ended_at    TEXT,
  outcome     TEXT,
  counters    TEXT NOT NULL,
  last_seq    INTEGER NOT NULL,
  last_hash   TEXT NOT NULL,
  last_ms     INTEGER NOT NULL
);
CREATE INDEX sessions_resource ON sessions (resource);
CREATE INDEX sessions_subject ON sessions (subject);

CREATE TABLE events (
  id         INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: the FTS watermark relies on it
  session_id TEXT NOT NULL,
  seq        INTEGER NOT NULL,
  type       TEXT NOT NULL,
  time_ms    INTEGER NOT NULL,
  decision   TEXT,
  text       TEXT,
  body       TEXT NOT NULL,
  hash       TEXT NOT NULL,
  UNIQUE (session_id, seq)
);
CREATE INDEX events_time ON events (time_ms);
CREATE INDEX events_decision ON events (decision, id) WHERE decision IS NOT NULL;

CREATE VIRTUAL TABLE events_fts USING fts5 (text, content = 'events', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2');
-- Rows with id <= indexed_upto are in events_fts; newer ones are indexed in bulk, after their commit.
CREATE TABLE fts_state (id INTEGER PRIMARY KEY CHECK (id = 1), indexed_upto INTEGER NOT NULL);
INSERT INTO fts_state (id, indexed_upto) VALUES (1, 0);
CREATE TRIGGER events_fts_ad AFTER DELETE ON events
  WHEN old.text IS NOT NULL AND old.id <= (SELECT indexed_upto FROM fts_state) BEGIN
  INSERT INTO events_fts (events_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER events_fts_au AFTER UPDATE OF text ON events
  WHEN old.id <= (SELECT indexed_upto FROM fts_state) BEGIN
  INSERT INTO events_fts (events_fts, rowid, text) SELECT 'delete', old.id, old.text WHERE old.text IS NOT NULL;
  INSERT INTO events_fts (rowid, text) SELECT new.id, new.text WHERE new.text IS NOT NULL;
END;

CREATE TABLE approvals (
  id         TEXT PRIMARY KEY,
  session_id TEXT NOT NULL,
  resource   TEXT NOT NULL,
  state      TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  version    INTEGER NOT NULL,
  data       TEXT NOT NULL
);
CREATE INDEX approvals_state ON approvals (state, created_at);
CREATE INDEX approvals_session ON approvals (session_id);
`,
  },
  {
    version: 2,
    name: 'checkpoints of the session chains',
    // checkpointed_seq: the head the newest checkpoint holds for the session; a checkpoint lists the
    // sessions whose last_seq moved past it (see checkpoint.ts). Checkpoints are never pruned.
    sql: `
ALTER TABLE sessions ADD COLUMN checkpointed_seq INTEGER NOT NULL DEFAULT 0;
CREATE TABLE checkpoints (
  n         INTEGER PRIMARY KEY,
  time      TEXT NOT NULL,
  body      TEXT NOT NULL,
  hash      TEXT NOT NULL,
  signature TEXT
);
`,
  },
  {
    version: 3,
    name: 'events journal: group commits append here, events is filled from it in bulk',
    // A group commit inserts its events here: rows appended at the end of one b-tree, no index. Inserting them
    // into events directly wrote a leaf of the (session_id, seq) index per session in the batch, plus the time
    // and decision indexes, at every commit (~14 WAL pages per commit of 8 sessions). `ingest` (sqlite-writer.ts)
    // moves them into events in large batches, in journal order, so events.id stays the commit order; every read
    // of events catches up first. The rows are as durable and as hash-chained here as in events.
    sql: `
CREATE TABLE events_journal (
  id         INTEGER PRIMARY KEY,
  session_id TEXT NOT NULL,
  seq        INTEGER NOT NULL,
  type       TEXT NOT NULL,
  time_ms    INTEGER NOT NULL,
  decision   TEXT,
  text       TEXT,
  body       TEXT NOT NULL,
  hash       TEXT NOT NULL
);
`,
  },
  {
    version: 4,
    name: 'session heads follow the events journal',
    // What changes is what the sessions row's head means, so a dlpctl that still moves the head at every
    // commit (and would read a stale one here) refuses this store (STORE_TOO_NEW) instead of writing a
    // second event under a seq the journal already holds. From here on, a group commit writes only
    // its journal rows: the head of a session whose newest events wait in the journal is the newest of them
    // (SqliteWriter.readHead), and the row's last_seq/last_hash/last_ms catch up when the journal is moved into
    // events (ingestInTx), in the same transaction. Moving every head at every commit was one UPDATE of the
    // sessions table per session per commit and its page in the WAL: a tenth of the tunnel's CPU per statement.
    // A session's end still writes its row (ended_at, outcome, counters and the head).
    // head_epoch: moved by a commit that appended after a head it read from the store (`dlpctl approve` on a
    // tunnel's session) or removed sessions (prune); a writer drops the heads it caches only when it moved, not
    // at every other connection's commit (SqliteWriter.syncHeads), since a head read now may scan the journal.
    sql: `
CREATE TABLE head_epoch (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  n  INTEGER NOT NULL
);
INSERT INTO head_epoch (id, n) VALUES (1, 0);
`,
  },
];
