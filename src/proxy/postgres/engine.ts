/**
 * The PostgreSQL tunnel engine, as a sequence:
 *
 *   1. client start-up (client-handshake.ts): TLS or not, SCRAM with the per-tunnel password;
 *      a CancelRequest is mapped to the upstream backend's key and sent on a new upstream connection
 *   2. upstream start-up (upstream.ts): TLS per tls.mode, the injected credential
 *   3. the session record opens (durable) — no store, no session
 *   4. the client gets the upstream's ParameterStatus, BackendKeyData and ReadyForQuery; the BackendKeyData
 *      carries the upstream backend's real pid (pg_backend_pid(), pg_terminate_backend checks, NOTIFY sender
 *      pids all agree with it) and a secret key of our own, so a CancelRequest still has to come through
 *      the tunnel, which maps it to the backend's real key
 *   5. the relay (session.ts) decides every statement through `gate` and masks every result through `plan`
 *   6. on any end, the session record closes with its outcome and counters
 */
import { approvalRequest, auditLabel, decide, denialText, ruleNameOf, tunnelPolicyOf, type EngineBaseOptions, type TunnelPolicy } from '../decide.js';
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import type { PostgresResource } from '../../config/types.js';
import { createDlpEngine, type DlpEngine } from '../../dlp/index.js';
import { PseudonymVault } from '../../dlp/maskers.js';
import { DlpctlError } from '../../errors.js';
import { classifySql, MaskEngineCache } from '../../policy/index.js';
import { requestApproval } from '../../approvals/request.js';
import { SessionRecorder } from '../recorder.js';
import type { TunnelAddress, TunnelEngine, TunnelEvent, TunnelSession } from '../tunnel.js';
import { CatalogResolver } from './catalog.js';
import { clientCodec, unsupportedEncodingMessage } from './encoding.js';
import { clientHandshake, ClientRejected } from './client-handshake.js';
import {
  createScramSecret,
  encodeBackendKeyData,
  encodeErrorResponse,
  encodeNoticeResponse,
  encodeParameterStatus,
  encodeReadyForQuery,
  type ScramSecret,
} from './protocol.js';
import { planResult, STATISTICS_COLUMNS } from './result-mask.js';
import { copyQueryText, copyRelationSelect, copySourceOf, type CopyOut } from './copy-out.js';
import { cachedLineage, statementTaint } from './taint.js';
import { analyzeFunction, withFunctionFacts, type FunctionAnalysis } from '../../policy/sql/functions.js';
import { parseSqlTree, syntaxError } from '../../policy/sql/parser.js';
import type { MaskDirective, SqlClassification } from '../../policy/index.js';
import type { DerivedMask } from './lineage.js';
import { PgSession, type Verdict } from './session.js';
import { PreparedSql } from './prepared-sql.js';
import type { ServerMessageMasking } from './server-messages.js';
import { cancelUpstream, connectUpstream, type UpstreamTarget } from './upstream.js';

export interface PostgresEngineOptions extends EngineBaseOptions {
  resource: PostgresResource;
  /** The target with its credential resolved. */
  target: UpstreamTarget;
  /** TLS toward clients (PEM text), when configured. */
  serverTls?: { cert: string; key: string };
  /** Start-up and authentication of a client must end within this (default 60 s). */
  startupTimeoutMs?: number;
}

let nextSessionNumber = 0;
/** How often a session stalled on a client that does not read checks that its backend still runs. */
const STALL_CHECK_MS = 2000;

interface DataFacts {
  derived: DerivedMask | null;
  outputs: readonly boolean[] | null;
  patterns: string[];
  withhold: string | null;
  copy: CopyOut | null;
  /** A Query of several statements: per statement, the columns of each COPY … TO STDOUT (null for the others). */
  copies: (CopyOut | null)[] | null;
  deny: { rule: string; message: string } | null;
}

/**
 * The user functions whose results carry masked data: a body that cannot be analysed (dynamic SQL, another
 * language), or one that reads a masked column. Named as the statement wrote them, for the lineage.
 */
const NO_FUNCTIONS: ReadonlySet<string> = new Set();

function taintedFunctionNames(fns: readonly FunctionAnalysis[], masked: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const f of fns) {
    const tainted = f.bodyStatements === null || f.bodyStatements.some((st) => cachedLineage(st, masked, NO_FUNCTIONS).some((l) => l.tainted));
    if (tainted) out.add(f.name);
  }
  return out;
}

export class PostgresEngine implements TunnelEngine {
  private readonly o: PostgresEngineOptions;
  private scram: { secret: string; value: ScramSecret } | null = null;
  /** Our BackendKeyData (pid:key hex) → the upstream's, for CancelRequest, and its session once it runs. */
  private readonly cancelKeys = new Map<string, { processId: number; secretKey: Buffer; session?: PgSession }>();
  /** Our cancel key → the approval wait of the statement that session holds, if any. */
  private readonly approvalWaits = new Map<string, AbortController>();
  readonly catalog: CatalogResolver;
  private readonly auditDlp: DlpEngine;
  private readonly masks: MaskEngineCache;
  private readonly hashKey = randomBytes(32);
  private readonly vault = new PseudonymVault();
  private readonly tunnelPolicy: TunnelPolicy;

  constructor(o: PostgresEngineOptions) {
    this.o = o;
    this.catalog = new CatalogResolver(o.target);
    this.auditDlp = createDlpEngine({ masker: 'redact', customDetectors: o.customDetectors ?? [] });
    this.masks = new MaskEngineCache({ customDetectors: o.customDetectors ?? [], hashKey: this.hashKey, vault: this.vault });
    this.tunnelPolicy = tunnelPolicyOf(o, this.auditDlp);
  }

  url(a: TunnelAddress, secret: string): string {
    const host = a.host.includes(':') ? `[${a.host}]` : a.host;
    const ssl = this.o.serverTls ? 'require' : 'disable';
    return `postgres://${encodeURIComponent(this.o.target.user)}:${secret}@${host}:${a.port}/${encodeURIComponent(this.o.target.database)}?sslmode=${ssl}`;
  }

  /** The environment `connect -- cmd` gives the child. */
  childEnv(a: TunnelAddress, secret: string): Record<string, string> {
    return {
      DATABASE_URL: this.url(a, secret),
      PGHOST: a.host,
      PGPORT: String(a.port),
      PGUSER: this.o.target.user,
      PGPASSWORD: secret,
      PGDATABASE: this.o.target.database,
      PGSSLMODE: this.o.serverTls ? 'require' : 'disable',
    };
  }

  async close(): Promise<void> {
    await this.catalog.close();
  }

  /** How server messages outside any statement are masked: the entity rules that apply to every statement. */
  private sessionServerText(): ServerMessageMasking {
    const masks = decide(this.tunnelPolicy, { type: 'sql', text: 'SELECT 1', classification: classifySql('SELECT 1') }).masks;
    return { withhold: null, dlp: this.masks.for(masks) };
  }

  accept(socket: net.Socket, ctx: { secret: string; emit: (e: TunnelEvent) => void }): TunnelSession {
    if (!this.scram || this.scram.secret !== ctx.secret) this.scram = { secret: ctx.secret, value: createScramSecret(ctx.secret) };
    const id = `pg-${process.pid}-${++nextSessionNumber}`;
    let session: PgSession | null = null;
    let terminated: string | null = null;
    // Ends what the session waits for on its own (an approval), so that terminating it ends it promptly and
    // while the store can still record the outcome.
    const ending = new AbortController();
    const done = this.serve(socket, { ...ctx, ending: ending.signal }, (s) => (session = s), () => terminated);
    return {
      id,
      done,
      terminate: async (reason: string) => {
        terminated = reason;
        ending.abort();
        if (session) await (session as PgSession).terminate(reason);
        else socket.destroy();
      },
    };
  }

  private async serve(
    socket: net.Socket,
    ctx: { secret: string; emit: (e: TunnelEvent) => void; ending: AbortSignal },
    setSession: (s: PgSession) => void,
    terminated: () => string | null,
  ): Promise<void> {
    const resource = this.o.resource.name;
    const clientAddr = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    let hello;
    try {
      hello = await clientHandshake(socket, {
        scramSecret: this.scram!.value,
        database: this.o.target.database,
        ...(this.o.serverTls ? { serverTls: this.o.serverTls } : {}),
        ...(this.o.startupTimeoutMs !== undefined ? { timeoutMs: this.o.startupTimeoutMs } : {}),
      });
    } catch (err) {
      if (err instanceof ClientRejected) {
        ctx.emit({ type: 'error', resource, message: `client ${clientAddr} rejected: ${err.message}` });
        return;
      }
      socket.destroy();
      return;
    }
    if (hello.kind === 'cancel') {
      const key = `${hello.processId}:${hello.secretKey.toString('hex')}`;
      // A statement held for approval has not reached the database: the cancel ends its wait (denied), and goes
      // on to the server only if the session has something there (a statement pipelined before the held one).
      // Sent anyway, it raced the statement that answers the held one with its denial: when it landed there, the
      // client read "canceling statement due to user request" instead of why.
      const wait = this.approvalWaits.get(key);
      wait?.abort();
      const up = this.cancelKeys.get(key);
      if (up && (!wait || up.session?.awaitingServer !== false)) await cancelUpstream(this.o.target, up.processId, up.secretKey).catch(() => {});
      return;
    }
    const client = hello.conn;
    let upstream;
    try {
      upstream = await connectUpstream(this.o.target, hello.params);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      ctx.emit({ type: 'error', resource, message });
      await client.end(encodeErrorResponse({ severity: 'FATAL', code: '08006', message: `dlpctl: ${message}` }));
      return;
    }
    const encoding = upstream.parameters.get('client_encoding');
    if (encoding && !clientCodec(encoding, upstream.parameters.get('server_encoding'))) {
      // (asked for in the start-up packet or PGCLIENTENCODING; see encoding.ts for why it is refused)
      const message = unsupportedEncodingMessage(encoding);
      ctx.emit({ type: 'error', resource, message: `client ${clientAddr} rejected: ${message}` });
      await client.end(encodeErrorResponse({ severity: 'FATAL', code: '0A000', message: `dlpctl: ${message}` }));
      upstream.conn.destroy();
      return;
    }
    let recorder: SessionRecorder;
    try {
      recorder = await SessionRecorder.start(this.o.store, {
        resource,
        kind: 'postgres',
        identity: this.o.identity,
        clientAddr,
        ...(this.o.reason ? { reason: this.o.reason } : {}),
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      ctx.emit({ type: 'error', resource, message });
      await client.end(encodeErrorResponse({ severity: 'FATAL', code: '08006', message: `dlpctl: ${message}` }));
      upstream.conn.destroy();
      return;
    }
    const sessionId = recorder.id;
    ctx.emit({ type: 'session_start', resource, sessionId, client: clientAddr });

    // The upstream's real pid (so pg_backend_pid() and NOTIFY sender pids match what the client was told)
    // with a key of our own: the client never learns the backend's key, so a cancel has to come through us.
    const ourPid = upstream.processId;
    const ourKey = randomBytes(4);
    const cancelKey = `${ourPid}:${ourKey.toString('hex')}`;
    this.cancelKeys.set(cancelKey, { processId: upstream.processId, secretKey: upstream.secretKey });

    const hello2: Buffer[] = [];
    for (const [k, v] of upstream.parameters) hello2.push(encodeParameterStatus(k, v));
    hello2.push(encodeBackendKeyData(ourPid, ourKey), encodeReadyForQuery(upstream.status));
    let outcome: 'ok' | 'error' | 'terminated' = 'ok';
    // A session whose client does not read leaves the upstream socket paused, and a paused socket does not
    // see the backend go away (pg_terminate_backend): ask the catalogue connection whether it still runs.
    const watchdog = setInterval(() => {
      if (!upstream.conn.stalled) return;
      this.catalog.backendAlive(upstream.processId).then(
        (alive) => {
          if (!alive) upstream.conn.destroy();
        },
        () => {},
      );
    }, STALL_CHECK_MS);
    watchdog.unref();
    try {
      await client.write(Buffer.concat(hello2));
      const prepared = new PreparedSql();
      let statementIds = 0;
      const session = new PgSession({
        sessionId,
        resource,
        client,
        upstream: upstream.conn,
        recorder,
        status: upstream.status,
        gate: (sql, extended) =>
          this.gate(sql, recorder, ctx.emit, prepared, extended === true, ++statementIds, ctx.ending, cancelKey, (text) => {
            // the client waiting on its statement is told why, whatever terminal it runs in
            try {
              void Promise.resolve(client.write(encodeNoticeResponse({ severity: 'NOTICE', code: '00000', message: text }))).catch(() => {});
            } catch {
              // the client is gone; the approval still resolves
            }
          }),
        record: {
          rows: this.o.resource.record?.rows ?? 100,
          bytes: this.o.resource.record?.bytes ?? 64 * 1024,
          parameters: this.o.resource.record?.parameters ?? true,
        },
        plan: (fields, verdict) =>
          planResult(fields, {
            masks: verdict.masks,
            resolver: this.catalog,
            dlp: this.masks.for(verdict.masks),
            hashKey: this.hashKey,
            vault: this.vault,
            derived: verdict.derived ?? null,
            derivedOutputs: verdict.derivedOutputs ?? null,
            derivedPatterns: verdict.derivedPatterns ?? [],
            codec: session.codec,
          }),
        serverText: this.sessionServerText(),
        auditText: (text) => this.auditDlp.maskText(text).text,
        cancel: () => cancelUpstream(this.o.target, upstream.processId, upstream.secretKey),
        emit: ctx.emit,
        functionName: (oid) => this.catalog.functionName(oid),
        ...(upstream.parameters.has('client_encoding') ? { clientEncoding: upstream.parameters.get('client_encoding')! } : {}),
        ...(upstream.parameters.has('server_encoding') ? { serverEncoding: upstream.parameters.get('server_encoding')! } : {}),
      });
      setSession(session);
      const keys = this.cancelKeys.get(cancelKey);
      if (keys) keys.session = session;
      outcome = await session.run();
    } catch {
      outcome = 'error';
    } finally {
      clearInterval(watchdog);
      this.cancelKeys.delete(cancelKey);
      client.destroy();
      upstream.conn.destroy();
      // A terminate that arrives after the client already ended the session (its socket closed as the tunnel
      // began to shut down) does not make a clean end a cut one.
      if (terminated() && outcome !== 'ok') outcome = 'terminated';
      await recorder.end(outcome).catch((err: unknown) => ctx.emit({ type: 'error', resource, sessionId, message: String(err) }));
      ctx.emit({ type: 'session_end', resource, sessionId, outcome });
    }
  }

  /** Decide one SQL text: classify, evaluate, record durably, wait for approval. Never throws. */
  /**
   * `extended`: a Parse. Its record is queued, not awaited: Parse only prepares, and the Execute that runs it is
   * recorded durably (referring to this record by `id`) before it is forwarded; the queued record commits with it.
   */
  private async gate(
    sql: string,
    recorder: SessionRecorder,
    emit: (e: TunnelEvent) => void,
    prepared: PreparedSql,
    extended: boolean,
    id: number,
    ending: AbortSignal,
    cancelKey: string,
    tellClient: (text: string) => void,
  ): Promise<Verdict> {
    const resource = this.o.resource;
    let auditText = sql;
    try {
      auditText = this.auditDlp.maskText(sql).text;
      const classified = prepared.resolve(classifySql(sql));
      // (a statement that calls no function and a decision without masks need nothing from the catalogue: no await)
      const { classification, taintedFunctions, unsafe } = classified.statements.some((st) => st.functions.length > 0)
        ? await this.withCatalogue(classified)
        : { classification: classified, taintedFunctions: [], unsafe: [] };
      const decision = decide(this.tunnelPolicy, { type: 'sql', text: sql, classification });
      const ruleName = ruleNameOf(decision);
      const kinds = [...new Set(classification.statements.map((s) => s.kind))];
      const tables = [...new Set(classification.statements.flatMap((s) => [...s.reads, ...s.writes]))];
      const limitRule = decision.limitSources.maxRows ?? decision.limitSources.maxBytes;
      if (classification.statements.some((st) => st.effects.some((e) => e === 'create' || e === 'alter' || e === 'drop'))) this.catalog.invalidate();
      const facts = decision.masks.length === 0 ? noDataFacts() : await this.dataFacts(sql, classification, decision.masks, taintedFunctions);
      const base = {
        masks: decision.masks,
        derived: facts.derived,
        derivedOutputs: facts.outputs,
        derivedPatterns: facts.patterns,
        serverText: { withhold: facts.withhold, dlp: this.masks.for(decision.masks) },
        copy: facts.copy,
        ...(facts.copies ? { copies: facts.copies } : {}),
        limits: decision.limits,
        ...(limitRule ? { limitRule: `${limitRule.policy}/${limitRule.rule}` } : {}),
        statementId: id,
        ...(decision.enforced ? {} : { observeLimits: true }),
      };
      let action = decision.action;
      // a call denied or held: say which function was not known to be safe, and why
      let message = unsafe.length > 0 && decision.action !== 'allow' && classification.statements.some((st) => st.effects.includes('call'))
        ? `${decision.message} (${unsafe.join('; ')})`
        : decision.message;
      let label = auditLabel(decision);
      let rule = ruleName;
      if (facts.deny && action !== 'deny') {
        // a side door the policy's own rules did not close (masked data copied elsewhere, a binary COPY of it)
        action = 'deny';
        message = facts.deny.message;
        rule = facts.deny.rule;
        label = 'deny';
      }
      const event = { type: 'query', id, sql: auditText, decision: label, ...(rule ? { rule } : {}), kinds, tables } as const;
      if (extended && action !== 'approve') {
        // (a failure surfaces at the Execute, whose durable record waits behind this one)
        recorder.record(event, { defer: true }).catch(() => {});
      } else {
        await recorder.record(event);
        recorder.counters.statements += 1;
      }

      if (action === 'approve') {
        const canceled = new AbortController();
        this.approvalWaits.set(cancelKey, canceled);
        const outcome = await requestApproval(
          this.o.store,
          approvalRequest(decision, { sessionId: recorder.id, resource: resource.name, exact: sql, maskedText: auditText, requester: this.o.identity, reason: this.o.reason }),
          {
            onPending: (a) => {
              void recorder.record({ type: 'approval.requested', approvalId: a.id, rule: ruleName ?? 'approve' }).catch(() => {});
              emit({ type: 'decision', resource: resource.name, sessionId: recorder.id, action: 'approve', rule: ruleName ?? null, kinds, summary: `waiting for approval ${a.id}` });
              this.o.onApprovalPending?.(a.id, auditText);
              tellClient(`dlpctl: this statement waits for approval ${a.id} (rule ${ruleName ?? 'approve'}); an approver runs: dlpctl approve ${a.id}`);
            },
            signal: AbortSignal.any([ending, canceled.signal]),
          },
        ).finally(() => this.approvalWaits.delete(cancelKey));
        await recorder.record({ type: 'approval.decided', approvalId: outcome.approval?.id ?? '', state: outcome.approval?.state ?? 'expired' });
        action = outcome.approved ? 'allow' : 'deny';
        if (!outcome.approved) message = canceled.signal.aborted && !ending.aborted ? `canceled by the client while waiting for approval ${outcome.approval?.id ?? ''}`.trim() : outcome.message;
      }
      emit({ type: 'decision', resource: resource.name, sessionId: recorder.id, action: label === 'observe' ? 'observe' : action, rule: rule ?? null, kinds, summary: auditText.slice(0, 200) });
      if (action === 'deny') {
        recorder.counters.denied += 1;
        const where = facts.deny && rule === facts.deny.rule
          ? `rule ${rule}`
          : ruleName ? `policy ${decision.rule!.policy} rule ${decision.rule!.rule}` : decision.basis === 'fail_closed' ? 'fail-closed' : `resource ${resource.name} default`;
        // text the parser rejects is answered as the server would: a syntax error, not a policy denial
        const syntax = decision.basis === 'fail_closed' && classification.statements.some((st) => st.error !== undefined) ? syntaxError(sql) : null;
        if (syntax) return { allow: false, message: syntax.message, error: { code: '42601', ...(syntax.position ? { position: syntax.position } : {}) }, ...base, label: 'deny' };
        return { allow: false, message: denialText(where, message, decision.rule), ...base, label: 'deny', ...(rule ? { rule } : {}) };
      }
      prepared.allowed(classification);
      return { allow: true, ...base, label, ...(rule ? { rule } : {}) };
    } catch (err) {
      const why = err instanceof DlpctlError ? err.message : `evaluation failed: ${err instanceof Error ? err.message : String(err)}`;
      recorder.counters.denied += 1;
      emit({ type: 'decision', resource: resource.name, sessionId: recorder.id, action: 'deny', rule: null, summary: why });
      return { allow: false, message: `dlpctl: denied (fail closed): ${why}`, masks: [], limits: {} };
    }
  }


  /**
   * The statement as the catalogue completes it: each function it calls looked up (built-in or not, volatility,
   * language, body) and folded in, so a call of an unsafe function is kind `call` and a function whose body drops
   * a table counts as a drop (policy/sql/functions.ts). Returns the analyses of the user functions called, for
   * the lineage of their results.
   */
  private async withCatalogue(c: SqlClassification): Promise<{ classification: SqlClassification; taintedFunctions: FunctionAnalysis[]; unsafe: string[] }> {
    const names = [...new Set(c.statements.flatMap((s) => s.functions.map((f) => f.toLowerCase())))];
    if (names.length === 0) return { classification: c, taintedFunctions: [], unsafe: [] };
    const facts = new Map<string, FunctionAnalysis>();
    const safeList = this.o.resource.safeFunctions ?? [];
    for (const name of names) {
      const rows = await this.catalog.functions(name);
      if (rows.length > 0) facts.set(name, analyzeFunction(rows, safeList));
    }
    const user = [...facts.entries()].filter(([, f]) => !f.name.startsWith('pg_catalog.') && !f.name.startsWith('information_schema.'));
    const unsafe = names.filter((n) => !facts.get(n)?.safe).map((n) => `${n}: ${facts.get(n)?.why ?? 'not found in the catalogue'}`);
    return { classification: withFunctionFacts(c, facts), taintedFunctions: user.map(([written, f]) => ({ ...f, name: written })), unsafe };
  }

  /**
   * What the catalogue adds to a decision when the statement can carry masked data: the lineage of computed
   * columns (views followed, functions whose results carry masked data), whether server messages are withheld,
   * the columns of a COPY … TO STDOUT, and a denial when the statement would copy masked data elsewhere.
   */
  private async dataFacts(sql: string, classification: SqlClassification, masks: readonly MaskDirective[], fns: readonly FunctionAnalysis[]): Promise<DataFacts> {
    const columnRules = masks.filter((m) => m.columns && m.columns.length > 0);
    const facts = noDataFacts();
    const stmts = classification.statements;
    if (stmts.length === 1 && stmts[0]!.kind === 'copy_to' && masks.length > 0) {
      const copy = await this.copyFacts(sql, masks);
      if ('deny' in copy) facts.deny = copy.deny;
      else facts.copy = copy;
    } else if (stmts.length > 1 && masks.length > 0 && stmts.some((st) => st.kind === 'copy_to')) {
      // A simple Query of several statements answers each in turn: every COPY … TO STDOUT among them is
      // described (or denied) like one sent alone, and the session picks the description by the statement's
      // place (the CommandCompletes before it).
      facts.copies = [];
      for (const [i, st] of stmts.entries()) {
        if (st.kind !== 'copy_to') {
          facts.copies.push(null);
          continue;
        }
        const copy = await this.copyFacts(st.text, masks);
        if ('deny' in copy) {
          facts.deny = { rule: copy.deny.rule, message: `statement ${i + 1} of ${stmts.length}: ${copy.deny.message}` };
          facts.copies = null;
          break;
        }
        facts.copies.push(copy);
      }
    }
    if (columnRules.length === 0) return facts;
    const first = columnRules[0]!;
    const reads = classification.statements.flatMap((st) => st.reads);
    const ruleColumns = columnRules.flatMap((m) => m.columns!);
    // planner statistics sample every column's values: they count as masked whenever a column rule applies
    const masked = [...ruleColumns, ...STATISTICS_COLUMNS];
    const taint = await statementTaint(this.catalog, sql, reads, masked, taintedFunctionNames(fns, masked));
    const tainted = taint.lineage.some((l) => l.tainted);
    facts.patterns = taint.masked.slice(ruleColumns.length);
    if (tainted) {
      facts.derived = { masker: first.with ?? 'redact', keep: first.keep ?? 4, label: `derived:${first.rule}` };
      facts.withhold = `the statement reads data that rule ${first.policy}/${first.rule} masks`;
    }
    const last = taint.lineage[taint.lineage.length - 1];
    facts.outputs = taint.lineage.length === 1 && last ? last.outputs : null;
    const launders = taint.lineage.find((l) => l.launders)?.launders;
    if (launders) {
      facts.deny = {
        rule: 'dlpctl/no-masked-copies',
        message: `${launders}: copying data that rule ${first.policy}/${first.rule} masks into another relation or object is not allowed; select it through the tunnel instead`,
      };
    }
    return facts;
  }

  /** The columns of a COPY … TO STDOUT, described on the catalogue connection; a denial when they cannot be masked. */
  private async copyFacts(sql: string, masks: readonly MaskDirective[]): Promise<CopyOut | { deny: { rule: string; message: string } }> {
    const stmt = (parseSqlTree(sql) as { stmts?: { stmt: unknown }[] }).stmts?.[0]?.stmt;
    const source = copySourceOf(stmt, sql, copyQueryText);
    const rule = masks[0]!;
    const ruleRef = `${rule.policy}/${rule.rule}`;
    if (!source) return { deny: { rule: ruleRef, message: 'dlpctl cannot tell which columns this COPY sends, so it cannot mask them; select the data instead' } };
    const query = source.query ?? copyRelationSelect(source.relation!, source.columns);
    const fields = await this.catalog.describe(query).catch(() => null);
    if (!fields) return { deny: { rule: ruleRef, message: 'dlpctl could not learn the columns of this COPY from the catalogue, so it cannot mask them; select the data instead' } };
    if (source.format.format === 'binary') {
      const plan = await planResult(fields, { masks, resolver: this.catalog, dlp: this.masks.for(masks), hashKey: this.hashKey, vault: this.vault, derived: null });
      if (plan.active) return { deny: { rule: ruleRef, message: `a binary COPY cannot be masked and rule ${ruleRef} masks what it sends; use FORMAT text or csv` } };
    }
    return { ...source.format, fields };
  }

}

/** What the catalogue adds to a decision without masks: nothing (see `dataFacts`). */
function noDataFacts(): DataFacts {
  return { derived: null, outputs: null, patterns: [], withhold: null, copy: null, copies: null, deny: null };
}
