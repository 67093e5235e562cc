/**
 * Column names for column mask rules. A RowDescription names each column's table by OID and column
 * number; one catalogue connection per tunnel (opened on first need, with the injected credential) turns
 * that into schema.table.column. Whole tables are fetched and cached for a minute.
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
    const run = async () => {
      if (!Number.isInteger(tableOid) || tableOid <= 0) return new Map<number, ColumnName>();
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
      await up.conn.write(
        encodeQuery(
          `SELECT a.attnum, n.nspname, c.relname, a.attname FROM pg_catalog.pg_attribute a ` +
            `JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ` +
            `WHERE a.attrelid = ${tableOid} AND a.attnum > 0`,
        ),
      );
      const columns = new Map<number, ColumnName>();
      let error: string | null = null;
      for (;;) {
        const msg = decodeBackend(await up.conn.next());
        if (msg.kind === 'DataRow') {
          const [num, schema, table, column] = msg.cells.map((c) => (c ? c.toString('utf8') : ''));
          columns.set(Number(num), { schema: schema ?? '', table: table ?? '', column: column ?? '' });
        } else if (msg.kind === 'ErrorResponse') error = msg.message;
        else if (msg.kind === 'ReadyForQuery') break;
      }
      if (error) throw new DlpctlError('INTERNAL', `cannot read column names from the database catalogue: ${error}`);
      return columns;
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
