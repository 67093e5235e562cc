/** `dlpctl config validate | get | set`. */
import { DlpctlError, ExitCode } from '../../errors.js';
import type { CommandContext } from '../context.js';
import { printJson } from '../io.js';
import { loadCliConfig } from '../load.js';

export async function runConfigValidate(ctx: CommandContext, opts: { file?: string }): Promise<number> {
  const { io } = ctx;
  try {
    const config = await loadCliConfig(ctx, { required: true, file: opts.file });
    if (!config) throw new DlpctlError('CONFIG_NOT_FOUND', 'no configuration file found');
    const summary = {
      file: config.file,
      valid: true,
      resources: Object.keys(config.resources).length,
      policies: Object.keys(config.policies).length,
      tests: config.tests.length,
    };
    if (ctx.globals.json) printJson(io, summary);
    else
      io.out(
        `${io.color.green('✓')} ${config.file} is valid: ${plural(summary.resources, 'resource')}, ${plural(summary.policies, 'policy', 'policies')}, ${plural(summary.tests, 'test')}`,
      );
    return ExitCode.ok;
  } catch (err) {
    if (ctx.globals.json && err instanceof DlpctlError && err.code === 'CONFIG_INVALID') {
      printJson(io, { file: opts.file ?? ctx.globals.config ?? null, valid: false, errors: err.details.length ? err.details : [err.message] });
      return err.exitCode;
    }
    throw err;
  }
}

export async function runConfigGet(ctx: CommandContext, opts: { key?: string }): Promise<number> {
  const { getSetting, listSettings } = await import('../../config/index.js');
  const { io } = ctx;
  if (opts.key) {
    const value = getSetting(opts.key, { env: ctx.env });
    if (ctx.globals.json) printJson(io, { key: opts.key, value: value ?? null });
    else if (value !== undefined && value !== null) io.out(String(value));
    return ExitCode.ok;
  }
  const all = listSettings({ env: ctx.env });
  if (ctx.globals.json) printJson(io, all);
  else for (const [k, v] of Object.entries(all)) io.out(`${k}=${v ?? ''}`);
  return ExitCode.ok;
}

export async function runConfigSet(ctx: CommandContext, opts: { key: string; value: string }): Promise<number> {
  const { setSetting } = await import('../../config/index.js');
  setSetting(opts.key, opts.value, { env: ctx.env });
  if (!ctx.globals.json) ctx.io.err(`${opts.key} set`);
  else printJson(ctx.io, { key: opts.key, value: opts.value });
  return ExitCode.ok;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
