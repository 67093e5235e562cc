/**
 * One-dimensional arrays in PostgreSQL's binary format (what `array_recv` reads), for the bind parameters of
 * the PostgreSQL store's batch statement. `pg` sends a Buffer parameter in binary format, so an array built
 * here reaches the server as bytes to copy: no array literal to build and escape here (two regular
 * expressions over every event body) and none to parse there, character by character.
 *
 * Layout: int32 dimensions (1, or 0 for an empty array), int32 "has nulls", int32 element type OID, then per
 * dimension int32 length and int32 lower bound (1); then each element as int32 byte length (-1 for NULL)
 * and its bytes in the element type's own binary format. All integers big-endian.
 *
 * The statement must cast each parameter to the array type written here (`$1::text[]`): the server checks
 * the element OID against it and refuses a mismatch.
 */

const TEXT_OID = 25;
const INT4_OID = 23;
const TIMESTAMPTZ_OID = 1184;

/** 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch, in Unix milliseconds. */
const PG_EPOCH_MS = 946_684_800_000;
const TWO_32 = 4_294_967_296;

function header(out: Buffer, count: number, hasNull: boolean, oid: number): number {
  out.writeInt32BE(count === 0 ? 0 : 1, 0);
  out.writeInt32BE(hasNull ? 1 : 0, 4);
  out.writeInt32BE(oid, 8);
  if (count === 0) return 12;
  out.writeInt32BE(count, 12);
  out.writeInt32BE(1, 16);
  return 20;
}

function headerSize(count: number): number {
  return count === 0 ? 12 : 20;
}

/** `text[]`: each string as UTF-8; null is SQL NULL. */
export function textArray(values: readonly (string | null)[]): Buffer {
  let size = headerSize(values.length);
  let hasNull = false;
  const lengths = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      hasNull = true;
      lengths[i] = -1;
      size += 4;
    } else {
      const n = Buffer.byteLength(v, 'utf8');
      lengths[i] = n;
      size += 4 + n;
    }
  }
  const out = Buffer.allocUnsafe(size);
  let o = header(out, values.length, hasNull, TEXT_OID);
  for (let i = 0; i < values.length; i++) {
    const n = lengths[i]!;
    out.writeInt32BE(n, o);
    o += 4;
    if (n > 0) o += out.write(values[i]!, o, n, 'utf8');
  }
  return out;
}

/** `int4[]`: integers in the 32-bit signed range. */
export function int4Array(values: readonly number[]): Buffer {
  const out = Buffer.allocUnsafe(headerSize(values.length) + 8 * values.length);
  let o = header(out, values.length, false, INT4_OID);
  for (const v of values) {
    out.writeInt32BE(4, o);
    out.writeInt32BE(v, o + 4);
    o += 8;
  }
  return out;
}

/**
 * `timestamptz[]` from Unix milliseconds (integers); null is SQL NULL. The server keeps microseconds since
 * 2000-01-01 as an int64; a millisecond count times 1000 stays well inside a double's exact range, so the
 * two 32-bit halves are written without a BigInt.
 */
export function timestamptzArray(ms: readonly (number | null)[]): Buffer {
  let hasNull = false;
  let nulls = 0;
  for (const v of ms) {
    if (v === null) {
      hasNull = true;
      nulls++;
    }
  }
  const out = Buffer.allocUnsafe(headerSize(ms.length) + 12 * (ms.length - nulls) + 4 * nulls);
  let o = header(out, ms.length, hasNull, TIMESTAMPTZ_OID);
  for (const v of ms) {
    if (v === null) {
      out.writeInt32BE(-1, o);
      o += 4;
      continue;
    }
    const us = (v - PG_EPOCH_MS) * 1000;
    const hi = Math.floor(us / TWO_32);
    out.writeInt32BE(8, o);
    out.writeInt32BE(hi, o + 4);
    out.writeUInt32BE(us - hi * TWO_32, o + 8);
    o += 12;
  }
  return out;
}
