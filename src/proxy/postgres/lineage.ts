/**
 * Masking of derived columns. PostgreSQL's RowDescription names the table and column of an output column
 * only when it is a plain column (traced through views, subqueries and CTEs); a computed one —
 * `translate(ssn,'-','')`, `reverse(card)`, `encode(…,'base64')`, `ssn || ''`, `row_to_json(c)`,
 * `json_agg(c)`, `string_agg(email, ',')` — arrives with table OID 0. An agent that wants the data will
 * transform it, so such a column is masked whole when the statement is *tainted*: it names a masked column
 * (as an identifier, outside string literals and comments), or it turns whole rows into values
 * (`row_to_json(t)`, `to_jsonb(t)`, `json_agg(t)`, `ROW(…)`, `t.*` inside a call), which carries every column.
 *
 * This errs on the side of masking: `SELECT count(*) FROM customers WHERE ssn IS NOT NULL` masks the count.
 */
import type { MaskerName } from '../../dlp/index.js';
import type { MaskDirective } from '../../policy/index.js';

export interface DerivedMask {
  masker: MaskerName;
  keep: number;
  /** The rule behind it, for the audit counts. */
  label: string;
}

const ROW_FUNCTIONS = new Set(['row_to_json', 'to_json', 'to_jsonb', 'json_agg', 'jsonb_agg', 'array_agg', 'json_object_agg', 'jsonb_object_agg', 'hstore', 'row', 'format', 'concat', 'concat_ws', 'json_build_array', 'jsonb_build_array', 'json_populate_record', 'xmlelement', 'xmlforest', 'xmlagg', 'query_to_xml', 'table_to_xml']);

/** Identifiers of `sql`, lower-cased unless quoted, skipping literals, dollar quotes and comments. */
export function sqlIdentifiers(sql: string): { idents: string[]; calls: string[]; starInCall: boolean } {
  const idents: string[] = [];
  const calls: string[] = [];
  let starInCall = false;
  let depth = 0;
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    if (c === '-' && sql[i + 1] === '-') {
      const e = sql.indexOf('\n', i);
      i = e === -1 ? n : e + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      let d = 1;
      i += 2;
      while (i < n && d > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') (d += 1), (i += 2);
        else if (sql[i] === '*' && sql[i + 1] === '/') (d -= 1), (i += 2);
        else i += 1;
      }
    } else if (c === "'") {
      i += 1;
      while (i < n) {
        if (sql[i] === "'" && sql[i + 1] === "'") i += 2;
        else if (sql[i] === "'") break;
        else i += 1;
      }
      i += 1;
    } else if (c === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64));
      if (m) {
        const end = sql.indexOf(m[0], i + m[0].length);
        i = end === -1 ? n : end + m[0].length;
      } else i += 1;
    } else if (c === '"') {
      const end = sql.indexOf('"', i + 1);
      const name = sql.slice(i + 1, end === -1 ? n : end).replace(/""/g, '"');
      idents.push(name);
      i = end === -1 ? n : end + 1;
      if (sql.slice(i).trimStart().startsWith('(')) calls.push(name.toLowerCase());
    } else if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_$]/.test(sql[j]!)) j += 1;
      const word = sql.slice(i, j).toLowerCase();
      idents.push(word);
      let k = j;
      while (k < n && /\s/.test(sql[k]!)) k += 1;
      if (sql[k] === '(') calls.push(word);
      i = j;
    } else {
      if (c === '(') depth += 1;
      else if (c === ')') depth = Math.max(0, depth - 1);
      else if (c === '*' && depth > 0 && sql[i - 1] === '.') starInCall = true;
      i += 1;
    }
  }
  return { idents, calls, starInCall };
}

/** The mask to apply to computed output columns of `sql`, or null when the statement is not tainted. */
export function derivedColumnMask(sql: string, masks: readonly MaskDirective[]): DerivedMask | null {
  const columnRules = masks.filter((m) => m.columns && m.columns.length > 0);
  if (columnRules.length === 0) return null;
  const { idents, calls, starInCall } = sqlIdentifiers(sql);
  const names = new Set(idents.map((s) => s.toLowerCase()));
  const rowLevel = starInCall || calls.some((f) => ROW_FUNCTIONS.has(f));
  for (const rule of columnRules) {
    for (const pattern of rule.columns!) {
      const column = pattern.split('.').pop()!.toLowerCase();
      const hit = column.includes('*') ? names.size > 0 : names.has(column);
      if (hit || rowLevel) return { masker: rule.with ?? 'redact', keep: rule.keep ?? 4, label: `derived:${rule.rule}` };
    }
  }
  return null;
}
