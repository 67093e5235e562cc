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
export type Outcome = 'ok' | 'error' | 'terminated' | 'denied';
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
}
export interface SessionEndBody {
  type: 'session.end';
  outcome: Outcome;
  counters: Counters;
}
export interface QueryBody {
  type: 'query';
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
}
/**
 * One execution of a prepared statement (protocol-level Bind/Execute, or SQL EXECUTE). The statement's text is
 * recorded once, by the `query` event of its Parse/PREPARE, which `statement` names by its seq in this session.
 */
export interface ExecuteBody {
  type: 'execute';
  /** seq of the `query` event that recorded the statement's text (0: not recorded in this session). */
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
  firstBad?: { sessionId: string; seq: number; reason: string };
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
  verify(sessionId?: string): Promise<VerifyResult>;
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
