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

/**
 * Marks the letter of every backslash escape that stands for a control character (`\n`, `\t`, `\r`, `\b`,
 * `\f`, `\v`) in b (holding `s` from `at`) as a non-ASCII byte, `letter | 0x80`: a separator for every check,
 * not a word character. COPY's text format, JSON strings and PostgreSQL's E'' strings write a cell's line
 * breaks and tabs this way, so in `1\tnote\n4111111111111111` the card follows a line break, not the
 * letter `n`. The letter stays recoverable (`& 0x7f`) for the few checks that read a secret prefix or key
 * word (`\npm_…` can also be a path before `npm_…`). The rule looks at the one character before only (an
 * escaped backslash, `\\n`, counts too), so any window of a text gets the same bytes, as the stream masker
 * needs; it only adds places where a value may start.
 */
export function markEscapeLetters(s: string, b: Uint8Array, at: number): void {
  let i = s.indexOf('\\');
  while (i !== -1) {
    const c = s.charCodeAt(i + 1);
    if (isEscapeLetter(c)) b[at + i + 1] = c | 0x80;
    i = s.indexOf('\\', i + 1);
  }
}

/** b f n r t v: the letters of the escapes of control characters that markEscapeLetters marks. */
export function isEscapeLetter(c: number): boolean {
  return c === 110 || c === 116 || c === 114 || c === 98 || c === 102 || c === 118;
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
