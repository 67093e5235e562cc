import { describe, expect, it } from 'vitest';
import { decodeDataRow, encodeDataRow, ProtocolError } from '../../../src/proxy/postgres/protocol.js';
import { rebuildDataRow, RowCells, type CellReplacement } from '../../../src/proxy/postgres/data-row.js';
import { prng } from './helpers/naive.js';

type Cell = Buffer | null;

function randomRow(rnd: () => number): Cell[] {
  const n = Math.floor(rnd() * 6);
  return Array.from({ length: n }, () => {
    const r = rnd();
    if (r < 0.2) return null;
    if (r < 0.3) return Buffer.alloc(0);
    return randomBytes(rnd, 12);
  });
}

function randomBytes(rnd: () => number, maxLength: number): Buffer {
  return Buffer.from(Array.from({ length: Math.floor(rnd() * maxLength) }, () => Math.floor(rnd() * 256)));
}

/** `count` random rows from `seed`, each with its encoding; `rnd` goes on from there for the caller's own draws. */
function* randomRows(seed: number, count: number): Generator<{ k: number; row: Cell[]; raw: Buffer; rnd: () => number }> {
  const rnd = prng(seed);
  for (let k = 0; k < count; k++) {
    const row = randomRow(rnd);
    yield { k, row, raw: encodeDataRow(row), rnd };
  }
}

/** What decodeDataRow makes of `raw` (type byte included): its cells, or the error it throws. */
function reference(raw: Buffer): readonly Cell[] | string {
  try {
    return decodeDataRow(raw.subarray(5)).cells;
  } catch (err) {
    return `${(err as ProtocolError).code}: ${(err as Error).message}`;
  }
}

function located(raw: Buffer, cells: RowCells): Cell[] | string {
  try {
    cells.read(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return `${(err as ProtocolError).code}: ${(err as Error).message}`;
  }
  return Array.from({ length: cells.count }, (_, i) => (cells.length(i) < 0 ? null : raw.subarray(cells.start(i), cells.start(i) + cells.length(i))));
}

describe('RowCells', () => {
  it('locates the cells decodeDataRow decodes, for random rows (NULL, empty and binary cells)', () => {
    const cells = new RowCells();
    for (const { row, raw } of randomRows(11, 2000)) expect(located(raw, cells)).toEqual(row);
  });

  it('grows past 16 cells and still reads short rows after', () => {
    const cells = new RowCells();
    const wide = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? null : Buffer.from(`c${i}`)));
    expect(located(encodeDataRow(wide), cells)).toEqual(wide);
    const short = [Buffer.from('x')];
    expect(located(encodeDataRow(short), cells)).toEqual(short);
  });

  it('truncated at every offset, or with bytes appended, fails with the error decodeDataRow gives', () => {
    const cells = new RowCells();
    for (const { raw } of randomRows(12, 300)) {
      for (let cut = 5; cut < raw.length; cut++) {
        const t = Buffer.from(raw.subarray(0, cut));
        expect(located(t, cells), `cut at ${cut}`).toEqual(reference(t));
        expect(typeof reference(t)).toBe('string');
      }
      const longer = Buffer.concat([raw, Buffer.from([1, 2])]);
      expect(located(longer, cells)).toEqual(reference(longer));
    }
  });

  it('a negative count, a count past the end, and cell lengths below -1 or past the end fail like decodeDataRow', () => {
    const cells = new RowCells();
    const bad = [
      Buffer.from([0x44, 0, 0, 0, 6, 0xff, 0xff]), // count -1
      Buffer.from([0x44, 0, 0, 0, 6, 0, 3]), // three cells, no bytes
      Buffer.from([0x44, 0, 0, 0, 10, 0, 1, 0xff, 0xff, 0xff, 0xfe]), // length -2
      Buffer.from([0x44, 0, 0, 0, 11, 0, 1, 0, 0, 0, 9, 0x41]), // length 9, one byte there
      Buffer.from([0x44, 0, 0, 0, 4]), // no count
    ];
    for (const raw of bad) {
      const want = reference(raw);
      expect(typeof want).toBe('string');
      expect(located(raw, cells)).toEqual(want);
    }
  });
});

describe('rebuildDataRow', () => {
  it('equals encoding the row with the replaced cells, for random rows and replacements', () => {
    const cells = new RowCells();
    for (const { k, row, raw, rnd } of randomRows(13, 3000)) {
      cells.read(raw);
      const replacements: CellReplacement[] = row.map(() => {
        const r = rnd();
        if (r < 0.4) return undefined;
        if (r < 0.55) return null;
        return randomBytes(rnd, 20);
      });
      const want = encodeDataRow(row.map((c, i) => (replacements[i] === undefined ? c : replacements[i]!)));
      expect(rebuildDataRow(raw, cells, replacements).equals(want), `row ${k}`).toBe(true);
    }
  });

  it('replaces the first, the last and every cell; an unchanged list gives the same bytes', () => {
    const row = [Buffer.from('alpha'), null, Buffer.from(''), Buffer.from('omega')];
    const raw = encodeDataRow(row);
    const cells = new RowCells();
    cells.read(raw);
    const x = Buffer.from('X');
    expect(rebuildDataRow(raw, cells, [x, undefined, undefined, undefined]).equals(encodeDataRow([x, null, Buffer.from(''), Buffer.from('omega')]))).toBe(true);
    expect(rebuildDataRow(raw, cells, [undefined, undefined, undefined, null]).equals(encodeDataRow([Buffer.from('alpha'), null, Buffer.from(''), null]))).toBe(true);
    expect(rebuildDataRow(raw, cells, [x, x, x, x]).equals(encodeDataRow([x, x, x, x]))).toBe(true);
    expect(rebuildDataRow(raw, cells, [undefined, undefined, undefined, undefined]).equals(raw)).toBe(true);
  });
});
