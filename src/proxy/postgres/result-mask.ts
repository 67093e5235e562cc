/**
 * Masking of result rows. A plan is made once per result from its RowDescription:
 *
 *   - a column that a mask rule names (`public.customers.ssn`, `customers.ssn`, `*.email`) is masked whole,
 *     found through the field's table OID and column number, resolved in the upstream catalogue (cached);
 *   - every other text-like cell goes through the DLP detectors (the second line);
 *   - a masked cell of a non-text type becomes NULL (a client expecting an int must not get "[REDACTED]").
 *
 * A DataRow is rebuilt only when a cell changed (from its raw bytes, data-row.ts); otherwise its original
 * bytes are forwarded.
 */
import type { DlpEngine } from '../../dlp/index.js';
import { isSecretEntity } from '../../dlp/entities.js';
import { applyMasker, partial, partialBytes, partialInPlace, redact, type MaskerContext, type MaskerName, type PseudonymVault } from '../../dlp/maskers.js';
import type { MaskDirective } from '../../policy/index.js';
import { rebuildDataRow, RowCells, type CellReplacement } from './data-row.js';
import type { DerivedMask } from './lineage.js';
import type { FieldDescription } from './protocol.js';
import type { TextCodec } from './encoding.js';

export interface ColumnName {
  schema: string;
  table: string;
  column: string;
}

/**
 * A RowDescription column, resolved: its own name (for a view column, the view's) and the base table column it
 * shows, followed through views (null when it is computed in the view, or the view could not be traced).
 */
export interface ResolvedColumn {
  name: ColumnName;
  base: ColumnName | null;
  /** Set for a column of a view or materialized view: its definition and the column's position in it. */
  view?: { definition: string; index: number; opaque: boolean };
}

export interface ColumnResolver {
  resolve(tableOid: number, columnAttr: number): Promise<ResolvedColumn | null>;
}

/**
 * Catalogue columns that hold sampled values of other columns (planner statistics). When any column rule
 * applies they are masked whole (NULL): dlpctl cannot tell which of their rows describe a masked column, so it
 * errs toward masking. `pg_stats` is a view over `pg_statistic`; the extended-statistics views likewise.
 */
export const STATISTICS_COLUMNS: readonly string[] = [
  'pg_catalog.pg_stats.most_common_vals',
  'pg_catalog.pg_stats.histogram_bounds',
  'pg_catalog.pg_stats.most_common_elems',
  'pg_catalog.pg_statistic.stavalues*',
  'pg_catalog.pg_stats_ext.most_common_vals',
  'pg_catalog.pg_stats_ext.most_common_val_nulls',
  'pg_catalog.pg_stats_ext_exprs.most_common_vals',
  'pg_catalog.pg_stats_ext_exprs.histogram_bounds',
  'pg_catalog.pg_stats_ext_exprs.most_common_elems',
  'pg_catalog.pg_statistic_ext_data.stxd*',
];

/** Type OIDs whose text is the value itself, in text and in binary format. */
const TEXT_TYPES = new Set([25 /* text */, 1043 /* varchar */, 1042 /* bpchar */, 19 /* name */, 114 /* json */, 142 /* xml */, 705 /* unknown */, 18 /* char */]);
const JSON_TYPES = new Set([114, 3802]);
const JSONB = 3802;

/** Whether the detectors read a value of this type (in binary format; every type is read in text format). */
export function isTextLikeType(typeOid: number): boolean {
  return TEXT_TYPES.has(typeOid) || typeOid === JSONB;
}

type CellAction =
  | { kind: 'pass' }
  /** `countKey`: `column:<label>`; `replace`: the masked cell raw[start, end) (made once per result, called per row). */
  | {
      kind: 'column';
      countKey: string;
      replace: (raw: Buffer, start: number, end: number) => Buffer | null;
      /** Masks raw[start, end) where it lies when the masked cell keeps its length (true), else leaves it (false). */
      inPlace?: (raw: Buffer, start: number, end: number) => boolean;
    }
  | { kind: 'scan'; binary: boolean; textLike: boolean; json: boolean; jsonb: boolean };

/** Receives the masked values of a row: by entity, or `column:<label>` for a column rule. */
export type MaskTally = (entity: string, count: number) => void;

export interface RowPlan {
  readonly active: boolean;
  /**
   * The DataRow message `raw` (type byte included) with its masked cells replaced: a new message, or `raw`
   * itself when every masked cell could be masked where it lies (same length; `raw` is changed); null when no
   * cell changed.
   */
  maskRow(raw: Buffer, tally: MaskTally): Buffer | null;
  /** One text-format cell of column `index` (COPY rows): the masked value, null for NULL, undefined when unchanged. */
  maskCell(index: number, value: string, tally: MaskTally): string | null | undefined;
  /**
   * `maskText` on bytes in the session's client encoding (a CopyData payload): null when nothing changed,
   * else the masked text encoded back into that encoding.
   */
  maskBytes(bytes: Buffer): { bytes: Buffer; counts: Record<string, number> } | null;
}

/** One part of a column pattern, compiled: `*` alone, a plain name, or a glob. */
function partMatcher(part: string): (value: string) => boolean {
  if (part === '*') return () => true;
  if (!part.includes('*')) return (value) => value === part;
  const re = new RegExp(`^${part.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^.]*')}$`);
  return (value) => re.test(value);
}

/**
 * Column patterns compiled once (lower-cased, split, globs made regular expressions): every result of every
 * statement under a column rule matches its columns against them, and doing that work per call was 5% of a
 * masking tunnel's CPU under pgbench.
 */
const compiledPatterns = new Map<string, (name: ColumnName) => boolean>();
const MAX_COMPILED_PATTERNS = 10_000;

function compilePattern(pattern: string): (name: ColumnName) => boolean {
  const parts = pattern.toLowerCase().split('.').map(partMatcher);
  if (parts.length === 3) {
    const [schema, table, column] = parts as [(v: string) => boolean, (v: string) => boolean, (v: string) => boolean];
    return (n) => schema(n.schema.toLowerCase()) && table(n.table.toLowerCase()) && column(n.column.toLowerCase());
  }
  if (parts.length === 2) {
    const [table, column] = parts as [(v: string) => boolean, (v: string) => boolean];
    return (n) => table(n.table.toLowerCase()) && column(n.column.toLowerCase());
  }
  const column = parts[0]!;
  return (n) => column(n.column.toLowerCase());
}

/** `schema.table.column`, `table.column` or `column`, each part a glob, case-insensitive. */
export function columnPatternMatches(pattern: string, name: ColumnName): boolean {
  let match = compiledPatterns.get(pattern);
  if (match === undefined) {
    if (compiledPatterns.size >= MAX_COMPILED_PATTERNS) compiledPatterns.clear();
    match = compilePattern(pattern);
    compiledPatterns.set(pattern, match);
  }
  return match(name);
}

/** Whether a column rule's pattern names `c` (its own name or, through views, the base column it shows). */
function ruleFor(rules: readonly MaskDirective[], c: ResolvedColumn): MaskDirective | undefined {
  return rules.find((m) => m.columns!.some((p) => columnPatternMatches(p, c.name) || (c.base !== null && columnPatternMatches(p, c.base))));
}

const STATISTICS_RULE: MaskDirective = { policy: 'dlpctl', rule: 'catalog-statistics', columns: STATISTICS_COLUMNS, with: 'null' };

export interface PlanOptions {
  masks: readonly MaskDirective[];
  resolver: ColumnResolver;
  /** The DLP engine for the entity rules of `masks`, or null when none names entities. */
  dlp: DlpEngine | null;
  hashKey: Uint8Array;
  vault: PseudonymVault;
  /** Computed columns (table OID 0) of a tainted statement are masked whole with this (lineage.ts). */
  derived?: DerivedMask | null;
  /** Per output column: whether a computed column (table OID 0) carries masked data; absent or null: all do when `derived` is set. */
  derivedOutputs?: readonly boolean[] | null;
  /** Column patterns derived from the views the statement reads (`public.v.a`), masked like the first column rule. */
  derivedPatterns?: readonly string[];
  /**
   * The session's client encoding: text cells are in it. A non-UTF-8 (single-byte) one is decoded for the
   * detectors and the masked text encoded back into it, so the client never gets bytes of another encoding.
   */
  codec?: TextCodec | null;
}

/** `fields` null: the shape is unknown, and every cell is scanned as text when DLP rules apply. */
export async function planResult(fields: readonly FieldDescription[] | null, opts: PlanOptions): Promise<RowPlan> {
  const columnRules = opts.masks.filter((m) => m.columns && m.columns.length > 0);
  const codec = opts.codec && !opts.codec.utf8 ? opts.codec : null;
  const actions: CellAction[] = [];
  const fallback: CellAction = fields === null && opts.dlp ? { kind: 'scan', binary: false, textLike: true, json: false, jsonb: false } : { kind: 'pass' };
  let active = fallback.kind !== 'pass';
  // per-column lineage only when it lines up with the result's columns; otherwise every computed column counts
  const derivedRule: MaskDirective | null = opts.derivedPatterns?.length ? { policy: 'dlpctl', rule: 'views', columns: opts.derivedPatterns } : null;
  const outputs = opts.derivedOutputs && fields && opts.derivedOutputs.length === fields.length ? opts.derivedOutputs : null;
  for (const f of fields ?? []) {
    const binary = f.format === 1;
    const textLike = TEXT_TYPES.has(f.typeOid) || f.typeOid === JSONB;
    let action: CellAction = { kind: 'pass' };
    if (columnRules.length > 0 && f.tableOid !== 0) {
      const c = await opts.resolver.resolve(f.tableOid, f.columnAttr);
      // a view column that shows or is computed from masked data (taint.ts) is masked by the first column rule;
      // one of a view that cannot be traced, likewise
      const rule = c
        ? (ruleFor(columnRules, c) ??
          (derivedRule && (c.view?.opaque || ruleFor([derivedRule], c)) ? columnRules[0] : undefined) ??
          ruleFor([STATISTICS_RULE], c))
        : undefined;
      if (rule && c) action = columnAction(rule.with ?? 'redact', (c.base ?? c.name).column, rule.keep ?? 4, textLike && !JSON_TYPES.has(f.typeOid), opts, codec);
    }
    if (action.kind === 'pass' && f.tableOid === 0 && opts.derived && (outputs?.[actions.length] ?? true)) {
      action = columnAction(opts.derived.masker, opts.derived.label, opts.derived.keep, textLike && !JSON_TYPES.has(f.typeOid), opts, codec);
    }
    if (action.kind === 'pass' && opts.dlp && (!binary || textLike)) {
      action = { kind: 'scan', binary, textLike, json: JSON_TYPES.has(f.typeOid), jsonb: f.typeOid === JSONB };
    }
    if (action.kind !== 'pass') active = true;
    actions.push(action);
  }
  const dlp = opts.dlp;
  const decode = (raw: Buffer, start: number, end: number): string => (codec ? codec.decode(raw.subarray(start, end), 'result cell') : raw.toString('utf8', start, end));
  const cells = new RowCells();
  const replacements: CellReplacement[] = [];
  return {
    active,
    maskRow(raw, tally) {
      cells.read(raw);
      let changed = false;
      let inPlace = false;
      for (let i = 0; i < cells.count; i += 1) {
        const a = actions[i] ?? fallback;
        const start = cells.start(i);
        const len = cells.length(i);
        let replacement: CellReplacement; // undefined: unchanged
        if (a.kind !== 'pass' && len >= 0) {
          const end = start + len;
          if (a.kind === 'column') {
            tally(a.countKey, 1);
            if (a.inPlace?.(raw, start, end)) inPlace = true;
            else replacement = a.replace(raw, start, end);
          } else if (dlp && !(!codec && !a.binary && !a.json && dlp.cleanBytes(raw, start, end))) {
            // (ids, digests, lower-case words have nothing to find: cleanBytes spares decoding them)
            const jsonbBinary = a.binary && a.jsonb;
            const text = decode(raw, jsonbBinary ? start + 1 : start, end);
            const r = a.json ? dlp.maskJson(text) : dlp.maskText(text);
            if (r.changed) {
              // (the counts name each entity found, and its masker says whether the cell becomes NULL:
              // cheaper than building the findings of every masked cell)
              const counts = r.counts;
              let toNull = false;
              for (const e in counts) {
                tally(e, counts[e]!);
                if (dlp.maskerFor(e) === 'null') toNull = true;
              }
              replacement = toNull ? null : textCell(codec ? codec.encode(r.text) : Buffer.from(r.text, 'utf8'), a.binary, jsonbBinary);
            }
          }
        }
        replacements[i] = replacement;
        if (replacement !== undefined) changed = true;
      }
      // (a row whose cells were all masked where they lie is the same message, still a view of the upstream
      // chunk: the rows around it go out with it in one write, as unmasked ones do)
      return changed ? rebuildDataRow(raw, cells, replacements) : inPlace ? raw : null;
    },
    maskCell(index, value, tally) {
      const a = actions[index] ?? fallback;
      if (a.kind === 'pass') return undefined;
      if (a.kind === 'column') {
        tally(a.countKey, 1);
        const raw = codec ? codec.encode(value) : Buffer.from(value, 'utf8');
        const out = a.replace(raw, 0, raw.length);
        return out === null ? null : codec ? codec.decode(out, 'COPY data') : out.toString('utf8');
      }
      if (!dlp) return undefined;
      const r = a.json ? dlp.maskJson(value) : dlp.maskText(value);
      if (!r.changed) return undefined;
      let toNull = false;
      for (const e in r.counts) {
        tally(e, r.counts[e]!);
        if (dlp.maskerFor(e) === 'null') toNull = true;
      }
      return toNull ? null : r.text;
    },
    maskBytes(bytes) {
      if (!dlp) return null;
      const text = codec ? codec.decode(bytes, 'COPY data') : bytes.toString('utf8');
      const r = dlp.maskText(text);
      if (!r.changed) return null;
      return { bytes: codec ? codec.encode(r.text) : Buffer.from(r.text, 'utf8'), counts: r.counts };
    },
  };
}

/**
 * A column masked whole. Its replacement is decided once per result: NULL for the null masker and for a
 * cell that would stop being its type (a masked JSON document is no longer JSON, a masked number no longer
 * a number); the same bytes for every row under redact; `partial` straight on the UTF-8 bytes.
 */
function columnAction(masker: MaskerName, label: string, keep: number, textLike: boolean, opts: PlanOptions, codec: TextCodec | null): CellAction {
  const countKey = `column:${label}`;
  const encode = (text: string): Buffer => (codec ? codec.encode(text) : Buffer.from(text, 'utf8'));
  const decode = (raw: Buffer, start: number, end: number): string => (codec ? codec.decode(raw.subarray(start, end), 'result cell') : raw.toString('utf8', start, end));
  if (masker === 'null' || !textLike) return { kind: 'column', countKey, replace: () => null };
  if (masker === 'redact') {
    const fixed = encode(redact(label));
    return { kind: 'column', countKey, replace: () => fixed };
  }
  // (partial on the UTF-8 bytes; in another client encoding, on the decoded text)
  if (masker === 'partial' && !isSecretEntity(label)) {
    return {
      kind: 'column',
      countKey,
      replace: codec ? (raw, start, end) => encode(partial(label, decode(raw, start, end), keep)) : (raw, start, end) => partialBytes(raw, keep, start, end),
      ...(codec ? {} : { inPlace: (raw: Buffer, start: number, end: number) => partialInPlace(raw, keep, start, end) }),
    };
  }
  const ctx: MaskerContext = { keep, hashKey: opts.hashKey, vault: opts.vault };
  return { kind: 'column', countKey, replace: (raw, start, end) => encode(applyMasker(masker, label, decode(raw, start, end), ctx)) };
}

function textCell(b: Buffer, binary: boolean, jsonb: boolean): Buffer {
  return binary && jsonb ? Buffer.concat([Buffer.from([1]), b]) : b;
}
