/**
 * `dlpctl login`, `dlpctl logout`, `dlpctl whoami` (DESIGN §6, §7). The work is in src/identity/; these map
 * flags to it and print. No token is ever printed: only who the token says you are.
 */
import { spawn } from 'node:child_process';
import type { IdentityConfig } from '../../config/types.js';
import { DlpctlError, ExitCode } from '../../errors.js';
import type { CommandContext } from '../context.js';
import { printJson } from '../io.js';
import { loadCliConfig } from '../load.js';

export interface LoginOptions {
  issuer?: string;
  clientId?: string;
  open?: boolean;
  tokenStore?: string;
}

export interface WhoamiOptions {
  tokenFile?: string;
  idTokenVar?: string;
}

type IdentitySection = Pick<IdentityConfig, 'issuer' | 'clientId'> & Partial<IdentityConfig>;

/** The identity section to use: the config's, overridden by flags, else the issuer of the last login. */
async function identitySection(ctx: CommandContext, flags: { issuer?: string; clientId?: string }): Promise<{ section: IdentitySection | null; file?: string }> {
  const config = await loadCliConfig(ctx, { required: false });
  const base = config?.identity;
  const { getSetting } = await import('../../config/settings.js');
  let fromSettings: string | undefined;
  try {
    fromSettings = getSetting('issuer', { env: ctx.env });
  } catch {
    fromSettings = undefined;
  }
  const issuer = flags.issuer ?? base?.issuer ?? fromSettings;
  if (!issuer) return { section: null, ...(config ? { file: config.file } : {}) };
  // The config's settings apply to its own issuer, and its client secrets to its own client only.
  const sameIssuer = base && base.issuer === issuer ? base : undefined;
  const same = sameIssuer && flags.clientId !== undefined && flags.clientId !== sameIssuer.clientId ? withoutSecrets(sameIssuer) : sameIssuer;
  let clientId = flags.clientId ?? same?.clientId;
  if (!clientId) {
    const { TokenStore } = await import('../../identity/token-store.js');
    clientId = (await new TokenStore({ env: ctx.env, homedir: ctx.homedir }).get(issuer).catch(() => null))?.login.clientId;
  }
  if (!clientId) throw new DlpctlError('USAGE', `no OAuth client id for ${issuer}: pass --client-id ID or set identity.clientId in dlpctl.yaml`);
  return { section: { ...(same ?? { groupsClaim: 'groups' }), issuer, clientId }, ...(config ? { file: config.file } : {}) };
}

function withoutSecrets(s: IdentitySection): IdentitySection {
  const { clientSecret: _c, loginClientSecret: _l, ...rest } = s;
  return rest;
}

function openBrowser(url: string): void {
  const [cmd, args] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  try {
    const child = spawn(cmd, args as string[], { stdio: 'ignore', detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    /* no browser: the URL is on screen */
  }
}

export async function runLogin(ctx: CommandContext, opts: LoginOptions): Promise<number> {
  const prefer = opts.tokenStore ?? 'auto';
  if (prefer !== 'auto' && prefer !== 'keychain' && prefer !== 'file') throw new DlpctlError('USAGE', `--token-store: "${prefer}" is not keychain or file`);
  const id = await import('../../identity/index.js');
  if (id.isCI(ctx.env) || !ctx.io.stdin.isTTY) {
    throw new DlpctlError(
      'AUTH_REQUIRED',
      `dlpctl login needs a person at a terminal (${id.isCI(ctx.env) ? 'CI is set' : 'stdin is not a terminal'}); in CI set DLPCTL_TOKEN to an OIDC token, pass --token-file, or configure identity.clientSecret`,
    );
  }
  const { section, file } = await identitySection(ctx, opts);
  if (!section) throw new DlpctlError('USAGE', 'no identity provider configured: pass --issuer URL --client-id ID, or add an identity section to dlpctl.yaml');
  const [{ discoverIssuer, issuerSettings }, { TokenStore }] = await Promise.all([import('../../identity/issuer.js'), import('../../identity/token-store.js')]);
  const iss = await discoverIssuer(issuerSettings(section));
  const client = await id.loginClient(iss, section, { env: ctx.env, homedir: ctx.homedir, configFile: file });
  const store = new TokenStore({ env: ctx.env, homedir: ctx.homedir, prefer: prefer as 'auto' | 'keychain' | 'file' });
  let hide: (() => void) | undefined;
  // A line written while the ink screen is up moves the cursor under it, and the screen's clean-up would
  // then erase one line too few (leaving its top border): notices wait until the screen is gone.
  const notices: string[] = [];
  const result = await (async () => {
    try {
      return await id.loginWithDeviceFlow(iss, store, {
        client,
        signal: ctx.signal,
        notice: (line) => void notices.push(`dlpctl: ${line}`),
        onCode: async (prompt) => {
          if (opts.open) openBrowser(prompt.verificationUriComplete ?? prompt.verificationUri);
          if (ctx.io.stderr.isTTY && !ctx.globals.json) {
            const { showDeviceCode } = await import('../../tui/device-code.js');
            hide = showDeviceCode(prompt, { stdout: ctx.io.stderr, stdin: ctx.io.stdin }, { now: Date.now });
          } else {
            const { plainDeviceCode } = await import('../../tui/device-code.js');
            for (const line of plainDeviceCode(prompt, Date.now())) ctx.io.err(line);
          }
        },
      });
    } finally {
      hide?.();
      for (const line of notices) ctx.io.err(line);
    }
  })();
  try {
    const { setSetting } = await import('../../config/settings.js');
    setSetting('issuer', iss.settings.issuer, { env: ctx.env });
  } catch {
    /* settings are a convenience */
  }
  const v = result.login.verified;
  if (ctx.globals.json) {
    printJson(ctx.io, whoamiJson(v.identity, v.expiresAt, 'login'));
  } else {
    const c = ctx.io.errColor;
    ctx.io.err(`${c.green('✓')} logged in to ${iss.settings.issuer} as ${v.identity.email ?? v.identity.subject}${v.identity.groups.length ? ` (groups: ${v.identity.groups.join(', ')})` : ''}`);
    if (!result.login.refreshable) ctx.io.err(c.yellow('note: the provider issued no refresh token (offline_access); you will need to log in again when this login expires'));
  }
  return ExitCode.ok;
}

export async function runLogout(ctx: CommandContext): Promise<number> {
  const { section, file } = await identitySection(ctx, {});
  if (!section) throw new DlpctlError('USAGE', 'no identity provider configured and no previous login; nothing to log out of');
  const [{ discoverIssuer, issuerSettings, describeOidcError }, { TokenStore }, { revokeLogin }, { loginClient }] = await Promise.all([
    import('../../identity/issuer.js'),
    import('../../identity/token-store.js'),
    import('../../identity/human.js'),
    import('../../identity/index.js'),
  ]);
  const store = new TokenStore({ env: ctx.env, homedir: ctx.homedir });
  const stored = await store.get(section.issuer);
  let revoked: 'revoked' | 'unsupported' | 'failed' | 'none' = 'none';
  if (stored) {
    try {
      const iss = await discoverIssuer(issuerSettings(section));
      revoked = await revokeLogin(iss, stored.login, await loginClient(iss, section, { env: ctx.env, homedir: ctx.homedir, configFile: file }));
    } catch (err) {
      revoked = 'failed';
      ctx.io.err(`dlpctl: warning: could not revoke the tokens at ${section.issuer} (${describeOidcError(err)}); the local copies are deleted anyway`);
    }
  }
  const removed = await store.delete(section.issuer);
  if (ctx.globals.json) {
    printJson(ctx.io, { issuer: section.issuer, loggedIn: Boolean(stored), revoked: revoked === 'revoked', removedFrom: removed });
  } else if (!stored) {
    ctx.io.err(`not logged in to ${section.issuer}`);
  } else {
    const how = revoked === 'revoked' ? 'revoked at the provider and ' : revoked === 'unsupported' ? '(the provider has no revocation endpoint) ' : '';
    ctx.io.err(`${ctx.io.errColor.green('✓')} logged out of ${section.issuer}: tokens ${how}removed from ${removed.join(' and ')}`);
  }
  return ExitCode.ok;
}

function whoamiJson(identity: import('../../store/types.js').Identity, expiresAt: number | undefined, source: string) {
  return {
    issuer: identity.issuer,
    subject: identity.subject,
    email: identity.email ?? null,
    groups: identity.groups,
    kind: identity.kind,
    verified: identity.verified,
    expiresAt: expiresAt === undefined ? null : new Date(expiresAt).toISOString(),
    source,
  };
}

export async function runWhoami(ctx: CommandContext, opts: WhoamiOptions): Promise<number> {
  const { section, file } = await identitySection(ctx, {});
  const id = await import('../../identity/index.js');
  const cred = await id.resolveCredential({
    config: section ? { identity: section as IdentityConfig, ...(file ? { file } : {}) } : null,
    env: ctx.env,
    homedir: ctx.homedir,
    ...(opts.tokenFile !== undefined ? { tokenFile: opts.tokenFile } : {}),
    ...(opts.idTokenVar !== undefined ? { idTokenVar: opts.idTokenVar } : {}),
    signal: ctx.signal,
    interactive: false,
    fresh: false,
  });
  const j = whoamiJson(cred.identity, cred.expiresAt, cred.source);
  if (ctx.globals.json) {
    printJson(ctx.io, j);
    return ExitCode.ok;
  }
  const rows: [string, string][] = [
    ['issuer', j.issuer],
    ['subject', j.subject],
    ['email', j.email ?? '-'],
    ['groups', j.groups.length ? j.groups.join(', ') : '-'],
    ['kind', `${j.kind}${j.verified ? ' (verified)' : ' (unverified: no identity section in dlpctl.yaml)'}`],
    ['expires', j.expiresAt ?? '-'],
    ['source', j.source],
  ];
  for (const [k, v] of rows) ctx.io.out(`${ctx.io.color.bold(k.padEnd(8))} ${v}`);
  return ExitCode.ok;
}
