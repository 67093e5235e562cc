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
import { approvalRequest, auditLabel, decide, ruleNameOf, tunnelPolicyOf, type EngineBaseOptions, type TunnelPolicy } from '../decide.js';
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
import { clientCodec } from './encoding.js';
import { clientHandshake, ClientRejected } from './client-handshake.js';
import {
  createScramSecret,
  encodeBackendKeyData,
  encodeErrorResponse,
  encodeParameterStatus,
  encodeReadyForQuery,
  type ScramSecret,
} from './protocol.js';
import { derivedColumnMask } from './lineage.js';
import { planResult } from './result-mask.js';
import { PgSession, type Verdict } from './session.js';
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

export class PostgresEngine implements TunnelEngine {
  private readonly o: PostgresEngineOptions;
  private scram: { secret: string; value: ScramSecret } | null = null;
  /** Our BackendKeyData (pid:key hex) → the upstream's, for CancelRequest. */
  private readonly cancelKeys = new Map<string, { processId: number; secretKey: Buffer }>();
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

  accept(socket: net.Socket, ctx: { secret: string; emit: (e: TunnelEvent) => void }): TunnelSession {
    if (!this.scram || this.scram.secret !== ctx.secret) this.scram = { secret: ctx.secret, value: createScramSecret(ctx.secret) };
    const id = `pg-${process.pid}-${++nextSessionNumber}`;
    let session: PgSession | null = null;
    let terminated: string | null = null;
    const done = this.serve(socket, ctx, (s) => (session = s), () => terminated);
    return {
      id,
      done,
      terminate: async (reason: string) => {
        terminated = reason;
        if (session) await (session as PgSession).terminate(reason);
        else socket.destroy();
      },
    };
  }

  private async serve(
    socket: net.Socket,
    ctx: { secret: string; emit: (e: TunnelEvent) => void },
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
      const up = this.cancelKeys.get(key);
      if (up) await cancelUpstream(this.o.target, up.processId, up.secretKey).catch(() => {});
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
      const message = `client_encoding ${encoding} is not supported through the tunnel; use UTF8, or a single-byte encoding such as LATIN1-10, WIN1250-1258, KOI8R`;
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
      const session = new PgSession({
        sessionId,
        resource,
        client,
        upstream: upstream.conn,
        recorder,
        status: upstream.status,
        gate: (sql) => this.gate(sql, recorder, ctx.emit),
        plan: (fields, verdict) =>
          planResult(fields, {
            masks: verdict.masks,
            resolver: this.catalog,
            dlp: this.masks.for(verdict.masks),
            hashKey: this.hashKey,
            vault: this.vault,
            derived: verdict.derived ?? null,
            codec: session.codec,
          }),
        cancel: () => cancelUpstream(this.o.target, upstream.processId, upstream.secretKey),
        emit: ctx.emit,
        functionName: (oid) => this.catalog.functionName(oid),
        ...(upstream.parameters.has('client_encoding') ? { clientEncoding: upstream.parameters.get('client_encoding')! } : {}),
        ...(upstream.parameters.has('server_encoding') ? { serverEncoding: upstream.parameters.get('server_encoding')! } : {}),
      });
      setSession(session);
      outcome = await session.run();
    } catch {
      outcome = 'error';
    } finally {
      clearInterval(watchdog);
      this.cancelKeys.delete(cancelKey);
      client.destroy();
      upstream.conn.destroy();
      if (terminated()) outcome = 'terminated';
      await recorder.end(outcome).catch((err: unknown) => ctx.emit({ type: 'error', resource, sessionId, message: String(err) }));
      ctx.emit({ type: 'session_end', resource, sessionId, outcome });
    }
  }

  /** Decide one SQL text: classify, evaluate, record durably, wait for approval. Never throws. */
  private async gate(sql: string, recorder: SessionRecorder, emit: (e: TunnelEvent) => void): Promise<Verdict> {
    const resource = this.o.resource;
    let auditText = sql;
    try {
      auditText = this.auditDlp.maskText(sql).text;
      const classification = classifySql(sql);
      const decision = decide(this.tunnelPolicy, { type: 'sql', text: sql, classification });
      const ruleName = ruleNameOf(decision);
      const kinds = [...new Set(classification.statements.map((s) => s.kind))];
      const tables = [...new Set(classification.statements.flatMap((s) => [...s.reads, ...s.writes]))];
      const limitRule = decision.limitSources.maxRows ?? decision.limitSources.maxBytes;
      const base = {
        masks: decision.masks,
        derived: derivedColumnMask(sql, decision.masks),
        limits: decision.limits,
        ...(limitRule ? { limitRule: `${limitRule.policy}/${limitRule.rule}` } : {}),
      };
      let action = decision.action;
      let message = decision.message;
      const label = auditLabel(decision);
      await recorder.record({ type: 'query', sql: auditText, decision: label, ...(ruleName ? { rule: ruleName } : {}), kinds, tables });
      recorder.counters.statements += 1;

      if (action === 'approve') {
        const outcome = await requestApproval(
          this.o.store,
          approvalRequest(decision, { sessionId: recorder.id, resource: resource.name, exact: sql, maskedText: auditText, requester: this.o.identity, reason: this.o.reason }),
          {
            onPending: (a) => {
              void recorder.record({ type: 'approval.requested', approvalId: a.id, rule: ruleName ?? 'approve' }).catch(() => {});
              emit({ type: 'decision', resource: resource.name, sessionId: recorder.id, action: 'approve', rule: ruleName ?? null, kinds, summary: `waiting for approval ${a.id}` });
              this.o.onApprovalPending?.(a.id, auditText);
            },
          },
        );
        await recorder.record({ type: 'approval.decided', approvalId: outcome.approval?.id ?? '', state: outcome.approval?.state ?? 'expired' });
        action = outcome.approved ? 'allow' : 'deny';
        if (!outcome.approved) message = outcome.message;
      }
      emit({ type: 'decision', resource: resource.name, sessionId: recorder.id, action: label === 'observe' ? 'observe' : action, rule: ruleName ?? null, kinds, summary: auditText.slice(0, 200) });
      if (action === 'deny') {
        recorder.counters.denied += 1;
        const where = ruleName ? `policy ${decision.rule!.policy} rule ${decision.rule!.rule}` : decision.basis === 'fail_closed' ? 'fail-closed' : `resource ${resource.name} default`;
        return { allow: false, message: `dlpctl: denied by ${where}: ${message}`, ...base };
      }
      return { allow: true, ...base };
    } catch (err) {
      const why = err instanceof DlpctlError ? err.message : `evaluation failed: ${err instanceof Error ? err.message : String(err)}`;
      recorder.counters.denied += 1;
      emit({ type: 'decision', resource: resource.name, sessionId: recorder.id, action: 'deny', rule: null, summary: why });
      return { allow: false, message: `dlpctl: denied (fail closed): ${why}`, masks: [], limits: {} };
    }
  }

}
