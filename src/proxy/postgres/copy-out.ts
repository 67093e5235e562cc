/**
 * COPY out is a result. `COPY table TO STDOUT` and `COPY (query) TO STDOUT` send their rows as CopyData messages
 * with no RowDescription, so the tunnel learns the columns itself: the engine describes the equivalent SELECT on its
 * catalogue connection (Parse + Describe, not executed) and masks with the same plan a SELECT would get (column
 * rules, views, lineage, detectors). The rows are parsed in their format and written back in it:
 *
 *   text:  fields split by the delimiter (default tab), NULL as `\N` (or the NULL option), backslash escapes
 *          (\b \f \n \r \t \v \\ \ooo \xhh and a backslash before any other character, which stands for itself);
 *          a row ends at a newline.
 *   csv:   fields split by the delimiter (default `,`), quoted with QUOTE (default `"`), a quote inside a quoted
 *          field doubled (or preceded by ESCAPE); an unquoted empty field is NULL (or the NULL option); a quoted
 *          field may hold newlines.
 *   binary: never parsed. The engine denies a binary COPY whose columns a rule masks.
 *
 * PostgreSQL sends one row per CopyData; a row split over several messages is carried to the next one. With
 * HEADER the first row (column names) passes unchanged.
 */
import type { MaskTally, RowPlan } from './result-mask.js';
import type { FieldDescription } from './protocol.js';
import type { TextCodec } from './encoding.js';

export interface CopyFormat {
  format: 'text' | 'csv' | 'binary';
  delimiter: string;
  null: string;
  quote: string;
  escape: string;
  header: boolean;
}

export interface CopyOut extends CopyFormat {
  /** The columns, as a SELECT of the same data describes them. */
  fields: FieldDescription[];
}

/** What a COPY … TO STDOUT statement copies: a relation (with an optional column list) or a query. */
export interface CopySource {
  relation?: string;
  columns?: string[];
  query?: string;
  format: CopyFormat;
}

type Obj = Record<string, unknown>;

/** The source and format of a `COPY … TO STDOUT` from its parse tree (CopyStmt); null for any other statement. */
export function copySourceOf(stmt: unknown, text: string, queryText: (text: string) => string | null): CopySource | null {
  const node = (stmt as { CopyStmt?: Obj } | null)?.CopyStmt;
  if (!node || node.is_from || node.is_program || typeof node.filename === 'string') return null;
  const format = copyFormat(node.options);
  const rv = node.relation as Obj | undefined;
  if (rv && typeof rv.relname === 'string') {
    const relation = [rv.schemaname, rv.relname].filter((x) => typeof x === 'string' && x).join('.');
    const columns = Array.isArray(node.attlist) ? node.attlist.map((a) => String((a as { String?: { sval?: string } }).String?.sval ?? '')) : undefined;
    return { relation, ...(columns ? { columns } : {}), format };
  }
  const query = queryText(text);
  return query === null ? null : { query, format };
}

function copyFormat(options: unknown): CopyFormat {
  const f: CopyFormat = { format: 'text', delimiter: '\t', null: '\\N', quote: '"', escape: '"', header: false };
  let delimiter: string | undefined;
  let nul: string | undefined;
  let escape: string | undefined;
  for (const o of Array.isArray(options) ? options : []) {
    const d = (o as { DefElem?: Obj }).DefElem;
    if (!d) continue;
    const arg = d.arg as { String?: { sval?: string }; Boolean?: { boolval?: boolean }; Integer?: { ival?: number } } | undefined;
    const s = arg?.String?.sval;
    switch (d.defname) {
      case 'format':
        if (s === 'csv' || s === 'binary' || s === 'text') f.format = s;
        break;
      case 'delimiter':
        if (s !== undefined) delimiter = s;
        break;
      case 'null':
        if (s !== undefined) nul = s;
        break;
      case 'quote':
        if (s !== undefined) f.quote = s;
        break;
      case 'escape':
        if (s !== undefined) escape = s;
        break;
      case 'header':
        f.header = arg === undefined || arg.Boolean?.boolval === true || (s !== undefined && !['false', 'off', '0', 'no'].includes(s.toLowerCase())) || arg.Integer?.ival === 1;
        break;
    }
  }
  f.delimiter = delimiter ?? (f.format === 'csv' ? ',' : '\t');
  f.null = nul ?? (f.format === 'csv' ? '' : '\\N');
  f.escape = escape ?? f.quote;
  return f;
}

/** Masks the rows of a text or CSV COPY, one CopyData payload at a time. */
export class CopyRowMasker {
  private readonly plan: RowPlan;
  private readonly f: CopyFormat;
  private readonly tally: MaskTally;
  private carry = '';
  private headerPending: boolean;

  /** `codec`: the session's client encoding (COPY data is in it); null for UTF-8. */
  private readonly codec: TextCodec | null;

  constructor(plan: RowPlan, f: CopyFormat, tally: MaskTally, codec: TextCodec | null = null) {
    this.plan = plan;
    this.f = f;
    this.tally = tally;
    this.headerPending = f.header;
    this.codec = codec && !codec.utf8 ? codec : null;
  }

  /** The masked payload (the same buffer when nothing changed; empty while a row is still incomplete). */
  mask(payload: Buffer): Buffer {
    const text = this.carry + (this.codec ? this.codec.decode(payload, 'COPY data') : payload.toString('utf8'));
    this.carry = '';
    let out = '';
    let changed = false;
    let i = 0;
    while (i < text.length) {
      const end = this.f.format === 'csv' ? csvRowEnd(text, i, this.f) : text.indexOf('\n', i);
      if (end === -1) {
        this.carry = text.slice(i);
        changed = true;
        break;
      }
      const line = text.slice(i, end);
      i = end + 1;
      if (this.headerPending) {
        this.headerPending = false;
        out += line + '\n';
        continue;
      }
      const masked = this.f.format === 'csv' ? this.maskCsv(line) : this.maskText(line);
      if (masked !== line) changed = true;
      out += masked + '\n';
    }
    if (!changed) return payload;
    return this.codec ? this.codec.encode(out) : Buffer.from(out, 'utf8');
  }

  private maskText(line: string): string {
    const raw = line.endsWith('\r') ? line.slice(0, -1) : line;
    const cells = splitText(raw, this.f.delimiter);
    let changed = false;
    const out = cells.map((cell, i) => {
      if (cell === this.f.null) return cell;
      const value = unescapeText(cell);
      const m = this.plan.maskCell(i, value, this.tally);
      if (m === undefined) return cell;
      changed = true;
      return m === null ? this.f.null : escapeText(m, this.f.delimiter);
    });
    return changed ? out.join(this.f.delimiter) + (raw === line ? '' : '\r') : line;
  }

  private maskCsv(line: string): string {
    const cells = splitCsv(line, this.f);
    let changed = false;
    const out = cells.map((c, i) => {
      if (!c.quoted && c.value === this.f.null) return c.raw;
      const m = this.plan.maskCell(i, c.value, this.tally);
      if (m === undefined) return c.raw;
      changed = true;
      return m === null ? this.f.null : quoteCsv(m, this.f);
    });
    return changed ? out.join(this.f.delimiter) : line;
  }
}

/** Splits a text-format row at unescaped delimiters, keeping each field's escapes. */
function splitText(line: string, delimiter: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\') i += 1;
    else if (c === delimiter) {
      out.push(line.slice(start, i));
      start = i + 1;
    }
  }
  out.push(line.slice(start));
  return out;
}

const TEXT_ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

function unescapeText(s: string): string {
  if (!s.includes('\\')) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\' || i + 1 >= s.length) {
      out += c;
      continue;
    }
    const n = s[++i]!;
    if (n in TEXT_ESCAPES) out += TEXT_ESCAPES[n];
    else if (n >= '0' && n <= '7') {
      let j = i;
      while (j < s.length && j < i + 3 && s[j]! >= '0' && s[j]! <= '7') j++;
      out += String.fromCharCode(parseInt(s.slice(i, j), 8));
      i = j - 1;
    } else if (n === 'x' && /[0-9a-fA-F]/.test(s[i + 1] ?? '')) {
      let j = i + 1;
      while (j < s.length && j < i + 3 && /[0-9a-fA-F]/.test(s[j]!)) j++;
      out += String.fromCharCode(parseInt(s.slice(i + 1, j), 16));
      i = j - 1;
    } else out += n;
  }
  return out;
}

function escapeText(s: string, delimiter: string): string {
  let out = '';
  for (const c of s) {
    if (c === '\\') out += '\\\\';
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else if (c === delimiter) out += `\\${c}`;
    else out += c;
  }
  return out;
}

/** Where the CSV row starting at `from` ends (its newline), honouring quoted newlines; -1 when incomplete. */
function csvRowEnd(text: string, from: number, f: CopyFormat): number {
  let quoted = false;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === f.escape && f.escape !== f.quote && text[i + 1] !== undefined) i += 1;
      else if (c === f.quote) {
        if (f.escape === f.quote && text[i + 1] === f.quote) i += 1;
        else quoted = false;
      }
    } else if (c === f.quote) quoted = true;
    else if (c === '\n') return i;
  }
  return -1;
}

function splitCsv(line: string, f: CopyFormat): { raw: string; value: string; quoted: boolean }[] {
  const out: { raw: string; value: string; quoted: boolean }[] = [];
  let i = 0;
  const row = line.endsWith('\r') ? line.slice(0, -1) : line;
  for (;;) {
    const start = i;
    let value = '';
    let quoted = false;
    while (i < row.length && row[i] !== f.delimiter) {
      const c = row[i]!;
      if (c === f.quote) {
        quoted = true;
        i += 1;
        while (i < row.length) {
          const q = row[i]!;
          if (q === f.escape && f.escape !== f.quote && i + 1 < row.length) {
            value += row[i + 1];
            i += 2;
          } else if (q === f.quote) {
            if (f.escape === f.quote && row[i + 1] === f.quote) {
              value += q;
              i += 2;
            } else {
              i += 1;
              break;
            }
          } else {
            value += q;
            i += 1;
          }
        }
      } else {
        value += c;
        i += 1;
      }
    }
    out.push({ raw: row.slice(start, i), value, quoted });
    if (i >= row.length) break;
    i += 1;
  }
  if (row !== line) out[out.length - 1]!.raw += '\r';
  return out;
}

function quoteCsv(s: string, f: CopyFormat): string {
  const needs = s === f.null || s.includes(f.delimiter) || s.includes(f.quote) || s.includes('\n') || s.includes('\r') || (f.escape !== f.quote && s.includes(f.escape));
  if (!needs) return s;
  let out = '';
  for (const c of s) out += c === f.quote || (c === f.escape && f.escape !== f.quote) ? (f.escape === f.quote ? c + c : f.escape + c) : c;
  return f.quote + out + f.quote;
}

/**
 * The text of the query in `COPY ( query ) TO …`: from the first `(` after COPY to its matching `)`, skipping
 * string literals, quoted identifiers, dollar quotes and comments. Null when there is none.
 */
export function copyQueryText(sql: string): string | null {
  let depth = 0;
  let start = -1;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i]!;
    if (c === '-' && sql[i + 1] === '-') {
      const e = sql.indexOf('\n', i);
      i = e === -1 ? sql.length : e;
    } else if (c === '/' && sql[i + 1] === '*') {
      const e = sql.indexOf('*/', i + 2);
      i = e === -1 ? sql.length : e + 1;
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < sql.length && !(sql[j] === c && sql[j + 1] !== c)) j += sql[j] === c ? 2 : 1;
      i = j;
    } else if (c === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64));
      if (m) {
        const e = sql.indexOf(m[0], i + m[0].length);
        i = e === -1 ? sql.length : e + m[0].length - 1;
      }
    } else if (c === '(') {
      if (depth === 0) start = i + 1;
      depth += 1;
    } else if (c === ')') {
      depth -= 1;
      if (depth === 0 && start !== -1) return sql.slice(start, i).trim();
    }
  }
  return null;
}

/** `SELECT cols FROM relation` for a `COPY relation (cols) TO`, names quoted as the parser reported them. */
export function copyRelationSelect(relation: string, columns: readonly string[] | undefined): string {
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  const cols = columns && columns.length > 0 ? columns.map(q).join(', ') : '*';
  return `SELECT ${cols} FROM ${relation.split('.').map(q).join('.')}`;
}
