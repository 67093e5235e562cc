/**
 * SQL classification over the real PostgreSQL parse tree (libpg-query).
 *
 * Each statement of a message gets a `kind` (DESIGN §4) counted by its most consequential effect, the set of all
 * its `effects`, the relations it reads and writes, the functions it calls and whether it updates or deletes
 * without a WHERE. The tree is walked generically with an explicit stack (no recursion, so a deeply nested
 * statement cannot overflow the JS stack); only the node types that matter are looked at.
 *
 * Decisions worth knowing:
 * - `WITH d AS (DELETE …) SELECT …` is a delete; its effects are {delete, select}.
 * - `EXPLAIN` (with or without ANALYZE) takes the kind and effects of the statement it explains. Plain EXPLAIN does
 *   not execute it, but classifying it as the inner statement is the safe reading: a rule that denies deletes also
 *   denies explaining one. `explain` says which form it was.
 * - `PREPARE p AS <stmt>` takes the kind of <stmt> and has effects {prepare, <stmt effects>}: what a prepared
 *   statement will do is what matters. `DEALLOCATE` is `prepare`. `EXECUTE p` is `unknown` with `executes` naming
 *   p, so the engine can put the PREPAREd statement's classification in its place. `LOAD` and any statement type
 *   not known here are `unknown`. LISTEN, UNLISTEN, NOTIFY, DISCARD, RESET and SHOW are `set`; CHECKPOINT `alter`.
 * - `CALL p()` is `call` (p in `functions` and `procedure`).
 * - Code is classified by what it runs: the statements of a LANGUAGE sql body (`AS '…'` or `BEGIN ATOMIC`) and
 *   the static SQL of a PL/pgSQL body are folded into the CREATE FUNCTION / CREATE PROCEDURE (so a rule denying
 *   `drop` denies creating a function that drops); a `DO` block is `call` plus what its body does. Dynamic SQL
 *   (EXECUTE) or another language makes the statement `unknown` with `opaque` saying why. CREATE RULE folds in
 *   its actions; CREATE TRIGGER and CREATE EVENT TRIGGER name their function in `functions`.
 * - `SELECT … INTO t` and `CREATE TABLE … AS` are `create` (writing t, reading the source).
 * - `COPY … FROM PROGRAM` is `copy_from` with `program` set.
 * - Relation and function names are reported as written: unquoted identifiers come lower-cased from the parser,
 *   quoted ones keep their case; schema (and catalog) qualification is kept. CTE references are not relations.
 */
import type { SqlStatementKind } from '../../config/types.js';
import { Lru } from './lru.js';
import { otherLanguage, plpgsqlBodySql } from './bodies.js';
import { parseErrorMessage, parseSqlTree, semicolonByteOffsets } from './parser.js';
import { literalShape } from './shape.js';

export interface SqlStatement {
  /** The statement's own source text (trimmed). */
  readonly text: string;
  /** The most consequential effect. */
  readonly kind: SqlStatementKind;
  /** Every effect of the statement (the kind included), e.g. {delete, select} for a DELETE inside a CTE. */
  readonly effects: readonly SqlStatementKind[];
  /** The parser's statement tag, e.g. `SELECT`, `DROP TABLE`, `ALTER SYSTEM`, `CREATE TABLE AS`. */
  readonly command: string;
  readonly reads: readonly string[];
  readonly writes: readonly string[];
  readonly functions: readonly string[];
  readonly ctes: readonly string[];
  /** An UPDATE or DELETE (anywhere in the statement) has no WHERE clause. */
  readonly noWhere: boolean;
  /** Set when the statement is an EXPLAIN of the classified statement. */
  readonly explain?: 'plain' | 'analyze';
  /** COPY … TO PROGRAM / FROM PROGRAM: the program. */
  readonly program?: string;
  /** Set when the statement could not be parsed (kind is then `unknown`). */
  readonly error?: string;
  /** Why part of the statement cannot be analysed (dynamic SQL in a body, another language); effects include `unknown`. */
  readonly opaque?: string;
  /** EXECUTE: the prepared statement's name, as PostgreSQL folds it (unquoted lower-cased). */
  readonly executes?: string;
  /** CALL: the procedure, as written. */
  readonly procedure?: string;
}

export interface SqlClassification {
  readonly statements: readonly SqlStatement[];
  /** Set when some statement could not be parsed. */
  readonly error?: string;
}

/** Most consequential first; the kind of a statement is the highest-ranked of its effects. */
const RANK: readonly SqlStatementKind[] = [
  'unknown', 'copy_to_program', 'drop', 'truncate', 'alter', 'grant', 'revoke', 'delete', 'update', 'merge',
  'insert', 'copy_from', 'create', 'call', 'copy_to', 'select', 'prepare', 'set', 'transaction',
];
const rankOf = new Map<SqlStatementKind, number>(RANK.map((k, i) => [k, i]));

/** The most consequential of `effects` (`transaction` for none), and the effects ordered by rank. */
export function rankEffects(effects: Iterable<SqlStatementKind>): { kind: SqlStatementKind; effects: SqlStatementKind[] } {
  const sorted = [...new Set(effects)].sort((a, b) => (rankOf.get(a) ?? 0) - (rankOf.get(b) ?? 0));
  return { kind: sorted[0] ?? 'transaction', effects: sorted };
}

/** Commands whose classification depends on string literals (function bodies): never shared by literal shape. */
const BODY_COMMANDS = new Set(['CREATE FUNCTION', 'CREATE PROCEDURE', 'DO']);

const CACHE_MAX_ENTRIES = 10_000;
const CACHE_MAX_TEXT = 16 * 1024;
const cache = new Lru<string, SqlClassification>(CACHE_MAX_ENTRIES);
const shapeCache = new Lru<string, SqlStatement>(CACHE_MAX_ENTRIES);
/**
 * The classification `classifySql` made or found last, with its literal-free shape (null: none): `literalFreeShape`
 * asks right after for the same text (the masking path) and reads it back instead of lexing the text again. One
 * pair, not a map: a WeakMap entry per statement cost more than the lexing it saved, on paths that never ask.
 */
let lastClassified: SqlClassification | null = null;
let lastFreeShape: string | null = null;

/** Clears the parse cache (tests and benchmarks). */
export function clearSqlCache(): void {
  cache.clear();
  shapeCache.clear();
  lastClassified = null;
}

/** How many texts and shapes the caches hold (tests). */
export function sqlCacheSizes(): { texts: number; shapes: number } {
  return { texts: cache.size, shapes: shapeCache.size };
}

/**
 * Classifies every statement of `text`. Synchronous; `initSqlParser()` must have resolved. Results for the same
 * text are cached (bounded LRU) and frozen: do not mutate them.
 */
export function classifySql(text: string): SqlClassification {
  const hit = cache.get(text);
  if (hit) return hit;
  // A statement of a shape seen before (same text but for its literals) classifies the same way.
  const shape = literalShape(text);
  const same = shape === null ? undefined : shapeCache.get(shape);
  if (same) {
    const result = freezeClassification({ statements: [{ ...same, text: ownText(text) }] });
    // (the shape cache holds only statements `shapeSafe` admitted, with the text this one now has)
    lastClassified = result;
    lastFreeShape = shape;
    // Not kept by its text: a driver that inlines its parameters (pgbench, most agents' SQL) sends a new text per
    // statement, and keeping each held ~10,000 classifications alive long enough to reach V8's old generation,
    // whose collection cost more than the cache saved (pgbench-like texts: 1.65-1.87 → 1.12 µs per classification,
    // heap 28-35 → 10 MB; the audit tunnel under pgbench -S, 7 interleaved rounds twice: −2.7 and −1.6 µs per
    // statement). The text cache so keeps what repeats: each shape's first text, and texts without literals
    // (`BEGIN`, `COMMIT`), which new literals no longer push out. The price: another text of a known shape that
    // repeats exactly (a polled query with its literals) takes this path each time, 0.95 µs instead of 0.17.
    return result;
  }
  const result = classifyUncached(text);
  if (text.length <= CACHE_MAX_TEXT) cache.set(text, result);
  const free = shape !== null && shapeSafe(result, text) ? shape : null;
  lastClassified = result;
  lastFreeShape = free;
  if (free !== null) shapeCache.set(free, result.statements[0]!);
  return result;
}

/**
 * One statement whose every analysis ignores its literals' values: no procedural body (DO, CREATE FUNCTION and
 * PROCEDURE keep code in a string), no parse error, and its own text the whole text.
 */
function shapeSafe(result: SqlClassification, text: string): boolean {
  const only = result.statements[0];
  return result.statements.length === 1 && only !== undefined && !result.error && !only.error && only.program === undefined &&
    !BODY_COMMANDS.has(only.command) && only.text === ownText(text);
}

/**
 * The literal-free shape of `text` (shape.ts) when what is derived from its tree does not depend on its literals'
 * values, so a cache of such a derivation (the lineage of masked columns) may be keyed by it; null otherwise.
 * Literals never name a column or a relation; the strings that carry code are excluded by `shapeSafe`.
 */
export function literalFreeShape(text: string): string | null {
  const c = classifySql(text);
  if (c === lastClassified) return lastFreeShape;
  const shape = literalShape(text);
  return shape !== null && shapeSafe(c, text) ? shape : null;
}

/** A single statement's own text, as the parser's location and length give it. */
function ownText(text: string): string {
  return text.trim().replace(/;\s*$/, '').trim();
}

function classifyUncached(text: string): SqlClassification {
  if (text.trim() === '') return freezeClassification({ statements: [] });
  let tree: unknown;
  try {
    tree = parseSqlTree(text);
  } catch (err) {
    if (isNotReady(err)) throw err;
    return freezeClassification(classifyPiecewise(text, parseErrorMessage(err)));
  }
  const stmts = (tree as { stmts?: RawStmt[] }).stmts ?? [];
  const buf = isAscii(text) ? null : Buffer.from(text, 'utf8');
  const out: SqlStatement[] = [];
  for (const raw of stmts) {
    const start = raw.stmt_location ?? 0;
    const len = raw.stmt_len ?? 0;
    const slice = sliceBytes(text, buf, start, len === 0 ? undefined : start + len);
    out.push(classifyNode(raw.stmt, slice.trim()));
  }
  return freezeClassification({ statements: out });
}

interface RawStmt {
  stmt: unknown;
  stmt_location?: number;
  stmt_len?: number;
}

function isNotReady(err: unknown): boolean {
  return err instanceof Error && err.name === 'DlpctlError';
}

function isAscii(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return !/[^\x00-\x7f]/.test(s);
}

/** Slices by UTF-8 byte offsets (the parser's stmt_location/stmt_len and scanner offsets are bytes). */
function sliceBytes(text: string, buf: Buffer | null, start: number, end?: number): string {
  if (!buf) return text.slice(start, end);
  return buf.subarray(start, end).toString('utf8');
}

/**
 * The whole text failed to parse. Split it at the scanner's top-level semicolons and parse each piece on its own,
 * so the statements that do parse are still classified and the one that does not is `unknown` with its error.
 */
function classifyPiecewise(text: string, wholeError: string): SqlClassification {
  let cuts: number[];
  try {
    cuts = semicolonByteOffsets(text);
  } catch {
    return { statements: [unknownStatement(text.trim(), wholeError)], error: wholeError };
  }
  if (cuts.length === 0) return { statements: [unknownStatement(text.trim(), wholeError)], error: wholeError };
  const buf = isAscii(text) ? null : Buffer.from(text, 'utf8');
  const pieces: string[] = [];
  let from = 0;
  for (const c of cuts) {
    pieces.push(sliceBytes(text, buf, from, c));
    from = c + 1;
  }
  pieces.push(sliceBytes(text, buf, from));
  const statements: SqlStatement[] = [];
  let firstError: string | undefined;
  for (const piece of pieces) {
    const p = piece.trim();
    if (p === '') continue;
    let tree: unknown;
    try {
      tree = parseSqlTree(p);
    } catch (err) {
      const msg = parseErrorMessage(err);
      firstError ??= msg;
      statements.push(unknownStatement(p, msg));
      continue;
    }
    const stmts = (tree as { stmts?: RawStmt[] }).stmts ?? [];
    if (stmts.length === 0) continue; // a comment-only piece
    // A piece of a split text can only hold one statement; if it somehow holds more, keep them together.
    if (stmts.length === 1) statements.push(classifyNode(stmts[0]!.stmt, p));
    else statements.push(unknownStatement(p, 'could not split the statements of this text'));
  }
  const error = firstError ?? wholeError;
  if (!statements.some((s) => s.error !== undefined)) {
    // Each piece parses but the whole did not (e.g. a function body split at its semicolons): fail closed.
    return { statements: [unknownStatement(text.trim(), wholeError)], error: wholeError };
  }
  return { statements, error };
}

function unknownStatement(text: string, error: string): SqlStatement {
  return {
    text, kind: 'unknown', effects: ['unknown'], command: 'UNKNOWN', reads: [], writes: [], functions: [], ctes: [],
    noWhere: false, error,
  };
}

function freezeClassification(c: SqlClassification): SqlClassification {
  for (const s of c.statements) {
    Object.freeze(s.effects);
    Object.freeze(s.reads);
    Object.freeze(s.writes);
    Object.freeze(s.functions);
    Object.freeze(s.ctes);
    Object.freeze(s);
  }
  Object.freeze(c.statements);
  return Object.freeze(c);
}

// ---------------------------------------------------------------------------------------------------------------
// The walk

type Obj = Record<string, unknown>;

/** CTE names visible at a point of the tree. */
interface Scope {
  readonly names: ReadonlySet<string>;
  readonly parent: Scope | null;
}

function inScope(scope: Scope | null, name: string): boolean {
  for (let s = scope; s; s = s.parent) if (s.names.has(name)) return true;
  return false;
}

interface Frame {
  node: unknown;
  scope: Scope | null;
}

const DML_KIND = new Map<string, SqlStatementKind>([
  ['InsertStmt', 'insert'],
  ['UpdateStmt', 'update'],
  ['DeleteStmt', 'delete'],
  ['MergeStmt', 'merge'],
  ['ExecuteStmt', 'unknown'],
]);

/** Statement types whose `relation` field (`view` for ViewStmt) is the relation they write. */
const WRITE_TARGET = new Set([
  'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt', 'CreateStmt', 'AlterTableStmt', 'IndexStmt',
  'CreateTrigStmt', 'CreateForeignTableStmt', 'RenameStmt', 'AlterObjectSchemaStmt', 'CreatePolicyStmt',
  'AlterPolicyStmt', 'RuleStmt', 'ViewStmt', 'RefreshMatViewStmt', 'ClusterStmt', 'ReindexStmt', 'CreateStatsStmt',
  'CommentStmt', 'SecLabelStmt',
]);

const DROPPED_RELATION_TYPES = new Set([
  'OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE', 'OBJECT_SEQUENCE', 'OBJECT_INDEX',
]);

class Collector {
  readonly reads = new Set<string>();
  readonly writes = new Set<string>();
  readonly functions = new Set<string>();
  readonly ctes = new Set<string>();
  readonly effects = new Set<SqlStatementKind>();
  noWhere = false;
  opaque: string | undefined;

  /** Folds in what a nested statement (of a body or rule) does. */
  fold(s: SqlStatement): void {
    for (const e of s.effects) this.effects.add(e);
    for (const r of s.reads) this.reads.add(r);
    for (const w of s.writes) this.writes.add(w);
    for (const f of s.functions) this.functions.add(f);
    if (s.noWhere) this.noWhere = true;
    if (s.opaque !== undefined) this.opaque ??= s.opaque;
    else if (s.error !== undefined) this.opaque ??= `a statement of the body could not be parsed (${s.error})`;
  }

  /** Marks the statement as not fully analysable. */
  opaqueBecause(why: string): void {
    this.effects.add('unknown');
    this.opaque ??= why;
  }
}

function relName(rv: Obj): string {
  const parts: string[] = [];
  if (typeof rv.catalogname === 'string' && rv.catalogname) parts.push(rv.catalogname);
  if (typeof rv.schemaname === 'string' && rv.schemaname) parts.push(rv.schemaname);
  parts.push(String(rv.relname));
  return parts.join('.');
}

function stringList(list: unknown): string | null {
  if (!Array.isArray(list)) return null;
  const parts: string[] = [];
  for (const item of list) {
    const s = (item as { String?: { sval?: unknown } } | null)?.String?.sval;
    if (typeof s !== 'string') return null;
    parts.push(s);
  }
  return parts.length ? parts.join('.') : null;
}

function unwrapRangeVar(v: unknown): Obj | null {
  if (!v || typeof v !== 'object') return null;
  const o = v as Obj;
  if (typeof o.relname === 'string') return o;
  const inner = o.RangeVar as Obj | undefined;
  return inner && typeof inner.relname === 'string' ? inner : null;
}

/** Walks `root` (one statement's tree) with an explicit stack, filling `c`. */
function walk(root: unknown, c: Collector): void {
  const stack: Frame[] = [{ node: root, scope: null }];
  while (stack.length > 0) {
    const { node, scope } = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i--) stack.push({ node: node[i], scope });
      continue;
    }
    const o = node as Obj;

    // A bare or wrapped RangeVar: a relation read, unless it names a CTE in scope.
    if (typeof o.relname === 'string') {
      const name = relName(o);
      if (o.schemaname === undefined && o.catalogname === undefined && inScope(scope, o.relname)) continue;
      c.reads.add(name);
      continue;
    }

    // Children are pushed in reverse so they are visited in source order (reads come out in that order).
    const withClause = o.withClause as { ctes?: unknown[]; recursive?: boolean } | undefined;
    let bodyScope = scope;
    let cteFrames: Frame[] | null = null;
    if (withClause && Array.isArray(withClause.ctes)) {
      // A WITH clause: CTE i sees the CTEs before it (all of them if RECURSIVE); the body sees all.
      const names: string[] = [];
      for (const cteNode of withClause.ctes) {
        const cte = (cteNode as { CommonTableExpr?: Obj }).CommonTableExpr;
        if (cte && typeof cte.ctename === 'string') names.push(cte.ctename);
      }
      const all: Scope = { names: new Set(names), parent: scope };
      cteFrames = [];
      for (let i = 0; i < withClause.ctes.length; i++) {
        const cte = (withClause.ctes[i] as { CommonTableExpr?: Obj }).CommonTableExpr;
        if (!cte) continue;
        if (typeof cte.ctename === 'string') c.ctes.add(cte.ctename);
        const seen: Scope = withClause.recursive ? all : { names: new Set(names.slice(0, i)), parent: scope };
        cteFrames.push({ node: cte.ctequery, scope: seen });
      }
      bodyScope = all;
    }

    const keys = Object.keys(o);
    for (let k = keys.length - 1; k >= 0; k--) {
      const key = keys[k]!;
      if (key === 'withClause') continue;
      const v = o[key];
      if (v === null || typeof v !== 'object') continue;
      if (key === 'FuncCall' || key === 'funccall') {
        const name = stringList((v as Obj).funcname);
        if (name) c.functions.add(name);
      } else {
        const dml = DML_KIND.get(key);
        if (dml) {
          c.effects.add(dml);
          const stmt = v as Obj;
          if ((key === 'UpdateStmt' || key === 'DeleteStmt') && stmt.whereClause === undefined) c.noWhere = true;
        }
        if (WRITE_TARGET.has(key)) {
          const field = key === 'ViewStmt' ? 'view' : 'relation';
          const target = unwrapRangeVar((v as Obj)[field]);
          if (target) {
            c.writes.add(relName(target));
            const rest = { ...(v as Obj) };
            delete rest[field];
            stack.push({ node: rest, scope: bodyScope });
            continue;
          }
        }
      }
      stack.push({ node: v, scope: bodyScope });
    }
    if (cteFrames) for (let i = cteFrames.length - 1; i >= 0; i--) stack.push(cteFrames[i]!);
  }
}

/** Top-level kind of a statement node, before nested effects. */
function topKind(type: string, n: Obj): SqlStatementKind {
  switch (type) {
    case 'SelectStmt':
      return n.intoClause ? 'create' : 'select';
    case 'InsertStmt':
      return 'insert';
    case 'UpdateStmt':
      return 'update';
    case 'DeleteStmt':
      return 'delete';
    case 'MergeStmt':
      return 'merge';
    case 'CopyStmt':
      return n.is_from ? 'copy_from' : n.is_program ? 'copy_to_program' : 'copy_to';
    case 'CreateTableAsStmt':
    case 'ViewStmt':
    case 'IndexStmt':
    case 'RuleStmt':
    case 'DefineStmt':
    case 'CompositeTypeStmt':
    case 'ImportForeignSchemaStmt':
      return 'create';
    case 'TruncateStmt':
      return 'truncate';
    case 'GrantStmt':
    case 'GrantRoleStmt':
      return n.is_grant ? 'grant' : 'revoke';
    case 'AlterDefaultPrivilegesStmt':
      return (n.action as Obj | undefined)?.is_grant ? 'grant' : 'revoke';
    case 'TransactionStmt':
    case 'LockStmt':
    case 'ClosePortalStmt':
      return 'transaction';
    case 'VariableSetStmt':
    case 'VariableShowStmt':
    case 'ConstraintsSetStmt':
    case 'DiscardStmt':
    case 'ListenStmt':
    case 'UnlistenStmt':
    case 'NotifyStmt':
      return 'set';
    case 'CallStmt':
    case 'DoStmt':
      return 'call';
    case 'CheckPointStmt':
      return 'alter';
    case 'DeallocateStmt':
      return 'prepare';
    case 'FetchStmt':
    case 'DeclareCursorStmt':
      return 'select';
    case 'RenameStmt':
    case 'CommentStmt':
    case 'SecLabelStmt':
    case 'RefreshMatViewStmt':
    case 'ReindexStmt':
    case 'ClusterStmt':
    case 'VacuumStmt':
    case 'ReassignOwnedStmt':
      return 'alter';
    case 'DropStmt':
    case 'DropRoleStmt':
    case 'DropdbStmt':
    case 'DropOwnedStmt':
    case 'DropTableSpaceStmt':
    case 'DropSubscriptionStmt':
    case 'DropUserMappingStmt':
      return 'drop';
    default:
      if (type.startsWith('Create')) return 'create';
      if (type.startsWith('Alter')) return 'alter';
      return 'unknown';
  }
}

function commandTag(type: string, n: Obj): string {
  if (type === 'DropStmt' && typeof n.removeType === 'string') {
    return `DROP ${n.removeType.replace(/^OBJECT_/, '').replace(/_/g, ' ')}`;
  }
  if (type === 'SelectStmt' && n.intoClause) return 'SELECT INTO';
  if (type === 'CopyStmt') return `COPY ${n.is_from ? 'FROM' : 'TO'}${n.is_program ? ' PROGRAM' : ''}`;
  const own = OWN_TAGS[type];
  if (own !== undefined) return own;
  if (type === 'CreateFunctionStmt') return n.is_procedure ? 'CREATE PROCEDURE' : 'CREATE FUNCTION';
  const base = type.replace(/Stmt$/, '').replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase();
  return base === 'CREATE TABLE AS' && n.objtype === 'OBJECT_MATVIEW' ? 'CREATE MATERIALIZED VIEW' : base;
}

/** PostgreSQL's own command tags where the node type's name does not spell them. */
const OWN_TAGS: Readonly<Record<string, string>> = {
  CreateTrigStmt: 'CREATE TRIGGER',
  CreateEventTrigStmt: 'CREATE EVENT TRIGGER',
  RuleStmt: 'CREATE RULE',
  CheckPointStmt: 'CHECKPOINT',
  DoStmt: 'DO',
  CallStmt: 'CALL',
};

/** How deep bodies may nest (a function whose body creates a function …) before the rest counts as opaque. */
const MAX_BODY_DEPTH = 8;

function defElems(list: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (!Array.isArray(list)) return out;
  for (const item of list) {
    const d = (item as { DefElem?: Obj } | null)?.DefElem;
    if (d && typeof d.defname === 'string') out.set(d.defname, d.arg);
  }
  return out;
}

function stringOf(v: unknown): string | undefined {
  const s = (v as { String?: { sval?: unknown } } | null | undefined)?.String?.sval;
  return typeof s === 'string' ? s : undefined;
}

/** Parses `text` and classifies each of its statements (body statements); a parse error is one unknown statement. */
function classifyNested(text: string, depth: number): SqlStatement[] {
  let tree: unknown;
  try {
    tree = parseSqlTree(text);
  } catch (err) {
    if (isNotReady(err)) throw err;
    return [unknownStatement(text.trim(), parseErrorMessage(err))];
  }
  const stmts = (tree as { stmts?: RawStmt[] }).stmts ?? [];
  const buf = isAscii(text) ? null : Buffer.from(text, 'utf8');
  return stmts.map((raw) => {
    const start = raw.stmt_location ?? 0;
    const len = raw.stmt_len ?? 0;
    return classifyAt(raw.stmt, sliceBytes(text, buf, start, len === 0 ? undefined : start + len).trim(), depth);
  });
}

/** Folds the body of a CREATE FUNCTION / CREATE PROCEDURE / DO into `c`. */
function foldBody(type: string, node: Obj, text: string, c: Collector, depth: number): void {
  const opts = defElems(type === 'DoStmt' ? node.args : node.options);
  const name = type === 'DoStmt' ? null : stringList(node.funcname);
  const what = type === 'DoStmt' ? 'DO block' : `${node.is_procedure ? 'procedure' : 'function'} ${name ?? '?'}`;
  if (depth >= MAX_BODY_DEPTH) {
    c.opaqueBecause(`${what} nests code too deeply to analyse`);
    return;
  }
  const atomic = node.sql_body;
  const language = (stringOf(opts.get('language')) ?? (type === 'DoStmt' ? 'plpgsql' : atomic !== undefined ? 'sql' : '')).toLowerCase();
  if (atomic !== undefined) {
    // BEGIN ATOMIC … END: the statements come parsed, as List(List(stmt…)).
    const outer = (atomic as { List?: { items?: unknown[] } }).List?.items ?? [];
    for (const inner of outer) {
      for (const st of (inner as { List?: { items?: unknown[] } }).List?.items ?? []) c.fold(classifyAt(st, '', depth + 1));
    }
    return;
  }
  if (language === 'sql') {
    const as = opts.get('as');
    const items = (as as { List?: { items?: unknown[] } } | undefined)?.List?.items;
    const body = items && items.length === 1 ? stringOf(items[0]) : stringOf(as);
    if (body === undefined) {
      c.opaqueBecause(`${what} has no body to analyse`);
      return;
    }
    for (const s of classifyNested(body, depth + 1)) c.fold(s);
    return;
  }
  if (language === 'plpgsql') {
    const body = plpgsqlBodySql(text, what);
    for (const st of body.statements) for (const s of classifyNested(st, depth + 1)) c.fold(s);
    if (body.opaque !== null) c.opaqueBecause(body.opaque);
    return;
  }
  c.opaqueBecause(otherLanguage(language === '' ? '(none given)' : language, what));
}

function nodeType(stmt: unknown): [string, Obj] | null {
  if (!stmt || typeof stmt !== 'object') return null;
  for (const k in stmt as Obj) {
    const v = (stmt as Obj)[k];
    if (v && typeof v === 'object') return [k, v as Obj];
  }
  return null;
}

/** Whether EXPLAIN's options ask for ANALYZE (the statement then runs). */
export function analyzeOption(options: unknown): boolean {
  if (!Array.isArray(options)) return false;
  for (const o of options) {
    const d = (o as { DefElem?: Obj }).DefElem;
    if (!d || d.defname !== 'analyze') continue;
    const arg = d.arg as { String?: { sval?: string }; Boolean?: { boolval?: boolean } } | undefined;
    if (!arg) return true;
    const s = arg.String?.sval?.toLowerCase();
    if (s !== undefined) return !['false', 'off', '0', 'no'].includes(s);
    return arg.Boolean?.boolval !== false;
  }
  return false;
}

/** Classifies one parsed top-level statement. */
export function classifyNode(stmt: unknown, text: string): SqlStatement {
  return classifyAt(stmt, text, 0);
}

function classifyAt(stmt: unknown, text: string, depth: number): SqlStatement {
  const t = nodeType(stmt);
  if (!t) return unknownStatement(text, 'empty statement tree');
  let [type, node] = t;
  let explain: 'plain' | 'analyze' | undefined;
  const c = new Collector();
  let command = commandTag(type, node);

  // EXPLAIN and PREPARE are transparent: classify what they wrap.
  if (type === 'ExplainStmt') {
    explain = analyzeOption(node.options) ? 'analyze' : 'plain';
    const inner = nodeType(node.query);
    if (inner) {
      [type, node] = inner;
      command = `EXPLAIN ${commandTag(type, node)}`;
    }
  } else if (type === 'PrepareStmt') {
    c.effects.add('prepare');
    const inner = nodeType(node.query);
    if (inner) {
      [type, node] = inner;
      command = `PREPARE ${commandTag(type, node)}`;
    }
  }

  c.effects.add(topKind(type, node));
  let program: string | undefined;
  if (type === 'CopyStmt') {
    if (node.is_program && typeof node.filename === 'string') program = node.filename;
    const rel = unwrapRangeVar(node.relation);
    if (rel && node.is_from) c.writes.add(relName(rel));
    else if (rel) c.reads.add(relName(rel));
    walk({ ...node, relation: undefined }, c);
  } else if (type === 'CreateTableAsStmt' || (type === 'SelectStmt' && node.intoClause)) {
    const into = (type === 'SelectStmt' ? node.intoClause : node.into) as { rel?: unknown } | undefined;
    const rel = unwrapRangeVar(into?.rel);
    if (rel) c.writes.add(relName(rel));
    const rest = { ...node };
    if (type === 'SelectStmt') delete rest.intoClause;
    else delete rest.into;
    walk(type === 'SelectStmt' ? { SelectStmt: rest } : rest, c);
  } else if (type === 'DropStmt') {
    if (typeof node.removeType === 'string' && DROPPED_RELATION_TYPES.has(node.removeType)) {
      for (const obj of (node.objects as unknown[] | undefined) ?? []) {
        const name = stringList((obj as { List?: { items?: unknown } }).List?.items);
        if (name) c.writes.add(name);
      }
    }
    walk(node, c);
  } else if (type === 'TruncateStmt') {
    for (const r of (node.relations as unknown[] | undefined) ?? []) {
      const rel = unwrapRangeVar(r);
      if (rel) c.writes.add(relName(rel));
    }
    walk({ ...node, relations: undefined }, c);
  } else if (type === 'GrantStmt' && node.objtype === 'OBJECT_TABLE') {
    for (const r of (node.objects as unknown[] | undefined) ?? []) {
      const rel = unwrapRangeVar(r);
      if (rel) c.writes.add(relName(rel));
    }
    walk({ ...node, objects: undefined }, c);
  } else if (type === 'CreateFunctionStmt' || type === 'DoStmt') {
    foldBody(type, node, text, c, depth);
    walk({ [type]: { ...node, sql_body: undefined } }, c);
  } else {
    if (type === 'CreateTrigStmt' || type === 'CreateEventTrigStmt') {
      const fn = stringList(node.funcname);
      if (fn) c.functions.add(fn);
    } else if (type === 'RuleStmt' && Array.isArray(node.actions)) {
      for (const action of node.actions) c.fold(classifyAt(action, '', depth + 1));
    }
    // Wrap it again so the walker sees the statement type (DML effects, write targets).
    walk({ [type]: node }, c);
  }

  const { kind, effects } = rankEffects(c.effects);
  const s: {
    -readonly [K in keyof SqlStatement]: SqlStatement[K];
  } = {
    text, kind, effects, command, reads: [...c.reads], writes: [...c.writes], functions: [...c.functions],
    ctes: [...c.ctes], noWhere: c.noWhere,
  };
  if (explain) s.explain = explain;
  if (program !== undefined) s.program = program;
  if (c.opaque !== undefined) s.opaque = c.opaque;
  if (type === 'ExecuteStmt' && typeof node.name === 'string') s.executes = node.name;
  if (type === 'CallStmt') {
    const proc = stringList((node.funccall as Obj | undefined)?.funcname);
    if (proc) s.procedure = proc;
  }
  return s;
}
