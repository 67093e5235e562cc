/**
 * `dlpctl approvals [--watch]`, `dlpctl approve ID [--comment]`, `dlpctl deny ID --reason`.
 * On a TTY without --json, `approvals` opens the ink screen (src/tui/approvals.tsx); otherwise it prints a
 * table (or JSON) once, or with --watch again whenever the pending set changes.
 */
import { decideApproval, type DecideResult } from '../../approvals/decide.js';
import { APPROVAL_COLUMNS, approvalJson, approvalRow, isOpen } from '../../approvals/format.js';
import { DlpctlError, ExitCode } from '../../errors.js';
import type { Approval, SessionStore } from '../../store/types.js';
import type { CommandContext } from '../context.js';
import { printJson, renderTable } from '../io.js';
import { loadCliConfig, resolveStoreUrl } from '../load.js';

/**
 * The store the approval and audit commands read: never created by them, so a mistyped path is an error that
 * says so rather than an empty store that answers "nothing found".
 */
export async function openCliStore(ctx: CommandContext): Promise<SessionStore> {
  const { openStore } = await import('../../store/index.js');
  return openStore(await resolveStoreUrl(ctx), { homedir: ctx.homedir, create: false });
}

/** The resolved `approvals.webhook` URL, if the configuration has one. */
export async function webhookUrl(ctx: CommandContext): Promise<string | undefined> {
  const config = await loadCliConfig(ctx, { required: false });
  const hook = config?.approvals?.webhook;
  if (!hook) return undefined;
  const { resolveSecret } = await import('../../config/index.js');
  return resolveSecret(hook, { env: ctx.env });
}

export interface ApprovalsOptions {
  watch?: boolean;
  /** Include decided and expired requests (the table and JSON only). */
  all?: boolean;
  /** Poll interval for --watch without a screen (ms). */
  intervalMs?: number;
  now?: () => Date;
}

export async function runApprovals(ctx: CommandContext, opts: ApprovalsOptions): Promise<number> {
  const now = opts.now ?? (() => new Date());
  const store = await openCliStore(ctx);
  try {
    const stdin = ctx.io.stdin as NodeJS.ReadStream;
    if (!ctx.globals.json && ctx.io.isTTY && stdin.isTTY && typeof stdin.setRawMode === 'function') {
      const { runApprovalsScreen } = await import('../../tui/approvals-screen.js');
      await runApprovalsScreen({ store, ctx, now });
      return ExitCode.ok;
    }
    const list = async (): Promise<Approval[]> => {
      const all = await store.listApprovals(opts.all ? {} : { state: 'pending' });
      const t = now();
      return opts.all ? all : all.filter((a) => isOpen(a, t));
    };
    const print = (items: Approval[]): void => {
      const t = now();
      if (ctx.globals.json) {
        if (opts.watch) ctx.io.out(JSON.stringify(items.map((a) => approvalJson(a, t))));
        else printJson(ctx.io, items.map((a) => approvalJson(a, t)));
        return;
      }
      if (items.length === 0) {
        ctx.io.err('no pending approval requests');
        return;
      }
      const headers = opts.all ? [...APPROVAL_COLUMNS, 'state'] : [...APPROVAL_COLUMNS];
      ctx.io.out(renderTable(ctx.io, headers, items.map((a) => (opts.all ? [...approvalRow(a, t), a.state] : approvalRow(a, t)))));
    };
    let items = await list();
    print(items);
    if (!opts.watch) return ExitCode.ok;
    let last = fingerprint(items);
    const { sleep } = await import('../../store/common.js');
    for (;;) {
      try {
        await sleep(opts.intervalMs ?? 1000, ctx.signal);
      } catch {
        return ExitCode.ok;
      }
      items = await list();
      const f = fingerprint(items);
      if (f !== last) {
        last = f;
        if (!ctx.globals.json) ctx.io.out('');
        print(items);
      }
    }
  } finally {
    await store.close();
  }
}

function fingerprint(items: Approval[]): string {
  return items.map((a) => `${a.id}:${a.version}`).join(',');
}

export async function runApprove(ctx: CommandContext, opts: { id: string; comment?: string }): Promise<number> {
  return decide(ctx, { id: opts.id, decision: 'approve', ...(opts.comment ? { comment: opts.comment } : {}) });
}

export async function runDeny(ctx: CommandContext, opts: { id: string; reason?: string }): Promise<number> {
  if (!opts.reason?.trim()) throw new DlpctlError('USAGE', 'dlpctl deny needs --reason TEXT (shown to the requester and recorded)');
  return decide(ctx, { id: opts.id, decision: 'deny', comment: opts.reason });
}

async function decide(ctx: CommandContext, input: { id: string; decision: 'approve' | 'deny'; comment?: string }): Promise<number> {
  const { currentApprover } = await import('../../approvals/approver.js');
  const identity = await currentApprover(ctx);
  const store = await openCliStore(ctx);
  let result: DecideResult;
  try {
    result = await decideApproval(store, { ...input, identity });
  } finally {
    await store.close();
  }
  await notify(ctx, result.approval);
  const a = result.approval;
  if (ctx.globals.json) {
    printJson(ctx.io, { ...approvalJson(a, new Date()), approvals: result.approvals, required: result.required });
  } else if (a.state === 'approved') {
    ctx.io.err(`${ctx.io.errColor.green('✓')} approved ${a.id} (${a.resource}, requested by ${a.requester.subject}); the waiting statement runs once`);
  } else if (a.state === 'denied' && a.decisions.some((d) => d.decision === 'approve')) {
    ctx.io.err(`${ctx.io.errColor.red('✗')} revoked ${a.id} (${a.resource}, granted to ${a.requester.subject}); a tunnel using it ends its sessions`);
  } else if (a.state === 'denied') {
    ctx.io.err(`${ctx.io.errColor.red('✗')} denied ${a.id} (${a.resource}, requested by ${a.requester.subject})`);
  } else {
    ctx.io.err(`approval recorded for ${a.id}: ${result.approvals} of ${result.required}; waiting for ${result.required - result.approvals} more`);
  }
  return ExitCode.ok;
}

async function notify(ctx: CommandContext, a: Approval): Promise<void> {
  let url: string | undefined;
  try {
    url = await webhookUrl(ctx);
  } catch (err) {
    ctx.io.err(`dlpctl: warning: approvals webhook not posted: ${(err as Error).message}`);
    return;
  }
  if (!url) return;
  const { postWebhook } = await import('../../approvals/webhook.js');
  const problem = await postWebhook(url, 'decided', a);
  if (problem) ctx.io.err(`dlpctl: warning: ${problem}`);
}
