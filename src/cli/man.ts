/**
 * Renders dlpctl(1) in roff from the command tree itself, so the manual cannot drift from the code.
 * `npm run man` writes man/dlpctl.1 (and man/dlpctl.yaml.5 from the config schema); a test fails when the
 * committed pages differ from what these functions produce.
 */
import type { Command, Option } from 'commander';
import { commandDocs, ENVIRONMENT, EXIT_CODES, VERSION } from './program.js';

export function esc(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => (l.startsWith('.') || l.startsWith("'") ? `\\&${l}` : l))
    .join('\n');
}

function usage(cmd: Command, path: string[]): string {
  const args = cmd.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`)).join(' ');
  const hasOptions = cmd.options.some((o) => !o.hidden);
  return [...path, hasOptions ? '[options]' : '', args].filter(Boolean).join(' ');
}

function optionLines(options: readonly Option[]): string[] {
  const lines: string[] = [];
  for (const o of options) {
    if (o.hidden) continue;
    lines.push('.TP', `.B ${esc(o.flags)}`, esc(o.description + (o.defaultValue !== undefined && typeof o.defaultValue !== 'boolean' && o.defaultValue !== 0 ? ` (default: ${String(o.defaultValue)})` : '')));
  }
  return lines;
}

function walk(cmd: Command, path: string[], out: string[]): void {
  for (const sub of cmd.commands) {
    if ((sub as Command & { _hidden?: boolean })._hidden) continue;
    const p = [...path, sub.name()];
    if (sub.commands.length > 0) {
      walk(sub, p, out);
      continue;
    }
    out.push(`.SS "${esc(usage(sub, p))}"`);
    out.push(esc(sub.description()));
    if (sub.registeredArguments.length) {
      for (const a of sub.registeredArguments) out.push('.TP', `.I ${esc(a.name())}`, esc(a.description || ''));
    }
    out.push(...optionLines(sub.options));
    const docs = commandDocs(sub);
    if (docs.json) out.push('.PP', 'JSON output (\\-\\-json):', '.nf', '.RS 4', esc(docs.json), '.RE', '.fi');
    if (docs.examples) out.push('.PP', 'Examples:', '.nf', '.RS 4', ...docs.examples.map(esc), '.RE', '.fi');
  }
}

/** Extra sections other modules contribute (for example the built-in policy description). */
export interface ManExtras {
  sections?: { title: string; body: string }[];
}

export function renderCommandManPage(program: Command, extras: ManExtras = {}): string {
  const out: string[] = [];
  out.push(`.TH DLPCTL 1 "" "dlpctl ${VERSION}" "dlpctl manual"`);
  out.push('.SH NAME', 'dlpctl \\- ' + esc(program.description()));
  out.push('.SH SYNOPSIS', '.B dlpctl', '[global options] command [options] [arguments]');
  out.push(
    '.SH DESCRIPTION',
    esc(
      'dlpctl opens local tunnels that speak the target\'s own protocol (PostgreSQL, HTTP, SSH) in front of real targets, ' +
        'injects the real credentials upstream so the client never holds them, decides every statement, request and command ' +
        'by policy, masks personal data and secrets in both directions, and records every session in a store that auditors ' +
        'search and verify. The configuration is described in dlpctl.yaml(5).',
    ),
  );
  out.push('.SH GLOBAL OPTIONS', ...optionLines(program.options));
  out.push('.SH COMMANDS');
  walk(program, ['dlpctl'], out);
  for (const s of extras.sections ?? []) out.push(`.SH ${esc(s.title.toUpperCase())}`, '.nf', esc(s.body), '.fi');
  out.push('.SH EXIT STATUS');
  for (const [code, text] of EXIT_CODES) out.push('.TP', `.B ${code}`, esc(text));
  out.push('.SH ENVIRONMENT');
  for (const [name, text] of ENVIRONMENT) out.push('.TP', `.B ${name}`, esc(text));
  out.push('.SH SEE ALSO', 'dlpctl.yaml(5)');
  return `${out.join('\n')}\n`;
}
