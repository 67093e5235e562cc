import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { coalesceWrites } from '../../src/proxy/coalesce-writes.js';

/** Servers to close after each test. */
const closers: (() => void)[] = [];
afterEach(() => closers.splice(0).forEach((c) => c()));

/**
 * A loopback pair: the client socket (wrapped or not) and a promise of everything the server side read.
 * The server closes after the test.
 */
async function pair(): Promise<{ client: net.Socket; received: Promise<Buffer> }> {
  let resolveRx!: (b: Buffer) => void;
  const received = new Promise<Buffer>((r) => (resolveRx = r));
  const server = net.createServer((s) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => resolveRx(Buffer.concat(parts)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect(port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', r));
  closers.push(() => server.close());
  return { client, received };
}

/** One ssh2-style packet: three writes (length, ciphertext, MAC) in the same turn. */
function writePacket(sock: net.Socket): void {
  sock.write(Buffer.from('len:'));
  sock.write(Buffer.from('ciphertext:'));
  sock.write(Buffer.from('mac'));
}

/** Counts the calls that reach the socket's transport (each is one write or writev system call). */
function countTransportCalls(sock: net.Socket): { calls: number; chunks: number } {
  const n = { calls: 0, chunks: 0 };
  const s = sock as unknown as { _write: (...a: unknown[]) => void; _writev: (chunks: unknown[], cb: unknown) => void };
  const w = s._write.bind(sock);
  const wv = s._writev.bind(sock);
  s._write = (...a: unknown[]) => {
    n.calls++;
    n.chunks++;
    w(...a);
  };
  s._writev = (chunks: unknown[], cb: unknown) => {
    n.calls++;
    n.chunks += chunks.length;
    wv(chunks, cb);
  };
  return n;
}

const tick = () => new Promise((r) => setImmediate(r));

describe('coalesceWrites', () => {
  it('sends the writes of one turn as a single transport call, in order', async () => {
    const p = await pair();
    const sock = coalesceWrites(p.client);
    const n = countTransportCalls(sock);
    writePacket(sock);
    expect(sock.writableCorked).toBe(1);
    expect(n.calls).toBe(0);
    await tick();
    expect(sock.writableCorked).toBe(0);
    expect(n).toEqual({ calls: 1, chunks: 3 });
    sock.end();
    expect((await p.received).toString()).toBe('len:ciphertext:mac');
  });

  it('an unwrapped socket makes more than one transport call for the same writes (what the wrapper saves)', async () => {
    const p = await pair();
    const n = countTransportCalls(p.client);
    writePacket(p.client);
    await tick();
    expect(n.calls).toBeGreaterThan(1);
    p.client.end();
    await p.received;
  });

  it('keeps every byte in order across many turns, with end() inside a corked turn', async () => {
    const p = await pair();
    const sock = coalesceWrites(p.client);
    let expected = '';
    for (let turn = 0; turn < 50; turn++) {
      for (let k = 0; k < 1 + (turn % 4); k++) {
        const piece = `${turn}.${k};`;
        expected += piece;
        sock.write(piece);
      }
      if (turn % 7 === 0) await tick();
    }
    sock.write('last');
    expected += 'last';
    sock.end();
    expect((await p.received).toString()).toBe(expected);
  });

  it('wraps a socket once, however often it is asked', async () => {
    const p = await pair();
    const sock = coalesceWrites(p.client);
    const write = sock.write;
    expect(coalesceWrites(sock)).toBe(sock);
    expect(sock.write).toBe(write);
    sock.write('a');
    expect(sock.writableCorked).toBe(1);
    await tick();
    expect(sock.writableCorked).toBe(0);
    sock.end();
    expect((await p.received).toString()).toBe('a');
  });

  it('passes through the return value and the callback of write', async () => {
    const p = await pair();
    const sock = coalesceWrites(p.client);
    const done = new Promise<Error | null | undefined>((r) => sock.write('x', (err) => r(err)));
    expect(sock.write('y')).toBe(true);
    expect(await done).toBeFalsy();
    sock.end();
    expect((await p.received).toString()).toBe('xy');
  });
});
