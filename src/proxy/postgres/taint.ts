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

export function cachedLineage(sql: string, masked: readonly string[], taintedFunctions: ReadonlySet<string>): StatementLineage[] {
  if (sql.length > MAX_CACHED_TEXT) return statementLineage(sql, { masked, taintedFunctions });
  const shape = literalFreeShape(sql);
  const key = `${masked.join('\n')}\0${[...taintedFunctions].join(',')}\0${shape === null ? `t:${sql}` : `s:${shape}`}`;
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
