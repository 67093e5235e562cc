/**
 * PostgreSQL schema, as numbered migrations. Never edit a released migration: add the next one.
 *
 * Same model as SQLite (see sqlite-migrations.ts): `events.body` is the exact canonical JSON that was
 * hashed (text, not jsonb, which would reorder keys). `sessions.last_seq/last_hash` was each chain's head
 * until migration 3; since then an open session's head is its newest event (see migration 3).
 * Full-text search: a stored tsvector over the text with every non-alphanumeric run replaced by a space
 * (so `public.customers` indexes `public` and `customers`, as SQLite's unicode61 tokenizer does), GIN-indexed.
 */
import type { Migration } from './sqlite-migrations.js';

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'sessions, events, full-text index, approvals',
    sql: `
CREATE TABLE sessions (
  id          text PRIMARY KEY,
  resource    text NOT NULL,
  kind        text NOT NULL,
  subject     text NOT NULL,
  email       text,
  identity    jsonb NOT NULL,
  client_addr text NOT NULL,
  reason      text,
  started_at  timestamptz NOT NULL,
  ended_at    timestamptz,
  outcome     text,
  counters    jsonb NOT NULL,
  last_seq    integer NOT NULL,
  last_hash   text NOT NULL,
  last_time   timestamptz NOT NULL
) WITH (fillfactor = 50);
-- No index on last_seq/last_hash/last_time: every batch updates them, and unindexed columns keep those
-- updates HOT (no index writes). Prune scans sessions, which is rare and small next to events.
CREATE INDEX sessions_resource ON sessions (resource);
CREATE INDEX sessions_subject ON sessions (subject);

CREATE TABLE events (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  session_id text NOT NULL,
  seq        integer NOT NULL,
  type       text NOT NULL,
  time       timestamptz NOT NULL,
  subject    text NOT NULL,
  decision   text,
  text       text,
  body       text NOT NULL,
  hash       text NOT NULL,
  tsv        tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, regexp_replace(coalesce(text, ''), '[^[:alnum:]]+', ' ', 'g'))) STORED,
  UNIQUE (session_id, seq)
);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_decision ON events (decision, id) WHERE decision IS NOT NULL;
CREATE INDEX events_tsv ON events USING gin (tsv);

CREATE TABLE approvals (
  id         text PRIMARY KEY,
  session_id text NOT NULL,
  resource   text NOT NULL,
  state      text NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  version    integer NOT NULL,
  data       jsonb NOT NULL
);
CREATE INDEX approvals_state ON approvals (state, created_at);
CREATE INDEX approvals_session ON approvals (session_id);
`,
  },
  {
    version: 2,
    name: 'checkpoints of the session chains',
    // As SQLite's migration 2. checkpointed_seq is unindexed, so batch updates of sessions stay HOT.
    sql: `
ALTER TABLE sessions ADD COLUMN checkpointed_seq integer NOT NULL DEFAULT 0;
CREATE TABLE checkpoints (
  n         integer PRIMARY KEY,
  time      timestamptz NOT NULL,
  body      text NOT NULL,
  hash      text NOT NULL,
  signature text
);
`,
  },
  {
    version: 3,
    name: 'session heads follow the events',
    // No table changes: what changes is what the row's head means. A batch of appends writes its events only
    // (one UPDATE of every appended session's row per batch was a fifth of the store's work per event); an
    // open session's head is its newest event, read through the unique (session_id, seq) index. The row takes
    // the head when the session ends (or is closed as crashed). A dlpctl that still moves the row at every
    // batch would chain after a stale head here, so it refuses this store (STORE_TOO_NEW).
    sql: `
COMMENT ON COLUMN sessions.last_seq IS 'head as of the session''s creation or end; an open session''s head is its newest event';
COMMENT ON COLUMN sessions.last_hash IS 'hash of the event at last_seq';
COMMENT ON COLUMN sessions.last_time IS 'newest event time as of the session''s creation or end; an open session''s is its newest event''s';
`,
  },
];
