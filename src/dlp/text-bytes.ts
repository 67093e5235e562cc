/**
 * Texts as bytes, for the checks that loop over characters: one byte per UTF-16 code unit, ASCII as is and
 * any other character as 0x80, which no check accepts as a letter, digit or punctuation mark. The trigger
 * loads every scanned text this way (trigger.ts) and the detectors read the same bytes: on this machine a
 * loop over a Uint8Array costs under 1 ns per character, over a string's characters 2–3 ns.
 */

/** Any character that is not ASCII. A check that must tell such characters apart reads the string. */
export const NON_ASCII = 0x80;

const encoder = new TextEncoder();
const NON_ASCII_RUNS = /[^\x00-\x7f]+/g;

/** Writes `s` into b[at, at + s.length) as described above. */
export function writeTextBytes(s: string, b: Uint8Array, at: number): void {
  const n = s.length;
  if (n < 64) {
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      b[at + i] = c < 128 ? c : NON_ASCII;
    }
    return;
  }
  const r = encoder.encodeInto(s, b.subarray(at, at + n));
  if (r.read === n && r.written === n) return;
  // Not all ASCII (model output is full of ’ and “”): the low byte of every character natively, then each
  // run of non-ASCII characters overwritten with 0x80 (a low byte alone can look like `=` or `0`).
  // (a Buffer view for the write only: the checks see plain Uint8Arrays, one shape for V8)
  Buffer.from(b.buffer, b.byteOffset, b.length).write(s, at, n, 'latin1');
  NON_ASCII_RUNS.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = NON_ASCII_RUNS.exec(s)) !== null) b.fill(NON_ASCII, at + m.index, at + m.index + m[0].length);
}

let scratch = new Uint8Array(256);

/**
 * `value` as bytes at index 0 of a shared buffer, for the string forms of the byte checks. Valid until the
 * next call: a check that takes bytes never calls this.
 */
export function bytesOf(value: string): Uint8Array {
  if (value.length > scratch.length) {
    // a large value gets its own buffer; the shared one stays small
    if (value.length > 4096) {
      const own = new Uint8Array(value.length);
      writeTextBytes(value, own, 0);
      return own;
    }
    scratch = new Uint8Array(4096);
  }
  writeTextBytes(value, scratch, 0);
  return scratch;
}
