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
  command: string[];
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
  const { identity, watch, maxSessionDuration } = await resolveSessionIdentity({
    config,
    env: ctx.env,
    homedir: ctx.homedir,
    ...(opts.tokenFile ? { tokenFile: path.resolve(ctx.cwd, opts.tokenFile) } : {}),
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
  const store = await openStore(storeUrl);
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
      onApprovalPending: (id) => ctx.io.err(`dlpctl: waiting for approval ${id}; an approver in the rule's groups decides it`),
      env: ctx.env,
      homedir: ctx.homedir,
    });
  } catch (err) {
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
  const revoke = (reason: string) => {
    if (revoked) return;
    revoked = reason;
    tunnel.refuseNew(reason);
    ctx.io.err(`dlpctl: ${reason}; ending every session of this tunnel`);
    void tunnel.terminateAll(`identity no longer valid: ${reason}`);
  };
  watch?.on('revoked', (reason: string) => revoke(reason));
  watch?.on('refreshed', (fresh: typeof identity) => {
    if (!identityAllowed(fresh, resource.allow)) revoke(`${fresh.subject} is no longer in the allow list of ${resource.name}`);
  });
  const c = ctx.io.errColor;
  tunnel.on('event', (e: TunnelEvent) => {
    if (ctx.globals.json) {
      ctx.io.out(JSON.stringify({ ...e, time: new Date().toISOString() }));
      return;
    }
    if (e.type === 'session_start') ctx.io.err(c.dim(`session ${e.sessionId} started from ${e.client}`));
    else if (e.type === 'session_end') ctx.io.err(c.dim(`session ${e.sessionId} ended (${e.outcome})`));
    else if (e.type === 'decision' && e.action !== 'allow') ctx.io.err(`${e.action === 'deny' ? c.red('denied') : c.yellow(e.action)} ${e.summary}${e.rule ? c.dim(` [${e.rule}]`) : ''}`);
    else if (e.type === 'error') ctx.io.err(c.red(`error: ${e.message}`));
  });

  try {
    const address = await tunnel.open();
    if (!ctx.globals.json) {
      const line = `${resource.name} (${opened.describe}) listening on ${address.host}:${address.port}`;
      if (opts.command.length === 0) {
        ctx.io.err(`${c.green('✓')} ${line}`);
        ctx.io.out(tunnel.url);
        ctx.io.err(c.dim('connect with: psql "$URL"   ·   Ctrl-C closes the tunnel'));
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
        secretEnvNames: secretEnvNames(config),
        cwd: ctx.cwd,
      });
      return await child.exited;
    }
    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) return resolve();
      ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      watch?.on('revoked', () => setTimeout(resolve, 1000));
    });
    return revoked ? ExitCode.auth : ExitCode.ok;
  } finally {
    watch?.close();
    await tunnel.close('the tunnel is closing');
    await opened.close();
    await store.close();
  }
}
