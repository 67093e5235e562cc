import { describe, expect, it } from 'vitest';
import {
  Framer,
  ProtocolError,
  ScramClient,
  ScramServer,
  createScramSecret,
  decodeBackend,
  decodeFrontend,
  type AuthPhase,
  type FramerMode,
} from '../../../src/proxy/postgres/protocol.js';
import { backendFixtures, startupFixtures, typedFrontendFixtures } from './helpers/fixtures.js';
import { i32, prng } from './helpers/naive.js';

const rand = prng(0xc0ffee);
const int = (n: number) => Math.floor(rand() * n);
const randomBuffer = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
const phases: Array<AuthPhase | undefined> = [undefined, 'password', 'sasl-initial', 'sasl-continue'];

/** Runs the input through framer + decoders; returns the non-ProtocolError thrown, if any. */
function probe(input: Buffer, mode: FramerMode, chunkSize: number): unknown {
  try {
    const framer = new Framer({ mode, maxMessageSize: 1 << 16 });
    for (let at = 0; at < input.length; at += chunkSize) {
      for (const f of framer.frames(input.subarray(at, at + chunkSize))) {
        for (const phase of phases) {
          try {
            decodeFrontend(f, phase === undefined ? {} : { authPhase: phase });
          } catch (err) {
            if (!(err instanceof ProtocolError)) throw err;
          }
        }
        if (f.type !== null) decodeBackend(f);
      }
    }
  } catch (err) {
    if (!(err instanceof ProtocolError)) return err;
  }
  return undefined;
}

const knownTypes = [...'BCDEFHPQSXcdfpRSKZTDCENI123nstGHWdcAvV'].map((c) => c.charCodeAt(0));

describe('fuzz: framer + decoders throw nothing but ProtocolError', () => {
  it('10k random byte strings', () => {
    const modes: FramerMode[] = ['startup', 'typed', 'single-byte'];
    for (let i = 0; i < 10_000; i++) {
      const input = randomBuffer(int(80));
      const err = probe(input, modes[i % 3]!, 1 + int(16));
      if (err) expect.fail(`input ${input.toString('hex')}: ${String(err)}`);
    }
  });

  it('5k well-framed messages of known types with random payloads', () => {
    for (let i = 0; i < 5_000; i++) {
      const payload = randomBuffer(int(48));
      const input = Buffer.concat([Buffer.from([knownTypes[int(knownTypes.length)]!, ...i32(payload.length + 4)]), payload]);
      const err = probe(input, 'typed', 1 + int(64));
      if (err) expect.fail(`input ${input.toString('hex')}: ${String(err)}`);
    }
  });

  it('5k mutations of valid fixtures', () => {
    const seeds = [...startupFixtures, ...typedFrontendFixtures, ...backendFixtures].map((f) => f.bytes);
    for (let i = 0; i < 5_000; i++) {
      const seed = seeds[int(seeds.length)]!;
      const input = Buffer.from(seed);
      for (let k = 1 + int(3); k > 0; k--) input[int(input.length)] = int(256);
      const err = probe(input, i % 2 === 0 ? 'typed' : 'startup', 1 + int(8));
      if (err) expect.fail(`input ${input.toString('hex')}: ${String(err)}`);
    }
  });
});

describe('fuzz: SCRAM parsers throw nothing but ProtocolError', () => {
  it('random and mutated messages', () => {
    const secret = createScramSecret('pw', { iterations: 1 });
    const samples = ['n,,n=,r=abc', 'y,,n=u,r=x', 'c=biws,r=abcdef,p=AAAA', 'r=abcdef,s=c2FsdA==,i=1', 'v=AAAA', 'e=x'];
    for (let i = 0; i < 3_000; i++) {
      const base = Buffer.from(samples[int(samples.length)]!);
      const input = i % 2 === 0 ? randomBuffer(int(40)) : (base[int(base.length)] = int(256), base);
      for (const step of [
        () => new ScramServer(secret).handleClientFirst(input),
        () => {
          const s = new ScramServer(secret, { nonce: 'def' });
          s.handleClientFirst('n,,n=,r=abc');
          s.handleClientFinal(input);
        },
        () => {
          const c = new ScramClient({ password: 'pw', nonce: 'abc', maxIterations: 8 });
          c.clientFirstMessage();
          c.handleServerFirst(input);
          c.handleServerFinal(input);
        },
      ]) {
        try {
          step();
        } catch (err) {
          if (!(err instanceof ProtocolError)) expect.fail(`input ${input.toString('hex')}: ${String(err)}`);
        }
      }
    }
  });
});
