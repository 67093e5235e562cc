/**
 * Reading an HTTP body up to a cap, for the tunnel's inspection of request and response bodies (engine.ts).
 */
import type { Readable } from 'node:stream';

/**
 * Reads a body up to `cap` bytes. `complete` false: it is larger; `rest` then yields what was read and the
 * remainder, so the body can still be streamed. Read with listeners rather than an async iterator: a request
 * and a response each took one, and making the iterator (its end-of-stream watch, a promise per chunk) was a
 * visible share of a small request's cost. Fails as the iterator did: on the stream's error, or when it closes
 * before its end.
 */
export function readUpTo(body: Readable, cap: number): Promise<{ complete: true; body: Buffer } | { complete: false; rest: AsyncIterable<Buffer> }> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    const stop = (): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onClose);
    };
    const onData = (c: Buffer): void => {
      parts.push(c);
      n += c.length;
      if (n <= cap) return;
      body.pause();
      stop();
      resolve({
        complete: false,
        rest: (async function* () {
          yield* parts;
          for await (const c of body) yield c as Buffer;
        })(),
      });
    };
    const onEnd = (): void => {
      stop();
      resolve({ complete: true, body: n === 0 ? Buffer.alloc(0) : parts.length === 1 ? parts[0]! : Buffer.concat(parts, n) });
    };
    const onError = (err: Error): void => {
      stop();
      reject(err);
    };
    const onClose = (): void => {
      // 'end' comes before 'close' for a body read to its end
      stop();
      reject(Object.assign(new Error('premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    };
    if (body.readableEnded) {
      resolve({ complete: true, body: Buffer.alloc(0) });
      return;
    }
    if (body.destroyed) {
      reject(body.errored ?? Object.assign(new Error('premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
      return;
    }
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    body.on('close', onClose);
  });
}
