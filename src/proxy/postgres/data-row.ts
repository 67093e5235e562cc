/**
 * A DataRow's cells, located in the raw message without a Buffer per cell, and a DataRow rebuilt from the
 * raw message with some cells replaced. Masking reads every cell of every row of a result; decoding each
 * into a view and re-encoding the row from a cell array cost more than the masking itself.
 *
 * Layout: 'D' | int32 length (self included) | int16 cell count | per cell: int32 length (-1: NULL) | bytes.
 */
import { decodeDataRow } from './backend.js';
import { ProtocolError } from './errors.js';

export class RowCells {
  /** Cell i: its bytes are raw[start(i), start(i) + length(i)); length -1 is NULL. */
  private starts = new Int32Array(16);
  private lengths = new Int32Array(16);
  count = 0;

  start(i: number): number {
    return this.starts[i]!;
  }

  length(i: number): number {
    return this.lengths[i]!;
  }

  /**
   * Locates the cells of the DataRow message `raw` (type byte included). A malformed row throws the
   * `ProtocolError` that `decodeDataRow` gives for it.
   */
  read(raw: Buffer): void {
    const end = raw.length;
    let ok = end >= 7;
    const n = ok ? raw.readInt16BE(5) : 0;
    if (n < 0 || 7 + n * 4 > end) ok = false;
    if (ok && n > this.starts.length) {
      this.starts = new Int32Array(n);
      this.lengths = new Int32Array(n);
    }
    let pos = 7;
    for (let i = 0; ok && i < n; i++) {
      if (end - pos < 4) {
        ok = false;
        break;
      }
      const len = raw.readInt32BE(pos);
      pos += 4;
      if (len < -1 || len > end - pos) {
        ok = false;
        break;
      }
      this.starts[i] = pos;
      this.lengths[i] = len;
      if (len > 0) pos += len;
    }
    if (!ok || pos !== end) {
      decodeDataRow(raw.subarray(5)); // throws the precise error
      throw new ProtocolError('PG_TRUNCATED', 'DataRow: malformed cell lengths');
    }
    this.count = n;
  }
}

/** What becomes of one cell: its bytes, NULL, or (undefined) its original bytes. */
export type CellReplacement = Buffer | null | undefined;

/**
 * The DataRow `raw` with cell i replaced by `replacements[i]` where that is not undefined. Runs of unchanged
 * cells are copied in one piece.
 */
export function rebuildDataRow(raw: Buffer, cells: RowCells, replacements: readonly CellReplacement[]): Buffer {
  const n = cells.count;
  let size = raw.length;
  for (let i = 0; i < n; i++) {
    const r = replacements[i];
    if (r === undefined) continue;
    size += (r === null ? 0 : r.length) - Math.max(cells.length(i), 0);
  }
  const out = Buffer.allocUnsafe(size);
  raw.copy(out, 0, 0, 7);
  out.writeInt32BE(size - 1, 1);
  let o = 7;
  let copyFrom = 7; // start of the pending run of unchanged cells in raw
  for (let i = 0; i < n; i++) {
    const r = replacements[i];
    if (r === undefined) continue;
    const cellAt = cells.start(i) - 4;
    o += raw.copy(out, o, copyFrom, cellAt);
    if (r === null) o = out.writeInt32BE(-1, o);
    else {
      o = out.writeInt32BE(r.length, o);
      o += r.copy(out, o);
    }
    copyFrom = cells.start(i) + Math.max(cells.length(i), 0);
  }
  raw.copy(out, o, copyFrom);
  return out;
}
