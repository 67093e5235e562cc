/**
 * Shared plumbing for commands: load the configuration with the DLP checks wired in (regex safety, entity
 * names), and find the store URL by the documented precedence.
 */
import type { Config } from '../config/types.js';
import type { CommandContext } from './context.js';

export async function loadCliConfig(ctx: CommandContext, opts: { required: boolean; file?: string }): Promise<Config | null> {
  const [{ loadConfig }, dlp] = await Promise.all([import('../config/index.js'), import('../dlp/index.js')]);
  return loadConfig({
    file: opts.file ?? ctx.globals.config,
    env: ctx.env,
    cwd: ctx.cwd,
    homedir: ctx.homedir,
    required: opts.required,
    hooks: { checkRegex: dlp.checkRegexSafety, knownEntities: new Set<string>([...dlp.ENTITY_NAMES, 'secrets']) },
  });
}

/**
 * The store URL, first found wins: --store / $DLPCTL_STORE, the config's `store`, the user setting `store`,
 * then the embedded default sqlite:$XDG_DATA_HOME/dlpctl/store.db. Secret references are resolved here.
 */
export async function resolveStoreUrl(ctx: CommandContext): Promise<string> {
  const { parseSecretString, resolveSecret, getSetting } = await import('../config/index.js');
  if (ctx.globals.store) {
    // --store / DLPCTL_STORE take the config's secret references, so no password need be on a command line.
    return resolveSecret(parseSecretString(ctx.globals.store), { env: ctx.env, homedir: ctx.homedir, baseDir: ctx.cwd });
  }
  const config = await loadCliConfig(ctx, { required: false });
  if (config?.store) {
    const { dirname } = await import('node:path');
    return resolveSecret(parseSecretString(config.store), { env: ctx.env, homedir: ctx.homedir, baseDir: dirname(config.file) });
  }
  const fromSettings = getSetting('store', { env: ctx.env });
  if (typeof fromSettings === 'string' && fromSettings) return fromSettings;
  const { defaultStoreUrl } = await import('../store/index.js');
  return defaultStoreUrl(ctx.env, ctx.homedir);
}
