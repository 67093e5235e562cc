import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBackend, encodeQuery } from '../../../src/proxy/postgres/protocol.js';
import { pgClient, RawClient, startFixture, type Fixture, type TestTunnel } from './fixture.js';

let fx: Fixture;
let t: TestTunnel;

beforeAll(async () => {
  fx = await startFixture();
  t = await fx.tunnel();
});
afterAll(async () => fx?.stop());

function typed(type: string, length: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(length, 1);
  return Buffer.concat([head, body]);
}

const CASES: [string, Buffer][] = [
  ['a length below 4', typed('Q', 3)],
  ['an oversized length', typed('Q', 0x7ffffff0)],
  ['an unknown message type', typed('~', 8, Buffer.from('abcd'))],
];

describe('malformed client input', () => {
  for (const [name, bytes] of CASES) {
    it(`${name}: FATAL 08P01 and close; a concurrent session keeps working`, async () => {
      const healthy = await pgClient(t.url);
      await healthy.query('begin');
      const raw = await RawClient.connect(t.port);
      await raw.startup('postgres', fx.database, t.secret);
      raw.write(encodeQuery('select 1'));
      await raw.untilReady();
      raw.write(bytes);
      const frames = await raw.untilClosed();
      const errors = frames.map((f) => decodeBackend(f)).filter((m) => m.kind === 'ErrorResponse');
      expect(errors).toHaveLength(1);
      const e = errors[0]!;
      expect(e.kind === 'ErrorResponse' ? [e.severity, e.code] : []).toEqual(['FATAL', '08P01']);
      expect(raw.closed).toBe(true);
      expect((await healthy.query('select count(*)::int as n from customers')).rows[0].n).toBe(20);
      await healthy.query('commit');
      await healthy.end();
    });
  }

  it('a garbage start-up packet (an unknown protocol code): FATAL 0A000, as from PostgreSQL', async () => {
    const raw = await RawClient.connect(t.port);
    const pkt = Buffer.alloc(8);
    pkt.writeInt32BE(8, 0);
    pkt.writeInt32BE(0x12345678, 4);
    raw.write(pkt);
    const frames = await raw.untilClosed();
    const m = frames[0] ? decodeBackend(frames[0]) : null;
    expect(m?.kind === 'ErrorResponse' ? m.code : null).toBe('0A000');
  });
});
