/**
 * Column lineage of SQL statements over the real parse tree: which output columns carry masked values, whether a
 * statement reads masked data at all, and whether it writes masked values somewhere the column rules no longer
 * cover (a new table, a view, another column, a notification).
 *
 * Model. A FROM item (table, alias, join, subquery, CTE, function) is an *item* that answers two questions:
 * "is column c of you masked?" and "does a whole row of you carry a masked value?". A base table answers from the
 * masked column patterns (its schema unknown when the name is unqualified, so `public.customers.ssn` matches
 * `customers`); a subquery or CTE answers from the expressions that define its outputs. An expression is tainted
 * when something in it is: a column reference resolving to a masked column, a whole-row reference (`c`, `c.*`,
 * `customers`) of an item that carries one, a tainted function, a function that reads data by name
 * (`query_to_xml('select …')`, `dblink`), or a scalar/EXISTS/IN subquery whose output is tainted.
 *
 * Column references are resolved conservatively: the columns of a base table are not known here, so an unqualified
 * name is checked against every item in scope (and the enclosing queries'), and a relation renamed with a column
 * alias list (`customers AS c(a, b)`) counts every column as possibly masked. WHERE, GROUP BY, ORDER BY and join
 * conditions make the statement `tainted` but not its output columns, and do not launder.
 *
 * A taint is carried as a label (`customers.ssn`, `function f`) so messages can say where the value comes from.
 */
import { analyzeOption } from './classify.js';
import { otherLanguage, plpgsqlBodySql } from './bodies.js';
import { parseSqlTree } from './parser.js';

export interface LineageInput {
  /** Masked column patterns (schema.table.column | table.column | column, globs, case-insensitive). The caller
   *  adds derived ones, e.g. `public.v.a` for a view column that carries ssn, or `public.v.*` for an opaque view. */
  masked: readonly string[];
  /** Functions whose results carry masked values (user functions whose body reads masked data or cannot be
   *  analysed), lower-case, as `schema.name` or `name`; a call matches by its written name, with or without schema. */
  taintedFunctions?: ReadonlySet<string>;
}

export interface StatementLineage {
  /** The statement reads a masked value anywhere (see the module comment). */
  tainted: boolean;
  /** Per output column of the top-level SELECT (or RETURNING), in order: true when that column's expression is
   *  derived from a masked value; null when the outputs cannot be lined up with the result's columns. Statements
   *  that return no rows give []. */
  outputs: boolean[] | null;
  /** Set when the statement writes values derived from masked data into another relation or object: a short
   *  human description, e.g. `CREATE TABLE AS copies customers.ssn into t`. */
  launders: string | null;
  /** The first masked source found, for messages (`customers.ssn`, `function f`); null when not tainted. */
  source?: string | null;
}

type Obj = Record<string, unknown>;
/** The first masked source an expression derives from, or null. */
type Taint = string | null;

/** Functions that read rows named by a string argument (a query, a table, a cursor) or another server: the
 *  analysis cannot follow what they read, so their result counts as masked whenever anything is masked. */
const OPAQUE_READERS = new Set([
  'query_to_xml', 'query_to_xml_and_xmlschema', 'query_to_xmlschema', 'table_to_xml', 'table_to_xml_and_xmlschema',
  'table_to_xmlschema', 'cursor_to_xml', 'cursor_to_xmlschema', 'schema_to_xml', 'schema_to_xml_and_xmlschema',
  'database_to_xml', 'database_to_xml_and_xmlschema', 'pg_mcv_list_items', 'dblink', 'dblink_get_result',
  'dblink_fetch', 'lo_get', 'loread', 'pg_read_file', 'pg_read_binary_file', 'pg_logical_slot_get_changes',
  'pg_logical_slot_peek_changes', 'pg_logical_slot_get_binary_changes', 'pg_logical_slot_peek_binary_changes',
]);

/** Functions that send their arguments somewhere outside the result: a tainted argument launders. */
const SINKS = new Set([
  'pg_notify', 'set_config', 'lo_from_bytea', 'lo_put', 'lowrite', 'lo_write', 'dblink_exec', 'dblink',
  'dblink_send_query', 'dblink_open', 'pg_logical_emit_message',
]);

/** Catalogue relations whose columns hold sampled values of other tables' columns (most_common_vals, histograms). */
const STATS_RELATIONS = new Set(['pg_stats', 'pg_statistic', 'pg_stats_ext', 'pg_stats_ext_exprs', 'pg_statistic_ext_data']);

/** Statement types that write; an analysis failure of one of them is reported as a possible launder. */
const WRITE_TYPES = new Set(['InsertStmt', 'UpdateStmt', 'MergeStmt', 'CreateTableAsStmt', 'ViewStmt', 'CopyStmt', 'DoStmt']);

const MAX_DEPTH = 8;

// ── masked patterns ─────────────────────────────────────────────────────────────────────────────────────────

interface Pattern {
  schema: RegExp | null;
  table: RegExp | null;
  column: RegExp;
  columnText: string;
}

interface Rel {
  schema: string | null;
  table: string;
  written: string;
}

function globRe(part: string): RegExp {
  return new RegExp(`^${part.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i');
}

class Masks {
  readonly patterns: Pattern[];
  private readonly fnFull: Set<string>;
  private readonly fnBare: Set<string>;

  constructor(input: LineageInput) {
    this.patterns = input.masked.map((raw) => {
      const parts = raw.split('.');
      const column = parts[parts.length - 1]!;
      return {
        schema: parts.length >= 3 ? globRe(parts[parts.length - 3]!) : null,
        table: parts.length >= 2 ? globRe(parts[parts.length - 2]!) : null,
        column: globRe(column),
        columnText: column.toLowerCase(),
      };
    });
    this.fnFull = new Set();
    this.fnBare = new Set();
    for (const f of input.taintedFunctions ?? []) {
      const lf = f.toLowerCase();
      this.fnFull.add(lf);
      this.fnBare.add(lf.split('.').pop()!);
    }
  }

  get any(): boolean {
    return this.patterns.length > 0;
  }

  private relMatches(p: Pattern, rel: Rel): boolean {
    if (p.table !== null && !p.table.test(rel.table)) return false;
    // An unqualified relation's schema depends on the search_path: it may be the pattern's.
    return p.schema === null || rel.schema === null || p.schema.test(rel.schema);
  }

  private stats(rel: Rel): boolean {
    return this.any && STATS_RELATIONS.has(rel.table.toLowerCase()) && (rel.schema === null || rel.schema === 'pg_catalog');
  }

  column(rel: Rel, column: string): Taint {
    if (this.stats(rel)) return `${rel.written}.${column}`;
    for (const p of this.patterns) if (this.relMatches(p, rel) && p.column.test(column)) return `${rel.written}.${column}`;
    return null;
  }

  whole(rel: Rel): Taint {
    if (this.stats(rel)) return `${rel.written}.*`;
    for (const p of this.patterns) if (this.relMatches(p, rel)) return `${rel.written}.${p.columnText}`;
    return null;
  }

  /** A call of `name` (written, lower-cased) matches a tainted function. */
  taintedFunction(name: string): boolean {
    if (this.fnFull.has(name)) return true;
    const bare = name.split('.').pop()!;
    if (this.fnBare.has(bare) && (name === bare || this.fnFull.has(bare))) return true;
    return false;
  }
}

// ── items and scopes ────────────────────────────────────────────────────────────────────────────────────────

interface Item {
  /** How the item is referenced: its alias or relation name; null for an unnamed one. */
  readonly name: string | null;
  readonly schema: string | null;
  col(column: string): Taint;
  whole(): Taint;
}

type Entry = { readonly name: string | null; readonly taint: Taint } | { readonly star: readonly Item[] };

/** What a query produces: its output columns in order (null when they cannot be lined up), and the taint of all. */
interface Shape {
  readonly entries: readonly Entry[] | null;
  readonly whole: Taint;
}

interface Scope {
  readonly items: Item[];
  readonly ctes: Map<string, { shape: Shape }>;
  readonly parent: Scope | null;
}

function newScope(parent: Scope | null): Scope {
  return { items: [], ctes: new Map(), parent };
}

function baseItem(masks: Masks, rel: Rel, alias: string | null, renamed: boolean): Item {
  return {
    name: alias ?? rel.table,
    schema: alias === null ? rel.schema : null,
    // With a column alias list the names no longer say which column is which.
    col: (c) => (renamed ? masks.whole(rel) : masks.column(rel, c)),
    whole: () => masks.whole(rel),
  };
}

function fixedItem(name: string | null, taint: Taint): Item {
  return { name, schema: null, col: () => taint, whole: () => taint };
}

function shapeWhole(entries: readonly Entry[]): Taint {
  for (const e of entries) {
    if ('star' in e) {
      for (const i of e.star) {
        const t = i.whole();
        if (t) return t;
      }
    } else if (e.taint) return e.taint;
  }
  return null;
}

/** The shape with its columns renamed by an alias column list. */
function renamed(shape: Shape, names: readonly string[] | null): Shape {
  if (names === null || names.length === 0) return shape;
  if (shape.entries === null || shape.entries.some((e) => 'star' in e)) return { entries: null, whole: shape.whole };
  const entries = shape.entries.map((e, i) => (i < names.length ? { name: names[i]!, taint: (e as { taint: Taint }).taint } : e));
  return { entries, whole: shape.whole };
}

function shapeItem(name: string | null, shape: Shape): Item {
  return {
    name,
    schema: null,
    col(c) {
      if (shape.entries === null) return shape.whole;
      let stars = false;
      for (const e of shape.entries) {
        if ('star' in e) stars = true;
        else if (e.name === c) return e.taint;
      }
      if (!stars) return shape.whole;
      for (const e of shape.entries) {
        if (!('star' in e)) continue;
        for (const i of e.star) {
          const t = i.col(c);
          if (t) return t;
        }
      }
      return null;
    },
    whole: () => shape.whole,
  };
}

function cteLookup(scope: Scope | null, name: string): { shape: Shape } | undefined {
  for (let s = scope; s; s = s.parent) {
    const hit = s.ctes.get(name);
    if (hit) return hit;
  }
  return undefined;
}

function itemsNamed(scope: Scope | null, name: string, schema: string | null): Item[] {
  const out: Item[] = [];
  for (let s = scope; s; s = s.parent) {
    for (const i of s.items) if (i.name === name && (schema === null || i.schema === null || i.schema === schema)) out.push(i);
  }
  return out;
}

// ── helpers over the tree ───────────────────────────────────────────────────────────────────────────────────

function strings(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  const out: string[] = [];
  for (const item of list) {
    const s = (item as { String?: { sval?: unknown } } | null)?.String?.sval;
    if (typeof s === 'string') out.push(s);
  }
  return out;
}

function nodeOf(wrapped: unknown): [string, Obj] | null {
  if (!wrapped || typeof wrapped !== 'object') return null;
  for (const k in wrapped as Obj) {
    const v = (wrapped as Obj)[k];
    if (v && typeof v === 'object' && !Array.isArray(v)) return [k, v as Obj];
  }
  return null;
}

function relOf(rv: Obj): Rel {
  const schema = typeof rv.schemaname === 'string' && rv.schemaname ? rv.schemaname : null;
  const table = String(rv.relname);
  return { schema, table, written: schema === null ? table : `${schema}.${table}` };
}

function aliasOf(node: Obj): { name: string | null; columns: string[] | null } {
  const a = node.alias as { aliasname?: unknown; colnames?: unknown } | undefined;
  const cols = strings(a?.colnames);
  return { name: typeof a?.aliasname === 'string' ? a.aliasname : null, columns: cols.length ? cols : null };
}

function rangeVar(v: unknown): Obj | null {
  if (!v || typeof v !== 'object') return null;
  const o = v as Obj;
  if (typeof o.relname === 'string') return o;
  const inner = o.RangeVar as Obj | undefined;
  return inner && typeof inner.relname === 'string' ? inner : null;
}

/** The name PostgreSQL gives an output column without AS (FigureColname), where it matters for references. */
function figureName(val: unknown): string | null {
  const t = nodeOf(val);
  if (!t) return null;
  const [type, n] = t;
  if (type === 'ColumnRef') {
    const f = strings(n.fields);
    return f.length ? f[f.length - 1]! : null;
  }
  if (type === 'A_Indirection') {
    const ind = strings(n.indirection);
    return ind.length ? ind[ind.length - 1]! : figureName(n.arg);
  }
  if (type === 'FuncCall') {
    const f = strings(n.funcname);
    return f.length ? f[f.length - 1]! : null;
  }
  if (type === 'TypeCast') return figureName(n.arg);
  return null;
}

// ── the analysis ────────────────────────────────────────────────────────────────────────────────────────────

class Analysis {
  tainted: Taint = null;
  launders: string | null = null;
  /** Set while analysing a statement that is not executed (plain EXPLAIN): nothing launders. */
  private dry = 0;

  readonly masks: Masks;
  readonly input: LineageInput;
  readonly depth: number;

  constructor(masks: Masks, input: LineageInput, depth: number) {
    this.masks = masks;
    this.input = input;
    this.depth = depth;
  }

  note(t: Taint): Taint {
    if (t) this.tainted ??= t;
    return t;
  }

  launder(desc: string): void {
    if (this.dry === 0) this.launders ??= desc;
  }

  withoutLaundering<T>(f: () => T): T {
    this.dry += 1;
    try {
      return f();
    } finally {
      this.dry -= 1;
    }
  }

  // ── expressions

  /** The taint of an expression (any node of the tree), noting every masked read on the way. */
  expr(node: unknown, scope: Scope | null): Taint {
    let out: Taint = null;
    const stack: unknown[] = [node];
    while (stack.length > 0) {
      const n = stack.pop();
      if (n === null || typeof n !== 'object') continue;
      if (Array.isArray(n)) {
        for (let i = n.length - 1; i >= 0; i--) stack.push(n[i]);
        continue;
      }
      const o = n as Obj;
      for (const key of Object.keys(o)) {
        const v = o[key];
        if (v === null || typeof v !== 'object') continue;
        let t: Taint = null;
        if (key === 'ColumnRef') t = this.columnRef(v as Obj, scope);
        else if (key === 'FuncCall' || key === 'funccall') t = this.funcCall(v as Obj, scope);
        else if (key === 'SubLink') t = this.subLink(v as Obj, scope);
        else if (key === 'SelectStmt' || key === 'InsertStmt' || key === 'UpdateStmt' || key === 'DeleteStmt' || key === 'MergeStmt') {
          t = this.query(key, v as Obj, scope).whole;
        } else if (key === 'RangeVar') {
          // A relation named inside an expression (rare: a row type) reads it whole.
          t = this.note(this.masks.whole(relOf(v as Obj)));
        } else {
          stack.push(v);
          continue;
        }
        out ??= t;
      }
    }
    return out;
  }

  private columnRef(ref: Obj, scope: Scope | null): Taint {
    const fields = Array.isArray(ref.fields) ? ref.fields : [];
    const names = strings(fields);
    const star = fields.length > 0 && (fields[fields.length - 1] as Obj | null)?.A_Star !== undefined;
    if (star) return this.note(this.starTaint(names, scope));
    return this.note(this.resolve(names, scope));
  }

  /** `*` (names empty) or `q.*`: every item in the innermost scope, or the items named q. */
  private starItems(qualifier: string[], scope: Scope | null): Item[] {
    if (qualifier.length === 0) {
      for (let s = scope; s; s = s.parent) if (s.items.length > 0) return s.items;
      return [];
    }
    const name = qualifier[qualifier.length - 1]!;
    const schema = qualifier.length >= 2 ? qualifier[qualifier.length - 2]! : null;
    const found = itemsNamed(scope, name, schema);
    if (found.length > 0) return found;
    return [baseItem(this.masks, { schema, table: name, written: qualifier.join('.') }, null, false)];
  }

  private starTaint(qualifier: string[], scope: Scope | null): Taint {
    for (const i of this.starItems(qualifier, scope)) {
      const t = i.whole();
      if (t) return t;
    }
    return null;
  }

  private resolve(names: string[], scope: Scope | null): Taint {
    if (names.length === 0) return null;
    if (names.length === 1) {
      const name = names[0]!;
      // A column of any item in scope (the tables' columns are not known here), or a whole row of an item so named.
      for (let s = scope; s; s = s.parent) {
        for (const i of s.items) {
          const t = i.col(name);
          if (t) return t;
          if (i.name === name) {
            const w = i.whole();
            if (w) return w;
          }
        }
      }
      return null;
    }
    const column = names[names.length - 1]!;
    const table = names[names.length - 2]!;
    const schema = names.length >= 3 ? names[names.length - 3]! : null;
    const found = itemsNamed(scope, table, schema);
    if (found.length === 0) {
      return this.masks.column({ schema, table, written: names.slice(0, -1).join('.') }, column);
    }
    for (const i of found) {
      const t = i.col(column);
      if (t) return t;
    }
    return null;
  }

  private funcCall(fc: Obj, scope: Scope | null): Taint {
    const name = strings(fc.funcname).join('.').toLowerCase();
    const bare = name.split('.').pop()!;
    const args = this.expr([fc.args, fc.agg_order, fc.agg_filter, fc.over], scope);
    if (args && SINKS.has(bare)) this.launder(`${bare}() sends ${args} out of the query`);
    let own: Taint = null;
    if (this.masks.taintedFunction(name)) own = `function ${name}`;
    else if (this.masks.any && OPAQUE_READERS.has(bare)) own = `${bare}(), which reads data the analysis cannot follow`;
    return args ?? this.note(own);
  }

  private subLink(sl: Obj, scope: Scope | null): Taint {
    const test = this.expr(sl.testexpr, scope);
    const sub = nodeOf(sl.subselect);
    const inner = sub ? this.query(sub[0], sub[1], scope).whole : null;
    return test ?? inner;
  }

  // ── queries

  /** The shape of a query node (SELECT, or a data-modifying statement with RETURNING). */
  query(type: string, n: Obj, outer: Scope | null): Shape {
    switch (type) {
      case 'SelectStmt':
        return this.select(n, outer);
      case 'InsertStmt':
        return this.insert(n, outer);
      case 'UpdateStmt':
        return this.update(n, outer);
      case 'DeleteStmt':
        return this.delete(n, outer);
      case 'MergeStmt':
        return this.merge(n, outer);
      default: {
        const t = this.expr(n, outer);
        return { entries: null, whole: t };
      }
    }
  }

  private withClause(w: unknown, outer: Scope | null): Scope | null {
    const wc = w as { ctes?: unknown[]; recursive?: boolean } | undefined;
    if (!wc || !Array.isArray(wc.ctes)) return outer;
    const scope = newScope(outer);
    const ctes = wc.ctes.map((c) => (c as { CommonTableExpr?: Obj }).CommonTableExpr).filter((c): c is Obj => !!c);
    const define = (cte: Obj): boolean => {
      const name = String(cte.ctename);
      const q = nodeOf(cte.ctequery);
      const shape = renamed(q ? this.query(q[0], q[1], scope) : { entries: null, whole: null }, strings(cte.aliascolnames));
      const prev = scope.ctes.get(name);
      scope.ctes.set(name, { shape });
      return prev !== undefined && prev.shape.whole === null && shape.whole !== null;
    };
    if (wc.recursive) {
      // A recursive CTE reads itself: start from "carries nothing", and go again once if that changed.
      for (const cte of ctes) scope.ctes.set(String(cte.ctename), { shape: { entries: null, whole: null } });
      let changed = false;
      for (const cte of ctes) changed = define(cte) || changed;
      if (changed) for (const cte of ctes) define(cte);
    } else {
      for (const cte of ctes) define(cte);
    }
    return scope;
  }

  private select(n: Obj, outer: Scope | null): Shape {
    const scope0 = this.withClause(n.withClause, outer);
    if (typeof n.op === 'string' && n.op !== 'SETOP_NONE') {
      const l = this.select((n.larg as Obj) ?? {}, scope0);
      const r = this.select((n.rarg as Obj) ?? {}, scope0);
      this.expr([n.sortClause, n.limitCount, n.limitOffset], scope0);
      const whole = l.whole ?? r.whole;
      const plain = (s: Shape): { name: string | null; taint: Taint }[] | null =>
        s.entries === null || s.entries.some((e) => 'star' in e) ? null : (s.entries as { name: string | null; taint: Taint }[]);
      const le = plain(l);
      const re = plain(r);
      if (le === null || re === null || le.length !== re.length) return { entries: null, whole };
      return { entries: le.map((e, i) => ({ name: e.name, taint: e.taint ?? re[i]!.taint })), whole };
    }
    if (Array.isArray(n.valuesLists)) {
      const cols: Taint[] = [];
      for (const row of n.valuesLists) {
        const items = ((row as { List?: { items?: unknown[] } }).List?.items) ?? [];
        items.forEach((e, i) => {
          const t = this.expr(e, scope0);
          cols[i] = cols[i] ?? t;
        });
      }
      const entries = cols.map((t, i) => ({ name: `column${i + 1}`, taint: t ?? null }));
      return { entries, whole: shapeWhole(entries) };
    }
    const level = newScope(scope0);
    for (const f of (n.fromClause as unknown[] | undefined) ?? []) this.fromItem(f, level);
    const entries = this.targetList(n.targetList, level);
    for (const key of Object.keys(n)) {
      if (key === 'targetList' || key === 'fromClause' || key === 'withClause' || key === 'intoClause') continue;
      this.expr(n[key], level);
    }
    return { entries, whole: shapeWhole(entries) };
  }

  private targetList(list: unknown, scope: Scope): Entry[] {
    const entries: Entry[] = [];
    for (const t of (list as unknown[] | undefined) ?? []) {
      const rt = (t as { ResTarget?: Obj }).ResTarget;
      if (!rt) continue;
      const val = rt.val as { ColumnRef?: Obj } | undefined;
      const fields = val?.ColumnRef && Array.isArray(val.ColumnRef.fields) ? (val.ColumnRef.fields as unknown[]) : null;
      if (fields && fields.length > 0 && (fields[fields.length - 1] as Obj | null)?.A_Star !== undefined) {
        const items = this.starItems(strings(fields), scope);
        for (const i of items) this.note(i.whole());
        entries.push({ star: items });
        continue;
      }
      const taint = this.expr(rt.val, scope);
      entries.push({ name: typeof rt.name === 'string' ? rt.name : figureName(rt.val), taint });
    }
    return entries;
  }

  /** Adds a FROM item (and, for a join, the items inside it) to `level`. */
  private fromItem(wrapped: unknown, level: Scope): void {
    const t = nodeOf(wrapped);
    if (!t) return;
    const [type, n] = t;
    const alias = aliasOf(n);
    switch (type) {
      case 'RangeVar': {
        const rel = relOf(n);
        const cte = rel.schema === null ? cteLookup(level, rel.table) : undefined;
        if (cte) level.items.push(shapeItem(alias.name ?? rel.table, renamed(cte.shape, alias.columns)));
        else level.items.push(baseItem(this.masks, rel, alias.name, alias.columns !== null));
        return;
      }
      case 'JoinExpr': {
        const inner = newScope(level.parent);
        this.fromItem(n.larg, inner);
        this.fromItem(n.rarg, inner);
        level.items.push(...inner.items);
        const joinAlias = (n.alias as { aliasname?: unknown } | undefined)?.aliasname;
        if (typeof joinAlias === 'string') {
          const parts = inner.items;
          level.items.push({
            name: joinAlias,
            schema: null,
            col: (c) => parts.reduce<Taint>((acc, i) => acc ?? i.col(c), null),
            whole: () => parts.reduce<Taint>((acc, i) => acc ?? i.whole(), null),
          });
        }
        this.expr(n.quals, level);
        return;
      }
      case 'RangeSubselect': {
        const q = nodeOf(n.subquery);
        // Without LATERAL a subquery in FROM does not see the items before it.
        const shape = q ? this.query(q[0], q[1], n.lateral ? level : level.parent) : { entries: null, whole: null };
        level.items.push(shapeItem(alias.name, renamed(shape, alias.columns)));
        return;
      }
      case 'RangeFunction': {
        // Functions in FROM may always refer to the items before them.
        const taint = this.expr(n.functions, level);
        let name = alias.name;
        if (name === null) {
          const first = ((n.functions as unknown[] | undefined)?.[0] as { List?: { items?: unknown[] } } | undefined)?.List?.items?.[0];
          const fc = (first as { FuncCall?: Obj } | undefined)?.FuncCall;
          const fn = fc ? strings(fc.funcname) : [];
          name = fn.length ? fn[fn.length - 1]! : null;
        }
        level.items.push(fixedItem(name, taint));
        return;
      }
      case 'RangeTableSample': {
        this.fromItem({ RangeVar: rangeVar(n.relation) ?? {} }, level);
        this.expr([n.args, n.repeatable], level);
        return;
      }
      default: {
        const taint = this.expr(n, level);
        level.items.push(fixedItem(alias.name, taint));
      }
    }
  }

  private targetItem(relation: unknown): { item: Item; rel: Rel } | null {
    const rv = rangeVar(relation);
    if (!rv) return null;
    const rel = relOf(rv);
    return { item: baseItem(this.masks, rel, aliasOf(rv).name, false), rel };
  }

  /** Whether writing into column `column` of `rel` keeps the value masked there. */
  private maskedTarget(rel: Rel, column: string | null): boolean {
    return column !== null && this.masks.column(rel, column) !== null;
  }

  /** RETURNING (PostgreSQL 18: `returningClause { options, exprs }`, where `old`/`new` or their aliases name the
   *  target row before and after). */
  private returning(clause: unknown, level: Scope, rel: Rel | null): Shape {
    const rc = clause as { exprs?: unknown; options?: unknown[] } | undefined;
    if (!rc) return { entries: [], whole: null };
    const scope = newScope(level);
    if (rel) {
      const names = new Set(['old', 'new']);
      for (const o of rc.options ?? []) {
        const v = (o as { ReturningOption?: { value?: unknown } }).ReturningOption?.value;
        if (typeof v === 'string') names.add(v);
      }
      for (const name of names) scope.items.push(baseItem(this.masks, rel, name, false));
    }
    const entries = this.targetList(rc.exprs, scope);
    return { entries, whole: shapeWhole(entries) };
  }

  private insert(n: Obj, outer: Scope | null): Shape {
    const scope0 = this.withClause(n.withClause, outer);
    const target = this.targetItem(n.relation);
    const cols = ((n.cols as unknown[] | undefined) ?? []).map((c) => {
      const name = (c as { ResTarget?: { name?: unknown } }).ResTarget?.name;
      return typeof name === 'string' ? name : null;
    });
    const src = nodeOf(n.selectStmt);
    const shape = src ? this.query(src[0], src[1], scope0) : { entries: [], whole: null };
    const into = target?.rel.written ?? 'a table';
    if (shape.entries === null) {
      if (shape.whole) this.launder(`INSERT copies ${shape.whole} into ${into}`);
    } else {
      shape.entries.forEach((e, i) => {
        const t = 'star' in e ? shapeWhole([e]) : e.taint;
        const col = 'star' in e ? null : (cols[i] ?? null);
        if (t && !(target && this.maskedTarget(target.rel, col))) this.launder(`INSERT copies ${t} into ${col ? `${into}.${col}` : into}`);
      });
    }
    const level = newScope(scope0);
    if (target) level.items.push(target.item);
    const conflict = n.onConflictClause as { targetList?: unknown[]; whereClause?: unknown } | undefined;
    if (conflict) {
      level.items.push(fixedItem('excluded', shape.whole));
      this.assignments(conflict.targetList, level, target?.rel ?? null, 'INSERT … ON CONFLICT DO UPDATE');
      this.expr(conflict.whereClause, level);
      level.items.pop();
    }
    return this.returning(n.returningClause, level, target?.rel ?? null);
  }

  /** SET col = expr lists (UPDATE, ON CONFLICT, MERGE … UPDATE): a tainted value into an unmasked column launders. */
  private assignments(list: unknown, level: Scope, rel: Rel | null, what: string): void {
    for (const t of (list as unknown[] | undefined) ?? []) {
      const rt = (t as { ResTarget?: Obj }).ResTarget;
      if (!rt) continue;
      const col = typeof rt.name === 'string' ? rt.name : null;
      const taint = this.expr([rt.val, rt.indirection], level);
      if (taint && !(rel && this.maskedTarget(rel, col))) this.launder(`${what} writes ${taint} into ${rel?.written ?? 'a table'}${col ? `.${col}` : ''}`);
    }
  }

  private update(n: Obj, outer: Scope | null): Shape {
    const scope0 = this.withClause(n.withClause, outer);
    const level = newScope(scope0);
    const target = this.targetItem(n.relation);
    if (target) level.items.push(target.item);
    for (const f of (n.fromClause as unknown[] | undefined) ?? []) this.fromItem(f, level);
    this.assignments(n.targetList, level, target?.rel ?? null, 'UPDATE');
    this.expr(n.whereClause, level);
    return this.returning(n.returningClause, level, target?.rel ?? null);
  }

  private delete(n: Obj, outer: Scope | null): Shape {
    const scope0 = this.withClause(n.withClause, outer);
    const level = newScope(scope0);
    const target = this.targetItem(n.relation);
    if (target) level.items.push(target.item);
    for (const f of (n.usingClause as unknown[] | undefined) ?? []) this.fromItem(f, level);
    this.expr(n.whereClause, level);
    return this.returning(n.returningClause, level, target?.rel ?? null);
  }

  private merge(n: Obj, outer: Scope | null): Shape {
    const scope0 = this.withClause(n.withClause, outer);
    const level = newScope(scope0);
    const target = this.targetItem(n.relation);
    if (target) level.items.push(target.item);
    this.fromItem(n.sourceRelation, level);
    this.expr(n.joinCondition, level);
    const rel = target?.rel ?? null;
    for (const w of (n.mergeWhenClauses as unknown[] | undefined) ?? []) {
      const wc = (w as { MergeWhenClause?: Obj }).MergeWhenClause;
      if (!wc) continue;
      this.expr(wc.condition, level);
      if (wc.commandType === 'CMD_INSERT') {
        const cols = ((wc.targetList as unknown[] | undefined) ?? []).map((c) => {
          const name = (c as { ResTarget?: { name?: unknown } }).ResTarget?.name;
          return typeof name === 'string' ? name : null;
        });
        ((wc.values as unknown[] | undefined) ?? []).forEach((v, i) => {
          const t = this.expr(v, level);
          const col = cols[i] ?? null;
          if (t && !(rel && this.maskedTarget(rel, col))) this.launder(`MERGE copies ${t} into ${rel?.written ?? 'a table'}${col ? `.${col}` : ''}`);
        });
      } else {
        this.assignments(wc.targetList, level, rel, 'MERGE');
      }
    }
    return this.returning(n.returningClause, level, target?.rel ?? null);
  }

  // ── statements

  /** Outputs, laundering and taint of one top-level statement. */
  statement(type: string, n: Obj): boolean[] | null {
    switch (type) {
      case 'SelectStmt': {
        const shape = this.select(n, null);
        const into = n.intoClause as { rel?: unknown } | undefined;
        if (into) {
          const rv = rangeVar(into.rel);
          if (shape.whole) this.launder(`SELECT INTO copies ${shape.whole} into ${rv ? relOf(rv).written : 'a table'}`);
          return [];
        }
        return outputsOf(shape);
      }
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        return outputsOf(this.query(type, n, null));
      case 'CreateTableAsStmt':
      case 'ViewStmt': {
        const what = type === 'ViewStmt' ? 'CREATE VIEW' : n.objtype === 'OBJECT_MATVIEW' ? 'CREATE MATERIALIZED VIEW' : 'CREATE TABLE AS';
        const rv = rangeVar(type === 'ViewStmt' ? n.view : (n.into as Obj | undefined)?.rel);
        const dest = rv ? relOf(rv).written : 'a new relation';
        const q = nodeOf(n.query);
        if (q && q[0] === 'ExecuteStmt') {
          if (this.masks.any) {
            this.note(`prepared statement ${String(q[1].name)}`);
            this.launder(`${what} stores the result of prepared statement ${String(q[1].name)}, which cannot be analysed here, into ${dest}`);
          }
          return [];
        }
        const shape = q ? this.query(q[0], q[1], null) : { entries: null, whole: null };
        if (shape.whole) this.launder(`${what} copies ${shape.whole} into ${dest}`);
        return [];
      }
      case 'CopyStmt': {
        if (n.is_from) {
          this.expr(n.whereClause, null);
          return [];
        }
        let shape: Shape;
        const q = nodeOf(n.query);
        if (q) shape = this.query(q[0], q[1], null);
        else {
          const rv = rangeVar(n.relation);
          const item = rv ? baseItem(this.masks, relOf(rv), null, false) : fixedItem(null, null);
          const cols = strings(n.attlist);
          const entries = cols.length ? cols.map((c) => ({ name: c, taint: this.note(item.col(c)) })) : null;
          shape = { entries, whole: this.note(entries ? shapeWhole(entries) : item.whole()) };
        }
        if (shape.whole && typeof n.filename === 'string') {
          this.launder(`COPY TO ${n.is_program ? 'PROGRAM ' : ''}'${n.filename}' writes ${shape.whole} outside the database's masking`);
        }
        return outputsOf(shape);
      }
      case 'ExplainStmt': {
        const q = nodeOf(n.query);
        if (q) {
          const run = (): void => void this.statement(q[0], q[1]);
          if (analyzeOption(n.options)) run();
          else this.withoutLaundering(run);
        }
        return [false];
      }
      case 'PrepareStmt':
      case 'DeclareCursorStmt': {
        const q = nodeOf(n.query);
        if (q) this.statement(q[0], q[1]);
        return [];
      }
      case 'ExecuteStmt':
      case 'FetchStmt':
        // What runs is decided elsewhere (the PREPAREd statement, the cursor's query): assume the worst.
        if (this.masks.any) this.note(type === 'ExecuteStmt' ? `prepared statement ${String(n.name)}` : `cursor ${String(n.portalname)}`);
        return type === 'FetchStmt' && n.ismove ? [] : null;
      case 'CallStmt': {
        this.expr(n.funccall, null);
        return null;
      }
      case 'DoStmt':
        this.doBlock(n);
        return [];
      case 'RuleStmt': {
        for (const a of (n.actions as unknown[] | undefined) ?? []) {
          const t = nodeOf(a);
          if (!t) continue;
          const before = this.launders;
          this.statement(t[0], t[1]);
          if (this.launders !== null && before === null) this.launders = `CREATE RULE: ${this.launders}`;
        }
        return [];
      }
      case 'CreateFunctionStmt':
      case 'CreateTrigStmt':
      case 'CreateEventTrigStmt':
        // Creating code runs nothing; its calls are analysed through the catalogue (taintedFunctions).
        return [];
      case 'VariableShowStmt':
        return [false];
      default: {
        // Anything else: a masked column named anywhere in it, with its relations in scope.
        const level = newScope(null);
        collectRelations(n, (rv) => level.items.push(baseItem(this.masks, relOf(rv), aliasOf(rv).name, false)));
        this.expr(n, level);
        return [];
      }
    }
  }

  private doBlock(n: Obj): void {
    const opts = new Map<string, unknown>();
    for (const a of (n.args as unknown[] | undefined) ?? []) {
      const d = (a as { DefElem?: Obj }).DefElem;
      if (d && typeof d.defname === 'string') opts.set(d.defname, d.arg);
    }
    const lang = ((opts.get('language') as { String?: { sval?: string } } | undefined)?.String?.sval ?? 'plpgsql').toLowerCase();
    const body = (opts.get('as') as { String?: { sval?: string } } | undefined)?.String?.sval ?? '';
    let statements: readonly string[] = [];
    let opaque: string | null;
    if (lang === 'plpgsql') {
      const r = plpgsqlBodySql(`DO ${dollar(body)}`, 'DO block');
      statements = r.statements;
      opaque = r.opaque;
    } else opaque = otherLanguage(lang, 'DO block');
    if (this.depth >= MAX_DEPTH) opaque ??= 'DO block nests code too deeply to analyse';
    for (const s of this.depth < MAX_DEPTH ? statements : []) {
      for (const l of lineageAt(s, this.input, this.masks, this.depth + 1)) {
        if (l.launders) this.launder(`DO block: ${l.launders}`);
        if (l.tainted) {
          const src = this.note(l.source ?? 'a masked column');
          // Procedural code can move what it reads anywhere (RAISE, variables, writes): reading masked data launders.
          this.launder(`DO block reads ${src} in procedural code, where it can leave through RAISE, variables or writes`);
        }
      }
    }
    if (opaque !== null && this.masks.any) {
      this.note('a DO block that cannot be analysed');
      this.launder(`${opaque}; it may read and move masked data`);
    }
  }
}

function dollar(body: string): string {
  let tag = '$dlpctl$';
  for (let i = 0; body.includes(tag); i++) tag = `$dlpctl${i}$`;
  return `${tag}${body}${tag}`;
}

function collectRelations(root: unknown, add: (rv: Obj) => void): void {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const n = stack.pop();
    if (n === null || typeof n !== 'object') continue;
    if (Array.isArray(n)) {
      for (const x of n) stack.push(x);
      continue;
    }
    const o = n as Obj;
    if (typeof o.relname === 'string') {
      add(o);
      continue;
    }
    for (const k of Object.keys(o)) stack.push(o[k]);
  }
}

function outputsOf(shape: Shape): boolean[] | null {
  if (shape.entries === null) return null;
  const out: boolean[] = [];
  for (const e of shape.entries) {
    if ('star' in e) return null;
    out.push(e.taint !== null);
  }
  return out;
}

const UNANALYSABLE: StatementLineage = Object.freeze({ tainted: true, outputs: null, launders: null, source: null });

function lineageAt(sql: string, input: LineageInput, masks: Masks, depth: number): StatementLineage[] {
  let tree: unknown;
  try {
    tree = parseSqlTree(sql);
  } catch (err) {
    if (err instanceof Error && err.name === 'DlpctlError') throw err;
    return [{ ...UNANALYSABLE }];
  }
  const out: StatementLineage[] = [];
  for (const raw of (tree as { stmts?: { stmt?: unknown }[] }).stmts ?? []) {
    const t = nodeOf(raw.stmt);
    if (!t) continue;
    const a = new Analysis(masks, input, depth);
    try {
      const outputs = a.statement(t[0], t[1]);
      const tainted = a.tainted !== null || (outputs?.some((x) => x) ?? false);
      out.push({ tainted, outputs, launders: a.launders, source: a.tainted });
    } catch (err) {
      // A tree nested deeper than the stack allows: assume the worst of it.
      if (!(err instanceof RangeError)) throw err;
      const launders = WRITE_TYPES.has(t[0]) && masks.any ? 'the statement is nested too deeply to analyse where its values go' : a.launders;
      out.push({ tainted: true, outputs: null, launders, source: a.tainted });
    }
  }
  return out;
}

/** One entry per statement of `sql` (same order as classifySql). Throws nothing: unparseable text gives
 *  [{ tainted: true, outputs: null, launders: null }] (fail toward masking). `initSqlParser()` must have resolved. */
export function statementLineage(sql: string, input: LineageInput): StatementLineage[] {
  return lineageAt(sql, input, new Masks(input), 0);
}
