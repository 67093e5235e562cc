/**
 * Stored events as Elastic Common Schema (ECS 8.x) documents, one JSON object per line, for SIEMs: Elastic
 * ingests them as they are, and Splunk, Sentinel, Datadog, Chronicle and OpenSearch map `@timestamp`,
 * `event.*`, `user.*` and `source.*` with their ECS presets (docs/siem.md says why ECS rather than OCSF).
 *
 * Everything comes from the stored event and its session, which hold masked text only; nothing is added that
 * the store does not have. Left out on purpose: `terminal.output` frames (keystrokes and screen contents belong
 * in `audit export --format asciicast`, not in a SIEM index) and HTTP headers and bodies (sizes are kept).
 *
 * Field use:
 *   @timestamp, message           event time; the one-line description `audit show` prints
 *   event.kind/category/type/outcome/action, event.id (SESSION:SEQ), event.sequence, event.hash (the chain
 *     hash: `audit verify` checks it), event.reason (the session's --reason), event.duration (ns)
 *   user.id (subject), user.name (email, else subject), user.email, user.domain (issuer), user.roles (groups)
 *   source.ip/port/address        the tunnel client
 *   service.target.name/type      the resource and its kind
 *   rule.name, rule.ruleset       the deciding rule (`policy/rule`) and its policy
 *   http.request.method, url.path, url.query, http.response.status_code
 *   process.command_line          SSH commands (masked)
 *   observer.*                    dlpctl itself
 *   dlpctl.*                      what ECS has no field for: session id, decision, SQL text and tables,
 *                                 masking counts per entity, identity kind and verification, counters
 */
import type { Session, StoreEvent } from '../store/types.js';
import { VERSION } from '../cli/version.js';
import { describeEvent } from './describe.js';

export const ECS_VERSION = '8.11.0';

export type EcsDocument = Record<string, unknown>;

/** `127.0.0.1:50412`, `[::1]:50412` → ip and port; anything else only as `address`. */
export function sourceFields(clientAddr: string): { address: string; ip?: string; port?: number } | undefined {
  if (!clientAddr) return undefined;
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(clientAddr) ?? /^([^:]+):(\d+)$/.exec(clientAddr);
  if (!m) return { address: clientAddr };
  return { address: m[1]!, ip: m[1]!, port: Number(m[2]) };
}

function outcomeOf(decision: string): 'success' | 'failure' | 'unknown' {
  return decision === 'deny' ? 'failure' : decision === 'approve' ? 'unknown' : 'success';
}

function typeOf(decision: string, ok: string[]): string[] {
  return decision === 'deny' ? ['denied'] : decision === 'approve' ? ['info'] : ['allowed', ...ok];
}

const CATEGORY: Record<string, string> = { postgres: 'database', http: 'web', ssh: 'process', store: 'configuration' };

function ruleFields(rule: string | undefined): EcsDocument | undefined {
  if (!rule) return undefined;
  const slash = rule.indexOf('/');
  return slash > 0 ? { name: rule, ruleset: rule.slice(0, slash) } : { name: rule };
}

/** One ECS document for `e` of `session`; undefined for events a SIEM does not get (terminal frames). */
export function toEcs(e: StoreEvent, session: Session): EcsDocument | undefined {
  if (e.type === 'terminal.output') return undefined;
  const id = session.identity;
  const event: EcsDocument = {
    kind: 'event',
    module: 'dlpctl',
    dataset: 'dlpctl.audit',
    provider: session.kind,
    action: e.type,
    id: `${e.sessionId}:${e.seq}`,
    sequence: e.seq,
    hash: e.hash,
    ...(session.reason ? { reason: session.reason } : {}),
  };
  const doc: EcsDocument = {
    '@timestamp': e.time,
    message: describeEvent(e),
    ecs: { version: ECS_VERSION },
    event,
    user: {
      id: id.subject,
      name: id.email ?? id.subject,
      ...(id.email ? { email: id.email } : {}),
      domain: id.issuer,
      roles: id.groups,
    },
    observer: { vendor: 'dlpctl', product: 'dlpctl', type: 'proxy', version: VERSION },
    service: { target: { name: session.resource, type: session.kind } },
  };
  const source = sourceFields(session.clientAddr);
  if (source) doc['source'] = source;
  const dlp: EcsDocument = {
    session_id: e.sessionId,
    event_type: e.type,
    identity: { kind: id.kind, verified: id.verified },
  };
  const category = CATEGORY[session.kind] ?? 'session';

  switch (e.type) {
    case 'session.start':
      Object.assign(event, { category: ['session'], type: ['start'], outcome: 'success' });
      break;
    case 'session.end':
      Object.assign(event, {
        category: ['session'],
        type: ['end'],
        outcome: e.outcome === 'ok' ? 'success' : e.outcome === 'terminated' ? 'unknown' : 'failure',
        ...(session.startedAt ? { start: session.startedAt, end: e.time, duration: Math.max(0, Date.parse(e.time) - Date.parse(session.startedAt)) * 1e6 } : {}),
      });
      dlp['outcome'] = e.outcome;
      dlp['counters'] = e.counters;
      break;
    case 'query':
      Object.assign(event, { category: ['database'], type: typeOf(e.decision, ['access']), outcome: outcomeOf(e.decision) });
      Object.assign(dlp, { decision: e.decision, statement: e.sql, statement_kinds: e.kinds, tables: e.tables });
      break;
    case 'http.request': {
      Object.assign(event, { category: ['web'], type: typeOf(e.decision, ['access']), outcome: e.status !== undefined && e.status >= 500 ? 'failure' : outcomeOf(e.decision) });
      if (e.durationMs !== undefined) event['duration'] = Math.round(e.durationMs * 1e6);
      const q = e.path.indexOf('?');
      doc['url'] = q >= 0 ? { path: e.path.slice(0, q), query: e.path.slice(q + 1) } : { path: e.path };
      doc['http'] = {
        request: { method: e.method, ...(e.reqBodyBytes !== undefined ? { body: { bytes: e.reqBodyBytes } } : {}) },
        ...(e.status !== undefined || e.resBodyBytes !== undefined
          ? { response: { ...(e.status !== undefined ? { status_code: e.status } : {}), ...(e.resBodyBytes !== undefined ? { body: { bytes: e.resBodyBytes } } : {}) } }
          : {}),
      };
      Object.assign(dlp, { decision: e.decision, ...(e.phase ? { phase: e.phase } : {}), ...(e.masked ? { masked: e.masked } : {}) });
      break;
    }
    case 'ssh.command':
      Object.assign(event, { category: ['process'], type: typeOf(e.decision, ['start']), outcome: outcomeOf(e.decision) });
      doc['process'] = { command_line: e.command };
      Object.assign(dlp, { decision: e.decision, channel: e.channel ?? 'exec' });
      break;
    case 'ssh.channel':
      Object.assign(event, {
        category: ['network', 'session'],
        type: e.phase === 'close' ? ['end'] : typeOf(e.decision, ['start']),
        outcome: outcomeOf(e.decision),
      });
      if (e.target) doc['destination'] = { address: e.target };
      Object.assign(dlp, {
        decision: e.decision,
        channel: e.channel,
        ...(e.phase ? { phase: e.phase } : {}),
        ...(e.exitStatus !== undefined ? { exit_status: e.exitStatus } : {}),
        ...(e.bytesIn !== undefined ? { bytes_in: e.bytesIn } : {}),
        ...(e.bytesOut !== undefined ? { bytes_out: e.bytesOut } : {}),
      });
      break;
    case 'mask.summary':
      Object.assign(event, { category: [category], type: ['info'], outcome: 'success' });
      dlp['masked'] = e.entities;
      break;
    case 'result':
      Object.assign(event, { category: [category], type: ['info'], outcome: 'success', duration: Math.round(e.durationMs * 1e6) });
      Object.assign(dlp, { rows: e.rows, bytes: e.bytes });
      break;
    case 'error':
      Object.assign(event, { category: [category], type: ['error'], outcome: 'failure', ...(e.code ? { code: e.code } : {}) });
      doc['error'] = { message: e.message, ...(e.code ? { code: e.code } : {}) };
      break;
    case 'approval.requested':
      Object.assign(event, { category: ['iam'], type: ['info'], outcome: 'unknown' });
      dlp['approval'] = { id: e.approvalId, state: 'pending' };
      break;
    case 'approval.decided':
      Object.assign(event, {
        category: ['iam'],
        type: e.state === 'approved' || e.state === 'consumed' ? ['allowed'] : e.state === 'denied' ? ['denied'] : ['info'],
        outcome: e.state === 'approved' || e.state === 'consumed' ? 'success' : e.state === 'pending' ? 'unknown' : 'failure',
      });
      dlp['approval'] = { id: e.approvalId, state: e.state, ...(e.by ? { by: e.by } : {}) };
      break;
    case 'store.prune':
      Object.assign(event, { category: ['configuration'], type: ['deletion'], outcome: 'success' });
      Object.assign(dlp, { sessions_removed: e.sessionsRemoved, events_removed: e.eventsRemoved, cutoff: e.cutoff });
      break;
  }
  const rule = ruleFields('rule' in e ? e.rule : undefined);
  if (rule) doc['rule'] = rule;
  doc['dlpctl'] = dlp;
  return doc;
}
