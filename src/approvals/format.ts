/** How approvals are shown: ages, one-line text, the stable `--json` shape. */
import type { Approval } from '../store/types.js';
import { approvedBy } from './decide.js';

/** `45s`, `12m`, `3h`, `2d`. */
export function shortDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** The text on one line (newlines and runs of spaces collapsed), clipped to `max` characters. */
export function oneLine(text: string, max = 60): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export interface ApprovalJson {
  id: string;
  state: Approval['state'];
  resource: string;
  sessionId: string;
  requester: { subject: string; email?: string; verified: boolean };
  reason: string | null;
  rule: string;
  text: string;
  sha256: string;
  approvers: string[];
  minApprovals: number;
  approvedBy: string[];
  decisions: Approval['decisions'];
  createdAt: string;
  expiresAt: string;
  ageSeconds: number;
  expiresInSeconds: number;
}

export function approvalJson(a: Approval, now: Date): ApprovalJson {
  return {
    id: a.id,
    state: a.state,
    resource: a.resource,
    sessionId: a.sessionId,
    requester: { subject: a.requester.subject, ...(a.requester.email ? { email: a.requester.email } : {}), verified: a.requester.verified },
    reason: a.reason ?? null,
    rule: a.rule,
    text: a.maskedText,
    sha256: a.sha256,
    approvers: a.approvers,
    minApprovals: a.minApprovals,
    approvedBy: approvedBy(a),
    decisions: a.decisions,
    createdAt: a.createdAt,
    expiresAt: a.expiresAt,
    ageSeconds: Math.max(0, Math.floor((now.getTime() - Date.parse(a.createdAt)) / 1000)),
    expiresInSeconds: Math.max(0, Math.floor((Date.parse(a.expiresAt) - now.getTime()) / 1000)),
  };
}

export const APPROVAL_COLUMNS = ['id', 'age', 'expires', 'requester', 'resource', 'votes', 'reason', 'text'] as const;

export function approvalRow(a: Approval, now: Date, textWidth = 60): string[] {
  return [
    a.id,
    shortDuration(now.getTime() - Date.parse(a.createdAt)),
    `in ${shortDuration(Date.parse(a.expiresAt) - now.getTime())}`,
    a.requester.subject,
    a.resource,
    `${approvedBy(a).length}/${a.minApprovals}`,
    oneLine(a.reason ?? '', 30),
    oneLine(a.maskedText, textWidth),
  ];
}

/** Pending and not yet past expiry (expired ones are marked when someone tries to decide them). */
export function isOpen(a: Approval, now: Date): boolean {
  return a.state === 'pending' && Date.parse(a.expiresAt) > now.getTime();
}
