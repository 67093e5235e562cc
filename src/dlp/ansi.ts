/**
 * Terminal output: ANSI escape sequences are removed before detection (so a colour reset in the middle of
 * a value does not hide it) and put back around the replacements (so colours are never broken).
 *
 * Recognised: CSI `ESC [ params intermediates final`, OSC `ESC ] … (BEL | ESC \)`, DCS/SOS/PM/APC strings
 * terminated by `ESC \`, and two-byte `ESC x` sequences; also the 8-bit CSI (U+009B).
 */

export interface Stripped {
  clean: string;
  /** map[i] = index in the raw text of clean[i]; map[clean.length] = raw.length. */
  map: Int32Array;
  /** Raw index where an unterminated escape sequence starts at the end of the text, or -1. */
  incomplete: number;
}

const MAX_STRING_SEQ = 4096;

/** Length of the escape sequence at raw[i] (raw[i] is ESC or U+009B); 0 = not a sequence; -1 = incomplete. */
export function escapeLength(raw: string, i: number): number {
  const n = raw.length;
  const c0 = raw.charCodeAt(i);
  let j: number;
  if (c0 === 0x9b) j = i + 1;
  else {
    if (i + 1 >= n) return -1;
    const c1 = raw.charCodeAt(i + 1);
    if (c1 === 0x5b /* [ */) j = i + 2;
    else if (c1 === 0x5d /* ] */ || c1 === 0x50 /* P */ || c1 === 0x58 /* X */ || c1 === 0x5e /* ^ */ || c1 === 0x5f /* _ */) {
      // string sequences: until BEL (OSC only) or ST (ESC \)
      for (let k = i + 2; k < n && k - i < MAX_STRING_SEQ; k++) {
        const c = raw.charCodeAt(k);
        if (c === 7 && c1 === 0x5d) return k + 1 - i;
        if (c === 0x1b) {
          if (k + 1 >= n) return -1;
          return raw.charCodeAt(k + 1) === 0x5c ? k + 2 - i : k - i;
        }
      }
      return n - i < MAX_STRING_SEQ ? -1 : 0;
    } else if (c1 >= 0x20 && c1 <= 0x2f) {
      // nF: ESC intermediates final
      let k = i + 1;
      while (k < n && raw.charCodeAt(k) >= 0x20 && raw.charCodeAt(k) <= 0x2f) k++;
      if (k >= n) return -1;
      return k + 1 - i;
    } else if (c1 >= 0x30 && c1 <= 0x7e) return 2;
    else return 0;
  }
  // CSI
  let k = j;
  while (k < n && k - i < 64) {
    const c = raw.charCodeAt(k);
    if (c >= 0x40 && c <= 0x7e) return k + 1 - i;
    if (c < 0x20 || c > 0x3f) return 0;
    k++;
  }
  return k >= n && k - i < 64 ? -1 : 0;
}

export function hasEscapes(raw: string): boolean {
  return raw.indexOf('\x1b') !== -1 || raw.indexOf('\x9b') !== -1;
}

export function stripAnsi(raw: string, final: boolean): Stripped {
  const n = raw.length;
  const map = new Int32Array(n + 1);
  let out = '';
  let ci = 0;
  let last = 0;
  let incomplete = -1;
  let i = 0;
  while (i < n) {
    const c = raw.charCodeAt(i);
    if (c !== 0x1b && c !== 0x9b) {
      i++;
      continue;
    }
    let len = escapeLength(raw, i);
    if (len === -1) {
      if (!final) incomplete = i;
      len = n - i;
    }
    if (len === 0) {
      i++;
      continue;
    }
    out += raw.slice(last, i);
    for (let k = last; k < i; k++) map[ci++] = k;
    i += len;
    last = i;
    if (incomplete !== -1) break;
  }
  if (last < n && incomplete === -1) {
    out += raw.slice(last);
    for (let k = last; k < n; k++) map[ci++] = k;
  }
  map[ci] = incomplete !== -1 ? incomplete : n;
  return { clean: out, map: map.subarray(0, ci + 1), incomplete };
}

/** The escape sequences (verbatim, in order) inside raw[a, b). */
export function escapesIn(raw: string, a: number, b: number): string {
  let out = '';
  let i = a;
  while (i < b) {
    const c = raw.charCodeAt(i);
    if (c === 0x1b || c === 0x9b) {
      let len = escapeLength(raw, i);
      if (len === -1) len = raw.length - i;
      if (len > 0) {
        out += raw.slice(i, Math.min(b, i + len));
        i += len;
        continue;
      }
    }
    i++;
  }
  return out;
}
