/**
 * One line per event, shared by `audit show`, `audit tail` and `audit replay`. Events hold masked text
 * only; nothing here can reveal an original value.
 */
import { eventText } from '../store/common.js';
import type { StoreEvent } from '../store/types.js';

/** The statement / request / command text of an action event, or undefined. */
export function actionText(e: StoreEvent): string | undefined {
  return eventText(e) ?? undefined;
}

export const ACTION_TYPES = new Set<StoreEvent['type']>(['query', 'execute', 'http.request', 'ssh.command', 'ssh.channel']);

export function isAction(e: StoreEvent): e is Extract<StoreEvent, { type: 'query' | 'execute' | 'http.request' | 'ssh.command' | 'ssh.channel' }> {
  return ACTION_TYPES.has(e.type);
}

/** What happened, on one line (no decision/rule prefix for actions: see `decisionOf`). */
export function describeEvent(e: StoreEvent): string {
  switch (e.type) {
    case 'session.start':
      return `${e.identity.subject}${e.identity.verified ? '' : ' (unverified)'} opened ${e.resource} (${e.kind}) from ${e.clientAddr || '-'}${e.reason ? `, reason "${e.reason}"` : ''}`;
    case 'session.end':
      return `${e.outcome}: ${e.counters.statements} statements, ${e.counters.denied} denied, ${e.counters.masked} masked, ${e.counters.rows} rows, ${e.counters.bytesOut} bytes out`;
    case 'query':
    case 'ssh.command':
    case 'ssh.channel':
      return actionText(e) ?? '';
    case 'http.request':
      return `${e.method} ${e.path}${e.status !== undefined ? ` → ${e.status}` : ''}`;
    case 'mask.summary':
      return `masked ${Object.entries(e.entities).map(([k, v]) => `${k}×${v}`).join(' ') || 'nothing'}${e.rule ? ` [${e.rule}]` : ''}`;
    case 'execute':
      return `execute statement #${e.statement}${e.params ? ` with (${e.params.map((p) => (p === null ? 'NULL' : JSON.stringify(p))).join(', ')})` : ''}${e.maxRows ? `, ${e.maxRows} rows at a time` : ''}`;
    case 'result':
      return `${e.rows} rows, ${e.bytes} bytes, ${e.durationMs} ms${e.sample ? `, ${e.sample.length} recorded${e.truncated ? ' (truncated)' : ''}` : ''}`;
    case 'error':
      return `${e.code ? `${e.code} ` : ''}${e.message}`;
    case 'approval.requested':
      return `approval ${e.approvalId} requested [${e.rule}]`;
    case 'approval.decided':
      return `approval ${e.approvalId} ${e.state}${e.by ? ` by ${e.by}` : ''}`;
    case 'terminal.output':
      return `${e.stream === 'i' ? 'input' : 'output'} ${Buffer.byteLength(e.data)} bytes at ${e.t.toFixed(3)}s`;
    case 'store.prune':
      return `pruned ${e.sessionsRemoved} sessions, ${e.eventsRemoved} events older than ${e.cutoff}`;
  }
}

export function decisionOf(e: StoreEvent): { decision?: string; rule?: string } {
  if (isAction(e)) return { decision: e.decision, ...(e.rule ? { rule: e.rule } : {}) };
  if (e.type === 'mask.summary' && e.rule) return { rule: e.rule };
  return {};
}

/** The recorded rows of a result event as lines (columns first), for `audit show` and `audit replay`. */
export function sampleLines(e: StoreEvent): string[] {
  if (e.type !== 'result' || !e.sample || e.sample.length === 0) return [];
  const cell = (c: string | null) => (c === null ? 'NULL' : c.replace(/\s+/g, ' '));
  const lines = e.columns ? [e.columns.join(' | ')] : [];
  for (const row of e.sample) lines.push(row.map(cell).join(' | '));
  if (e.truncated) lines.push(`… ${e.rows - e.sample.length} more rows not recorded`);
  return lines;
}
