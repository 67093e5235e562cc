import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { int4Array, textArray, timestamptzArray } from '../../src/store/pg-binary.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';

let server: TestPostgres;
let client: import('pg').Client;
beforeAll(async () => {
  server = await startPostgres();
  const pg = (await import('pg')).default;
  client = new pg.Client({ connectionString: server.url });
  await client.connect();
});
afterAll(async () => {
  await client?.end();
  await server?.stop();
});

/** What the server read: each element as text (NULL as null), in order, and the array's length. */
async function readBack(cast: string, param: Buffer, element = 'v::text'): Promise<{ values: (string | null)[]; n: number }> {
  const r = await client.query(
    `SELECT coalesce(cardinality($1::${cast}), 0) AS n, (SELECT array_agg(${element} ORDER BY i) FROM unnest($1::${cast}) WITH ORDINALITY AS t(v, i)) AS values`,
    [param],
  );
  return { n: Number(r.rows[0].n), values: (r.rows[0].values as (string | null)[] | null) ?? [] };
}

describe('binary array parameters (what the PostgreSQL store binds)', () => {
  it('the layout array_recv reads: dimensions, null flag, element OID, length, lower bound, then length-prefixed elements', () => {
    expect(int4Array([7]).toString('hex')).toBe('00000001' + '00000000' + '00000017' + '00000001' + '00000001' + '00000004' + '00000007');
    expect(textArray(['ab', null]).toString('hex')).toBe('00000001' + '00000001' + '00000019' + '00000002' + '00000001' + '00000002' + '6162' + 'ffffffff');
    // An empty array has no dimensions at all.
    expect(textArray([]).toString('hex')).toBe('00000000' + '00000000' + '00000019');
  });

  it('text: every string comes back as it was, quotes, backslashes, braces, commas, the word NULL, multibyte and long', async () => {
    const values = ['', 'a', '"quoted" \\back\\slash {brace} a,b', 'NULL', null, 'Zürich € 𝄞 日本', "it's", 'x'.repeat(200_000), null];
    expect(await readBack('text[]', textArray(values))).toEqual({ n: values.length, values });
    expect(await readBack('text[]', textArray([]))).toEqual({ n: 0, values: [] });
  });

  it('int4: the whole 32-bit range', async () => {
    const values = [0, 1, -1, 2147483647, -2147483648, 42];
    expect(await readBack('int4[]', int4Array(values))).toEqual({ n: values.length, values: values.map(String) });
  });

  it('timestamptz: milliseconds either side of both epochs, far future, and NULL', async () => {
    const values = [0, -1, 946_684_800_000, 946_684_799_999, 946_684_800_001, Date.UTC(2026, 11, 5, 13, 0, 0, 123), -86_400_000 * 365 * 30 - 7, 253_402_300_799_999, null];
    const back = await readBack('timestamptz[]', timestamptzArray(values), "(extract(epoch FROM v) * 1000)::bigint::text");
    expect(back).toEqual({ n: values.length, values: values.map((v) => (v === null ? null : String(v))) });
  });

  it('the server refuses an array whose element type is not the one the statement casts to', async () => {
    await expect(client.query('SELECT cardinality($1::text[])', [int4Array([1])])).rejects.toThrow(/array element type 23 \(integer\) instead of expected 25 \(text\)/);
  });
});
