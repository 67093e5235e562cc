import { describe, expect, it } from 'vitest';
import { Framer, backendFramer, frontendFramer } from '../../../src/proxy/postgres/protocol.js';
import { backendFixtures, startupFixtures, startupMessage32, typedFrontendFixtures } from './helpers/fixtures.js';
import { i16, i32, prng, typed } from './helpers/naive.js';
import { runBackend, runFrontend, splits } from './helpers/run.js';

const frontendAll = [...startupFixtures, ...typedFrontendFixtures];
const frontendStream = Buffer.concat(frontendAll.map((f) => f.bytes));
const backendStream = Buffer.concat(backendFixtures.map((f) => f.bytes));

describe('framer + decoder, frontend stream split every way', () => {
  it('decodes each fixture alone', () => {
    for (const f of startupFixtures) {
      const r = runFrontend([f.bytes], 'startup');
      expect(r.decoded, f.name).toEqual([f.expected]);
      expect(r.frames[0]?.raw.equals(f.bytes), f.name).toBe(true);
    }
    for (const f of typedFrontendFixtures) {
      const r = runFrontend([f.bytes], 'typed', () => f.authPhase);
      expect(r.decoded, f.name).toEqual([f.expected]);
      expect(r.frames[0]?.raw.equals(f.bytes), f.name).toBe(true);
    }
    expect(runFrontend([startupMessage32.bytes], 'startup').decoded).toEqual([startupMessage32.expected]);
  });

  it('gives identical results and exact raw bytes for every split', () => {
    const expected = frontendAll.map((f) => f.expected);
    let count = 0;
    for (const { label, chunks } of splits(frontendStream, prng(1))) {
      const r = runFrontend(chunks, 'startup', (i) => frontendAll[i]?.authPhase);
      expect(r.decoded, label).toEqual(expected);
      expect(r.pending, label).toBe(0);
      r.frames.forEach((frame, i) => {
        if (!frame.raw.equals(frontendAll[i]!.bytes)) expect.fail(`${label}: raw of ${frontendAll[i]!.name} differs`);
      });
      count++;
    }
    expect(count).toBeGreaterThan(frontendStream.length);
  });

  it('switches to typed mode right after the StartupMessage, inside one chunk', () => {
    const framer = frontendFramer();
    const frames = [...framer.frames(Buffer.concat([startupFixtures[3]!.bytes, startupFixtures[4]!.bytes, typed('Q', [0x78, 0])]))];
    expect(frames.map((f) => f.type)).toEqual([null, null, 0x51]);
    expect(framer.mode).toBe('typed');
  });
});

describe('framer + decoder, backend stream split every way', () => {
  it('gives identical results and exact raw bytes for every split', () => {
    const expected = backendFixtures.map((f) => f.expected);
    for (const { label, chunks } of splits(backendStream, prng(2))) {
      const r = runBackend(chunks);
      expect(r.decoded, label).toEqual(expected);
      expect(r.pending, label).toBe(0);
      expect(Buffer.concat(r.frames.map((f) => f.raw)).equals(backendStream), label).toBe(true);
      r.frames.forEach((frame, i) => {
        if (!frame.raw.equals(backendFixtures[i]!.bytes)) expect.fail(`${label}: raw of ${backendFixtures[i]!.name} differs`);
      });
    }
  });

  it('single-byte mode reads the SSL answer, then typed messages', () => {
    const framer = backendFramer();
    framer.setMode('single-byte');
    const frames = [...framer.frames(Buffer.concat([Buffer.from('N'), typed('Z', [0x49])]))];
    expect(frames.map((f) => [f.type, f.raw.length])).toEqual([[0x4e, 1], [0x5a, 6]]);
    expect(framer.mode).toBe('typed');
  });
});

describe('framer buffering', () => {
  it('returns a view, not a copy, when a message lies inside one chunk', () => {
    const chunk = Buffer.concat([typed('Q', [0x61, 0]), typed('S')]);
    const [a, b] = [...new Framer().frames(chunk)];
    expect(a!.raw.buffer).toBe(chunk.buffer);
    expect(b!.payload.buffer).toBe(chunk.buffer);
  });

  it('reports pending bytes and no message when the stream ends mid-message', () => {
    const msg = typed('Q', [0x61, 0x62, 0]);
    for (let i = 0; i < msg.length; i++) {
      const framer = new Framer();
      expect([...framer.frames(msg.subarray(0, i))]).toEqual([]);
      expect(framer.pendingBytes).toBe(i);
    }
    const startup = frontendFramer();
    expect([...startup.frames(startupFixtures[4]!.bytes.subarray(0, 10))]).toEqual([]);
    expect(startup.pendingBytes).toBe(10);
  });

  it('reassembles a large message fed in small chunks', () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 0x61);
    const row = Buffer.concat([Buffer.from([0x44, ...i32(4 + 2 + 4 + big.length), ...i16(1), ...i32(big.length)]), big]);
    const framer = new Framer();
    const out = [];
    for (let at = 0; at < row.length; at += 1024) out.push(...framer.frames(row.subarray(at, at + 1024)));
    expect(out).toHaveLength(1);
    expect(out[0]!.raw.equals(row)).toBe(true);
    expect(framer.pendingBytes).toBe(0);
  });
});
