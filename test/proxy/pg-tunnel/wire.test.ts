/**
 * Wire compatibility of the tunnel: messages larger than the read-ahead window, protocol negotiation, the
 * backend pid the client is told, start-up parameters, malformed messages, client encodings.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientCodec } from '../../../src/proxy/postgres/encoding.js';
import { decodeBackend, encodeFrontend, encodeQuery, encodeSync, PROTOCOL_3_0, type BackendMessage } from '../../../src/proxy/postgres/protocol.js';
import { pgClient, psql, RawClient, startFixture, type Fixture, type TestTunnel } from './fixture.js';

let fx: Fixture;
let t: TestTunnel;
let direct: pg.Client;

beforeAll(async () => {
  fx = await startFixture();
  t = await fx.tunnel();
  direct = await pgClient(fx.dbUrl);
});
afterAll(async () => {
  await direct?.end();
  await fx?.stop();
});

const FIVE_MB = 5 * 1024 * 1024;

function messages(frames: { type: number | null; payload: Buffer; raw: Buffer }[]): BackendMessage[] {
  return frames.map((f) => decodeBackend(f));
}

function typedHeader(type: string, length: number): Buffer {
  const h = Buffer.alloc(5);
  h.write(type, 0, 'latin1');
  h.writeInt32BE(length, 1);
  return h;
}

describe('messages larger than the read-ahead window', () => {
  it('a 5 MB row, a 5 MB query text and a 5 MB parameter each round-trip intact', async () => {
    const c = await pgClient(t.url);
    const row = await c.query(`select repeat('ab', ${FIVE_MB / 2}) as v`);
    expect(row.rows[0].v).toBe('ab'.repeat(FIVE_MB / 2));
    const big = 'xy'.repeat(FIVE_MB / 2);
    const q = await c.query(`select length('${big}') as n, md5('${big}') as h`);
    expect(q.rows[0]).toEqual({ n: FIVE_MB, h: (await direct.query('select md5($1) as h', [big])).rows[0].h });
    const p = await c.query('select $1::text as v', [big]);
    expect(p.rows[0].v).toBe(big);
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    await c.end();
  });

  it('a 5 MB COPY FROM STDIN block arrives intact', async () => {
    await direct.query('create table big_copy (v text)');
    const raw = await RawClient.connect(t.port);
    await raw.startup('postgres', fx.database, t.secret);
    raw.write(encodeQuery('COPY big_copy FROM STDIN'));
    expect((await raw.next())?.type).toBe(0x47); // CopyInResponse
    const line = Buffer.concat([Buffer.alloc(FIVE_MB, 0x71), Buffer.from('\n')]);
    const head = typedHeader('d', 4 + line.length);
    raw.write(Buffer.concat([head, line, typedHeader('c', 4)]));
    const done = messages(await raw.untilReady());
    expect(done.find((m) => m.kind === 'CommandComplete')).toMatchObject({ tag: 'COPY 1' });
    expect((await direct.query('select length(v) as n from big_copy')).rows).toEqual([{ n: FIVE_MB }]);
    raw.close();
  });

  it('a client message over the 64 MiB cap gets a clear FATAL 08P01', async () => {
    const raw = await RawClient.connect(t.port);
    await raw.startup('postgres', fx.database, t.secret);
    raw.write(Buffer.concat([typedHeader('Q', 65 * 1024 * 1024), Buffer.alloc(1024 * 1024, 0x61)]));
    const errors = messages(await raw.untilClosed()).filter((m) => m.kind === 'ErrorResponse');
    expect(errors).toHaveLength(1);
    const e = errors[0]!;
    expect(e.kind === 'ErrorResponse' ? [e.severity, e.code] : []).toEqual(['FATAL', '08P01']);
    expect(e.kind === 'ErrorResponse' ? e.message : '').toMatch(/over the 67108864-byte limit/);
  });

  it('a server message over the cap ends the session with a clear FATAL, not a silent close', async () => {
    const raw = await RawClient.connect(t.port);
    await raw.startup('postgres', fx.database, t.secret);
    raw.write(encodeQuery(`select repeat('z', 65 * 1024 * 1024)`));
    const errors = messages(await raw.untilClosed()).filter((m) => m.kind === 'ErrorResponse');
    const e = errors.at(-1);
    expect(e?.kind === 'ErrorResponse' ? [e.severity, e.code] : []).toEqual(['FATAL', '08P01']);
    expect(e?.kind === 'ErrorResponse' ? e.message : '').toMatch(/database sent a message the tunnel cannot relay.*limit/);
  });

  it('pg_terminate_backend ends a session whose client stopped reading, and its record is closed', async () => {
    const raw = await RawClient.connect(t.port);
    const hello = messages(await raw.startup('postgres', fx.database, t.secret));
    const key = hello.find((m) => m.kind === 'BackendKeyData');
    const pid = key?.kind === 'BackendKeyData' ? key.processId : -1;
    const before = t.events.filter((e) => e.type === 'session_end').length;
    raw.socket.pause();
    raw.write(encodeQuery(`select repeat('r', 100000) from generate_series(1, 2000)`));
    // wait until the backend is stuck sending (the tunnel stopped reading it)
    for (let i = 0; i < 100; i += 1) {
      const s = await direct.query(`select wait_event from pg_stat_activity where pid = $1`, [pid]);
      if (s.rows[0]?.wait_event === 'ClientWrite') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await direct.query('select pg_terminate_backend($1) as ok', [pid])).rows[0].ok).toBe(true);
    for (let i = 0; i < 200 && t.events.filter((e) => e.type === 'session_end').length === before; i += 1) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const ends = t.events.filter((e) => e.type === 'session_end');
    expect(ends.length).toBe(before + 1);
    const sessionId = (ends.at(-1) as { sessionId: string }).sessionId;
    const rec = await fx.store.getSession(sessionId);
    expect(rec?.endedAt).toBeTruthy();
    raw.close();
  });
});

describe('protocol negotiation', () => {
  it('a 3.2 client gets NegotiateProtocolVersion 196608 (3.0) and works', async () => {
    const raw = await RawClient.connect(t.port);
    const hello = messages(await raw.startup('postgres', fx.database, t.secret, { protocolVersion: (3 << 16) | 2, params: { '_pq_.test_option': 'x' } }));
    const npv = hello.find((m) => m.kind === 'NegotiateProtocolVersion');
    expect(npv).toEqual({ kind: 'NegotiateProtocolVersion', newestMinorVersion: PROTOCOL_3_0, unrecognizedOptions: ['_pq_.test_option'] });
    raw.write(encodeQuery('select 1'));
    expect(messages(await raw.untilReady()).some((m) => m.kind === 'DataRow')).toBe(true);
    raw.close();
  });

  it('a 3.0 client without _pq_ options gets no NegotiateProtocolVersion', async () => {
    const raw = await RawClient.connect(t.port);
    const hello = messages(await raw.startup('postgres', fx.database, t.secret));
    expect(hello.some((m) => m.kind === 'NegotiateProtocolVersion')).toBe(false);
    raw.close();
  });
});

describe('backend key', () => {
  it("the client is told the upstream backend's real pid, and cancel still works through the tunnel", async () => {
    const c = await pgClient(t.url);
    const { processID } = c as unknown as { processID: number };
    expect((await c.query('select pg_backend_pid() as pid')).rows[0].pid).toBe(processID);
    await c.end();
  });
});

describe('start-up parameters', () => {
  it('options, GUCs and application_name reach the server as sent; none sent, none set', async () => {
    const raw = await RawClient.connect(t.port);
    await raw.startup('postgres', fx.database, t.secret, {
      params: { options: '-c work_mem=7MB --lock_timeout=3s', statement_timeout: '4321', idle_in_transaction_session_timeout: '9s', application_name: 'my app' },
    });
    raw.write(encodeQuery(`select current_setting('work_mem'), current_setting('lock_timeout'), current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout'), current_setting('application_name')`));
    const row = messages(await raw.untilReady()).find((m) => m.kind === 'DataRow');
    expect(row?.kind === 'DataRow' ? row.cells.map((c) => c?.toString()) : []).toEqual(['7MB', '3s', '4321ms', '9s', 'my app']);
    raw.close();
    const bare = await RawClient.connect(t.port);
    await bare.startup('postgres', fx.database, t.secret);
    bare.write(encodeQuery(`select current_setting('application_name')`));
    const r2 = messages(await bare.untilReady()).find((m) => m.kind === 'DataRow');
    expect(r2?.kind === 'DataRow' ? r2.cells[0]?.toString() : null).toBe('');
    bare.close();
  });

  for (const [name, params] of [
    ['role', { role: 'pg_read_all_data' }],
    ['session_authorization', { session_authorization: 'postgres' }],
    ['-c role= in options', { options: '-c role=pg_monitor' }],
    ['--session-authorization= in options', { options: '-c work_mem=1MB --session-authorization=x' }],
  ] as [string, Record<string, string>][]) {
    it(`${name} is refused with a FATAL naming it, never dropped`, async () => {
      const raw = await RawClient.connect(t.port);
      await expect(raw.startup('postgres', fx.database, t.secret, { params })).rejects.toThrow(/42501 .*not allowed through dlpctl/);
      raw.close();
    });
  }
});

describe('malformed messages', () => {
  const cases: [string, Buffer, string][] = [
    ['a Query without its NUL', Buffer.concat([Buffer.from('Q'), Buffer.from([0, 0, 0, 12]), Buffer.from('select 1')]), '08P01'],
    ['a Describe of neither S nor P', Buffer.concat([Buffer.from('D'), Buffer.from([0, 0, 0, 6]), Buffer.from('X\0')]), '08P01'],
    ['a Bind with a parameter running past the end', Buffer.concat([Buffer.from('B'), Buffer.from([0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 99, 0])]), '08P01'],
    ['a Close with trailing bytes', Buffer.concat([Buffer.from('C'), Buffer.from([0, 0, 0, 8]), Buffer.from('S\0xy')]), '08P01'],
    ['a Parse with invalid UTF-8', encodeFrontend({ kind: 'Parse', name: '', query: 'select 1', paramTypes: [] }).fill(0xff, 6, 7), '22021'],
  ];
  for (const [name, bytes, code] of cases) {
    it(`${name}: ErrorResponse ${code}, then the close`, async () => {
      const raw = await RawClient.connect(t.port);
      await raw.startup('postgres', fx.database, t.secret);
      raw.write(bytes);
      const errors = messages(await raw.untilClosed()).filter((m) => m.kind === 'ErrorResponse');
      expect(errors.map((e) => (e.kind === 'ErrorResponse' ? e.code : ''))).toEqual([code]);
    });
  }

  it('a start-up packet of impossible length is closed on silently, as PostgreSQL does', async () => {
    const raw = await RawClient.connect(t.port);
    raw.write(Buffer.from([0, 0, 0, 4, 0, 3, 0, 0]));
    expect(await raw.untilClosed()).toEqual([]);
  });

  it('an unknown protocol version gets FATAL 0A000 as from PostgreSQL', async () => {
    const raw = await RawClient.connect(t.port);
    raw.write(Buffer.from([0, 0, 0, 8, 0, 2, 0, 0]));
    const m = messages(await raw.untilClosed());
    expect(m[0]?.kind === 'ErrorResponse' ? [m[0].code, m[0].message] : []).toEqual(['0A000', 'unsupported frontend protocol 2.0: server supports 3.0 to 3.0']);
  });
});

describe('client encodings', () => {
  it('a latin9 session: é round-trips as latin9 bytes and a masked column still masks', async () => {
    await direct.query(`create table enc_notes (note text, plain text)`);
    await direct.query(`insert into enc_notes values ('ré ann@example.com €', 'café')`);
    const tm = await fx.tunnel({
      use: ['recommended', 'pii'],
      policies: `  pii:\n    - name: ssn-column\n      action: mask\n      columns: [public.customers.ssn]\n      with: redact\n    - name: emails\n      action: mask\n      entities: [email]`,
    });
    const raw = await RawClient.connect(tm.port);
    await raw.startup('postgres', fx.database, tm.secret);
    raw.write(encodeQuery('SET client_encoding TO latin9'));
    const set = messages(await raw.untilReady());
    expect(set.find((m) => m.kind === 'ParameterStatus' && m.name === 'client_encoding')).toMatchObject({ value: 'LATIN9' });
    // 'café €' in LATIN9: é = 0xE9, € = 0xA4
    const sql = Buffer.concat([Buffer.from("select 'caf"), Buffer.from([0xe9, 0x20, 0xa4]), Buffer.from("' as v, length('caf"), Buffer.from([0xe9]), Buffer.from("') as n\0")]);
    const q = Buffer.alloc(5);
    q.write('Q');
    q.writeInt32BE(4 + sql.length, 1);
    raw.write(Buffer.concat([q, sql]));
    const rows = messages(await raw.untilReady()).filter((m) => m.kind === 'DataRow');
    expect(rows).toHaveLength(1);
    const cells = rows[0]!.kind === 'DataRow' ? rows[0]!.cells : [];
    expect(cells.map((c) => c?.toString('hex'))).toEqual([Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xa4]).toString('hex'), Buffer.from('4').toString('hex')]);
    // a masked column: the redaction is written in the session's encoding; a cell the detectors scan and
    // mask keeps its other characters in it; an unmasked cell keeps its bytes
    raw.write(encodeQuery(`select ssn from customers where id = 1`));
    const masked = messages(await raw.untilReady()).filter((m) => m.kind === 'DataRow');
    expect(masked[0]?.kind === 'DataRow' ? masked[0].cells[0]?.toString('latin1') : null).toBe('[REDACTED:ssn]');
    raw.write(encodeQuery(`select note, plain from enc_notes`));
    const scanned = messages(await raw.untilReady()).filter((m) => m.kind === 'DataRow');
    const sc = scanned[0]?.kind === 'DataRow' ? scanned[0].cells : [];
    expect(sc[0]?.toString('latin1')).toMatch(/^r\xe9 .+ \xa4$/);
    expect(sc[0]?.toString('latin1')).not.toContain('ann@example.com');
    expect(sc[1]).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    // the policy read the text: the audit has the query with é
    const hits = await fx.store.search({ text: 'café €' });
    expect(hits.length).toBeGreaterThan(0);
    raw.close();
    await tm.close();
  });

  it('an EUC_JP session: Japanese text round-trips as EUC_JP bytes, the policy reads it, and a partial mask keeps its characters in EUC_JP', async () => {
    await direct.query(`create table enc_jp (name text, email text)`);
    await direct.query(`insert into enc_jp values ('山田太郎', 'taro@example.jp')`);
    const tm = await fx.tunnel({
      use: ['recommended', 'pii'],
      policies: `  pii:\n    - name: name-column\n      action: mask\n      columns: [public.enc_jp.name]\n      with: partial\n      keep: 2\n    - name: emails\n      action: mask\n      entities: [email]`,
    });
    const eucjp = (text: string) => clientCodec('EUC_JP')!.encode(text);
    const raw = await RawClient.connect(tm.port);
    await raw.startup('postgres', fx.database, tm.secret, { params: { client_encoding: 'EUC_JP' } });
    const sql = Buffer.concat([Buffer.from("select '"), eucjp('日本語ｶﾅ'), Buffer.from("' as v, length('"), eucjp('日本語'), Buffer.from("') as n\0")]);
    const q = Buffer.alloc(5);
    q.write('Q');
    q.writeInt32BE(4 + sql.length, 1);
    raw.write(Buffer.concat([q, sql]));
    const rows = messages(await raw.untilReady()).filter((m) => m.kind === 'DataRow');
    const cells = rows[0]?.kind === 'DataRow' ? rows[0].cells : [];
    // 日本語 in EUC_JP is C6FC CBDC B8EC; half-width ｶﾅ is 8EB6 8EC5
    expect(cells.map((c) => c?.toString('hex'))).toEqual(['c6fccbdcb8ec8eb68ec5', Buffer.from('3').toString('hex')]);
    raw.write(encodeQuery('select name, email from enc_jp'));
    const masked = messages(await raw.untilReady()).filter((m) => m.kind === 'DataRow');
    const mc = masked[0]?.kind === 'DataRow' ? masked[0].cells : [];
    const name = clientCodec('EUC_JP')!.decode(mc[0]!);
    expect(name.endsWith('太郎')).toBe(true);
    expect(name).not.toContain('山田');
    expect(mc[1]?.toString('latin1')).not.toContain('taro@example.jp');
    // the policy read the text: the audit has the query in Japanese
    expect((await fx.store.search({ text: '日本語ｶﾅ' })).length).toBeGreaterThan(0);
    raw.close();
    await tm.close();
  });

  it('an encoding the tunnel cannot read set another way, or asked for at start-up, ends the session with 0A000', async () => {
    const c = await pgClient(t.url);
    const err = await c.query(`select set_config('client_encoding', 'SJIS', false)`).then(
      () => null,
      (e: pg.DatabaseError) => e,
    );
    expect([err?.code, err?.message]).toEqual(['0A000', expect.stringMatching(/client_encoding SJIS is not supported through the tunnel/)]);
    await c.end().catch(() => undefined);
    const raw = await RawClient.connect(t.port);
    await expect(raw.startup('postgres', fx.database, t.secret, { params: { client_encoding: 'BIG5' } })).rejects.toThrow(/0A000 .*client_encoding BIG5 is not supported/);
    raw.close();
  });

  it('SET client_encoding to a multi-byte legacy encoding is refused, naming the choice; the session goes on', async () => {
    const c = await pgClient(t.url);
    const err = await c.query(`SET client_encoding TO 'SJIS'`).then(
      () => null,
      (e: pg.DatabaseError) => e,
    );
    expect(err?.code).toBe('0A000');
    expect(err?.message).toMatch(/client_encoding SJIS is not supported through the tunnel.*UTF8/);
    expect((await c.query(`select current_setting('client_encoding') as e`)).rows[0].e).toBe('UTF8');
    await c.end();
  });
});

describe('function-call sub-protocol', () => {
  it('psql \\lo_import and \\lo_export work under a permissive policy, and each call is audited', async () => {
    const tp = await fx.tunnel({ use: ['perm'], policies: `  perm:\n    - name: all\n      action: allow` });
    const src = path.join(fx.dir, 'lo-in.bin');
    const out = path.join(fx.dir, 'lo-out.bin');
    const body = Buffer.alloc(300_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7919) & 0xff;
    await fs.writeFile(src, body);
    const imp = await psql(tp.url, ['-c', `\\lo_import ${src}`]);
    expect(imp.stderr).toBe('');
    const oid = Number(/lo_import (\d+)/.exec(imp.stdout)?.[1]);
    expect(oid).toBeGreaterThan(0);
    const exp = await psql(tp.url, ['-c', `\\lo_export ${oid} ${out}`]);
    expect(exp.stderr).toBe('');
    expect((await fs.readFile(out)).equals(body)).toBe(true);
    const hits = await fx.store.search({ text: 'lowrite' });
    expect(hits.length).toBeGreaterThan(0);
    await tp.close();
  });

  it('under the recommended policy (mask rules apply): lo_* calls in binary pass, a text result is denied', async () => {
    const src = path.join(fx.dir, 'lo-rec.txt');
    await fs.writeFile(src, 'hello large object\n');
    const imp = await psql(t.url, ['-c', `\\lo_import ${src}`]);
    expect(imp.stderr).toBe('');
    expect(imp.stdout).toMatch(/lo_import \d+/);
    const raw = await RawClient.connect(t.port);
    await raw.startup('postgres', fx.database, t.secret);
    const oid = (await direct.query(`select 'version()'::regprocedure::oid::int as oid`)).rows[0].oid as number;
    raw.write(encodeFrontend({ kind: 'FunctionCall', functionOid: oid, argFormats: [], args: [], resultFormat: 0 }));
    const m = messages(await raw.untilReady());
    const err = m.find((x) => x.kind === 'ErrorResponse');
    expect(err?.kind === 'ErrorResponse' ? [err.code, err.message] : []).toEqual(['42501', expect.stringContaining('pg_catalog.version called through the function-call sub-protocol')]);
    raw.close();
  });

  it('a denied function call gets the denial and the session goes on', async () => {
    const td = await fx.tunnel({ use: ['nofile'], policies: `  nofile:\n    - name: no-read-file\n      when: { sql: { functions: [pg_read_file] } }\n      action: deny\n      message: no files\n    - name: rest\n      action: allow` });
    const raw = await RawClient.connect(td.port);
    await raw.startup('postgres', fx.database, td.secret);
    const oid = (await direct.query(`select 'pg_read_file(text)'::regprocedure::oid::int as oid`)).rows[0].oid as number;
    raw.write(encodeFrontend({ kind: 'FunctionCall', functionOid: oid, argFormats: [0], args: [Buffer.from('/etc/hostname')], resultFormat: 0 }));
    const m = messages(await raw.untilReady());
    const err = m.find((x) => x.kind === 'ErrorResponse');
    expect(err?.kind === 'ErrorResponse' ? [err.code, err.message] : []).toEqual(['42501', expect.stringContaining('no files')]);
    expect(m.some((x) => x.kind === 'FunctionCallResponse')).toBe(false);
    raw.write(encodeQuery('select 7'));
    expect(messages(await raw.untilReady()).some((x) => x.kind === 'DataRow')).toBe(true);
    raw.write(encodeSync());
    raw.close();
    await td.close();
  });
});
