/**
 * A bounds-checked reader over one message payload. One instance is re-pointed (`reset`) at each payload,
 * so decoding allocates nothing but the decoded values. Every read checks the remaining length first and
 * fails with a `ProtocolError`, never with a RangeError or an out-of-bounds read. Integers are big-endian
 * (network order), as everywhere in the PostgreSQL protocol.
 */
import { isUtf8 } from 'node:buffer';
import { ProtocolError } from './errors.js';
import type { TextCodec } from './encoding.js';

const EMPTY = Buffer.alloc(0);

export class Reader {
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** The message being decoded, for error messages. */
  private what = '';
  /** The session's client encoding for strict strings; null: UTF-8. */
  codec: TextCodec | null = null;

  reset(payload: Buffer, what: string): this {
    this.buf = payload;
    this.pos = 0;
    this.what = what;
    return this;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  get offset(): number {
    return this.pos;
  }

  private need(n: number, field: string): void {
    if (n > this.buf.length - this.pos) {
      throw new ProtocolError(
        'PG_TRUNCATED',
        `${this.what}: ${field} needs ${n} byte(s) at offset ${this.pos} but only ${this.remaining} remain`,
      );
    }
  }

  uint8(field = 'byte'): number {
    this.need(1, field);
    return this.buf[this.pos++] as number;
  }

  int16(field = 'int16'): number {
    this.need(2, field);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  int32(field = 'int32'): number {
    this.need(4, field);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** OIDs are unsigned 32-bit. */
  uint32(field = 'uint32'): number {
    this.need(4, field);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /**
   * An int16 element count, checked against the bytes left: each element takes at least `minElementSize`
   * bytes, so a count that cannot fit fails here, before anything is allocated for it.
   */
  count(field: string, minElementSize: number): number {
    const n = this.int16(field);
    if (n < 0) throw new ProtocolError('PG_BAD_VALUE', `${this.what}: negative ${field} ${n}`);
    if (n * minElementSize > this.remaining) {
      throw new ProtocolError('PG_TRUNCATED', `${this.what}: ${field} ${n} exceeds the ${this.remaining} byte(s) left`);
    }
    return n;
  }

  /** A view (no copy) of the next `n` bytes. */
  bytes(n: number, field = 'bytes'): Buffer {
    if (n < 0) throw new ProtocolError('PG_NEGATIVE_LENGTH', `${this.what}: negative length ${n} for ${field}`);
    this.need(n, field);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /**
   * An int32 length followed by that many bytes; -1 is NULL, any other negative length is an error.
   * `index` (1-based) numbers the field in error messages (`column 3`); the name is only built for an error,
   * since this runs for every cell of every row.
   */
  nullableBytes(field: string, index = 0): Buffer | null {
    const buf = this.buf;
    if (buf.length - this.pos < 4) this.need(4, `${numbered(field, index)} length`);
    const len = buf.readInt32BE(this.pos);
    this.pos += 4;
    if (len === -1) return null;
    if (len < 0) throw new ProtocolError('PG_NEGATIVE_LENGTH', `${this.what}: ${numbered(field, index)} length ${len}`);
    if (len > buf.length - this.pos) this.need(len, numbered(field, index));
    const v = buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return v;
  }

  /** A view of everything left. */
  rest(): Buffer {
    const v = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return v;
  }

  /** The raw bytes of a NUL-terminated string, without the NUL. */
  cstringBytes(field = 'string'): Buffer {
    const nul = this.buf.indexOf(0, this.pos);
    if (nul === -1) {
      throw new ProtocolError('PG_UNTERMINATED_STRING', `${this.what}: ${field} at offset ${this.pos} is not NUL-terminated`);
    }
    const v = this.buf.subarray(this.pos, nul);
    this.pos = nul + 1;
    return v;
  }

  /**
   * A NUL-terminated string. `strict` (the default) rejects a byte sequence invalid in the session's client
   * encoding (`codec`, UTF-8 when none) instead of replacing it, so what a policy sees is exactly what the
   * server will see.
   */
  cstring(field = 'string', strict = true): string {
    const raw = this.cstringBytes(field);
    if (strict && this.codec && !this.codec.utf8) return this.codec.decode(raw, `${this.what}: ${field}`);
    if (strict && !isUtf8(raw)) throw new ProtocolError('PG_INVALID_UTF8', `${this.what}: ${field} is not valid UTF-8`);
    return raw.toString('utf8');
  }

  /** Asserts the payload was consumed exactly. */
  end(): void {
    if (this.pos !== this.buf.length) {
      throw new ProtocolError('PG_TRAILING_DATA', `${this.what}: ${this.remaining} unexpected byte(s) after the last field`);
    }
  }
}

function numbered(field: string, index: number): string {
  return index > 0 ? `${field} ${index}` : field;
}
