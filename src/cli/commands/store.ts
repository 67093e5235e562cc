/** `dlpctl store migrate | info | prune`. */
import path from 'node:path';
import { DlpctlError, ExitCode } from '../../errors.js';
import type { SessionStore } from '../../store/index.js';
import type { CommandContext } from '../context.js';
import { printJson } from '../io.js';
import { resolveStoreUrl } from '../load.js';

/** Only `migrate` creates a SQLite store: `info` or `prune` on a mistyped path says so rather than report an empty one. */
async function withStore<T>(ctx: CommandContext, work: (store: SessionStore) => Promise<T>, opts: { create?: boolean } = {}): Promise<T> {
  const url = await resolveStoreUrl(ctx);
  const { openStore } = await import('../../store/index.js');
  const store = await openStore(url, { homedir: ctx.homedir, create: opts.create ?? false });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

export async function runStoreMigrate(ctx: CommandContext): Promise<number> {
  return withStore(ctx, async (store) => {
    await store.migrate();
    const info = await store.info();
    if (ctx.globals.json) printJson(ctx.io, { engine: info.engine, url: info.url, schemaVersion: info.schemaVersion });
    else ctx.io.out(`${ctx.io.color.green('✓')} ${info.url} is at schema version ${info.schemaVersion}`);
    return ExitCode.ok;
  }, { create: true });
}

export async function runStoreInfo(ctx: CommandContext): Promise<number> {
  return withStore(ctx, async (store) => {
    const info = await store.info();
    if (ctx.globals.json) {
      printJson(ctx.io, info);
      return ExitCode.ok;
    }
    const c = ctx.io.color;
    const rows: [string, string][] = [
      ['engine', info.engine],
      ['url', info.url],
      ['schema', `${info.schemaVersion} (this dlpctl knows ${info.binaryVersion})`],
      ['sessions', String(info.sessions)],
      ['events', String(info.events)],
      ['approvals', String(info.approvals)],
    ];
    if (info.sizeBytes !== undefined) rows.push(['size', formatBytes(info.sizeBytes)]);
    for (const [k, v] of rows) ctx.io.out(`${c.bold(k.padEnd(10))} ${v}`);
    return ExitCode.ok;
  });
}

export async function runStorePrune(ctx: CommandContext, opts: { olderThan: string }): Promise<number> {
  const { parseDuration } = await import('../../config/index.js');
  let ms: number;
  try {
    ms = parseDuration(opts.olderThan);
  } catch {
    throw new DlpctlError('USAGE', `--older-than: "${opts.olderThan}" is not a duration; use a number with a unit, e.g. 90d, 12h, 30m`);
  }
  return withStore(ctx, async (store) => {
    const result = await store.prune(ms, new Date());
    // A checkpoint right after: with a signing key, the prune is vouched for, and the sessions it removed are
    // accounted for when `audit verify --public-key` finds them gone.
    const [{ loadCliConfig }, { configuredCheckpointer }] = await Promise.all([import('../load.js'), import('../checkpoints.js')]);
    const config = await loadCliConfig(ctx, { required: false });
    const cp = await configuredCheckpointer(config, store, { env: ctx.env, homedir: ctx.homedir, ...(config ? { baseDir: path.dirname(config.file) } : {}) }, (m) => ctx.io.err(`dlpctl: ${m}`));
    await cp.close();
    if (ctx.globals.json) printJson(ctx.io, { ...result, olderThan: opts.olderThan });
    else ctx.io.out(`removed ${result.sessionsRemoved} sessions (${result.eventsRemoved} events) that ended more than ${opts.olderThan} ago`);
    return ExitCode.ok;
  });
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
