/**
 * Column names for column mask rules. A RowDescription names each column's table by OID and column
 * number; one catalogue connection per tunnel (opened on first need, with the injected credential) turns
 * that into schema.table.column. Whole tables are fetched and cached for a minute. The same connection
 * names functions by OID (the function-call sub-protocol) and checks that a session's backend still runs.
 */
import { DlpctlError } from '../../errors.js';
import type { ColumnName, ColumnResolver } from './result-mask.js';
import { connectUpstream, type Upstream, type UpstreamTarget } from './upstream.js';
import { decodeBackend, encodeQuery, encodeTerminate } from './protocol.js';

const TTL_MS = 60_000;

export class CatalogResolver implements ColumnResolver {
  private readonly target: UpstreamTarget;
  private upstream: Promise<Upstream> | null = null;
  private readonly tables = new Map<number, { at: number; columns: Promise<Map<number, ColumnName>> }>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(target: UpstreamTarget) {
    this.target = target;
  }

  async resolve(tableOid: number, columnAttr: number): Promise<ColumnName | null> {
    const now = Date.now();
    let entry = this.tables.get(tableOid);
    if (!entry || now - entry.at > TTL_MS) {
      entry = { at: now, columns: this.fetch(tableOid) };
      this.tables.set(tableOid, entry);
      entry.columns.catch(() => this.tables.delete(tableOid));
    }
    return (await entry.columns).get(columnAttr) ?? null;
  }

  private fetch(tableOid: number): Promise<Map<number, ColumnName>> {
    if (!Number.isInteger(tableOid) || tableOid <= 0) return Promise.resolve(new Map<number, ColumnName>());
    return this.rows(
      `SELECT a.attnum, n.nspname, c.relname, a.attname FROM pg_catalog.pg_attribute a ` +
        `JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ` +
        `WHERE a.attrelid = ${tableOid} AND a.attnum > 0`,
      'column names',
    ).then((rows) => {
      const columns = new Map<number, ColumnName>();
      for (const [num, schema, table, column] of rows) columns.set(Number(num), { schema: schema ?? '', table: table ?? '', column: column ?? '' });
      return columns;
    });
  }

  /**
   * A function by OID as `schema.name`, each part quoted as an identifier, with its argument count and
   * result type OID; null when no such function exists. (The function-call sub-protocol names functions by
   * OID only.)
   */
  async functionName(oid: number): Promise<{ name: string; args: number; resultType: number } | null> {
    if (!Number.isInteger(oid) || oid <= 0 || oid > 0xffffffff) return null;
    const rows = await this.rows(
      `SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname), p.pronargs, p.prorettype FROM pg_catalog.pg_proc p ` +
        `JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = ${oid}`,
      'function names',
    );
    const row = rows[0];
    return row && row[0] ? { name: row[0], args: Number(row[1]), resultType: Number(row[2]) } : null;
  }

  /** Whether a backend with this pid still runs on the server. */
  async backendAlive(pid: number): Promise<boolean> {
    if (!Number.isInteger(pid)) return false;
    const rows = await this.rows(`SELECT 1 FROM pg_catalog.pg_stat_activity WHERE pid = ${pid}`, 'server activity');
    return rows.length > 0;
  }

  /** One catalogue query at a time on the tunnel's own connection; every cell as text (null: SQL NULL). */
  private rows(sql: string, what: string): Promise<(string | null)[][]> {
    const run = async (): Promise<(string | null)[][]> => {
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
      await up.conn.write(encodeQuery(sql));
      const rows: (string | null)[][] = [];
      let error: string | null = null;
      for (;;) {
        const msg = decodeBackend(await up.conn.next());
        if (msg.kind === 'DataRow') rows.push(msg.cells.map((c) => (c ? c.toString('utf8') : null)));
        else if (msg.kind === 'ErrorResponse') error = msg.message;
        else if (msg.kind === 'ReadyForQuery') break;
      }
      if (error) throw new DlpctlError('INTERNAL', `cannot read ${what} from the database catalogue: ${error}`);
      return rows;
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => {});
    return p;
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
