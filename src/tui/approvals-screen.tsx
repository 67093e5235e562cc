/**
 * The live approvals screen (`dlpctl approvals` on a terminal): pending requests with age, requester,
 * resource, reason and masked text, refreshed every `refreshMs`. Keys: ↑/↓ (or k/j) move, `a` approves,
 * `d` denies (asks for a reason: type it, enter sends, esc cancels), enter shows the detail, esc goes back,
 * q quits. The component only talks to `load` and `decide`, so tests drive it with ink-testing-library and
 * a real store behind those two functions.
 */
import { Box, Text, render, useApp, useInput, useStdin } from 'ink';
import { useCallback, useEffect, useRef, useState } from 'react';
import { approvedBy } from '../approvals/decide.js';
import { isOpen, oneLine, shortDuration } from '../approvals/format.js';
import type { CommandContext } from '../cli/context.js';
import type { Approval, SessionStore } from '../store/types.js';

export interface ApprovalsScreenProps {
  load: () => Promise<Approval[]>;
  /** Resolves with a status line, rejects with an error whose message is shown. */
  decide: (id: string, decision: 'approve' | 'deny', comment?: string) => Promise<string>;
  now?: () => Date;
  refreshMs?: number;
  /** Who is deciding, shown in the header. */
  approver?: string;
}

type Mode = { kind: 'list' } | { kind: 'detail' } | { kind: 'reason'; text: string };

export function ApprovalsScreen(props: ApprovalsScreenProps) {
  const now = props.now ?? (() => new Date());
  const { exit } = useApp();
  const { isRawModeSupported } = useStdin();
  const [items, setItems] = useState<Approval[] | null>(null);
  const [selected, setSelected] = useState(0);
  const [mode, setMode] = useState<Mode>({ kind: 'list' });
  const [status, setStatus] = useState<{ text: string; error: boolean } | null>(null);
  const [, setTick] = useState(0);
  const busy = useRef(false);
  const loadRef = useRef(props.load);
  loadRef.current = props.load;

  const refresh = useCallback(async () => {
    try {
      const list = await loadRef.current();
      setItems(list);
      setSelected((s) => Math.max(0, Math.min(s, list.length - 1)));
    } catch (err) {
      setStatus({ text: `cannot read the store: ${(err as Error).message}`, error: true });
    }
  }, []);

  useEffect(() => {
    void refresh();
    const t = setInterval(() => {
      setTick((n) => n + 1);
      void refresh();
    }, props.refreshMs ?? 500);
    return () => clearInterval(t);
  }, [refresh, props.refreshMs]);

  const current = items?.[selected];

  const act = (decision: 'approve' | 'deny', comment?: string) => {
    if (!current || busy.current) return;
    busy.current = true;
    const id = current.id;
    setStatus({ text: `${decision === 'approve' ? 'approving' : 'denying'} ${id}…`, error: false });
    props
      .decide(id, decision, comment)
      .then((text) => setStatus({ text, error: false }))
      .catch((err: unknown) => setStatus({ text: (err as Error).message, error: true }))
      .finally(() => {
        busy.current = false;
        void refresh();
      });
  };

  useInput(
    (input, key) => {
      if (mode.kind === 'reason') {
        if (key.escape) setMode({ kind: 'list' });
        else if (key.return) {
          if (mode.text.trim() === '') setStatus({ text: 'a denial needs a reason', error: true });
          else {
            setMode({ kind: 'list' });
            act('deny', mode.text.trim());
          }
        } else if (key.backspace || key.delete) setMode({ kind: 'reason', text: mode.text.slice(0, -1) });
        else if (input && !key.ctrl && !key.meta) setMode({ kind: 'reason', text: mode.text + input });
        return;
      }
      if (input === 'q' || (key.ctrl && input === 'c')) {
        exit();
        return;
      }
      if (key.escape) {
        if (mode.kind === 'detail') setMode({ kind: 'list' });
        else exit();
        return;
      }
      const n = items?.length ?? 0;
      if (key.upArrow || input === 'k') setSelected((s) => Math.max(0, s - 1));
      else if (key.downArrow || input === 'j') setSelected((s) => Math.min(Math.max(0, n - 1), s + 1));
      else if (key.return) setMode((m) => (m.kind === 'detail' ? { kind: 'list' } : current ? { kind: 'detail' } : m));
      else if (input === 'a') act('approve');
      else if (input === 'd' && current) {
        setStatus(null);
        setMode({ kind: 'reason', text: '' });
      }
    },
    { isActive: isRawModeSupported },
  );

  const t = now();
  return (
    <Box flexDirection="column">
      <Text bold>
        dlpctl approvals{props.approver ? ` — deciding as ${props.approver}` : ''}
        <Text dimColor>  ↑/↓ move · a approve · d deny · enter detail · q quit</Text>
      </Text>
      {items === null ? (
        <Text dimColor>loading…</Text>
      ) : items.length === 0 ? (
        <Text dimColor>no pending approval requests (waiting for new ones)</Text>
      ) : (
        items.map((a, i) => (
          <Text key={a.id} inverse={i === selected} color={isOpen(a, t) ? undefined : 'gray'}>
            {i === selected ? '›' : ' '} {a.id}  {shortDuration(t.getTime() - Date.parse(a.createdAt)).padStart(4)}  {a.requester.subject}  {a.resource}  {approvedBy(a).length}/{a.minApprovals}
            {a.reason ? `  “${oneLine(a.reason, 30)}”` : ''}  {oneLine(a.maskedText, 60)}
          </Text>
        ))
      )}
      {mode.kind === 'detail' && current ? <Detail a={current} now={t} /> : null}
      {mode.kind === 'reason' && current ? (
        <Text>
          deny {current.id}, reason: <Text color="cyan">{mode.text}</Text>
          <Text dimColor>▌ (enter sends, esc cancels)</Text>
        </Text>
      ) : null}
      {status ? <Text color={status.error ? 'red' : 'green'}>{status.text}</Text> : null}
      {!isRawModeSupported ? <Text dimColor>(read-only: this input is not a terminal)</Text> : null}
    </Box>
  );
}

function Detail({ a, now }: { a: Approval; now: Date }) {
  return (
    <Box flexDirection="column" borderStyle="round" paddingX={1}>
      <Text bold>
        {a.id} · {a.resource} · rule {a.rule}
      </Text>
      <Text>
        requester {a.requester.subject}
        {a.requester.verified ? ' (verified)' : ' (unverified)'} · session {a.sessionId}
      </Text>
      {a.reason ? <Text>reason: {a.reason}</Text> : null}
      <Text>
        approvers {a.approvers.join(', ')} · {approvedBy(a).length} of {a.minApprovals} · expires in {shortDuration(Date.parse(a.expiresAt) - now.getTime())}
      </Text>
      <Text dimColor>sha256 {a.sha256}</Text>
      <Text>{a.maskedText}</Text>
      {a.decisions.map((d) => (
        <Text key={`${d.by}-${d.at}`} dimColor>
          {d.decision} by {d.by} at {d.at}
          {d.comment ? `: ${d.comment}` : ''}
        </Text>
      ))}
    </Box>
  );
}

/** Runs the screen on the command's terminal until the user quits (or the command is interrupted). */
export async function runApprovalsScreen(o: { store: SessionStore; ctx: CommandContext; now: () => Date }): Promise<void> {
  const { decideApproval } = await import('../approvals/decide.js');
  const { currentApprover } = await import('../approvals/approver.js');
  const identity = await currentApprover(o.ctx);
  const load = async () => {
    const t = o.now();
    return (await o.store.listApprovals({ state: 'pending' })).filter((a) => isOpen(a, t));
  };
  const decide = async (id: string, decision: 'approve' | 'deny', comment?: string) => {
    const r = await decideApproval(o.store, { id, decision, identity, ...(comment ? { comment } : {}), now: o.now });
    const { webhookUrl } = await import('../cli/commands/approvals.js');
    const url = await webhookUrl(o.ctx).catch(() => undefined);
    if (url) await (await import('../approvals/webhook.js')).postWebhook(url, 'decided', r.approval);
    return r.approval.state === 'pending' ? `${id}: ${r.approvals} of ${r.required} approvals` : `${id} ${r.approval.state}`;
  };
  const app = render(<ApprovalsScreen load={load} decide={decide} now={o.now} approver={identity.subject} />, {
    stdout: o.ctx.io.stdout as NodeJS.WriteStream,
    stdin: o.ctx.io.stdin as NodeJS.ReadStream,
    stderr: o.ctx.io.stderr as NodeJS.WriteStream,
    exitOnCtrlC: true,
    patchConsole: false,
  });
  const onAbort = () => app.unmount();
  o.ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    await app.waitUntilExit();
  } finally {
    o.ctx.signal.removeEventListener('abort', onAbort);
  }
}
