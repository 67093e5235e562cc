/**
 * The dlpctl.yaml(5) man page and a Markdown reference, both rendered from `CONFIG_SCHEMA`: every key path,
 * its type, default and doc come from the schema the validator walks.
 */
import { readFileSync } from 'node:fs';
import { BUILTIN_POLICY_NAMES, CONFIG_SCHEMA, describeType, schemaKeyPaths, STRING_FORMATS } from './schema.js';
import type { ObjectConstraint, SchemaKeyEntry, SchemaNode } from './schema.js';
import { formatDuration } from './units.js';

interface DocEntry {
  path: string;
  node: SchemaNode;
  variants: string[];
  section: string;
}

/** Key entries with the keys shared by several resource kinds merged into one entry. */
function docEntries(): DocEntry[] {
  const out: DocEntry[] = [];
  const byKey = new Map<string, DocEntry>();
  for (const e of schemaKeyPaths() as SchemaKeyEntry[]) {
    const id = `${e.path}`;
    const prev = byKey.get(id);
    if (prev !== undefined && prev.node === e.node) {
      if (e.variant !== undefined) prev.variants.push(e.variant);
      continue;
    }
    const entry: DocEntry = { path: e.path, node: e.node, variants: e.variant === undefined ? [] : [e.variant], section: e.section };
    if (prev === undefined) byKey.set(id, entry);
    out.push(entry);
  }
  return out;
}

/** Objects with constraints, by path (for the "rules" notes). */
function constraintNotes(): { path: string; constraints: readonly ObjectConstraint[] }[] {
  const out: { path: string; constraints: readonly ObjectConstraint[] }[] = [];
  const visit = (node: SchemaNode, path: string): void => {
    if (node.type === 'object') {
      if (node.constraints !== undefined) out.push({ path, constraints: node.constraints });
      for (const [k, c] of Object.entries(node.keys)) visit(c, path === '' ? k : `${path}.${k}`);
    } else if (node.type === 'list') visit(node.items, `${path}[]`);
    else if (node.type === 'map') visit(node.values, `${path}.${node.keyName}`);
    else if (node.type === 'variant') for (const v of Object.values(node.variants)) visit(v, path);
  };
  visit(CONFIG_SCHEMA, '');
  return out;
}

function defaultText(node: SchemaNode): string | undefined {
  if (node.defaultDoc !== undefined) return node.defaultDoc;
  if (node.default === undefined) return undefined;
  if (node.type === 'duration' && typeof node.default === 'number') return formatDuration(node.default);
  const d = node.default;
  if (Array.isArray(d)) return d.length === 0 ? '[]' : `[${d.join(', ')}]`;
  if (typeof d === 'object' && d !== null) return Object.keys(d).length === 0 ? '{}' : JSON.stringify(d);
  return String(d);
}

/** The facts about a key as short phrases: required, default, only-when, format. */
function facts(e: DocEntry): string[] {
  const n = e.node;
  const out = [describeType(n)];
  if (n.required === true) out.push('required');
  const def = defaultText(n);
  if (def !== undefined) out.push(`default ${def}`);
  for (const c of n.onlyWhen ?? []) out.push(`only when ${c.key} is ${c.values.join(' or ')}`);
  const fmt = n.type === 'string' ? n.format : n.type === 'list' && n.items.type === 'string' ? n.items.format : undefined;
  if (fmt !== undefined) out.push(STRING_FORMATS[fmt]);
  if (n.type === 'list' && n.items.type === 'string' && n.items.secret === true) out.push('secret references allowed');
  if (n.type === 'map' && n.values.type === 'string' && n.values.secret === true) out.push('values may contain secret references');
  return out;
}

function secretKeyPaths(): string[] {
  return docEntries()
    .filter((e) => (e.node.type === 'string' && e.node.secret === true) || (e.node.type === 'map' && e.node.values.type === 'string' && e.node.values.secret === true))
    .map((e) => e.path);
}

const SECTION_ORDER = Object.keys(CONFIG_SCHEMA.keys);

function readExample(): string {
  try {
    return readFileSync(new URL('../../examples/dlpctl.yaml', import.meta.url), 'utf8');
  } catch {
    return 'version: 1\n';
  }
}

// ── roff ────────────────────────────────────────────────────────────────────────────────────────────────────

/** Escapes text for roff and turns `code` into bold. */
function roff(text: string): string {
  const escaped = text.replace(/\\/g, '\\e').replace(/-/g, '\\-');
  return escaped.replace(/`([^`]+)`/g, '\\fB$1\\fR');
}
const roffLine = (line: string): string => {
  const t = line.replace(/\\/g, '\\e').replace(/-/g, '\\-');
  return /^[.']/.test(t) ? `\\&${t}` : t;
};

const DURATION_TEXT =
  'A duration is a number with a unit, largest unit first: `ms`, `s`, `m`, `h`, `d`, `w` \u2014 for example `500ms`, `15m`, `1h30m`, `90d`. A bare number is an error. ' +
  'A size is a number of bytes (`512`) or a number with a unit: `B`, `KB`, `MB`, `GB`, `TB` (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024), case-insensitive, for example `50MB` or `1KiB`.';

const SECRET_TEXT = [
  'A secret reference inside a string names where a secret lives: `${env:NAME}` (an environment variable), `${file:PATH}` (a file; `~` is the home directory, a relative path is relative to the config file, one trailing newline is removed) or `${keychain:NAME}` (an OS keychain entry). Write `$${` for a literal `${`.',
  'Secrets are resolved only when a tunnel opens, never printed, never written to the session store, and never passed to a child process: `dlpctl connect RESOURCE -- COMMAND` removes every environment variable a `${env:…}` reference names from the command\u2019s environment. A missing or empty variable, an unreadable file or a missing keychain entry stops the tunnel with an error naming the reference, never the value.',
  'Inside `{ }` or `[ ]` (YAML flow style) a value that contains `${…}` must be quoted.',
];

/** dlpctl.yaml(5), in roff. `exampleYaml` defaults to examples/dlpctl.yaml of the package. */
export function renderConfigManPage(exampleYaml: string = readExample()): string {
  const L: string[] = [];
  L.push('.TH DLPCTL.YAML 5 "" "dlpctl" "File Formats"');
  L.push('.SH NAME');
  L.push('dlpctl.yaml \\- configuration of dlpctl: resources, policies, identity and policy tests');
  L.push('.SH SYNOPSIS');
  L.push(roff('`./dlpctl.yaml`, `$XDG_CONFIG_HOME/dlpctl/dlpctl.yaml`, or the file named by `--config` or `$DLPCTL_CONFIG`.'));
  L.push('.SH DESCRIPTION');
  L.push(roff('dlpctl reads one YAML file that declares the targets it opens tunnels to (resources), the rules applied to what passes through them (policies), the identity provider, the session store and tests of the policies.'));
  L.push('.PP');
  L.push(roff('The file is validated strictly: an unknown key, a wrong type, a malformed duration, size or secret reference, or a reference to a policy or resource that does not exist is an error that names the file, line, column and key path, and dlpctl exits with status 2. All problems are reported at once.'));
  L.push('.PP');
  L.push(roff('Below, `<name>` stands for a name you choose and `[]` for each entry of a list.'));
  const entries = docEntries();
  const notes = constraintNotes();
  for (const section of SECTION_ORDER) {
    const top = CONFIG_SCHEMA.keys[section] as SchemaNode;
    L.push(`.SS ${section}`);
    L.push(roff(top.doc));
    for (const e of entries.filter((x) => x.section === section)) {
      L.push('.TP');
      L.push(`.B ${roff(e.path)}`);
      const kinds = e.variants.length > 0 && e.variants.length < 3 ? `(${e.variants.join(', ')} resources) ` : '';
      L.push(roff(`${kinds}${facts(e).join('; ')}.`));
      if (e.node.doc !== '') L.push(roff(e.node.doc));
    }
    for (const n of notes.filter((x) => x.path.split(/[.[]/)[0] === section)) {
      for (const c of n.constraints) {
        L.push('.PP');
        L.push(roff(`${n.path}: ${c.message}.`));
      }
    }
    if (section === 'policies') {
      L.push('.PP');
      L.push(roff(`Built-in policies, usable in a resource's \`policies\` without defining them: ${[...BUILTIN_POLICY_NAMES].map((p) => `\`${p}\``).join(', ')}. Among the matching allow, deny and approve rules the strictest wins (deny > approve > allow); with none, the resource's \`default\`. Every matching mask rule applies, and the strictest limits.`));
    }
  }
  L.push('.SH SECRET REFERENCES');
  for (const p of SECRET_TEXT) {
    L.push(roff(p));
    L.push('.PP');
  }
  L.push(roff(`Keys that take secret references: ${secretKeyPaths().map((p) => `\`${p}\``).join(', ')}. Elsewhere a secret reference is an error.`));
  L.push('.SH DURATIONS AND SIZES');
  L.push(roff(DURATION_TEXT));
  L.push('.SH EXAMPLE');
  L.push('.RS 4');
  L.push('.nf');
  for (const line of exampleYaml.replace(/\n$/, '').split('\n')) L.push(roffLine(line));
  L.push('.fi');
  L.push('.RE');
  L.push('.SH FILES');
  L.push('.TP');
  L.push('.B ./dlpctl.yaml');
  L.push(roff('Looked at after `--config FILE` and `$DLPCTL_CONFIG`.'));
  L.push('.TP');
  L.push(`.B ${roff('$XDG_CONFIG_HOME/dlpctl/dlpctl.yaml')}`);
  L.push(roff('Looked at last (`~/.config` when `XDG_CONFIG_HOME` is unset).'));
  L.push('.TP');
  L.push(`.B ${roff('$XDG_CONFIG_HOME/dlpctl/settings.json')}`);
  L.push(roff('User settings (store, issuer, color, output), set with `dlpctl config set KEY VALUE`.'));
  L.push('.SH SEE ALSO');
  L.push('.BR dlpctl (1)');
  return `${L.join('\n')}\n`;
}

// ── Markdown ────────────────────────────────────────────────────────────────────────────────────────────────

const mdCell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** A Markdown reference of every key, one table per top-level key (for the README or docs site). */
export function renderConfigMarkdownReference(): string {
  const L: string[] = ['# dlpctl.yaml reference', '', '`<name>` stands for a name you choose and `[]` for each entry of a list.', ''];
  const entries = docEntries();
  const notes = constraintNotes();
  for (const section of SECTION_ORDER) {
    const top = CONFIG_SCHEMA.keys[section] as SchemaNode;
    L.push(`## \`${section}\``, '', top.doc, '', '| key | type | description |', '|---|---|---|');
    for (const e of entries.filter((x) => x.section === section)) {
      const kinds = e.variants.length > 0 && e.variants.length < 3 ? ` (${e.variants.join(', ')})` : '';
      L.push(`| \`${mdCell(e.path)}\`${kinds} | ${mdCell(facts(e).join('; '))} | ${mdCell(e.node.doc)} |`);
    }
    const sectionNotes = notes.filter((x) => x.path.split(/[.[]/)[0] === section).flatMap((n) => n.constraints.map((c) => `- \`${n.path}\`: ${c.message}.`));
    if (sectionNotes.length > 0) L.push('', ...sectionNotes);
    L.push('');
  }
  L.push('## Secret references', '', ...SECRET_TEXT.flatMap((p) => [p, '']), `Keys that take secret references: ${secretKeyPaths().map((p) => `\`${p}\``).join(', ')}.`, '');
  L.push('## Durations and sizes', '', DURATION_TEXT, '');
  return L.join('\n');
}
