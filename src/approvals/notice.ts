/**
 * What the requester sees while a statement waits: one line naming what is waiting and the command that
 * approves it, then (on a TTY) a spinner with the time left, redrawn in place. Used by the tunnels'
 * `onApprovalPending` hook; plain output (CI logs) gets the one line only.
 */
import type { Approval } from '../store/types.js';
import { oneLine, shortDuration } from './format.js';

export function pendingNotice(a: Pick<Approval, 'id' | 'resource' | 'maskedText' | 'approvers' | 'minApprovals'>): string {
  const who = a.approvers.join(', ');
  return `dlpctl: waiting for approval ${a.id} on ${a.resource}: ${oneLine(a.maskedText, 80)} — an approver (${who}${a.minApprovals > 1 ? `, ${a.minApprovals} needed` : ''}) runs: dlpctl approve ${a.id}`;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * Starts the spinner on `stream` (a TTY) until the returned function is called. `now` is injectable.
 * Writes `\r` + the line + erase-to-end, so it never scrolls.
 */
export function waitingSpinner(
  stream: NodeJS.WritableStream,
  a: Pick<Approval, 'id' | 'expiresAt'>,
  opts: { now?: () => Date; intervalMs?: number } = {},
): () => void {
  const now = opts.now ?? (() => new Date());
  let i = 0;
  const draw = () => {
    const left = Date.parse(a.expiresAt) - now().getTime();
    stream.write(`\r${FRAMES[i++ % FRAMES.length]} waiting for approval ${a.id} · ${shortDuration(left)} left\u001b[K`);
  };
  draw();
  const t = setInterval(draw, opts.intervalMs ?? 100);
  return () => {
    clearInterval(t);
    stream.write('\r\u001b[K');
  };
}
