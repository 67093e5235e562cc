import {
  Framer,
  decodeBackend,
  decodeFrontend,
  type AuthPhase,
  type BackendMessage,
  type Frame,
  type FramerMode,
  type FrontendMessage,
} from '../../../../src/proxy/postgres/protocol.js';

export interface RunResult<M> {
  readonly frames: Frame[];
  readonly decoded: M[];
  readonly pending: number;
}

/** Feeds the chunks through a fresh framer and decodes every frame (the i-th with authPhase(i)). */
export function runFrontend(chunks: readonly Buffer[], mode: FramerMode, authPhase: (i: number) => AuthPhase | undefined = () => undefined): RunResult<FrontendMessage> {
  const framer = new Framer({ mode });
  const frames: Frame[] = [];
  const decoded: FrontendMessage[] = [];
  for (const chunk of chunks) {
    for (const f of framer.frames(chunk)) {
      const phase = authPhase(frames.length);
      frames.push(f);
      decoded.push(decodeFrontend(f, phase === undefined ? {} : { authPhase: phase }));
    }
  }
  return { frames, decoded, pending: framer.pendingBytes };
}

export function runBackend(chunks: readonly Buffer[]): RunResult<BackendMessage> {
  const framer = new Framer({ mode: 'typed' });
  const frames: Frame[] = [];
  const decoded: BackendMessage[] = [];
  for (const chunk of chunks) {
    for (const f of framer.frames(chunk)) {
      frames.push(f);
      decoded.push(decodeBackend(f));
    }
  }
  return { frames, decoded, pending: framer.pendingBytes };
}

/** All the ways we split a stream: at every offset, one byte at a time, and random multi-chunk splits. */
export function* splits(stream: Buffer, rand: () => number, randomRuns = 200): Generator<{ label: string; chunks: Buffer[] }> {
  yield { label: 'whole', chunks: [stream] };
  for (let i = 1; i < stream.length; i++) yield { label: `split at ${i}`, chunks: [stream.subarray(0, i), stream.subarray(i)] };
  yield { label: 'one byte at a time', chunks: Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1)) };
  for (let run = 0; run < randomRuns; run++) {
    const chunks: Buffer[] = [];
    let at = 0;
    while (at < stream.length) {
      const n = 1 + Math.floor(rand() * Math.min(64, stream.length - at));
      chunks.push(Buffer.from(stream.subarray(at, at + n))); // copies: also exercise non-shared chunks
      at += n;
    }
    yield { label: `random run ${run}`, chunks };
  }
}
