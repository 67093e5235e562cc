/**
 * Which data a statement can carry out, for a tunnel with column mask rules. The pure lineage of the statement's
 * text (policy/sql/lineage.ts) is given what only the catalogue knows:
 *
 *   - views and materialized views the statement reads: each of their columns that shows a masked base column,
 *     or is computed from one, becomes a masked pattern of its own (`public.v.a`); a view whose definition cannot
 *     be traced is masked whole (`public.v.*`). Views over views are followed through the same function.
 *   - functions whose results carry masked data (from the call analysis): passed in by the caller.
 *
 * The answer drives masking of computed result columns, withholding of server messages and the denial of
 * statements that copy masked data into another relation or object.
 */
import { classifySql } from '../../policy/index.js';
import { literalFreeShape } from '../../policy/sql/classify.js';
import { statementLineage, type StatementLineage } from '../../policy/sql/lineage.js';
import { Lru } from '../../policy/sql/lru.js';
import type { CatalogResolver } from './catalog.js';
import { columnPatternMatches } from './result-mask.js';

const MAX_DEPTH = 8;
/**
 * Lineage by (patterns, tainted functions, statement): a tunnel sees the same statements and the same rules
 * again. A statement is keyed by its literal-free shape when it has one (a driver that inlines its values,
 * `… WHERE aid = 48213`, is analysed once per shape: literals name no column, see literalFreeShape), else by its text.
 */
const lineageCache = new Lru<string, StatementLineage[]>(10_000);
const MAX_CACHED_TEXT = 16 * 1024;

/**
 * The (patterns, tainted functions) half of the key as a short number: a tunnel asks with the same rules statement
 * after statement, and joining a dozen patterns into every key (then hashing it) was a visible cost per statement.
 */
const contextIds = new Map<string, number>();
const MAX_CONTEXTS = 1000;
let nextContextId = 1;
let lastContext: { masked: readonly string[]; tainted: ReadonlySet<string>; id: number } | null = null;

function contextId(masked: readonly string[], tainted: ReadonlySet<string>): number {
  const last = lastContext;
  if (last !== null && sameContext(last, masked, tainted)) return last.id;
  const key = `${masked.join('\n')}\0${[...tainted].sort().join(',')}`;
  let id = contextIds.get(key);
  if (id === undefined) {
    // (ids are never reused: entries under a forgotten id just age out of the lineage cache)
    if (contextIds.size >= MAX_CONTEXTS) contextIds.clear();
    id = nextContextId++;
    contextIds.set(key, id);
  }
  lastContext = { masked: [...masked], tainted: new Set(tainted), id };
  return id;
}

function sameContext(c: { masked: readonly string[]; tainted: ReadonlySet<string> }, masked: readonly string[], tainted: ReadonlySet<string>): boolean {
  if (c.masked.length !== masked.length || c.tainted.size !== tainted.size) return false;
  for (let i = 0; i < masked.length; i++) if (c.masked[i] !== masked[i]) return false;
  for (const t of tainted) if (!c.tainted.has(t)) return false;
  return true;
}

export function cachedLineage(sql: string, masked: readonly string[], taintedFunctions: ReadonlySet<string>): StatementLineage[] {
  if (sql.length > MAX_CACHED_TEXT) return statementLineage(sql, { masked, taintedFunctions });
  const shape = literalFreeShape(sql);
  const key = `${contextId(masked, taintedFunctions)}\0${shape === null ? `t:${sql}` : `s:${shape}`}`;
  let hit = lineageCache.get(key);
  if (!hit) {
    hit = statementLineage(sql, { masked, taintedFunctions });
    lineageCache.set(key, hit);
  }
  return hit;
}

export interface StatementTaint {
  /** Masked patterns: the rules' own plus those derived from views. */
  masked: string[];
  lineage: StatementLineage[];
}

/** The masked patterns the views read by `reads` add to `masked` (followed through views of views). */
export async function viewPatterns(catalog: CatalogResolver, reads: readonly string[], masked: readonly string[], taintedFunctions: ReadonlySet<string>, depth = 0): Promise<string[]> {
  const out: string[] = [];
  for (const name of new Set(reads)) {
    const rel = await catalog.relationNamed(name);
    if (!rel || (rel.kind !== 'v' && rel.kind !== 'm')) continue;
    const view = await catalog.viewLineage(rel.oid);
    const qualified = `${rel.schema}.${rel.name}`;
    if (view.opaque || depth >= MAX_DEPTH) {
      out.push(`${qualified}.*`);
      continue;
    }
    // what the definition itself reads through other views
    const inner = classifySql(view.definition).statements.flatMap((s) => s.reads);
    const all = [...masked, ...(await viewPatterns(catalog, inner, masked, taintedFunctions, depth + 1))];
    const lineage = cachedLineage(view.definition, all, taintedFunctions)[0];
    view.columns.forEach((c, i) => {
      const tainted = c.base ? all.some((p) => columnPatternMatches(p, c.base!)) : (lineage?.outputs?.[i] ?? lineage?.tainted ?? true);
      if (tainted) out.push(`${qualified}.${c.name}`);
    });
  }
  return out;
}

/** The statement's lineage against the rules' column patterns and the views it reads. */
export async function statementTaint(
  catalog: CatalogResolver,
  sql: string,
  reads: readonly string[],
  columnPatterns: readonly string[],
  taintedFunctions: ReadonlySet<string>,
): Promise<StatementTaint> {
  const masked = [...columnPatterns, ...(await viewPatterns(catalog, reads, columnPatterns, taintedFunctions))];
  return { masked, lineage: cachedLineage(sql, masked, taintedFunctions) };
}
