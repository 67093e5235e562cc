/**
 * `dlpctl connect RESOURCE [-- COMMAND ARGS…]`: open the resource's tunnel, print how to use it (or NDJSON
 * events with --json), and run until SIGINT/SIGTERM — or, with a command, until the command exits, with its
 * exit status.
 */
import path from 'node:path';
import { DlpctlError, ExitCode } from '../../errors.js';
import type { CommandContext } from '../context.js';
import { loadCliConfig, resolveStoreUrl } from '../load.js';
import type { TunnelEvent } from '../../proxy/tunnel.js';

export interface ConnectOptions {
  resource: string;
  port?: string;
  bind?: string;
  reason?: string;
  tokenFile?: string;
  idTokenVar?: string;
  /** false (--no-wait): file the access request, print its id, exit 5. */
  wait?: boolean;
  /** --request ID: use this approved access request. */
  request?: string;
  command: string[];
}

/** How long sessions get to end on their own after the command exited, before the tunnel cuts them. */
const CHILD_SETTLE_MS = 3000;

/** Names of the environment variables a `${env:…}` reference in --store / DLPCTL_STORE reads. */
function storeEnvNames(store: string | undefined): string[] {
  if (!store) return [];
  return [...store.matchAll(/\$\{env:([^}]+)\}/g)].map((m) => m[1]!);
}

export async function runConnect(ctx: CommandContext, opts: ConnectOptions): Promise<number> {
  const config = await loadCliConfig(ctx, { required: true });
  if (!config) throw new DlpctlError('CONFIG_NOT_FOUND', 'no configuration file found');
  const resource = config.resources[opts.resource];
  if (!resource) {
    const names = Object.keys(config.resources);
    throw new DlpctlError('USAGE', `no resource named "${opts.resource}" in ${config.file}${names.length ? `; known: ${names.join(', ')}` : ''}`);
  }
  const port = opts.port === undefined ? resource.listen?.port : Number(opts.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw new DlpctlError('USAGE', `--port: "${opts.port}" is not a port number`);
  const host = opts.bind ?? resource.listen?.host ?? '127.0.0.1';

  const [{ resolveSecret, secretEnvNames }, { identityAllowed }, { resolveSessionIdentity }, policy] = await Promise.all([
    import('../../config/index.js'),
    import('../../identity/local.js'),
    import('../../identity/index.js'),
    import('../../policy/index.js'),
  ]);
  const interactive = Boolean(ctx.io.stdin.isTTY && ctx.io.stderr.isTTY) && !ctx.env.CI;
  const { identity, watch, maxSessionDuration, envNames: credentialEnv } = await resolveSessionIdentity({
    config,
    env: ctx.env,
    homedir: ctx.homedir,
    ...(opts.tokenFile ? { tokenFile: path.resolve(ctx.cwd, opts.tokenFile) } : {}),
    ...(opts.idTokenVar ? { idTokenVar: opts.idTokenVar } : {}),
    signal: ctx.signal,
    interactive,
    onDeviceCode: (p) => {
      ctx.io.err(`dlpctl: to sign in, open ${p.verificationUriComplete ?? p.verificationUri}`);
      ctx.io.err(`        and enter the code ${p.userCode}`);
    },
    notice: (line) => ctx.io.err(`dlpctl: ${line}`),
  });
  const who = `${identity.subject}${identity.verified ? '' : ' (unverified local user)'}`;
  if (!identityAllowed(identity, resource.allow)) {
    watch?.close();
    throw new DlpctlError(
      'AUTH_REQUIRED',
      `${who} may not open ${resource.name}: not in its allow list (${(resource.allow ?? []).join(', ')}); ask an administrator, or sign in as another identity with dlpctl login`,
    );
  }
  const secretOpts = { env: ctx.env, homedir: ctx.homedir, baseDir: path.dirname(config.file) };
  await policy.initSqlParser();
  const policies = policy.resolvePolicies(resource.policies, config.policies);
  const storeUrl = await resolveStoreUrl(ctx);
  const [{ openStore }, { openEngine }, { Tunnel }, { startChild }] = await Promise.all([
    import('../../store/index.js'),
    import('../../proxy/engine-factory.js'),
    import('../../proxy/tunnel.js'),
    import('../../proxy/child.js'),
  ]);
  // WAL checkpoints and full-text indexing run beside the thread that relays traffic (see SqliteStore).
  const store = await openStore(storeUrl, { threads: 'tunnel' });
  const [{ Checkpointer, closeCrashedSessions, thisOwner }, { configuredCheckpointer }] = await Promise.all([import('../../audit/checkpointer.js'), import('../checkpoints.js')]);
  // Sessions a dlpctl process of this host left open when it died are closed as crashed (DESIGN §5).
  const crashed = await closeCrashedSessions(store).catch(() => [] as string[]);
  if (crashed.length > 0) ctx.io.err(`dlpctl: closed ${crashed.length} session${crashed.length === 1 ? '' : 's'} left open by a dlpctl process that died (outcome crashed)`);
  let checkpointer: InstanceType<typeof Checkpointer>;
  try {
    checkpointer = await configuredCheckpointer(config, store, secretOpts, (m) => ctx.io.err(`dlpctl: ${m}`));
    checkpointer.start();
  } catch (err) {
    await store.close();
    throw err;
  }
  const webhook = config.approvals?.webhook ? await resolveSecret(config.approvals.webhook, secretOpts).catch(() => undefined) : undefined;
  const [{ pendingNotice, waitingSpinner }, { postWebhook }] = await Promise.all([import('../../approvals/notice.js'), import('../../approvals/webhook.js')]);
  /** The requester's side of an approval: one line, a spinner with the time left on a TTY, the webhook. */
  const announceApproval = async (id: string): Promise<void> => {
    const a = await store.getApproval(id).catch(() => undefined);
    if (!a) return;
    ctx.io.err(pendingNotice(a));
    if (webhook) void postWebhook(webhook, 'created', a).catch(() => {});
    if (!ctx.io.stderr.isTTY || ctx.globals.json) return;
    const stop = waitingSpinner(ctx.io.stderr, a);
    const done = new AbortController();
    setTimeout(() => done.abort(), Math.max(0, Date.parse(a.expiresAt) - Date.now()) + 1000).unref();
    await store.waitForApprovalChange(id, AbortSignal.any([done.signal, ctx.signal]), a.version).catch(() => undefined);
    stop();
  };

  if (opts.request !== undefined && !resource.access) {
    await store.close();
    throw new DlpctlError('USAGE', `--request: ${resource.name} has no access approval (no access: section); connect without --request`);
  }
  // Just-in-time access: the resource opens only on an approved access request, for maxDuration.
  let grant: import('../../approvals/access.js').AccessGrant | null = null;
  if (resource.access) {
    const access = await import('../../approvals/access.js');
    const session = await store.createSession({ resource: resource.name, kind: resource.kind, identity, clientAddr: 'dlpctl connect (access request)', owner: thisOwner(), ...(opts.reason ? { reason: opts.reason } : {}) });
    const req = { sessionId: session.id, resource: resource.name, identity, ...(opts.reason ? { reason: opts.reason } : {}), approvers: resource.access.approvers, maxDurationMs: resource.access.maxDuration };
    try {
      // An approved request is used once: the one named by --request, else one this identity filed earlier.
      grant = await access.useApprovedAccess(store, { ...(opts.request !== undefined ? { id: opts.request } : {}), resource: resource.name, identity, maxDurationMs: resource.access.maxDuration });
      if (grant) {
        ctx.io.err(`dlpctl: using access request ${grant.approval.id}: access to ${resource.name} granted until ${grant.expiresAt.toISOString()}`);
        await store.endSession(session.id, 'ok', { statements: 0, denied: 0, masked: 0, rows: 0, bytesIn: 0, bytesOut: 0 });
      } else if (opts.wait === false) {
        const filed = await access.fileAccessRequest(store, req);
        if (ctx.globals.json) ctx.io.out(JSON.stringify({ type: 'access_requested', id: filed.id, resource: resource.name, expiresAt: filed.expiresAt }));
        else ctx.io.err(`${pendingNotice(filed)}\ndlpctl: once approved, run dlpctl connect ${resource.name} (or --request ${filed.id})`);
        if (webhook) await postWebhook(webhook, 'created', filed).catch(() => {});
        await store.endSession(session.id, 'ok', { statements: 0, denied: 0, masked: 0, rows: 0, bytesIn: 0, bytesOut: 0 });
        await checkpointer.close();
        await store.close();
        watch?.close();
        return ExitCode.approvalDenied;
      } else {
        grant = await access.requestAccess(store, req, { onPending: (a) => void announceApproval(a.id), signal: ctx.signal, ...(webhook ? { webhookUrl: webhook } : {}) });
        ctx.io.err(`dlpctl: access to ${resource.name} granted until ${grant.expiresAt.toISOString()}`);
        await store.endSession(session.id, 'ok', { statements: 0, denied: 0, masked: 0, rows: 0, bytesIn: 0, bytesOut: 0 });
      }
    } catch (err) {
      if (ctx.signal.aborted && err instanceof DlpctlError && err.code === 'APPROVAL_DENIED') {
        // Interrupted while waiting: the request was withdrawn (expired); say so, not "timed out".
        const reason = ctx.signal.reason instanceof DlpctlError ? ctx.signal.reason : undefined;
        err = new DlpctlError('APPROVAL_DENIED', `${reason?.message ?? 'interrupted'} while waiting for access to ${resource.name}; the access request is withdrawn`, { exitCode: reason?.exitCode ?? ExitCode.approvalDenied });
      }
      await store.endSession(session.id, 'denied', { statements: 0, denied: 1, masked: 0, rows: 0, bytesIn: 0, bytesOut: 0 }).catch(() => {});
      await checkpointer.close();
      await store.close();
      watch?.close();
      throw err;
    }
  }
  let opened;
  try {
    opened = await openEngine({
      resource,
      config,
      policies,
      store,
      identity,
      ...(opts.reason ? { reason: opts.reason } : {}),
      resolve: (s) => resolveSecret(s, secretOpts),
      onApprovalPending: (id) => void announceApproval(id),
      env: ctx.env,
      homedir: ctx.homedir,
    });
  } catch (err) {
    await checkpointer.close();
    await store.close();
    throw err;
  }
  const engine = opened.engine;
  const tunnel = new Tunnel({
    resource: resource.name,
    kind: resource.kind,
    host,
    ...(port !== undefined ? { port } : {}),
    ...(maxSessionDuration !== undefined ? { maxSessionMs: maxSessionDuration } : {}),
    clientTls: opened.clientTls,
    engine,
  });
  // Losing the identity ends the tunnel's sessions and refuses new ones (DESIGN §6).
  let revoked: string | null = null;
  let revokedExit: number = ExitCode.auth;
  const ended = new AbortController();
  const revoke = (reason: string, exit: number = ExitCode.auth) => {
    if (revoked) return;
    revokedExit = exit;
    revoked = reason;
    tunnel.refuseNew(reason);
    flushLines();
    ctx.io.err(`dlpctl: ${reason}; ending every session of this tunnel`);
    void tunnel.terminateAll(reason);
    ended.abort();
  };
  watch?.on('revoked', (reason: string) => revoke(`identity no longer valid: ${reason}`));
  let cancelGrant = () => {};
  if (grant) {
    const { scheduleGrantEnd } = await import('../../approvals/access.js');
    const { watchGrantRevocation } = await import('../../approvals/access.js');
    const endTimer = scheduleGrantEnd(grant, () => revoke(`the access grant for ${resource.name} expired`, ExitCode.approvalDenied));
    const endWatch = watchGrantRevocation(store, grant, (a) => {
      const last = a.decisions.findLast((d) => d.decision === 'deny');
      revoke(`the access grant ${a.id} for ${resource.name} was revoked${last ? ` by ${last.by}${last.comment ? `: ${last.comment}` : ''}` : ''}`, ExitCode.approvalDenied);
    });
    cancelGrant = () => {
      endTimer();
      endWatch();
    };
  }
  watch?.on('refreshed', (fresh: typeof identity) => {
    if (!identityAllowed(fresh, resource.allow)) revoke(`${fresh.subject} is no longer in the allow list of ${resource.name}`);
  });
  const c = ctx.io.errColor;
  // stdout and stderr to a pipe are blocking writes on Linux (each wakes the reader): the lines of one
  // tick go out in one write (a burst of sessions otherwise cost two writes each).
  const gathered = { out: [] as string[], err: [] as string[] };
  const flushLines = () => {
    if (gathered.out.length > 0) ctx.io.stdout.write(`${gathered.out.join('\n')}\n`);
    if (gathered.err.length > 0) ctx.io.err(gathered.err.join('\n'));
    gathered.out.length = 0;
    gathered.err.length = 0;
  };
  const gather = (to: 'out' | 'err', line: string) => {
    if (gathered.out.length + gathered.err.length === 0) setImmediate(flushLines);
    gathered[to].push(line);
  };
  tunnel.on('event', (e: TunnelEvent) => {
    if (e.type === 'session_end') checkpointer.soon();
    if (ctx.globals.json) {
      gather('out', JSON.stringify({ ...e, time: new Date().toISOString() }));
      return;
    }
    if (e.type === 'session_start') gather('err', c.dim(`session ${e.sessionId} started from ${e.client}`));
    else if (e.type === 'session_end') gather('err', c.dim(`session ${e.sessionId} ended (${e.outcome})`));
    else if (e.type === 'decision' && e.action !== 'allow') gather('err', `${e.action === 'deny' ? c.red('denied') : c.yellow(e.action)} ${e.summary}${e.rule ? c.dim(` [${e.rule}]`) : ''}`);
    else if (e.type === 'error') gather('err', c.red(`error: ${e.message}`));
  });

  try {
    const address = await tunnel.open();
    if (!ctx.globals.json) {
      const line = `${resource.name} (${opened.describe}) listening on ${address.host}:${address.port}`;
      if (opts.command.length === 0) {
        const help = opened.connectHelp(address, tunnel.url, tunnel.secret);
        ctx.io.err(`${c.green('✓')} ${line}`);
        for (const l of help.stdout) ctx.io.out(l);
        ctx.io.err(c.dim(`${help.hint}   ·   Ctrl-C closes the tunnel`));
      } else {
        ctx.io.err(c.dim(`${line}; running ${opts.command.join(' ')}`));
      }
    }
    if (opts.command.length > 0) {
      const [command, ...args] = opts.command as [string, ...string[]];
      const child = startChild({
        command,
        args,
        baseEnv: ctx.env,
        tunnelEnv: opened.childEnv(address, tunnel.secret),
        // The CI token variables prove dlpctl's identity, not the child's; nor is the store's URL the child's.
        secretEnvNames: [...secretEnvNames(config), ...(credentialEnv ?? []), ...storeEnvNames(ctx.globals.store)],
        cwd: ctx.cwd,
      });
      const status = await child.exited;
      // The command's connections closed with it: let their sessions end on their own (outcome ok) before
      // the tunnel closes; a session still open after this (a background process of the command holds it)
      // is cut, and recorded as terminated.
      await tunnel.settle(CHILD_SETTLE_MS);
      return status;
    }
    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) return resolve();
      ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      ended.signal.addEventListener('abort', () => setTimeout(resolve, 1000), { once: true });
    });
    return revoked ? revokedExit : ExitCode.ok;
  } finally {
    cancelGrant();
    watch?.close();
    await tunnel.close('the tunnel is closing');
    await opened.close();
    await checkpointer.close();
    await store.close();
    flushLines();
  }
}
