/**
 * Records of the session store (DESIGN §5) and the `SessionStore` interface both backends implement.
 *
 * Times are ISO-8601 strings with milliseconds in UTC (`2025-01-02T03:04:05.678Z`). Events are append-only
 * and chained per session: `hash = SHA-256(previous hash ‖ canonical JSON of the event without hash)`, the
 * first event of a session chaining from 64 zeros (see `chain.ts`).
 */

export type ResourceKind = 'postgres' | 'http' | 'ssh';
/** `store` is only used by the maintenance session that records `store.prune`. */
export type SessionKind = ResourceKind | 'store';
/**
 * `ok`: a clean end by either side; `terminated`: cut by dlpctl or an operator (revoked identity, expired grant,
 * maximum duration, the tunnel shutting down under a live session); `error`: something failed; `denied`: an
 * access request was refused; `crashed`: the process that owned the session died, and a later process that
 * opened the store closed it (see `closeCrashed`).
 */
export type Outcome = 'ok' | 'error' | 'terminated' | 'denied' | 'crashed';
export type Decision = 'allow' | 'deny' | 'approve' | 'observe';

export interface Identity {
  issuer: string;
  subject: string;
  email?: string;
  groups: string[];
  kind: 'human' | 'machine';
  verified: boolean;
}

export interface Counters {
  statements: number;
  denied: number;
  masked: number;
  rows: number;
  bytesIn: number;
  bytesOut: number;
}

export function zeroCounters(): Counters {
  return { statements: 0, denied: 0, masked: 0, rows: 0, bytesIn: 0, bytesOut: 0 };
}

export interface Session {
  id: string;
  resource: string;
  kind: SessionKind;
  identity: Identity;
  clientAddr: string;
  reason?: string;
  startedAt: string;
  endedAt?: string;
  outcome?: Outcome;
  counters: Counters;
  /** The process that records the session (in its `session.start` event; not a column). */
  owner?: SessionOwner;
}

/** Which process records a session: a session left open by a dead owner on this host is closed as `crashed`. */
export interface SessionOwner {
  pid: number;
  host: string;
  /** Linux: the kernel's boot id (a different one means the machine rebooted since: the owner is gone). */
  boot?: string;
  /** Linux: the owner's start time in clock ticks since boot (a different one means the pid was reused). */
  start?: number;
}

/** What `createSession` takes: the id and start time are generated when omitted. */
export type NewSession = Omit<Session, 'id' | 'startedAt' | 'counters' | 'endedAt' | 'outcome'> & {
  id?: string;
  startedAt?: string;
};

/** Fields every stored event carries. */
export interface EventCommon {
  sessionId: string;
  /** 1..n within the session. */
  seq: number;
  time: string;
  /** The identity subject of the session. */
  subject: string;
  /** Hex SHA-256 chaining this event to the previous one of its session. */
  hash: string;
}

export interface SessionStartBody {
  type: 'session.start';
  resource: string;
  kind: SessionKind;
  clientAddr: string;
  identity: Identity;
  reason?: string;
  owner?: SessionOwner;
}
export interface SessionEndBody {
  type: 'session.end';
  outcome: Outcome;
  counters: Counters;
}
export interface QueryBody {
  type: 'query';
  /** The tunnel's number of this statement in its session; `execute` events refer to it. */
  id?: number;
  /** Statement text, already masked by the caller. */
  sql: string;
  decision: Decision;
  rule?: string;
  kinds: string[];
  tables: string[];
}
export interface HttpRequestBody {
  type: 'http.request';
  method: string;
  path: string;
  decision: Decision;
  rule?: string;
  status?: number;
  /**
   * HTTP tunnel: `request` is recorded (durable) before the request is forwarded, `response` once the
   * response has ended; absent when dlpctl answered the request itself (denied, limited).
   */
  phase?: 'request' | 'response';
  durationMs?: number;
  /** Why dlpctl answered itself, or what failed upstream (never a secret). */
  message?: string;
  /** Headers with credentials removed. */
  reqHeaders?: Record<string, string>;
  resHeaders?: Record<string, string>;
  /** Bodies as masked text, up to the tunnel's record cap; `…Bytes` is the full size on the wire. */
  reqBody?: string;
  reqBodyBytes?: number;
  resBody?: string;
  resBodyBytes?: number;
  /** Masked values per entity in this request (`request`) or response (`response`). Never the values. */
  masked?: Record<string, number>;
}
export interface SshCommandBody {
  type: 'ssh.command';
  /** Command line (exec), entered line (shell) or file operation (sftp), already masked by the caller. */
  command: string;
  decision: Decision;
  rule?: string;
  /** Where the command came from (absent: exec). */
  channel?: 'exec' | 'shell' | 'sftp';
  /** The session's channel number. */
  channelId?: number;
  /** Shell lines: false when line editing (cursor keys, completion, history) made the reconstruction uncertain. */
  certain?: boolean;
}
export interface SshChannelBody {
  type: 'ssh.channel';
  channel: 'exec' | 'shell' | 'sftp' | 'forward';
  decision: Decision;
  rule?: string;
  target?: string;
  /** `open` when the channel is decided, `close` when it ends (absent: open). */
  phase?: 'open' | 'close';
  channelId?: number;
  /** Whether a pty was requested, and the names of the accepted environment variables. */
  pty?: boolean;
  /** The terminal size and type when a pty was requested (asciicast header). */
  cols?: number;
  rows?: number;
  term?: string;
  env?: string[];
  /** On close: exit status or signal of the remote command, bytes client → target and target → client. */
  exitStatus?: number;
  exitSignal?: string;
  bytesIn?: number;
  bytesOut?: number;
}
export interface MaskSummaryBody {
  type: 'mask.summary';
  /** Entity (or column) name → how many values were masked. Never the values. */
  entities: Record<string, number>;
  rule?: string;
}
export interface ResultBody {
  type: 'result';
  rows: number;
  bytes: number;
  durationMs: number;
  /** The result's column names (absent: unknown, e.g. a COPY). */
  columns?: string[];
  /**
   * The first rows as the client saw them (after masking, then the audit detectors), up to the resource's
   * record limits; text cells, null for NULL, `(N bytes)` for a binary cell. COPY rows are one cell each.
   */
  sample?: (string | null)[][];
  /** Set when rows or bytes past the record limits were left out of `sample`. */
  truncated?: boolean;
  /** Observe only (enforce: false): the limit this result went past, which would have ended it. */
  observed?: string;
}
/**
 * One execution of a prepared statement (protocol-level Bind/Execute, or SQL EXECUTE). The statement's text is
 * recorded once, by the `query` event of its Parse/PREPARE, which `statement` names by its `id`.
 */
export interface ExecuteBody {
  type: 'execute';
  /** The `id` of the `query` event that recorded the statement's text (0: not recorded in this session). */
  statement: number;
  decision: Decision;
  rule?: string;
  /** Bound parameter values, masked by the audit detectors; absent when the resource records no parameters. */
  params?: (string | null)[];
  /** The portal's row limit (Execute's max rows), when not 0. */
  maxRows?: number;
}
export interface ErrorBody {
  type: 'error';
  message: string;
  code?: string;
}
export interface ApprovalRequestedBody {
  type: 'approval.requested';
  approvalId: string;
  rule: string;
}
export interface ApprovalDecidedBody {
  type: 'approval.decided';
  approvalId: string;
  state: ApprovalState;
  by?: string;
}
export interface TerminalOutputBody {
  type: 'terminal.output';
  /** Seconds since the session started (asciicast v2 frame time). */
  t: number;
  data: string;
  stream?: 'o' | 'i';
  /** SSH: the channel whose output this is. */
  channelId?: number;
}
export interface StorePruneBody {
  type: 'store.prune';
  olderThanMs: number;
  cutoff: string;
  sessionsRemoved: number;
  eventsRemoved: number;
}

export type EventBody =
  | SessionStartBody
  | SessionEndBody
  | QueryBody
  | HttpRequestBody
  | SshCommandBody
  | SshChannelBody
  | MaskSummaryBody
  | ResultBody
  | ExecuteBody
  | ErrorBody
  | ApprovalRequestedBody
  | ApprovalDecidedBody
  | TerminalOutputBody
  | StorePruneBody;

export type EventType = EventBody['type'];

/** A stored event: the body plus the common fields. */
export type StoreEvent = EventBody & EventCommon;

/** What `append` takes: a body, optionally with its time (defaults to the store's clock). */
export type NewEvent = EventBody & { time?: string };

export type ApprovalState = 'pending' | 'approved' | 'denied' | 'expired' | 'consumed';

export interface ApprovalDecision {
  by: string;
  groups: string[];
  decision: 'approve' | 'deny';
  comment?: string;
  at: string;
}

export interface Approval {
  /** Six characters from `APPROVAL_ID_ALPHABET`, e.g. `K7QF2M`. */
  id: string;
  sessionId: string;
  resource: string;
  /** Hex SHA-256 of the exact statement bytes. */
  sha256: string;
  maskedText: string;
  requester: Identity;
  reason?: string;
  rule: string;
  /** Groups whose members may decide. */
  approvers: string[];
  minApprovals: number;
  state: ApprovalState;
  decisions: ApprovalDecision[];
  createdAt: string;
  expiresAt: string;
  /** Incremented by every update; `waitForApprovalChange` compares it. */
  version: number;
}

export type NewApproval = Omit<Approval, 'id' | 'state' | 'decisions' | 'createdAt' | 'version'> & {
  createdAt?: string;
};

/**
 * Called inside the update's transaction with the current row. Return the new approval (id and version are
 * kept by the store) or `undefined` to leave it unchanged. Must be synchronous and side-effect free: it may
 * run again if the transaction is retried.
 */
export type ApprovalMutator = (current: Approval) => Approval | undefined;

export interface ApprovalUpdate {
  approval: Approval;
  changed: boolean;
}

export interface StoreInfo {
  engine: 'sqlite' | 'postgres';
  /** The store URL with any password removed. */
  url: string;
  schemaVersion: number;
  /** The newest schema version this binary knows. */
  binaryVersion: number;
  sessions: number;
  events: number;
  approvals: number;
  sizeBytes?: number;
}

export interface ListEventsOptions {
  afterSeq?: number;
  limit?: number;
}

export interface SearchQuery {
  /**
   * Words matched against statement / request / command text: all of them, whole words, case- and
   * accent-insensitive; `word*` matches words starting with `word`.
   */
  text?: string;
  resource?: string;
  /** Identity subject or email. */
  identity?: string;
  since?: string;
  until?: string;
  decision?: Decision;
  /** Default 100. */
  limit?: number;
}

export interface SearchHit {
  event: StoreEvent;
  session: Session;
}

export interface VerifyResult {
  ok: boolean;
  sessionsChecked: number;
  eventsChecked: number;
  /**
   * The first problem. `sessionId` is `(checkpoints)` for a fault in the checkpoint chain (`seq` is then the
   * checkpoint number), and `seq` is 0 for a fault in the session's row rather than one of its events.
   */
  firstBad?: { sessionId: string; seq: number; reason: string };
  /** What the checkpoints vouch for (see `VerifyOptions`). */
  checkpoints?: CheckpointSummary;
}

export interface CheckpointSummary {
  /** Checkpoints in the store's chain. */
  count: number;
  /** Of those, signed by the key verify was given. */
  signed: number;
  /** Checkpoints read from the external copy (`--checkpoints FILE`), each found in the store. */
  external: number;
  /** With a key: the newest checkpoint signed by it, and its time. History up to here cannot be rewritten unnoticed. */
  vouchedCheckpoint?: number;
  vouchedUntil?: string;
  /** Events recorded after the heads the newest checkpoint holds: covered by the hash chains only. */
  eventsAfter: number;
  keyId?: string;
}

export interface VerifyOptions {
  /** Only this session (its rows, chain and checkpointed head). */
  sessionId?: string;
  /** Ed25519 public key (PEM): every checkpoint from the first signed one on must carry a valid signature. */
  publicKey?: string;
  /** Checkpoints copied outside the store (the JSON lines `checkpoint.file` receives): each must be in the store. */
  externalCheckpoints?: CheckpointRecord[];
}

/**
 * A checkpoint: the heads of the session chains that moved since the previous checkpoint, chained to it and
 * optionally signed. `body` is the canonical JSON of a `CheckpointBody` (the bytes hashed and signed).
 */
export interface CheckpointRecord {
  n: number;
  time: string;
  body: string;
  /** Hex SHA-256 of `body`. */
  hash: string;
  /** Base64 Ed25519 signature of `body`, or null when no signing key was configured. */
  signature: string | null;
}

export interface CheckpointBody {
  v: 1;
  n: number;
  time: string;
  /** `hash` of checkpoint n-1 (64 zeros for the first). */
  prev: string;
  /** [session id, last seq, last hash, time of its last event], sorted by id. */
  heads: [string, number, string, string][];
  /** Id of the signing key (first 16 hex digits of the SHA-256 of its public key), when signed. */
  key?: string;
}

export interface CheckpointOptions {
  time?: string;
  /** PKCS#8 PEM of the Ed25519 private key; unsigned without it. */
  signingKey?: string;
  /** Write one even when no chain moved since the previous checkpoint. */
  force?: boolean;
}

/** A session without an end, and the process that records it. */
export interface OpenSessionInfo {
  id: string;
  startedAt: string;
  owner?: SessionOwner;
}

export interface PruneResult {
  sessionsRemoved: number;
  eventsRemoved: number;
}

export interface AppendOptions {
  /**
   * Nothing waits on this write before acting (a statement's result, recorded after the client has it):
   * the store may hold it up to DEFER_WRITE_MS to commit it with the next writes instead of on its own.
   * Order within a session is kept either way, and closing the store commits it.
   */
  defer?: boolean;
}

export interface SessionStore {
  readonly engine: 'sqlite' | 'postgres';
  /** Applies pending migrations; idempotent. Throws STORE_TOO_NEW for a store migrated by a newer binary. */
  migrate(): Promise<{ from: number; to: number }>;
  info(): Promise<StoreInfo>;
  /** Creates the session and records its `session.start` event (seq 1). */
  createSession(session: NewSession): Promise<Session>;
  /** Records `session.end` and sets outcome, end time and counters. */
  endSession(id: string, outcome: Outcome, counters: Counters): Promise<Session>;
  /** Appends one event; resolves with the stored event once it is durable (group-committed). */
  append(sessionId: string, event: NewEvent, options?: AppendOptions): Promise<StoreEvent>;
  /** Appends several events of one session in order; all in the same commit. */
  appendMany(sessionId: string, events: NewEvent[], options?: AppendOptions): Promise<StoreEvent[]>;
  getSession(id: string): Promise<Session | undefined>;
  listEvents(sessionId: string, options?: ListEventsOptions): Promise<StoreEvent[]>;
  /** Newest first. */
  search(query: SearchQuery): Promise<SearchHit[]>;
  /**
   * Recomputes the chains and checks every displayed column against them, the session rows against their
   * start and end events, the checkpoint chain and what it holds (a string: only that session).
   */
  verify(options?: string | VerifyOptions): Promise<VerifyResult>;
  /**
   * Records a checkpoint of the chain heads that moved since the previous one (signed when a key is given);
   * resolves with it, or with undefined when nothing moved and the previous one was made the same way.
   */
  checkpoint(options?: CheckpointOptions): Promise<CheckpointRecord | undefined>;
  /** The checkpoint chain, oldest first. */
  listCheckpoints(): Promise<CheckpointRecord[]>;
  /** Sessions without an end, with their owners. */
  openSessions(): Promise<OpenSessionInfo[]>;
  /**
   * Ends the given sessions (those still open) with outcome `crashed`, at the time of their last event and with
   * the counters their events show; resolves with the ids it closed.
   */
  closeCrashed(ids: string[]): Promise<string[]>;
  /** Removes whole sessions whose last activity is older than `now - olderThanMs`; records `store.prune`. */
  prune(olderThanMs: number, now?: Date): Promise<PruneResult>;
  createApproval(approval: NewApproval): Promise<Approval>;
  getApproval(id: string): Promise<Approval | undefined>;
  listApprovals(filter?: { state?: ApprovalState }): Promise<Approval[]>;
  /** Atomic read-modify-write: two racing updates are serialised, the second sees the first's result. */
  updateApproval(id: string, mutate: ApprovalMutator): Promise<ApprovalUpdate>;
  /**
   * Resolves with the approval once its version is greater than `sinceVersion` (default: its version when
   * called). Rejects with `signal.reason` when aborted.
   */
  waitForApprovalChange(id: string, signal?: AbortSignal, sinceVersion?: number): Promise<Approval>;
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** Apply migrations on open (default true). */
  migrate?: boolean;
  /** SQLite: create the file (and its directory) when missing (default true); false → STORE_NOT_FOUND. */
  create?: boolean;
  /** Clock for default event and session times. */
  now?: () => Date;
  /** SQLite busy timeout in ms (default 5000). */
  busyTimeoutMs?: number;
  /**
   * SQLite durability. `normal` (the default of `openStore`, and of `sqlite:PATH`): a resolved append is
   * committed and survives a crash of dlpctl, but not of the OS or machine. `full` (`sqlite:PATH?sync=full`):
   * the WAL is fsynced at every commit, so it also survives power loss — at the price of one fsync (several
   * ms on ordinary disks) in front of every statement a tunnel forwards.
   */
  sqliteSynchronous?: 'full' | 'normal';
  /**
   * PostgreSQL: how many batch statements may be in flight at once (sessions are split between them by id).
   * Default 1: the biggest batches, best when each writer awaits its append; more helps writers that pipeline.
   */
  postgresWriteLanes?: number;
  /**
   * SQLite threads (default `none`: everything on the caller's thread, for short commands).
   * `tunnel`, for long-running tunnels: WAL checkpoints and full-text indexing on a maintenance thread, the
   * commits on the caller's thread — or, with `sync=full`, on a writer thread, so an fsync never stalls the
   * traffic. `writer`: always a writer thread (and a maintenance thread).
   */
  threads?: 'none' | 'tunnel' | 'writer';
  /**
   * How long a session write (createSession, append, appendMany, endSession) may take to commit before it
   * rejects with STORE_TIMEOUT, so that the tunnel denies the statement instead of hanging on a frozen
   * store (default 5000; the store URL's `?timeout=5s` sets it too, and this option wins).
   */
  timeoutMs?: number;
  /** Poll interval for `waitForApprovalChange` where notifications are not available (default 250). */
  pollIntervalMs?: number;
}

/** The id of the session that records store maintenance (`store.prune`). */
export const MAINTENANCE_SESSION_ID = '00000000000000000000STORE0';
