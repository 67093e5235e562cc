/**
 * The SQL inside function bodies and DO blocks, as text the classifier and the lineage analysis can parse.
 *
 * - LANGUAGE sql: the body (`AS '…'`) is a list of SQL statements; a `BEGIN ATOMIC … END` body comes parsed with
 *   the CREATE statement and is handled by the caller.
 * - LANGUAGE plpgsql: libpg-query compiles the body (`parsePlPgSQLSync`, which takes the whole CREATE FUNCTION or
 *   DO statement). Every static SQL statement and expression in it is a `PLpgSQL_expr`: statements come as they
 *   are, expressions (`IF a > 0`, `RETURN x`, RAISE parameters, cursor arguments) are turned into `SELECT expr`,
 *   assignments (`r.x := expr`) into `SELECT expr`. Dynamic SQL (EXECUTE, FOR … IN EXECUTE, OPEN … FOR EXECUTE,
 *   RETURN QUERY EXECUTE) builds its text at run time and cannot be analysed: the body is then opaque.
 * - Any other language (plpython3u, c, internal, …) cannot be analysed.
 */
import { parseErrorMessage, parsePlpgsqlTree, scanTokens } from './parser.js';

export interface BodySql {
  /** Static SQL of the body, each a statement text, in source order. */
  readonly statements: readonly string[];
  /** Why (part of) the body cannot be analysed; null when every statement of it is in `statements`. */
  readonly opaque: string | null;
}

type Obj = Record<string, unknown>;

/** PL/pgSQL statement types that run SQL built at run time, and how a reader knows them. */
const DYNAMIC: ReadonlyMap<string, string> = new Map([
  ['PLpgSQL_stmt_dynexecute', 'EXECUTE'],
  ['PLpgSQL_stmt_dynfors', 'FOR … IN EXECUTE'],
]);

/** PostgreSQL's RawParseMode values that libpg-query reports on a PLpgSQL_expr. */
const PARSE_DEFAULT = 0;
const PARSE_TYPE_NAME = 1;
const PARSE_EXPR = 2;

/** The right-hand side of a PL/pgSQL assignment `target := expr` (or `target = expr`), or null. */
function assignmentValue(query: string): string | null {
  let tokens: { start: number; text: string; end: number }[];
  try {
    tokens = scanTokens(query);
  } catch {
    return null;
  }
  let depth = 0;
  for (const t of tokens) {
    if (t.text === '(' || t.text === '[') depth += 1;
    else if (t.text === ')' || t.text === ']') depth -= 1;
    else if (depth === 0 && (t.text === ':=' || t.text === '=')) return Buffer.from(query, 'utf8').subarray(t.end).toString('utf8');
  }
  return null;
}

/**
 * The static SQL of the PL/pgSQL bodies of `statementText` (a whole CREATE FUNCTION / CREATE PROCEDURE / DO
 * statement). `what` names the code in messages: `function g`, `DO block`.
 */
export function plpgsqlBodySql(statementText: string, what: string): BodySql {
  let tree: unknown;
  try {
    tree = parsePlpgsqlTree(statementText);
  } catch (err) {
    return { statements: [], opaque: `the PL/pgSQL body of ${what} could not be parsed (${parseErrorMessage(err)})` };
  }
  const statements: string[] = [];
  const dynamic: string[] = [];
  let unreadable = false;
  const stack: unknown[] = [tree];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === null || typeof node !== 'object') continue;
    if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i--) stack.push(node[i]);
      continue;
    }
    const o = node as Obj;
    const keys = Object.keys(o);
    for (let k = keys.length - 1; k >= 0; k--) {
      const key = keys[k]!;
      const v = o[key];
      if (v === null || typeof v !== 'object') continue;
      const dyn = DYNAMIC.get(key) ?? ((key === 'PLpgSQL_stmt_open' || key === 'PLpgSQL_stmt_return_query') && (v as Obj).dynquery !== undefined
        ? key === 'PLpgSQL_stmt_open' ? 'OPEN … FOR EXECUTE' : 'RETURN QUERY EXECUTE'
        : undefined);
      if (dyn !== undefined && !dynamic.includes(dyn)) dynamic.push(dyn);
      if (key === 'PLpgSQL_expr') {
        const e = v as { query?: unknown; parseMode?: unknown };
        if (typeof e.query !== 'string') continue;
        const mode = typeof e.parseMode === 'number' ? e.parseMode : PARSE_DEFAULT;
        if (mode === PARSE_DEFAULT) statements.push(e.query);
        else if (mode === PARSE_EXPR) statements.push(`SELECT ${e.query}`);
        else if (mode !== PARSE_TYPE_NAME) {
          const rhs = assignmentValue(e.query);
          if (rhs === null) unreadable = true;
          else statements.push(`SELECT ${rhs}`);
        }
        continue;
      }
      stack.push(v);
    }
  }
  let opaque: string | null = null;
  if (dynamic.length > 0) opaque = `${what} runs dynamic SQL (${dynamic.join(', ')}) that cannot be analysed`;
  else if (unreadable) opaque = `${what} has an assignment that cannot be read`;
  return { statements, opaque };
}

/** The opaque reason for a body in a language other than sql and plpgsql. */
export function otherLanguage(language: string, what: string): string {
  return `${what} is written in LANGUAGE ${language}, which cannot be analysed`;
}

/** A dollar-quote tag that does not occur in `body`. */
function dollarTag(body: string): string {
  let tag = '$dlpctl$';
  for (let i = 0; body.includes(tag); i++) tag = `$dlpctl${i}$`;
  return tag;
}

/** Return types tried, in order, when compiling a stored PL/pgSQL body whose own return type is not known. */
const FALLBACK_RESULTS = ['trigger', 'SETOF record', 'record', 'void', 'event_trigger'];

/**
 * The static SQL of a stored body (pg_proc.prosrc) in `language`. PL/pgSQL is compiled inside a CREATE FUNCTION
 * built around it: with the function's own arguments and result when known (`args` as pg_get_function_arguments,
 * `result` as pg_get_function_result), else with each result type the compiler may need (RETURN QUERY needs SETOF,
 * NEW/OLD need trigger).
 */
export function storedBodySql(opts: {
  language: string; body: string | null; what: string; procedure?: boolean; args?: string; result?: string;
}): BodySql {
  const language = opts.language.toLowerCase();
  if (opts.body === null) return { statements: [], opaque: `${opts.what} has no body to analyse` };
  if (language === 'sql') return { statements: [opts.body], opaque: null };
  if (language !== 'plpgsql') return { statements: [], opaque: otherLanguage(language, opts.what) };
  const tag = dollarTag(opts.body);
  const quoted = `${tag}${opts.body}${tag}`;
  const args = opts.args ?? '';
  const tries: string[] = [];
  if (opts.procedure) tries.push(`CREATE PROCEDURE pg_temp.dlpctl_body(${args}) LANGUAGE plpgsql AS ${quoted}`);
  else {
    if (opts.result !== undefined) tries.push(`CREATE FUNCTION pg_temp.dlpctl_body(${args}) RETURNS ${opts.result} LANGUAGE plpgsql AS ${quoted}`);
    for (const r of FALLBACK_RESULTS) tries.push(`CREATE FUNCTION pg_temp.dlpctl_body(${args}) RETURNS ${r} LANGUAGE plpgsql AS ${quoted}`);
    // Arguments may constrain the result (OUT parameters): try without them too.
    if (args !== '') for (const r of FALLBACK_RESULTS) tries.push(`CREATE FUNCTION pg_temp.dlpctl_body() RETURNS ${r} LANGUAGE plpgsql AS ${quoted}`);
  }
  let first: BodySql | null = null;
  for (const t of tries) {
    const r = plpgsqlBodySql(t, opts.what);
    if (!r.opaque?.startsWith(`the PL/pgSQL body of ${opts.what} could not be parsed`)) return r;
    first ??= r;
  }
  return first ?? { statements: [], opaque: `${opts.what} could not be analysed` };
}
