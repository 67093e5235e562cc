/** `dlpctl resources`: what can be connected to, without any secret. */
import { ExitCode } from '../../errors.js';
import type { CommandContext } from '../context.js';
import { printJson, renderTable } from '../io.js';
import { loadCliConfig } from '../load.js';

export async function runResources(ctx: CommandContext): Promise<number> {
  const config = await loadCliConfig(ctx, { required: true });
  const { describeTarget } = await import('../../config/index.js');
  const items = Object.values(config?.resources ?? {}).map((r) => ({
    id: r.name,
    name: r.name,
    kind: r.kind,
    target: describeTarget(r),
    listen: r.listen ? `${r.listen.host}:${r.listen.port}` : '127.0.0.1:0',
    policies: r.policies,
    default: r.default,
    enforce: r.enforce,
  }));
  if (ctx.globals.json) {
    printJson(ctx.io, items);
    return ExitCode.ok;
  }
  if (items.length === 0) {
    ctx.io.err(`no resources in ${config?.file}; add one under "resources:" (see man dlpctl.yaml)`);
    return ExitCode.ok;
  }
  const c = ctx.io.color;
  ctx.io.out(
    renderTable(
      ctx.io,
      ['name', 'kind', 'target', 'listen', 'policies'],
      items.map((i) => [c.cyan(i.name), i.kind, i.target, i.listen, i.policies.join(',') + (i.enforce ? '' : c.yellow(' (observe only)'))]),
    ),
  );
  return ExitCode.ok;
}
