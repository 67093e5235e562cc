/**
 * What the tunnel asks the database's own catalogue, on one connection per tunnel (opened on first need, with the
 * injected credential, never shared with a client):
 *
 *   - column names of a RowDescription's (table OID, column number), for column mask rules;
 *   - for a view or materialized view, which base column each of its columns shows: the view's definition
 *     (pg_get_viewdef) is described (Parse + Describe, never executed) and PostgreSQL itself says, per output
 *     column, which table column it is (or 0 for a computed one); views over views are followed;
 *   - the shape of an arbitrary query (`describe`), for COPY (query) TO STDOUT, which has no RowDescription;
 *   - the pg_proc rows of the functions a statement calls (language, volatility, body), for the call checks and
 *     the lineage of function results;
 *   - a relation by name (to_regclass), for the views a statement reads;
 *   - a function by OID, for the function-call sub-protocol, and whether a session's backend still runs.
 *
 * Everything is cached for a minute and dropped at once when the tunnel lets a DDL statement through
 * (`invalidate`). Lookups that find nothing are not cached (the object may be created by the next statement).
 */
import { DlpctlError } from '../../errors.js';
import type { ProcRow } from '../../policy/sql/functions.js';
import type { ColumnName, ColumnResolver, ResolvedColumn } from './result-mask.js';
import { connectUpstream, type Upstream, type UpstreamTarget } from './upstream.js';
import { decodeBackend, encodeFrontend, encodeSync, encodeTerminate, type FieldDescription } from './protocol.js';

const TTL_MS = 60_000;
/** Views over views are followed this deep; deeper is treated as opaque (masked). */
const MAX_VIEW_DEPTH = 12;

export interface RelationInfo {
  oid: number;
  schema: string;
  name: string;
  /** pg_class.relkind: r table, v view, m materialized view, p partitioned, f foreign, … */
  kind: string;
  columns: Map<number, string>;
  /** The definition of a view or materialized view. */
  viewdef?: string;
}

/** One column of a view: the base column it shows, or null when it is computed (or cannot be traced). */
export interface ViewColumn {
  attnum: number;
  name: string;
  base: ColumnName | null;
}

export interface ViewLineage {
  relation: RelationInfo;
  /** In attnum order. */
  columns: ViewColumn[];
  /** The view's definition, for the lineage of its computed columns. */
  definition: string;
  /** The definition could not be described (e.g. it uses a search_path the catalogue connection lacks). */
  opaque: boolean;
}

interface Cached<T> {
  at: number;
  value: Promise<T>;
}

type Cell = string | null;

export class CatalogResolver implements ColumnResolver {
  private readonly target: UpstreamTarget;
  private upstream: Promise<Upstream> | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly byOid = new Map<number, Cached<RelationInfo | null>>();
  private readonly byName = new Map<string, Cached<number | null>>();
  private readonly views = new Map<number, Cached<ViewLineage>>();
  private readonly procs = new Map<string, Cached<ProcRow[]>>();

  constructor(target: UpstreamTarget) {
    this.target = target;
  }

  /** Forget everything (a DDL statement went through). */
  invalidate(): void {
    this.byOid.clear();
    this.byName.clear();
    this.views.clear();
    this.procs.clear();
  }

  async resolve(tableOid: number, columnAttr: number): Promise<ResolvedColumn | null> {
    const rel = await this.relation(tableOid);
    if (!rel) return null;
    const column = rel.columns.get(columnAttr);
    if (column === undefined) return null;
    const name: ColumnName = { schema: rel.schema, table: rel.name, column };
    if (rel.kind !== 'v' && rel.kind !== 'm') return { name, base: name };
    const view = await this.viewLineage(tableOid);
    const vc = view.columns.find((c) => c.attnum === columnAttr);
    return { name, base: vc?.base ?? null, view: { definition: view.definition, index: vc ? view.columns.indexOf(vc) : -1, opaque: view.opaque || !vc } };
  }

  /** A relation by OID (null when there is none). */
  relation(oid: number): Promise<RelationInfo | null> {
    if (!Number.isInteger(oid) || oid <= 0) return Promise.resolve(null);
    return this.cached(this.byOid, oid, async () => {
      const rows = await this.query(
        `SELECT n.nspname, c.relname, c.relkind::text, CASE WHEN c.relkind IN ('v','m') THEN pg_catalog.pg_get_viewdef(c.oid) END ` +
          `FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1`,
        [String(oid)],
      );
      const row = rows[0];
      if (!row) return null;
      const cols = await this.query(`SELECT attnum, attname FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, [String(oid)]);
      const columns = new Map<number, string>();
      for (const [num, name] of cols) columns.set(Number(num), name ?? '');
      const info: RelationInfo = { oid, schema: row[0] ?? '', name: row[1] ?? '', kind: row[2] ?? '', columns };
      if (row[3]) info.viewdef = row[3];
      return info;
    });
  }

  /** A relation by the name a statement wrote (resolved with the catalogue connection's search_path). */
  async relationNamed(name: string): Promise<RelationInfo | null> {
    const oid = await this.cached(this.byName, name, async () => {
      const rows = await this.query(`SELECT pg_catalog.to_regclass($1)::oid`, [quoteQualified(name)]);
      const v = rows[0]?.[0];
      return v ? Number(v) : null;
    });
    return oid === null ? null : this.relation(oid);
  }

  /** The base column behind each column of a view (followed through views of views). */
  viewLineage(oid: number, depth = 0): Promise<ViewLineage> {
    return this.cached(this.views, oid, async () => {
      const relation = await this.relation(oid);
      if (!relation?.viewdef) throw new DlpctlError('INTERNAL', `relation ${oid} is not a view`);
      const definition = relation.viewdef.trim().replace(/;$/, '');
      const fields = depth < MAX_VIEW_DEPTH ? await this.describe(definition).catch(() => null) : null;
      const columns: ViewColumn[] = [];
      const attnums = [...relation.columns.keys()].sort((a, b) => a - b);
      for (let i = 0; i < attnums.length; i++) {
        const attnum = attnums[i]!;
        const f = fields?.[i];
        let base: ColumnName | null = null;
        if (f && f.tableOid !== 0) {
          const inner = await this.relation(f.tableOid);
          const column = inner?.columns.get(f.columnAttr);
          if (inner && column !== undefined) {
            if (inner.kind === 'v' || inner.kind === 'm') {
              const deeper = await this.viewLineage(inner.oid, depth + 1);
              base = deeper.columns.find((c) => c.attnum === f.columnAttr)?.base ?? null;
            } else base = { schema: inner.schema, table: inner.name, column };
          }
        }
        columns.push({ attnum, name: relation.columns.get(attnum) ?? '', base });
      }
      return { relation, columns, definition, opaque: fields === null || fields.length !== attnums.length };
    });
  }

  /** Every pg_proc row of a function name as a statement wrote it (`name` or `schema.name`), visible to it. */
  functions(name: string): Promise<ProcRow[]> {
    return this.cached(this.procs, name, async () => {
      const dot = splitQualified(name);
      const rows = await this.query(
        `SELECT n.nspname, p.proname, l.lanname, p.provolatile::text, p.prokind::text, p.prosrc, ` +
          `pg_catalog.pg_get_function_arguments(p.oid), pg_catalog.pg_get_function_result(p.oid) ` +
          `FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace JOIN pg_catalog.pg_language l ON l.oid = p.prolang ` +
          `WHERE p.proname = $1 AND ${dot.schema === null ? `n.nspname = ANY (pg_catalog.current_schemas(true))` : `n.nspname = $2`}`,
        dot.schema === null ? [dot.name] : [dot.name, dot.schema],
      );
      return rows.map((r) => ({
        schema: r[0] ?? '',
        name: r[1] ?? '',
        language: r[2] ?? '',
        volatility: (r[3] ?? 'v') as ProcRow['volatility'],
        kind: (r[4] ?? 'f') as ProcRow['kind'],
        body: r[5] ?? null,
        ...(r[6] !== null && r[6] !== undefined ? { args: r[6] } : {}),
        ...(r[7] !== null && r[7] !== undefined ? { result: r[7] } : {}),
      }));
    });
  }

  /** The result shape of `sql` (Parse + Describe, never executed); null for a statement that returns no rows. */
  describe(sql: string): Promise<FieldDescription[] | null> {
    return this.exclusive(async (up) => {
      await up.conn.write(
        Buffer.concat([encodeFrontend({ kind: 'Parse', name: '', query: sql, paramTypes: [] }), encodeFrontend({ kind: 'Describe', target: 'S', name: '' }), encodeSync()]),
      );
      let fields: FieldDescription[] | null = null;
      let error: string | null = null;
      for (;;) {
        const msg = decodeBackend(await up.conn.next());
        if (msg.kind === 'RowDescription') fields = [...msg.fields];
        else if (msg.kind === 'ErrorResponse') error = msg.message;
        else if (msg.kind === 'ReadyForQuery') break;
      }
      if (error !== null) throw new DlpctlError('INTERNAL', `cannot describe the statement in the database catalogue: ${error}`);
      return fields;
    });
  }

  /**
   * A function by OID as `schema.name`, each part quoted as an identifier, with its argument count and
   * result type OID; null when no such function exists. (The function-call sub-protocol names functions by
   * OID only.)
   */
  async functionName(oid: number): Promise<{ name: string; args: number; resultType: number } | null> {
    if (!Number.isInteger(oid) || oid <= 0 || oid > 0xffffffff) return null;
    const rows = await this.query(
      `SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname), p.pronargs, p.prorettype FROM pg_catalog.pg_proc p ` +
        `JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = $1`,
      [String(oid)],
    );
    const row = rows[0];
    return row && row[0] ? { name: row[0], args: Number(row[1]), resultType: Number(row[2]) } : null;
  }

  /** Whether a backend with this pid still runs on the server. */
  async backendAlive(pid: number): Promise<boolean> {
    if (!Number.isInteger(pid)) return false;
    const rows = await this.query(`SELECT 1 FROM pg_catalog.pg_stat_activity WHERE pid = $1`, [String(pid)]);
    return rows.length > 0;
  }

  /** Runs a catalogue query with text parameters (extended protocol, so names are never spliced into SQL). */
  private query(sql: string, params: string[]): Promise<Cell[][]> {
    return this.exclusive(async (up) => {
      await up.conn.write(
        Buffer.concat([
          encodeFrontend({ kind: 'Parse', name: '', query: sql, paramTypes: [] }),
          encodeFrontend({ kind: 'Bind', portal: '', statement: '', paramFormats: [], params: params.map((p) => Buffer.from(p, 'utf8')), resultFormats: [] }),
          encodeFrontend({ kind: 'Execute', portal: '', maxRows: 0 }),
          encodeSync(),
        ]),
      );
      const rows: Cell[][] = [];
      let error: string | null = null;
      for (;;) {
        const msg = decodeBackend(await up.conn.next());
        if (msg.kind === 'DataRow') rows.push(msg.cells.map((c) => (c ? c.toString('utf8') : null)));
        else if (msg.kind === 'ErrorResponse') error = msg.message;
        else if (msg.kind === 'ReadyForQuery') break;
      }
      if (error !== null) throw new DlpctlError('INTERNAL', `cannot read the database catalogue: ${error}`);
      return rows;
    });
  }

  /** One request at a time on the catalogue connection, (re)connecting as needed. */
  private exclusive<T>(fn: (up: Upstream) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      this.upstream ??= connectUpstream(this.target, new Map([['application_name', 'dlpctl catalog']]));
      let up: Upstream;
      try {
        up = await this.upstream;
      } catch (err) {
        this.upstream = null;
        throw err;
      }
      if (up.conn.closed) {
        this.upstream = null;
        return run();
      }
      return fn(up);
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => {});
    return p;
  }

  private cached<K, T>(map: Map<K, Cached<T>>, key: K, fetch: () => Promise<T>): Promise<T> {
    const now = Date.now();
    const hit = map.get(key);
    if (hit && now - hit.at <= TTL_MS) return hit.value;
    const value = fetch();
    map.set(key, { at: now, value });
    value.then(
      (v) => {
        if (v === null || (Array.isArray(v) && v.length === 0)) map.delete(key);
      },
      () => map.delete(key),
    );
    return value;
  }

  async close(): Promise<void> {
    const p = this.upstream;
    this.upstream = null;
    if (!p) return;
    try {
      const up = await p;
      await up.conn.end(encodeTerminate());
    } catch {
      /* already gone */
    }
  }
}

/** `a.b` as the parser reported it (unquoted parts lower-cased, quoted kept) → `"a"."b"` for to_regclass. */
function quoteQualified(name: string): string {
  return name
    .split('.')
    .map((p) => `"${p.replace(/"/g, '""')}"`)
    .join('.');
}

function splitQualified(name: string): { schema: string | null; name: string } {
  const i = name.lastIndexOf('.');
  return i === -1 ? { schema: null, name } : { schema: name.slice(0, i).split('.').pop()!, name: name.slice(i + 1) };
}
