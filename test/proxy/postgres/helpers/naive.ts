/**
 * A deliberately naive encoder for test fixtures: plain arrays of numbers, no shared code with the
 * production encoder, so a bug in one is not mirrored in the other.
 */
export type Bytes = number[];

export const u8 = (n: number): Bytes => [n & 0xff];
export const i16 = (n: number): Bytes => [(n >> 8) & 0xff, n & 0xff];
export const i32 = (n: number): Bytes => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
export const utf8 = (s: string): Bytes => Array.from(new TextEncoder().encode(s));
export const str = (s: string): Bytes => [...utf8(s), 0];
export const raw = (b: Uint8Array | Bytes): Bytes => Array.from(b);
export const ch = (c: string): Bytes => [c.charCodeAt(0)];
/** Int32 length + bytes, or -1 for null. */
export const cell = (b: Bytes | null): Bytes => (b === null ? i32(-1) : [...i32(b.length), ...b]);

export function typed(type: string | number, ...parts: Bytes[]): Buffer {
  const body = parts.flat();
  const t = typeof type === 'string' ? type.charCodeAt(0) : type;
  return Buffer.from([t, ...i32(body.length + 4), ...body]);
}

export function untyped(...parts: Bytes[]): Buffer {
  const body = parts.flat();
  return Buffer.from([...i32(body.length + 4), ...body]);
}

/** Deterministic PRNG (mulberry32) so random splits and fuzz runs are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomBytesFrom(rand: () => number): (n: number) => Buffer {
  return (n) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
}
