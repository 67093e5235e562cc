/**
 * The optional approvals webhook (`approvals.webhook` in dlpctl.yaml, a secret string: the URL of a Slack
 * incoming webhook or anything that accepts the same JSON). One POST when a request is created and one per
 * decision. The body is Slack-compatible: `text` (the fallback every client shows) and `blocks`. Only masked
 * text is ever sent; a failed post is reported to the caller, never fatal to the decision.
 */
import type { Approval } from '../store/types.js';
import { approvedBy } from './decide.js';

export type WebhookEvent = 'created' | 'decided';

export interface SlackMessage {
  text: string;
  blocks: { type: 'section' | 'context'; text?: { type: 'mrkdwn'; text: string }; elements?: { type: 'mrkdwn'; text: string }[] }[];
  /** Not used by Slack; kept for other receivers. */
  dlpctl: { event: WebhookEvent; id: string; state: Approval['state']; resource: string; rule: string; requester: string; sha256: string };
}

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

export function webhookMessage(event: WebhookEvent, a: Approval): SlackMessage {
  const last = a.decisions[a.decisions.length - 1];
  const headline =
    event === 'created'
      ? `dlpctl: ${a.requester.subject} needs approval ${a.id} on ${a.resource} (rule ${a.rule})`
      : a.state === 'pending'
        ? `dlpctl: approval ${a.id} on ${a.resource}: ${approvedBy(a).length} of ${a.minApprovals} approvals${last ? ` (${last.by})` : ''}`
        : `dlpctl: approval ${a.id} on ${a.resource} was ${a.state}${last ? ` by ${last.by}${last.comment ? `: ${last.comment}` : ''}` : ''}`;
  const blocks: SlackMessage['blocks'] = [
    { type: 'section', text: { type: 'mrkdwn', text: `*${headline}*` } },
    { type: 'section', text: { type: 'mrkdwn', text: '```' + clip(a.maskedText, 2500) + '```' } },
    {
      type: 'context',
      elements: [
        {
          type: 'mrkdwn',
          text: `${a.reason ? `reason: ${clip(a.reason, 200)} · ` : ''}approvers: ${a.approvers.join(', ')} · expires ${a.expiresAt}${event === 'created' ? ` · \`dlpctl approve ${a.id}\`` : ''}`,
        },
      ],
    },
  ];
  return {
    text: headline,
    blocks,
    dlpctl: { event, id: a.id, state: a.state, resource: a.resource, rule: a.rule, requester: a.requester.subject, sha256: a.sha256 },
  };
}

/** Posts the message; resolves with an error message instead of throwing. */
export async function postWebhook(url: string, event: WebhookEvent, a: Approval, opts: { timeoutMs?: number } = {}): Promise<string | undefined> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(webhookMessage(event, a)),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 5000),
    });
    await res.arrayBuffer().catch(() => undefined);
    if (!res.ok) return `approvals webhook answered HTTP ${res.status}`;
    return undefined;
  } catch (err) {
    // Never echo the URL: it is a secret.
    return `approvals webhook failed: ${(err as Error).name === 'TimeoutError' ? 'timed out' : ((err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message)}`;
  }
}
