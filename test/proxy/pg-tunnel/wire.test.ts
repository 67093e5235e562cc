/**
 * Wire compatibility of the tunnel: messages larger than the read-ahead window, protocol negotiation, the
 * backend pid the client is told, start-up parameters, malformed messages, client encodings.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBackend, encodeQuery, PROTOCOL_3_0, type BackendMessage } from '../../../src/proxy/postgres/protocol.js';
import { pgClient, RawClient, startFixture, type Fixture, type TestTunnel } from './fixture.js';

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
