/**
 * One PostgreSQL session through the tunnel, after both start-ups: two loops relaying frames.
 *
 * client → upstream (one frame at a time; nothing more is read while a statement is being decided):
 *   Query 'Q' / Parse 'P'  → classify + decide + record (durable) → forward, or replace by a "poison"
 *                            statement (below) when denied
 *   Bind/Describe/Execute/Close/Sync/Flush/Copy*  → bookkeeping, forward the original bytes
 *   FunctionCall 'F'       → the function's name from the catalogue, decided as `SELECT schema.name($1, …)`;
 *                            forwarded when allowed and no mask applies (its result is not a row to mask)
 *   a malformed message    → FATAL 08P01 (22021: a byte sequence invalid in the client encoding), close
 *
 * SQL text is decoded in the session's client_encoding (tracked from ParameterStatus, encoding.ts) and
 * forwarded as the original bytes; a statement setting an encoding the tunnel cannot read is refused.
 *   Terminate 'X'          → forward, end
 *
 * upstream → client:
 *   RowDescription         → a masking plan for the result (column rules via the catalogue, DLP detectors)
 *   DataRow                → masked (rebuilt only when a cell changed), counted against maxRows/maxBytes
 *   ErrorResponse          → the poison's error is replaced by the policy denial (SQLSTATE 42501)
 *   everything else        → forwarded untouched
 *
 * Denial by poison: a denied statement is never sent; in its place goes a statement that is certain to
 * fail at parse analysis (a relation named with a random nonce). PostgreSQL itself then aborts the
 * transaction, skips to Sync and answers ReadyForQuery with the right status, so the client and the server
 * never disagree about the session's state; we only rewrite that one error into the denial.
 *
 * Limits: past maxRows/maxBytes the rest of the result is dropped and the client gets SQLSTATE 54000 in
 * place of the result's end; what the server sends until ReadyForQuery is swallowed. A query still running
 * CANCEL_AFTER_MS after the limit is cancelled upstream. Not at once: a cancel that reaches a backend whose
 * query has just ended can cancel the session's *next* statement instead (PostgreSQL cancels whatever runs
 * when the signal lands), so the next statement waits until the limited one has reached ReadyForQuery and
 * any cancel has been delivered.
 */
import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import type { Decision, MaskDirective } from '../../policy/index.js';
import type { Decision as AuditDecision } from '../../store/types.js';
import type { SessionRecorder } from '../recorder.js';
import type { TunnelEvent } from '../tunnel.js';
import { ByteRun } from './byte-run.js';
import { ConnectionClosed, type PgConn } from './conn.js';
import { clientCodec, requestedClientEncoding, unsupportedEncodingMessage, type TextCodec } from './encoding.js';
import {
  BackendType,
  decodeBackend,
  decodeDataRow,
  decodeFrontend,
  decodeRowDescription,
  encodeErrorResponse,
  encodeFrontend,
  encodePolicyDenial,
  encodeQuery,
  FrontendType,
  isProtocolError,
  type FieldDescription,
  type Frame,
  type FrontendMessage,
  type FunctionCall,
  type ProtocolError,
  type TransactionStatus,
} from './protocol.js';
import type { DerivedMask } from './lineage.js';
import { maskNotice, maskNotification, type ServerMessageMasking } from './server-messages.js';
import { CopyRowMasker, type CopyOut } from './copy-out.js';
import { isTextLikeType, type MaskTally, type RowPlan } from './result-mask.js';

/** What the engine says about one SQL text. */
export interface Verdict {
  allow: boolean;
  /** The client-facing denial message when not allowed. */
  message?: string;
  masks: readonly MaskDirective[];
  /** How to mask computed output columns (table OID 0) of a tainted statement (lineage.ts). */
  derived?: DerivedMask | null;
  /** Per output column, whether a computed column carries masked data (null: cannot be lined up). */
  derivedOutputs?: readonly boolean[] | null;
  /** Column patterns of views the statement reads that show masked data (taint.ts). */
  derivedPatterns?: readonly string[];
  /** How the server's errors, notices and notifications during this statement are masked (server-messages.ts). */
  serverText?: ServerMessageMasking;
  /** COPY … TO STDOUT: how its rows are laid out, for masking them (copy-out.ts). */
  copy?: CopyOut | null;
  /** A Query of several statements: the same for each COPY … TO STDOUT among them, by statement (null for the others). */
  copies?: readonly (CopyOut | null)[];
  limits: Decision['limits'];
  limitRule?: string;
  /** The tunnel's number of this statement in the session (QueryBody.id), which execution events refer to. */
  statementId?: number;
  /**
   * Not a policy denial but the error PostgreSQL itself would give: a statement dlpctl's parser (PostgreSQL's
   * own) rejects is answered as a syntax error (42601, with the position), still never forwarded.
   */
  error?: { code: string; position?: number };
  /** What the audit trail recorded as the decision, and the rule. */
  label?: AuditDecision;
  rule?: string;
  /** Observe only (enforce: false): a result past a limit is recorded as such and passes whole. */
  observeLimits?: boolean;
}

/** What the store keeps of executions and results (the resource's `record`). */
export interface RecordLimits {
  rows: number;
  bytes: number;
  parameters: boolean;
}

const DEFAULT_RECORD: RecordLimits = { rows: 100, bytes: 64 * 1024, parameters: true };
/** A recorded parameter longer than this is cut (the statement's own cap on what the store holds). */
const MAX_PARAM_CHARS = 4096;

export interface PgSessionDeps {
  sessionId: string;
  resource: string;
  client: PgConn;
  upstream: PgConn;
  recorder: SessionRecorder;
  status: TransactionStatus;
  /**
   * Decide, record and (for approve) wait. Never throws: failures are denials. A Query's record is durable before
   * it returns; a Parse's (`prepared`) is queued: nothing runs until Execute, whose own record is durable first.
   */
  gate(sql: string, prepared?: boolean): Promise<Verdict>;
  /** What the store keeps of executions and results (default: 100 rows, 64 KiB, parameters). */
  record?: RecordLimits;
  /** `fields` null: the result's shape is unknown (COPY, or an Execute nobody described). */
  plan(fields: readonly FieldDescription[] | null, verdict: Verdict): Promise<RowPlan>;
  cancel(): Promise<void>;
  emit(e: TunnelEvent): void;
  /** Masking of server messages outside any statement (before the first, or asynchronous). */
  serverText: ServerMessageMasking;
  /** What the store keeps of a text the client saw (the audit detectors' masking). */
  auditText(text: string): string;
  /** A function by OID (the function-call sub-protocol): its quoted `schema.name`, or null when unknown. */
  functionName?(oid: number): Promise<{ name: string; args: number; resultType: number } | null>;
  /** client_encoding and server_encoding as the server reported them at start-up (default UTF8). */
  clientEncoding?: string;
  serverEncoding?: string;
}

interface StatementState {
  verdict: Verdict;
  fields?: readonly FieldDescription[];
}
interface PortalState {
  statement: StatementState | undefined;
  /** The bound parameters as recorded (masked), or undefined when parameters are not recorded. */
  params?: (string | null)[];
  resultFormats: readonly number[];
  fields?: readonly FieldDescription[];
}

type Pending =
  | { k: 'parse'; name: string; verdict: Verdict; poison?: Poison }
  | { k: 'bind'; verdict: Verdict | undefined }
  | { k: 'describe'; target: 'S' | 'P'; name: string; internal: boolean }
  | { k: 'execute'; portal: string; poison?: Poison }
  | { k: 'close' }
  | { k: 'sync' }
  | { k: 'query'; verdict: Verdict; poison?: Poison; /** statements of it answered so far (CommandComplete) */ done?: number };

interface Poison {
  nonce: string;
  message: string;
  /** The error the client gets instead of the poison's: a policy denial (42501) unless the verdict says otherwise. */
  error?: Verdict['error'];
}

interface ResultState {
  plan: RowPlan | null;
  /** The first rows as the client saw them, for the store (null: not recording). */
  sample: (string | null)[][] | null;
  sampleBytes: number;
  truncated: boolean;
  columns: string[] | null;
  formats: number[] | null;
  /** COPY … TO STDOUT in text or CSV: its rows parsed and masked cell by cell. */
  copy: CopyRowMasker | null;
  verdict: Verdict;
  rows: number;
  bytes: number;
  started: number;
  over: string | null;
  /** Observe only: the limit this result passed (recorded on its result event). */
  observed?: string;
}

const POISON_PREFIX = 'dlpctl_denied_';
/** How long a query may go on sending past its limit before it is cancelled upstream. */
const CANCEL_AFTER_MS = 100;
/** After one side closed, how long a loop still relaying (to a client that does not read) may go on. */
const CLOSE_GRACE_MS = 2000;

function poisonSql(nonce: string): string {
  return `SELECT 1 FROM "${POISON_PREFIX}${nonce}"`;
}

function copyData(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = BackendType.CopyData;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

/** The ErrorResponse PostgreSQL gives for a malformed message, as the session's last word. */
function malformed(err: ProtocolError): Parameters<typeof encodeErrorResponse>[0] {
  const encoding = err.code === 'PG_INVALID_UTF8' || err.code === 'PG_INVALID_ENCODING';
  return { severity: 'FATAL', code: encoding ? '22021' : '08P01', message: `dlpctl: invalid message from the client: ${err.message}` };
}

function applyFormats(fields: readonly FieldDescription[], formats: readonly number[]): FieldDescription[] {
  return fields.map((f, i) => ({ ...f, format: formats.length === 0 ? 0 : formats.length === 1 ? (formats[0] ?? 0) : (formats[i] ?? 0) }));
}

export class PgSession {
  private readonly d: PgSessionDeps;
  private readonly pending: Pending[] = [];
  private readonly statements = new Map<string, StatementState>();
  private readonly portals = new Map<string, PortalState>();
  private result: ResultState | null = null;
  /** The verdict of the statement decided last (for server messages that answer no pending statement). */
  private lastVerdict: Verdict | null = null;
  /** Bind and Describe messages not yet sent upstream: they leave with the message after them (see the Bind case). */
  private held: Buffer[] = [];
  private swallowUntilReady = false;
  private status: TransactionStatus;
  private ending: string | null = null;
  /** A cancel sent for a limit: the next statement waits for it, so it cannot cancel that one. */
  private cancelling: Promise<void> | null = null;
  /** Past a limit, until ReadyForQuery: the timer that cancels a query still running, and its end. */
  private limited: { timer: NodeJS.Timeout; ready: Promise<void>; resolve: () => void } | null = null;
  /** Where a row's masked values are counted (made once: it is called for every masked cell). */
  private readonly tally: MaskTally;
  private readonly serverEncoding: string;
  /** The session's client_encoding, as the server last reported it. */
  codec: TextCodec;

  constructor(deps: PgSessionDeps) {
    this.tally = (entity, n) => deps.recorder.masked(entity, n);
    this.d = deps;
    this.status = deps.status;
    this.serverEncoding = deps.serverEncoding ?? 'UTF8';
    this.codec = clientCodec(deps.clientEncoding ?? 'UTF8', this.serverEncoding) ?? clientCodec('UTF8')!;
    deps.upstream.watch(BackendType.ParameterStatus, (f) => this.onParameterStatus(f));
  }

  /** Whether the server has messages of this session still to answer (a statement of it may be running there). */
  get awaitingServer(): boolean {
    return this.pending.length > 0;
  }

  /** client_encoding changed (SET, set_config, RESET…): read SQL and write masked cells in the new one. */
  private onParameterStatus(frame: Frame): void {
    let msg;
    try {
      msg = decodeBackend(frame);
    } catch {
      return; // the upstream loop meets the same error when it decodes the frame
    }
    if (msg.kind !== 'ParameterStatus' || msg.name !== 'client_encoding') return;
    const codec = clientCodec(msg.value, this.serverEncoding);
    if (codec) {
      this.codec = codec;
      return;
    }
    // Set some way the statement check below did not see: the session's text can no longer be read.
    void this.d.client.end(encodeErrorResponse({ severity: 'FATAL', code: '0A000', message: `dlpctl: ${unsupportedEncodingMessage(msg.value)}` })).catch(() => {});
    this.d.upstream.destroy();
  }

  /** Decodes a client message; a malformed one ends the session with the error PostgreSQL would give. */
  private async decode(frame: Frame): Promise<FrontendMessage> {
    try {
      return decodeFrontend(frame, { codec: this.codec });
    } catch (err) {
      if (isProtocolError(err)) await this.d.client.end(encodeErrorResponse(malformed(err)));
      throw err;
    }
  }

  /** The denial of a statement setting a client encoding the tunnel cannot read, if it is one. */
  private encodingRefusal(sql: string): Verdict | null {
    const wanted = requestedClientEncoding(sql);
    if (wanted === null || clientCodec(wanted, this.serverEncoding)) return null;
    // not a policy decision: the feature is not supported (0A000, as PostgreSQL says of what it cannot do)
    return { allow: false, message: `dlpctl: ${unsupportedEncodingMessage(wanted)}`, masks: [], limits: {}, error: { code: '0A000' } };
  }

  /** Runs both directions until either side closes; resolves with the outcome. */
  async run(): Promise<'ok' | 'error' | 'terminated'> {
    const clientSide = this.clientLoop();
    const upstreamSide = this.upstreamLoop().catch(async (err: unknown) => {
      // A message the tunnel cannot relay (over the size cap, malformed): say so rather than just close.
      if (isProtocolError(err) && !this.d.client.closed) {
        await this.d.client.end(encodeErrorResponse({ severity: 'FATAL', code: '08P01', message: `dlpctl: the database sent a message the tunnel cannot relay: ${err.message}` }));
      }
      throw err;
    });
    // A loop blocked on the other side (a write waiting for a client that does not read) does not see its
    // own side close: either socket closing ends the session (pg_terminate_backend, a vanished client).
    // The loops normally end by themselves once what was received is relayed; the grace only matters when one is stuck.
    const closed = Promise.race([this.d.client.whenClosed, this.d.upstream.whenClosed])
      .then(() => new Promise<void>((resolve) => setTimeout(resolve, CLOSE_GRACE_MS).unref()))
      .then(() => 'closed' as const);
    const first = await Promise.race([clientSide.then(() => 'client' as const), upstreamSide.then(() => 'upstream' as const), closed]).catch(
      (err: unknown) => err,
    );
    this.d.client.destroy();
    this.d.upstream.destroy();
    this.limitEnded();
    await Promise.allSettled([clientSide, upstreamSide]);
    if (this.ending) return 'terminated';
    if (first === 'client' || first === 'upstream' || first === 'closed') return 'ok';
    if (first instanceof ConnectionClosed) return 'ok';
    return 'error';
  }

  /** Ends the session, telling the client why (FATAL 57P01, as an administrator shutdown). */
  async terminate(reason: string): Promise<void> {
    if (this.ending) return;
    this.ending = reason;
    await this.d.client.end(encodeErrorResponse({ severity: 'FATAL', code: '57P01', message: `dlpctl: ${reason}` })).catch(() => {});
    // (a client that does not read never takes that message: end() gives up after a second)
    this.d.client.destroy();
    this.d.upstream.destroy();
  }

  // ───────────────────────────── client → upstream ─────────────────────────────

  private async clientLoop(): Promise<void> {
    const { client, upstream } = this.d;
    for (;;) {
      let frame: Frame;
      try {
        frame = await client.next();
      } catch (err) {
        if (isProtocolError(err)) {
          await client.end(encodeErrorResponse({ severity: 'FATAL', code: '08P01', message: `dlpctl: invalid message from the client: ${err.message}` }));
        }
        throw err;
      }
      const t = frame.type;
      this.d.recorder.counters.bytesIn += frame.raw.length;
      // A Bind or Describe waits for the messages after it (see the Bind case); anything but another of them
      // or an Execute sends what is held first.
      if (this.held.length > 0 && t !== FrontendType.Execute && t !== FrontendType.Bind && t !== FrontendType.Describe) {
        const sent = this.releaseHeld();
        if (sent) await sent;
      }
      switch (t) {
        case FrontendType.Query: {
          const msg = await this.decode(frame);
          if (msg.kind !== 'Query') throw new Error('unreachable');
          await this.settleCancel();
          const verdict = this.encodingRefusal(msg.query) ?? (await this.d.gate(msg.query));
          this.lastVerdict = verdict;
          await this.forwardOrPoison(verdict, frame.raw);
          break;
        }
        case FrontendType.Parse: {
          const msg = await this.decode(frame);
          if (msg.kind !== 'Parse') throw new Error('unreachable');
          await this.settleCancel();
          const verdict = this.encodingRefusal(msg.query) ?? (await this.d.gate(msg.query, true));
          this.lastVerdict = verdict;
          this.statements.set(msg.name, { verdict });
          if (verdict.allow) {
            this.pending.push({ k: 'parse', name: msg.name, verdict });
            await upstream.write(frame.raw);
          } else {
            const poison = this.poison(verdict);
            this.pending.push({ k: 'parse', name: msg.name, verdict, poison });
            await upstream.write(encodeFrontend({ kind: 'Parse', name: msg.name, query: poisonSql(poison.nonce), paramTypes: [] }));
          }
          break;
        }
        case FrontendType.Bind: {
          const msg = await this.decode(frame);
          if (msg.kind !== 'Bind') throw new Error('unreachable');
          const statement = this.statements.get(msg.statement);
          const portal: PortalState = { statement, resultFormats: msg.resultFormats };
          if (this.keep.parameters) portal.params = this.recordedParams(msg.params, msg.paramFormats);
          this.portals.set(msg.portal, portal);
          this.pending.push({ k: 'bind', verdict: statement?.verdict });
          // Held, with a Describe after it, until the message that needs neither to wait: an Execute is recorded
          // durably before it is forwarded, and a Bind (and libpq's Describe) sent meanwhile would be a write and a
          // wake-up of the backend of their own. The server answers them only at the next Sync or Flush, so holding
          // them changes nothing the client can see.
          this.held.push(frame.raw);
          break;
        }
        case FrontendType.Describe: {
          const msg = await this.decode(frame);
          if (msg.kind !== 'Describe') throw new Error('unreachable');
          this.pending.push({ k: 'describe', target: msg.target, name: msg.name, internal: false });
          this.held.push(frame.raw);
          break;
        }
        case FrontendType.Execute: {
          const msg = await this.decode(frame);
          if (msg.kind !== 'Execute') throw new Error('unreachable');
          const portal = this.portals.get(msg.portal);
          if (portal && !portal.fields && !portal.statement?.fields && (portal.statement?.verdict.masks.length ?? 0) > 0) {
            // The client did not ask for the result's shape; masking needs it: ask on its behalf.
            this.pending.push({ k: 'describe', target: 'P', name: msg.portal, internal: true });
            this.held.push(encodeFrontend({ kind: 'Describe', target: 'P', name: msg.portal }));
          }
          // every execution is an event, durable before it runs; a store that cannot take it denies it
          const denied = await this.recordExecution(portal, msg.maxRows);
          // (what is held and this Execute leave in one write, unless the socket asks us to wait)
          const sent = this.releaseHeld();
          if (sent) await sent;
          if (denied) {
            const poison = this.poison({ allow: false, message: denied, masks: [], limits: {} });
            this.pending.push({ k: 'execute', portal: msg.portal, poison });
            await upstream.write(encodeFrontend({ kind: 'Execute', portal: `${POISON_PREFIX}${poison.nonce}`, maxRows: 0 }));
          } else {
            this.pending.push({ k: 'execute', portal: msg.portal });
            await upstream.write(frame.raw);
          }
          break;
        }
        case FrontendType.Close: {
          const msg = await this.decode(frame);
          if (msg.kind !== 'Close') throw new Error('unreachable');
          if (msg.target === 'S') this.statements.delete(msg.name);
          else this.portals.delete(msg.name);
          this.pending.push({ k: 'close' });
          await upstream.write(frame.raw);
          break;
        }
        case FrontendType.Sync:
          this.pending.push({ k: 'sync' });
          await upstream.write(frame.raw);
          break;
        case FrontendType.FunctionCall: {
          const msg = await this.decode(frame);
          if (msg.kind !== 'FunctionCall') throw new Error('unreachable');
          await this.settleCancel();
          // (answered by FunctionCallResponse or ErrorResponse, then ReadyForQuery, as a Query is)
          await this.forwardOrPoison(await this.functionVerdict(msg), frame.raw);
          break;
        }
        case FrontendType.Terminate:
          await upstream.write(frame.raw);
          return;
        case FrontendType.Flush:
        case FrontendType.CopyData:
        case FrontendType.CopyDone:
        case FrontendType.CopyFail:
          await upstream.write(frame.raw);
          break;
        default:
          await client.end(
            encodeErrorResponse({ severity: 'FATAL', code: '08P01', message: `dlpctl: unexpected message type ${t === null ? 'startup' : `0x${t.toString(16)}`} from the client` }),
          );
          throw new Error(`unexpected frontend message type ${t}`);
      }
    }
  }

  /**
   * A FunctionCall decided as the SQL statement it amounts to, so that the same rules (and the audit record
   * the gate writes) apply. Its result comes back as a FunctionCallResponse, not a row, and is not masked:
   * a call is allowed under mask rules only where the same value in a row would pass unmasked too: in
   * binary format and of a type the detectors do not read (libpq's lo_* ask for binary ints and bytea).
   * Otherwise it is denied and the client told to call the function in SQL.
   */
  private async functionVerdict(msg: FunctionCall): Promise<Verdict> {
    const deny = (message: string): Verdict => ({ allow: false, message, masks: [], limits: {} });
    let fn: { name: string; args: number; resultType: number } | null = null;
    try {
      fn = this.d.functionName ? await this.d.functionName(msg.functionOid) : null;
    } catch (err) {
      return deny(`dlpctl: denied (fail closed): cannot look up function OID ${msg.functionOid}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!fn) return deny(`dlpctl: function-call sub-protocol: no function with OID ${msg.functionOid}`);
    const sql = `SELECT ${fn.name}(${msg.args.map((_, i) => `$${i + 1}`).join(', ')})`;
    const verdict = await this.d.gate(sql);
    const scanned = verdict.masks.some((m) => !m.columns || m.columns.length === 0) || !!verdict.derived;
    if (verdict.allow && scanned && (msg.resultFormat !== 1 || isTextLikeType(fn.resultType))) {
      return deny(`dlpctl: ${fn.name} called through the function-call sub-protocol: its result cannot be masked there, and a mask rule applies; call it in a SQL statement`);
    }
    return verdict;
  }

  /**
   * Records one execution of a prepared statement, durably, before it is forwarded. Returns the denial message
   * when it cannot be recorded (or the statement was denied at Parse), null when it may run.
   */
  private async recordExecution(portal: PortalState | undefined, maxRows: number): Promise<string | null> {
    const verdict = portal?.statement?.verdict;
    const rec = this.d.recorder;
    try {
      await rec.record({
        type: 'execute',
        statement: verdict?.statementId ?? 0,
        decision: verdict?.label ?? (verdict?.allow === false ? 'deny' : 'allow'),
        ...(verdict?.rule ? { rule: verdict.rule } : {}),
        ...(portal?.params ? { params: portal.params } : {}),
        ...(maxRows > 0 ? { maxRows } : {}),
      });
    } catch (err) {
      rec.counters.denied += 1;
      return `dlpctl: denied (fail closed): ${err instanceof Error ? err.message : String(err)}`;
    }
    if (verdict?.allow !== false) rec.counters.statements += 1;
    return null;
  }

  /** Bound parameters as the store keeps them: text decoded in the session's encoding, then the audit detectors. */
  private recordedParams(params: readonly (Buffer | null)[], formats: readonly number[]): (string | null)[] {
    return params.map((p, i) => {
      if (p === null) return null;
      const binary = (formats.length === 1 ? formats[0] : formats[i]) === 1;
      let text: string;
      if (!binary) text = this.codec.utf8 ? p.toString('utf8') : this.safeDecode(p);
      else if (isUtf8(p) && !/[\x00-\x08\x0e-\x1f]/.test(p.toString('utf8'))) text = p.toString('utf8');
      else return `(${p.length} bytes)`;
      if (text.length > MAX_PARAM_CHARS) text = `${text.slice(0, MAX_PARAM_CHARS)}…`;
      return this.d.auditText(text);
    });
  }

  private safeDecode(b: Buffer): string {
    try {
      return this.codec.decode(b, 'parameter');
    } catch {
      return `(${b.length} bytes)`;
    }
  }

  private get keep(): RecordLimits {
    return this.d.record ?? DEFAULT_RECORD;
  }

  /** Keeps a row (or COPY line) of the current result for the store, within the record limits. */
  private sampleRow(r: ResultState, cells: (string | null)[], size: number): void {
    if (!r.sample) return;
    if (r.sample.length >= this.keep.rows || r.sampleBytes + size > this.keep.bytes) {
      r.truncated = true;
      return;
    }
    r.sample.push(cells);
    r.sampleBytes += size;
  }

  /** The cells of a DataRow as text (the session's encoding), `(N bytes)` for binary ones. */
  private rowCells(raw: Buffer, formats: number[] | null): (string | null)[] {
    const row = decodeDataRow(raw.subarray(5));
    return row.cells.map((c, i) => {
      if (c === null) return null;
      const binary = (formats?.[i] ?? 0) === 1;
      if (binary) return `(${c.length} bytes)`;
      return this.codec.utf8 ? c.toString('utf8') : this.safeDecode(c);
    });
  }

  private async settleCancel(): Promise<void> {
    if (this.limited) await this.limited.ready;
    if (!this.cancelling) return;
    await this.cancelling;
    this.cancelling = null;
  }

  /** Sends the Bind and Describe messages held back for the message after them (see the Bind case of the client loop). */
  private releaseHeld(): Promise<void> | void {
    if (this.held.length === 0) return;
    const out = this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held);
    this.held = [];
    return this.d.upstream.write(out);
  }

  private poison(verdict: Verdict): Poison {
    return { nonce: randomBytes(12).toString('hex'), message: verdict.message ?? 'dlpctl: denied by policy', ...(verdict.error ? { error: verdict.error } : {}) };
  }

  /**
   * A message answered like a simple Query (a Query, a FunctionCall): allowed, it goes upstream as sent;
   * denied, a poison statement goes in its place, whose error the client receives as the denial.
   */
  private async forwardOrPoison(verdict: Verdict, raw: Buffer): Promise<void> {
    if (verdict.allow) {
      this.pending.push({ k: 'query', verdict });
      await this.d.upstream.write(raw);
      return;
    }
    const poison = this.poison(verdict);
    this.pending.push({ k: 'query', verdict, poison });
    await this.d.upstream.write(encodeQuery(poisonSql(poison.nonce)));
  }

  // ───────────────────────────── upstream → client ─────────────────────────────

  /**
   * Every frame already received is handled in one synchronous pass (a promise only where masking needs
   * the catalogue), and the client's socket is corked meanwhile, so a large result goes out in a few large
   * writes instead of one write (and one syscall) per DataRow. Messages forwarded as they arrived are views
   * of the same upstream chunk, back to back: a run of them is written as one view of that chunk, so a
   * result of small rows costs one socket write per chunk rather than one per row. A batch ends at 256 KiB
   * or when the client's socket asks us to wait (backpressure).
   */
  private async upstreamLoop(): Promise<void> {
    const { client, upstream } = this.d;
    const counters = this.d.recorder.counters;
    const run = new ByteRun();
    for (;;) {
      let frame: Frame | null = await upstream.next();
      const socket = client.socket;
      let wait: Promise<void> | void = undefined;
      let batched = 0;
      socket.cork();
      try {
        while (frame) {
          let out = this.onUpstream(frame);
          if (out instanceof Promise) {
            wait = run.flush(client);
            out = await out;
          }
          if (out) {
            counters.bytesOut += out.length;
            batched += out.length;
            if (!run.extend(out)) {
              wait = run.flush(client) || wait;
              run.extend(out);
            }
            if (wait || batched >= 256 * 1024) break;
          }
          frame = upstream.tryNext();
        }
        wait = run.flush(client) || wait;
      } catch (err) {
        // What came before the failing message still reaches the client, as it would have unbatched.
        try {
          run.flush(client)?.catch(() => {});
        } catch {
          // the client is gone: nothing to deliver
        }
        throw err;
      } finally {
        socket.uncork();
      }
      if (wait) await wait;
    }
  }

  /** What to send the client for one upstream frame (null: nothing). */
  private onUpstream(frame: Frame): Buffer | null | Promise<Buffer | null> {
    const head = this.pending[0];
    switch (frame.type) {
      case BackendType.ParseComplete:
      case BackendType.BindComplete:
      case BackendType.CloseComplete:
        this.pending.shift();
        return this.swallowUntilReady ? null : frame.raw;
      case BackendType.ParameterDescription:
        return this.swallowUntilReady ? null : frame.raw;
      case BackendType.RowDescription: {
        const fields = decodeRowDescription(frame.payload).fields;
        if (head?.k === 'describe') {
          this.pending.shift();
          if (head.target === 'S') {
            const st = this.statements.get(head.name);
            if (st) st.fields = fields;
          } else {
            const p = this.portals.get(head.name);
            if (p) p.fields = fields;
          }
          return head.internal || this.swallowUntilReady ? null : frame.raw;
        }
        if (head?.k === 'query') {
          const started = this.startResult(fields, head.verdict);
          if (!(started instanceof Promise)) {
            this.result = started;
            return this.swallowUntilReady ? null : frame.raw;
          }
          return started.then((r) => {
            this.result = r;
            return this.swallowUntilReady ? null : frame.raw;
          });
        }
        return this.swallowUntilReady ? null : frame.raw;
      }
      case BackendType.NoData:
        if (head?.k === 'describe') {
          this.pending.shift();
          return head.internal || this.swallowUntilReady ? null : frame.raw;
        }
        return this.swallowUntilReady ? null : frame.raw;
      case BackendType.DataRow:
        return this.onDataRow(frame, head);
      case BackendType.CopyData:
        return this.onCopyData(frame, head);
      case BackendType.CopyOutResponse:
      case BackendType.CopyBothResponse: {
        const verdict = head?.k === 'query' ? head.verdict : head?.k === 'execute' ? this.portalVerdict(head.portal) : null;
        if (!verdict) return frame.raw;
        const copy = (verdict.copies && head?.k === 'query' ? verdict.copies[head.done ?? 0] : verdict.copy) ?? null;
        const response = decodeBackend(frame);
        const binary = (response.kind === 'CopyOutResponse' || response.kind === 'CopyBothResponse') && response.format === 1;
        if (binary && !copy && verdict.masks.length > 0) {
          // Binary rows cannot be scanned as text; the gate denies a binary COPY it would have to mask, so one
          // arriving undescribed is refused here rather than passed or mangled.
          const rule = verdict.masks[0]!;
          const message = `dlpctl: denied by rule ${rule.policy}/${rule.rule}: a binary COPY cannot be masked and this one was not described; use FORMAT text or csv`;
          this.swallowUntilReady = true;
          this.record({ type: 'error', message, code: '42501' });
          return encodePolicyDenial(message);
        }
        return Promise.resolve(this.startResult(copy ? copy.fields : null, verdict)).then((r) => {
          r.formats = binary ? [1] : null;
          if (copy && r.plan?.active && copy.format !== 'binary') r.copy = new CopyRowMasker(r.plan, copy, this.tally, this.codec);
          this.result = r;
          return frame.raw;
        });
      }
      case BackendType.CommandComplete:
      case BackendType.EmptyQueryResponse:
      case BackendType.PortalSuspended: {
        const limited = this.finishResult();
        if (head?.k === 'execute') this.pending.shift();
        else if (head?.k === 'query') head.done = (head.done ?? 0) + 1;
        if (limited) {
          this.swallowUntilReady = true;
          return limited;
        }
        return this.swallowUntilReady ? null : frame.raw;
      }
      case BackendType.ErrorResponse:
        return this.onError(frame, head);
      case BackendType.NoticeResponse: {
        const masked = maskNotice(frame.raw, this.serverTextAt(head));
        for (const e in masked.counts) this.d.recorder.masked(e, masked.counts[e]!);
        return masked.raw;
      }
      case BackendType.NotificationResponse: {
        const masked = maskNotification(frame.raw, this.serverTextAt(head).dlp);
        for (const e in masked.counts) this.d.recorder.masked(e, masked.counts[e]!);
        return masked.raw;
      }
      case BackendType.ReadyForQuery: {
        const msg = decodeBackend(frame);
        if (msg.kind === 'ReadyForQuery') this.status = msg.status;
        // Everything up to and including this Sync / Query is answered.
        while (this.pending.length > 0) {
          const p = this.pending.shift()!;
          if (p.k === 'sync' || p.k === 'query') break;
        }
        this.swallowUntilReady = false;
        this.result = null;
        this.limitEnded();
        return frame.raw;
      }
      default:
        return this.swallowUntilReady && frame.type !== BackendType.NoticeResponse && frame.type !== BackendType.ParameterStatus ? null : frame.raw;
    }
  }

  /** How server messages arriving now are masked: by the statement they answer, else the last one decided. */
  private serverTextAt(head: Pending | undefined): ServerMessageMasking {
    let v: Verdict | undefined;
    switch (head?.k) {
      case 'query':
      case 'parse':
      case 'bind':
        v = head.verdict;
        break;
      case 'execute':
        v = this.portals.get(head.portal)?.statement?.verdict;
        break;
      case 'describe':
        v = head.target === 'S' ? this.statements.get(head.name)?.verdict : this.portals.get(head.name)?.statement?.verdict;
        break;
    }
    return (v ?? this.lastVerdict)?.serverText ?? this.d.serverText;
  }

  private portalVerdict(name: string): Verdict {
    return this.portals.get(name)?.statement?.verdict ?? { allow: true, masks: [], limits: {} };
  }

  /** A result's state; at once when nothing is masked (no wait on the catalogue, and no turn of the loop per result). */
  private startResult(fields: readonly FieldDescription[] | null, verdict: Verdict): ResultState | Promise<ResultState> {
    if (verdict.masks.length === 0) return this.newResult(null, fields, verdict);
    return this.d.plan(fields, verdict).then((plan) => this.newResult(plan, fields, verdict));
  }

  private newResult(plan: ResultState['plan'], fields: readonly FieldDescription[] | null, verdict: Verdict): ResultState {
    const keep = this.keep.rows > 0 && this.keep.bytes > 0;
    return {
      plan,
      copy: null,
      sample: keep ? [] : null,
      sampleBytes: 0,
      truncated: false,
      columns: fields ? fields.map((f) => f.name) : null,
      formats: fields ? fields.map((f) => f.format) : null,
      verdict,
      rows: 0,
      bytes: 0,
      started: performance.now(),
      over: null,
    };
  }

  private async resultFor(head: Pending | undefined): Promise<ResultState | null> {
    if (this.result) return this.result;
    if (head?.k === 'execute') {
      const portal = this.portals.get(head.portal);
      const verdict = this.portalVerdict(head.portal);
      const fields = portal?.fields ?? (portal?.statement?.fields ? applyFormats(portal.statement.fields, portal.resultFormats) : undefined);
      // An unknown shape (null) under a mask rule scans every cell as text rather than pass anything unmasked.
      this.result = await this.startResult(fields ?? null, verdict);
      return this.result;
    }
    return null;
  }

  private onDataRow(frame: Frame, head: Pending | undefined): Buffer | null | Promise<Buffer | null> {
    if (this.swallowUntilReady) return null;
    if (this.result) return this.maskRow(frame, this.result);
    if (head?.k !== 'execute') return frame.raw;
    return this.resultFor(head).then((r) => (r ? this.maskRow(frame, r) : frame.raw));
  }

  private maskRow(frame: Frame, r: ResultState): Buffer | null {
    if (r.over) return null;
    r.rows += 1;
    r.bytes += frame.raw.length;
    this.d.recorder.counters.rows += 1;
    const { maxRows, maxBytes } = r.verdict.limits;
    if (r.observed === undefined && ((maxRows !== undefined && r.rows > maxRows) || (maxBytes !== undefined && r.bytes > maxBytes))) {
      const which = maxRows !== undefined && r.rows > maxRows ? `more than ${maxRows} rows` : `more than ${maxBytes} bytes`;
      const limit = `the limit of ${r.verdict.limitRule ? `rule ${r.verdict.limitRule}` : 'this resource'}`;
      if (r.verdict.observeLimits) {
        r.observed = `observe only (enforce: false): the result has ${which}, ${limit}; not cut`;
      } else {
        r.over = `dlpctl: the result has ${which}, ${limit}; add a LIMIT or narrow the query`;
        this.limitReached();
        return null;
      }
    }
    const out = r.plan?.active ? (r.plan.maskRow(frame.raw, this.tally) ?? frame.raw) : frame.raw;
    if (r.sample && !r.truncated) this.sampleRow(r, this.rowCells(out, r.formats), out.length);
    return out;
  }

  /** Cancels the limited query if it is still running CANCEL_AFTER_MS from now (see the module doc). */
  private limitReached(): void {
    if (this.limited) return;
    let resolve!: () => void;
    const ready = new Promise<void>((r) => (resolve = r));
    const timer = setTimeout(() => {
      this.cancelling = this.d.cancel().catch(() => {});
    }, CANCEL_AFTER_MS);
    timer.unref();
    this.limited = { timer, ready, resolve };
  }

  /** The limited query ended (ReadyForQuery) or the session did: no cancel is needed any more. */
  private limitEnded(): void {
    if (!this.limited) return;
    clearTimeout(this.limited.timer);
    this.limited.resolve();
    this.limited = null;
  }

  private onCopyData(frame: Frame, head: Pending | undefined): Buffer | null | Promise<Buffer | null> {
    if (this.swallowUntilReady) return null;
    if (this.result) return this.maskCopy(frame, this.result);
    if (head?.k !== 'execute') return frame.raw;
    return this.resultFor(head).then((r) => (r ? this.maskCopy(frame, r) : frame.raw));
  }

  /** A COPY out row: masked, counted like a DataRow, and kept for the store within the record limits. */
  private maskCopy(frame: Frame, r: ResultState): Buffer | null {
    const out = this.maskCopyData(frame, r);
    if (out === null) return null;
    r.rows += 1;
    r.bytes += out.length;
    this.d.recorder.counters.rows += 1;
    if (r.sample && !r.truncated) {
      const body = out.subarray(5);
      const line = r.formats?.[0] === 1 ? `(${body.length} bytes)` : this.codec.utf8 ? body.toString('utf8') : this.safeDecode(body);
      this.sampleRow(r, [line.replace(/\r?\n$/, '')], body.length);
    }
    return out;
  }

  private maskCopyData(frame: Frame, r: ResultState): Buffer | null {
    if (r.copy) {
      const payload = frame.payload;
      const masked = r.copy.mask(payload);
      if (masked === payload) return frame.raw;
      if (masked.length === 0) return null;
      return copyData(masked);
    }
    if (!r.plan) return frame.raw;
    const masked = r.plan.maskBytes(frame.payload);
    if (!masked) return frame.raw;
    for (const [entity, n] of Object.entries(masked.counts)) this.d.recorder.masked(entity, n);
    return copyData(masked.bytes);
  }

  /** Ends the current result; returns the limit error to send instead of its end, if a limit was hit. */
  private finishResult(): Buffer | null {
    const r = this.result;
    this.result = null;
    if (!r) return null;
    const durationMs = Math.round((performance.now() - r.started) * 1000) / 1000;
    this.record({
      type: 'result',
      rows: r.rows,
      bytes: r.bytes,
      durationMs,
      ...(r.columns ? { columns: r.columns } : {}),
      ...(r.sample && r.sample.length > 0 ? { sample: r.sample.map((row) => row.map((c) => (c === null ? null : this.d.auditText(c)))) } : {}),
      ...(r.truncated ? { truncated: true } : {}),
      ...(r.observed ? { observed: r.observed } : {}),
    });
    if (this.d.recorder.hasPendingMasks) this.d.recorder.flushMasks().catch((err: unknown) => this.storeError(err));
    if (r.over) {
      this.record({ type: 'error', message: r.over, code: '54000' });
      return encodeErrorResponse({ severity: 'ERROR', code: '54000', message: r.over });
    }
    return null;
  }

  private onError(frame: Frame, head: Pending | undefined): Buffer | null {
    const msg = decodeBackend(frame);
    const message = msg.kind === 'ErrorResponse' ? msg.message : '';
    const serverText = this.serverTextAt(head);
    const limitError = this.finishResult();
    let poison: Poison | undefined;
    if (head && head.k !== 'query') {
      // In the extended protocol the server now skips to Sync: drop what it will not answer.
      while (this.pending.length > 0 && this.pending[0]!.k !== 'sync') {
        const p = this.pending.shift()!;
        if ((p.k === 'parse' || p.k === 'execute') && p.poison) poison ??= p.poison;
      }
    } else if (head?.k === 'query') {
      poison = head.poison;
    }
    if (this.swallowUntilReady) return null;
    if (limitError) {
      this.swallowUntilReady = true;
      return limitError;
    }
    if (poison && message.includes(poison.nonce)) {
      if (!poison.error) return encodePolicyDenial(poison.message);
      return encodeErrorResponse({ severity: 'ERROR', code: poison.error.code, message: poison.message, ...(poison.error.position ? { extra: { P: String(poison.error.position) } } : {}) });
    }
    // the server's text may quote data: the client and the store get it masked, or withheld (server-messages.ts)
    const masked = maskNotice(frame.raw, serverText);
    for (const e in masked.counts) this.d.recorder.masked(e, masked.counts[e]!);
    this.record({ type: 'error', message: this.d.auditText(masked.message).slice(0, 500), code: masked.code });
    return masked.raw;
  }

  private record(body: Parameters<SessionRecorder['record']>[0]): void {
    this.d.recorder.record(body, { defer: true }).catch((err: unknown) => this.storeError(err));
  }

  private storeError(err: unknown): void {
    this.d.emit({ type: 'error', resource: this.d.resource, sessionId: this.d.sessionId, message: err instanceof Error ? err.message : String(err) });
  }
}

