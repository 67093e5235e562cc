/** readUpTo: a body read whole up to a cap, or handed on as a stream past it; failing, never hanging, on a cut body. */
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readUpTo } from '../../../src/proxy/http/read-body.js';

const BODY = Buffer.from('{"messages":[{"role":"user","content":"alice.smith@example.com"}],"n":42}');

function pieces(b: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const c of [...cuts, b.length]) {
    out.push(b.subarray(at, c));
    at = c;
  }
  return out;
}

async function drain(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

/** A stream that hands out `chunks` one per turn of the loop, as a socket would. */
function trickle(chunks: Buffer[]): PassThrough {
  const s = new PassThrough();
  void (async () => {
    for (const c of chunks) {
      await new Promise((r) => setImmediate(r));
      s.write(c);
    }
    s.end();
  })();
  return s;
}

describe('readUpTo', () => {
  it('reads the whole body, however it is split, when it fits the cap', async () => {
    for (let i = 0; i <= BODY.length; i++) {
      for (const j of [i, Math.min(BODY.length, i + 7)]) {
        const r = await readUpTo(trickle(pieces(BODY, [i, j])), BODY.length);
        expect(r.complete, `${i}/${j}`).toBe(true);
        if (r.complete) expect(r.body.equals(BODY), `${i}/${j}`).toBe(true);
      }
    }
  });

  it('past the cap, hands on what it read and the rest, in order and whole', async () => {
    for (let cap = 0; cap < BODY.length; cap++) {
      const r = await readUpTo(trickle(pieces(BODY, [5, 20, 40])), cap);
      expect(r.complete, String(cap)).toBe(false);
      if (!r.complete) expect((await drain(r.rest)).equals(BODY), String(cap)).toBe(true);
    }
  });

  it('an empty body, and one that ended before it was read', async () => {
    expect(await readUpTo(Readable.from([]), 10)).toEqual({ complete: true, body: Buffer.alloc(0) });
    const ended = new PassThrough();
    ended.end();
    ended.resume();
    await new Promise((r) => ended.once('end', r));
    expect(await readUpTo(ended, 10)).toEqual({ complete: true, body: Buffer.alloc(0) });
  });

  it('fails, never hangs, when the body errors or closes before its end (a client gone mid-request)', async () => {
    const erring = new PassThrough();
    const p1 = readUpTo(erring, 1000);
    erring.write(BODY.subarray(0, 10));
    erring.destroy(new Error('aborted'));
    await expect(p1).rejects.toThrow('aborted');

    const closing = new PassThrough();
    const p2 = readUpTo(closing, 1000);
    closing.write(BODY.subarray(0, 10));
    setImmediate(() => closing.destroy());
    await expect(p2).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });

    const gone = new PassThrough();
    gone.on('error', () => {}); // (its own error, before anyone reads)
    gone.destroy(new Error('reset'));
    await new Promise((r) => setImmediate(r));
    await expect(readUpTo(gone, 1000)).rejects.toThrow('reset');
  });

  it('leaves no listener behind once it has answered', async () => {
    const s = trickle([BODY]);
    await readUpTo(s, 1000);
    expect(['data', 'end', 'error', 'close'].map((e) => s.listenerCount(e))).toEqual([0, 0, 0, 0]);
  });
});
