/**
 * What a body is, for scanning: JSON, form, text, Server-Sent Events, or binary (passed through unscanned),
 * and how to undo its content coding (gzip, deflate, br, zstd where node has it).
 */
import zlib from 'node:zlib';
import type { Transform } from 'node:stream';

export type BodyKind = 'json' | 'form' | 'text' | 'sse' | 'binary';

export function bodyKind(contentType: string | string[] | undefined): BodyKind {
  const ct = (Array.isArray(contentType) ? contentType[0] : contentType)?.split(';')[0]?.trim().toLowerCase();
  if (!ct) return 'binary';
  if (ct === 'text/event-stream') return 'sse';
  if (ct === 'application/json' || ct.endsWith('+json') || ct === 'application/x-ndjson' || ct === 'application/jsonl' || ct === 'text/json') return 'json';
  if (ct === 'application/x-www-form-urlencoded') return 'form';
  if (ct.startsWith('text/') || ct.endsWith('+xml') || ct === 'application/xml' || ct === 'application/javascript' || ct === 'application/graphql' || ct === 'application/yaml') return 'text';
  return 'binary';
}

type Coding = 'gzip' | 'deflate' | 'br' | 'zstd';

const zstd = zlib as unknown as { createZstdDecompress?: () => Transform; zstdDecompressSync?: (b: Buffer, o?: object) => Buffer };

/** The content codings dlpctl can decode, for `accept-encoding` upstream when it must scan. */
export const DECODABLE = zstd.createZstdDecompress ? 'gzip, deflate, br, zstd' : 'gzip, deflate, br';

/** Null: no coding (identity). Throws for a coding dlpctl cannot decode. */
export function codingOf(header: string | string[] | undefined): Coding[] | null {
  const v = Array.isArray(header) ? header.join(',') : header;
  if (!v) return null;
  const list: Coding[] = [];
  for (const raw of v.split(',')) {
    const c = raw.trim().toLowerCase();
    if (!c || c === 'identity') continue;
    if (c === 'gzip' || c === 'x-gzip') list.push('gzip');
    else if (c === 'deflate' || c === 'br') list.push(c);
    else if (c === 'zstd' && zstd.createZstdDecompress) list.push('zstd');
    else throw new UnsupportedCoding(c);
  }
  return list.length ? list : null;
}

export class UnsupportedCoding extends Error {
  readonly coding: string;
  constructor(coding: string) {
    super(`content coding "${coding}" cannot be decoded for scanning`);
    this.coding = coding;
  }
}

/** Streaming decoders, outermost coding first (codings are listed in the order they were applied). */
export function decoders(codings: readonly Coding[]): Transform[] {
  return [...codings].reverse().map((c) => {
    switch (c) {
      case 'gzip':
        return zlib.createGunzip();
      case 'deflate':
        return zlib.createInflate();
      case 'br':
        return zlib.createBrotliDecompress();
      case 'zstd':
        return zstd.createZstdDecompress!();
    }
  });
}

/** One-shot decode with an output bound (a small compressed body must not expand without limit). */
export function decodeSync(buf: Buffer, codings: readonly Coding[], maxOutputLength: number): Buffer {
  let out = buf;
  for (const c of [...codings].reverse()) {
    const o = { maxOutputLength };
    switch (c) {
      case 'gzip':
        out = zlib.gunzipSync(out, o);
        break;
      case 'deflate':
        out = out.length > 0 && (out[0]! & 0x0f) === 8 ? zlib.inflateSync(out, o) : zlib.inflateRawSync(out, o);
        break;
      case 'br':
        out = zlib.brotliDecompressSync(out, o);
        break;
      case 'zstd':
        out = zstd.zstdDecompressSync!(out, o);
        break;
    }
  }
  return out;
}
