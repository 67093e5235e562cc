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
    const rebuilt = own('xxxx');
    const other = own('EEEE');
    const run = new ByteRun();
    const out = sink();
    add(run, out, chunk.subarray(0, 4));
    add(run, out, chunk.subarray(4, 8));
    add(run, out, chunk.subarray(12, 16)); // skips CCCC (a swallowed message)
    add(run, out, rebuilt);
    add(run, out, other);
    run.flush(out);
    expect(out.writes.map(String)).toEqual(['AAAABBBB', 'DDDD', 'xxxx', 'EEEE']);
  });

  it('buffers that happen to lie back to back in one slab are joined, with exactly their bytes in order', () => {
    const slab = own('row1row2');
    const run = new ByteRun();
    const out = sink();
    add(run, out, Buffer.from(slab.buffer, 0, 4));
    add(run, out, Buffer.from(slab.buffer, 4, 4));
    run.flush(out);
    expect(out.writes.map(String)).toEqual(['row1row2']);
  });

  it('does not join views that are adjacent in memory but out of order', () => {
    const chunk = own('11112222');
    const run = new ByteRun();
    const out = sink();
    add(run, out, chunk.subarray(4, 8));
    add(run, out, chunk.subarray(0, 4));
    run.flush(out);
    expect(out.writes.map(String)).toEqual(['2222', '1111']);
  });

  it('does not join a view of another buffer that starts at the offset where the run ends', () => {
    const a = own('AAAA____');
    const b = own('____BBBB');
    const run = new ByteRun();
    const out = sink();
    add(run, out, a.subarray(0, 4));
    add(run, out, b.subarray(4, 8));
    run.flush(out);
    expect(out.writes.map(String)).toEqual(['AAAA', 'BBBB']);
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
