import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { partial } from '../../../src/dlp/index.js';
import { BackendType, decodeBackend, encodeFrontend, encodeSync, type Frame } from '../../../src/proxy/postgres/protocol.js';
import { pgClient, psql, RawClient, startFixture, type Fixture, type TestTunnel } from './fixture.js';

let fx: Fixture;
let t: TestTunnel;
let direct: pg.Client;
let ssns: string[];

const POLICIES = `  pii:
    - name: ssn-column
      action: mask
      columns: [public.customers.ssn]
      with: redact
  nulls:
    - name: phone-null
      action: mask
      columns: [customers.phone]
      with: 'null'`;

beforeAll(async () => {
  fx = await startFixture();
  t = await fx.tunnel({ use: ['recommended', 'pii', 'nulls'], policies: POLICIES });
  direct = await pgClient(fx.dbUrl);
  ssns = (await direct.query('select ssn from customers order by id')).rows.map((r: { ssn: string }) => r.ssn);
  await direct.query('create table plain (id int, label text, n numeric, at date)');
  await direct.query(`insert into plain select g, 'item ' || g, g * 1.5, date '2024-01-01' + g from generate_series(1, 300) g`);
});
afterAll(async () => {
  await direct?.end();
  await fx?.stop();
});

function noSsn(text: string): void {
  for (const s of ssns) expect(text).not.toContain(s);
}

describe('masking', () => {
  it('a column rule masks an aliased column and SELECT * through a table alias', async () => {
    const c = await pgClient(t.url);
    const aliased = await c.query('SELECT ssn AS x FROM customers ORDER BY id');
    expect(aliased.rows).toHaveLength(20);
    for (const r of aliased.rows) expect(r.x).toBe('[REDACTED:ssn]');
    const star = await c.query('SELECT * FROM customers c ORDER BY id');
    for (const r of star.rows) expect(r.ssn).toBe('[REDACTED:ssn]');
    noSsn(JSON.stringify(star.rows));
    await c.end();
  });

  it('column rules with partial, hash and pseudonymize, on ASCII and non-ASCII text', async () => {
    await direct.query(`create table if not exists people (id int, ref text, email text, phone text)`);
    await direct.query('truncate people');
    await direct.query(
      `insert into people values (1, 'AB-1234-xy', 'ann@example.com', '555-0101'), (2, 'Zoë-98 76 ñ5', 'bob@example.com', '555-0102'),
       (3, '日本-12-34', 'ann@example.com', '555-0101'), (4, '', 'c@example.com', null)`,
    );
    const t2 = await fx.tunnel({
      use: ['cols'],
      policies: `  cols:
    - name: ref-partial
      action: mask
      columns: [people.ref]
      with: partial
      keep: 3
    - name: email-hash
      action: mask
      columns: [people.email]
      with: hash
    - name: phone-pseudo
      action: mask
      columns: [people.phone]
      with: pseudonymize`,
    });
    const c = await pgClient(t2.url);
    const rows = (await c.query('select ref, email, phone from people order by id')).rows as { ref: string; email: string; phone: string | null }[];
    const originals = (await direct.query('select ref from people order by id')).rows.map((r: { ref: string }) => r.ref);
    expect(rows.map((r) => r.ref)).toEqual(originals.map((v: string) => partial('ref', v, 3)));
    expect(rows[1]!.ref).toBe('***-** *6 ñ5'); // ë and ñ are letters: masked unless in the kept tail
    expect(rows[2]!.ref).toBe('**-*2-34');
    for (const r of rows) expect(r.email).toMatch(/^\[HASH:email:[0-9a-f]{8}\]$/);
    expect(rows[0]!.email).toBe(rows[2]!.email);
    expect(rows[0]!.email).not.toBe(rows[1]!.email);
    expect(rows[0]!.phone).toMatch(/^<PHONE_\d+>$/);
    expect(rows[0]!.phone).toBe(rows[2]!.phone);
    expect(rows[1]!.phone).not.toBe(rows[0]!.phone);
    expect(rows[3]!.phone).toBeNull();
    expect(JSON.stringify(rows)).not.toMatch(/example\.com|555-01/);
    await c.end();
  });

  it('a partial mask applied where the cell lies: every row of a result many socket reads long is masked, and so is the recorded sample', async () => {
    const t4 = await fx.tunnel({
      use: ['cards'],
      resource: '    record: { rows: 5, bytes: 4KiB }',
      policies: `  cards:
    - name: card-partial
      action: mask
      columns: [cardnum]
      with: partial`,
    });
    await direct.query('drop table if exists cards_inplace');
    await direct.query("create table cards_inplace as select g as id, lpad(g::text, 16, '4') as cardnum, 'x' || g as other from generate_series(1, 20000) g");
    const c = await pgClient(t4.url);
    const rows = (await c.query('select id, cardnum, other from cards_inplace order by id')).rows as { id: number; cardnum: string; other: string }[];
    expect(rows).toHaveLength(20000);
    for (const r of rows) {
      const raw = String(r.id).padStart(16, '4');
      expect(r.cardnum).toBe(partial('cardnum', raw, 4));
      expect(r.other).toBe(`x${r.id}`); // the cells around it untouched
    }
    await c.end();
    await t4.close();
    const session = t4.events.find((e) => e.type === 'session_start') as { sessionId: string };
    const result = (await fx.store.listEvents(session.sessionId)).find((e) => e.type === 'result') as { sample?: string[][] };
    expect(result.sample).toHaveLength(5);
    for (const [id, cardnum] of result.sample!) expect(cardnum).toBe(partial('cardnum', String(id).padStart(16, '4'), 4));
  });

  it('an entity rule with the null masker makes the cell SQL NULL; a cell with another entity is masked as text', async () => {
    const t3 = await fx.tunnel({
      use: ['nullmail'],
      policies: `  nullmail:
    - name: email-null
      action: mask
      entities: [email]
      with: 'null'
    - name: cards
      action: mask
      entities: [credit_card]
      with: partial`,
    });
    const c = await pgClient(t3.url);
    const r = await c.query(`select 'write to ann@example.com' as note, 'card 4111 1111 1111 1111' as card, 'nothing here' as other`);
    expect(r.rows).toEqual([{ note: null, card: 'card **** **** **** 1111', other: 'nothing here' }]);
    await c.end();
  });

  it('a binary-format result is masked too', async () => {
    const c = await pgClient(t.url, { binary: true } as pg.ClientConfig);
    const r = await c.query({ text: 'SELECT id, ssn, email FROM customers WHERE id <= $1 ORDER BY id', values: [5] });
    expect(r.rows).toHaveLength(5);
    for (const row of r.rows) {
      expect(String(row.ssn)).toContain('REDACTED');
      expect(String(row.email)).not.toMatch(/^[a-z]+\.[a-z]+\d+@example\.com$/);
    }
    noSsn(JSON.stringify(r.rows));
    await c.end();
  });

  it('entity rules mask emails and phones in free text and card numbers', async () => {
    const c = await pgClient(t.url);
    const rawNotes = (await direct.query(`select note from orders where note like 'call%' order by id`)).rows.map((r: { note: string }) => r.note);
    const notes = (await c.query(`select note from orders where note like 'call%' order by id`)).rows.map((r: { note: string }) => r.note);
    expect(notes).toHaveLength(rawNotes.length);
    expect(notes.length).toBeGreaterThan(0);
    for (const [i, n] of notes.entries()) {
      expect(n).not.toBe(rawNotes[i]);
      expect(n).not.toMatch(/@example\.com/);
      expect(n).not.toMatch(/555-\d{4}/);
      expect(n).toMatch(/^call me on .* or write to /);
    }
    const cards = (await direct.query('select card_number from payments order by id')).rows.map((r: { card_number: string }) => r.card_number);
    const masked = (await c.query('select card_number from payments order by id')).rows.map((r: { card_number: string }) => r.card_number);
    // (The seed's 16-digit numbers with the Amex prefix 37 are not valid card numbers: the detector skips them.)
    let checked = 0;
    for (const [i, m] of masked.entries()) {
      if (cards[i]!.startsWith('37')) continue;
      checked += 1;
      expect(m).not.toBe(cards[i]);
      expect(m.endsWith(cards[i]!.slice(-4))).toBe(true);
    }
    expect(checked).toBeGreaterThan(5);
    await c.end();
  });

  it('the null masker gives SQL NULL', async () => {
    const c = await pgClient(t.url);
    const r = await c.query('select id, phone from customers order by id limit 3');
    expect(r.rows.map((x) => x.phone)).toEqual([null, null, null]);
    await c.end();
  });

  it('DataRows without findings are forwarded byte-identical', async () => {
    const sql = 'select id, label, n, at from plain order by id';
    const collect = async (port: number, user: string, db: string, pw: string): Promise<Buffer[]> => {
      const raw = await RawClient.connect(port);
      await raw.startup(user, db, pw);
      raw.write(encodeFrontend({ kind: 'Query', query: sql }));
      const frames = await raw.untilReady();
      raw.close();
      return frames.filter((f) => f.type === BackendType.DataRow).map((f) => Buffer.from(f.raw));
    };
    const viaDirect = await collect(fx.pg.port, fx.pg.user, fx.database, fx.pg.password);
    const viaTunnel = await collect(t.port, 'postgres', fx.database, t.secret);
    expect(viaDirect).toHaveLength(300);
    expect(Buffer.concat(viaTunnel).equals(Buffer.concat(viaDirect))).toBe(true);
  });

  it('a long result with masked rows among unchanged ones: order kept, unchanged rows byte-identical', async () => {
    // Unchanged rows leave as runs of the upstream chunk (byte-run.ts); a masked row, rebuilt, ends a run.
    // 5,000 rows span many socket chunks, so runs also end and start at chunk edges.
    const sql = `select g, case when g % 7 = 0 then 'write to user' || g || '@example.com' else 'nothing here ' || g end from generate_series(1, 5000) g`;
    const collect = async (port: number, user: string, pw: string): Promise<Buffer[]> => {
      const raw = await RawClient.connect(port);
      await raw.startup(user, fx.database, pw);
      raw.write(encodeFrontend({ kind: 'Query', query: sql }));
      const frames = await raw.untilReady();
      raw.close();
      return frames.filter((f) => f.type === BackendType.DataRow).map((f) => Buffer.from(f.raw));
    };
    const viaDirect = await collect(fx.pg.port, fx.pg.user, fx.pg.password);
    const viaTunnel = await collect(t.port, 'postgres', t.secret);
    expect(viaDirect).toHaveLength(5000);
    expect(viaTunnel).toHaveLength(5000);
    const cell = (row: Buffer, i: number): string | undefined => {
      const m = decodeBackend({ type: BackendType.DataRow, payload: row.subarray(5), raw: row });
      return m.kind === 'DataRow' ? m.cells[i]?.toString('utf8') : undefined;
    };
    let masked = 0;
    for (let i = 0; i < 5000; i++) {
      const g = i + 1;
      expect(cell(viaTunnel[i]!, 0)).toBe(String(g));
      if (g % 7 === 0) {
        expect(cell(viaDirect[i]!, 1)).toBe(`write to user${g}@example.com`);
        expect(cell(viaTunnel[i]!, 1)).not.toContain('@example.com');
        masked += 1;
      } else if (!viaTunnel[i]!.equals(viaDirect[i]!)) {
        expect.fail(`row ${g} changed: ${cell(viaTunnel[i]!, 1)}`);
      }
    }
    expect(masked).toBe(714);
  });

  it('COPY (SELECT …) TO STDOUT is masked (psql \\copy and COPY TO STDOUT)', async () => {
    const a = await psql(t.url, ['-c', '\\copy (select email, phone, ssn from customers order by id) to stdout']);
    expect(a.code).toBe(0);
    expect(a.stdout.split('\n').filter(Boolean)).toHaveLength(20);
    expect(a.stdout).not.toMatch(/@example\.com/);
    noSsn(a.stdout);
    const b = await psql(t.url, ['-c', 'COPY (select note from orders) TO STDOUT']);
    expect(b.code).toBe(0);
    expect(b.stdout).toContain('leave at the door');
    expect(b.stdout).not.toMatch(/@example\.com/);
  });

  it('a COPY TO STDOUT after other statements of one Query is masked by its columns; a binary one is denied naming the rule', async () => {
    // column rules only: no entity detector would catch the SSNs if the COPY's columns went undescribed
    const cols = await fx.tunnel({ use: ['pii'], policies: POLICIES });
    const text = await psql(cols.url, ['-c', "SELECT 1; COPY (SELECT id, ssn FROM customers ORDER BY id) TO STDOUT; SELECT 'x'; COPY customers (ssn, name) TO STDOUT WITH (FORMAT csv)"]);
    expect(text.code, text.stderr).toBe(0);
    noSsn(text.stdout);
    expect(text.stdout.match(/\[REDACTED:ssn\]/g)).toHaveLength(40);
    const binary = await psql(t.url, ['-c', 'SELECT 1; COPY (SELECT id, ssn FROM customers) TO STDOUT WITH (FORMAT binary)']);
    expect(binary.code).not.toBe(0);
    expect(binary.stderr).toMatch(/denied by rule recommended\/mask-pii-and-secrets: statement 2 of 2: a binary COPY cannot be masked/);
    noSsn(binary.stdout);
    expect(t.events).toContainEqual(expect.objectContaining({ type: 'decision', action: 'deny', rule: 'recommended/mask-pii-and-secrets', summary: expect.stringContaining('FORMAT binary') }));
    await cols.close();
  });

  it('an Execute without Describe (raw protocol) is still masked', async () => {
    const raw = await RawClient.connect(t.port);
    await raw.startup('postgres', fx.database, t.secret);
    raw.write(
      Buffer.concat([
        encodeFrontend({ kind: 'Parse', name: 'nodesc', query: 'select ssn, email from customers order by id', paramTypes: [] }),
        encodeFrontend({ kind: 'Bind', portal: '', statement: 'nodesc', paramFormats: [], params: [], resultFormats: [] }),
        encodeFrontend({ kind: 'Execute', portal: '', maxRows: 0 }),
        encodeSync(),
      ]),
    );
    const frames: Frame[] = await raw.untilReady();
    raw.close();
    const kinds = frames.map((f) => decodeBackend(f).kind);
    // The client did not describe: it must not get a RowDescription it did not ask for.
    expect(kinds).not.toContain('RowDescription');
    const rows = frames.map((f) => decodeBackend(f)).flatMap((m) => (m.kind === 'DataRow' ? [m.cells.map((x) => x?.toString('utf8'))] : []));
    expect(rows).toHaveLength(20);
    for (const [ssn, email] of rows) {
      expect(ssn).toBe('[REDACTED:ssn]');
      expect(email).not.toMatch(/@example\.com$/);
    }
  });
});
