import { describe, expect, it } from 'vitest';
import { ByteRun } from '../../../src/proxy/postgres/byte-run.js';

/** A write target that records each write (copied, so later reuse of a buffer cannot hide a wrong view). */
function sink(result?: Promise<void>): { writes: Buffer[]; write(b: Buffer): Promise<void> | void } {
  const writes: Buffer[] = [];
  return {
    writes,
    write(b) {
      writes.push(Buffer.from(b));
      return result;
    },
  };
}

/** A buffer with its own memory (small `Buffer.from` buffers share a pool slab and may lie back to back). */
function own(text: string): Buffer {
  const b = Buffer.from(new ArrayBuffer(text.length));
  b.write(text, 'latin1');
  return b;
}

/** Adds `b` to the run as the relay does: when it does not continue the run, flush, then start over. */
function add(run: ByteRun, to: ReturnType<typeof sink>, b: Buffer): void {
  if (!run.extend(b)) {
    void run.flush(to);
    expect(run.extend(b)).toBe(true);
  }
}

/** The writes a run makes of `views`, added in order and then flushed. */
function writesOf(...views: Buffer[]): string[] {
  const run = new ByteRun();
  const out = sink();
  for (const v of views) add(run, out, v);
  run.flush(out);
  return out.writes.map(String);
}

describe('ByteRun', () => {
  it('writes adjacent views of one chunk as one view holding exactly their bytes', () => {
    const chunk = Buffer.from('D0001D0002D0003D0004tail');
    const run = new ByteRun();
    const out = sink();
    for (let i = 0; i < 4; i++) add(run, out, chunk.subarray(i * 5, i * 5 + 5));
    expect(out.writes).toHaveLength(0);
    run.flush(out);
    expect(out.writes.map(String)).toEqual(['D0001D0002D0003D0004']);
  });

  it('starts a new run at a gap, at another buffer, and after a rebuilt message', () => {
    const chunk = own('AAAABBBBCCCCDDDD');
    // the third view skips CCCC (a swallowed message)
    expect(writesOf(chunk.subarray(0, 4), chunk.subarray(4, 8), chunk.subarray(12, 16), own('xxxx'), own('EEEE'))).toEqual(['AAAABBBB', 'DDDD', 'xxxx', 'EEEE']);
  });

  it('buffers that happen to lie back to back in one slab are joined, with exactly their bytes in order', () => {
    const slab = own('row1row2');
    expect(writesOf(Buffer.from(slab.buffer, 0, 4), Buffer.from(slab.buffer, 4, 4))).toEqual(['row1row2']);
  });

  it('does not join views that are adjacent in memory but out of order', () => {
    const chunk = own('11112222');
    expect(writesOf(chunk.subarray(4, 8), chunk.subarray(0, 4))).toEqual(['2222', '1111']);
  });

  it('does not join a view of another buffer that starts at the offset where the run ends', () => {
    expect(writesOf(own('AAAA____').subarray(0, 4), own('____BBBB').subarray(4, 8))).toEqual(['AAAA', 'BBBB']);
  });

  it('flushing an empty run writes nothing; a flush returns what the write returns and empties the run', async () => {
    const pending = Promise.resolve();
    const out = sink(pending);
    const run = new ByteRun();
    expect(run.flush(out)).toBeUndefined();
    expect(out.writes).toHaveLength(0);
    run.extend(Buffer.from('abc'));
    expect(run.flush(out)).toBe(pending);
    expect(run.flush(out)).toBeUndefined();
    expect(out.writes.map(String)).toEqual(['abc']);
  });

  it('a single whole message is written as itself, not a new view', () => {
    const msg = Buffer.from('whole');
    const run = new ByteRun();
    let written: Buffer | null = null;
    run.extend(msg);
    void run.flush({ write: (b: Buffer) => void (written = b) });
    expect(written).toBe(msg);
  });
});
