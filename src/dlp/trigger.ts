/**
 * The trigger: finds the next position where a built-in detector can start (a digit run of a shape a
 * numeric detector can take, `@`, `://`, a secret-looking key's `=` or `:` or XML element's `>`, `-----BEGIN`, a known secret
 * prefix, an IBAN country code, …). The scanner runs the specific validator only there.
 *
 * It is a hand-written matcher over the text's bytes: the text is copied once into a byte buffer (ASCII
 * as is, through the native UTF-8 encoder when it is all ASCII; any other character as 0x80, which no
 * check accepts, through a native latin1 write and a regex over the runs of non-ASCII characters),
 * with zero bytes around it, and one pass of a character-class table finds the
 * candidates, each checked by a few byte comparisons. It used to be one combined regex: V8's regex engine
 * spent ~8 ns per character entering its alternatives at every digit, capital and punctuation mark of
 * logs and JSON, and a loop over the string's characters costs ~2.6 ns per character on its own; over
 * bytes it is under 1. The regex is kept as the specification in the tests (test/dlp/trigger-spec.ts),
 * which check that both find the same matches with the same lengths.
 */

import { markEscapeLetters, writeTextBytes } from './text-bytes.js';

/** The enabled entity groups the trigger looks for. */
interface Wanted {
  numeric: boolean;
  email: boolean;
  keyed: boolean;
  scheme: boolean;
  ipv6: boolean;
  pem: boolean;
  capitalPair: boolean;
}

// character kinds that can start a match
const K_DIGIT = 1;
const K_UPPER = 2;
const K_AT = 3;
const K_BACKSLASH = 4;
const K_PERCENT = 5;
const K_COLON = 6;
const K_EQUALS = 7;
const K_DASH = 8;
const K_UNDERSCORE = 9;
const K_DOT = 10;
const K_PEM = 11; // a dash that can only start `-----BEGIN `
const K_GT = 12; // the end of an XML start tag, `<password>`

// character class bits (ASCII only)
const C_DIGIT = 1;
const C_UPPER = 2;
const C_LOWER = 4;
const C_WORD = 8; // [A-Za-z0-9_]
const C_HEX = 16;
const C_KEY = 32; // [A-Za-z0-9_.-]
const C_DOT = 64;
/** The last letter of a prefix that ends in `-` or in `_` (see DASH_PREFIXES, UNDERSCORE_PREFIXES). */
const C_DASH_END = 128;
const C_UNDERSCORE_END = 256;
const C_ALNUM = C_DIGIT | C_UPPER | C_LOWER;

/** Zero bytes before and after the text: every look-around stops at them or stays within them. */
export const TRIGGER_PAD = 64;
const PAD = TRIGGER_PAD;

const CLASS = new Uint16Array(256);
for (let c = 48; c <= 57; c++) CLASS[c] = C_DIGIT | C_WORD | C_HEX | C_KEY;
for (let c = 65; c <= 90; c++) CLASS[c] = C_UPPER | C_WORD | C_KEY | (c <= 70 ? C_HEX : 0);
for (let c = 97; c <= 122; c++) CLASS[c] = C_LOWER | C_WORD | C_KEY | (c <= 102 ? C_HEX : 0);
CLASS[95] = C_WORD | C_KEY;
CLASS[46] = C_KEY | C_DOT;
CLASS[45] = C_KEY;

/** Prefixes that end in `-` (sk-, GitLab's gl…-, Slack's xox?-), and those that end in `_`. */
const DASH_PREFIXES = ['sk', 'glpat', 'glptt', 'gldt', 'glrt', 'glcbt', 'glimt', 'glsoat', 'glft', 'gloas', 'glagent', 'xoxa', 'xoxb', 'xoxp', 'xoxo', 'xoxs', 'xoxr'];
const UNDERSCORE_PREFIXES = ['ghp', 'gho', 'ghu', 'ghs', 'ghr', 'github', 'sk', 'rk', 'npm'];
for (const p of DASH_PREFIXES) CLASS[p.charCodeAt(p.length - 1)]! |= C_DASH_END;
for (const p of UNDERSCORE_PREFIXES) CLASS[p.charCodeAt(p.length - 1)]! |= C_UNDERSCORE_END;
/** After an `A`: the rest of an AWS key id prefix (AKIA, ASIA, …) or of Google's AIza. */
const AWS_AND_GOOGLE = ['KIA', 'SIA', 'BIA', 'CCA', 'GPA', 'IDA', 'ROA', 'IPA', 'NPA', 'NVA', 'PKA', 'Iza'];

/**
 * Roots of the secret key words, by their last letter: pass(word|wd|phrase), pwd, secret, token, auth,
 * credential and (api|access|private) key. Only a filter: the scanner classifies the whole key.
 */
const ROOT_BY_LAST = new Array<string>(256).fill('');
for (const root of ['pass', 'pwd', 'secret', 'token', 'auth', 'credential', 'key']) ROOT_BY_LAST[root.charCodeAt(root.length - 1)] = root;
/** How many key characters may stand between a root and the separator (40 + the longest suffix, "phrase"). */
const KEY_WINDOW = 46;

function isDigitAt(b: Uint8Array, j: number): boolean {
  const c = b[j]!;
  return c >= 48 && c <= 57;
}
function isHexAt(b: Uint8Array, j: number): boolean {
  return (CLASS[b[j]!]! & C_HEX) !== 0;
}
/** b[j, j + text.length) holds the ASCII `text`. */
function bytesAre(b: Uint8Array, j: number, text: string): boolean {
  for (let k = 0; k < text.length; k++) if (b[j + k] !== text.charCodeAt(k)) return false;
  return true;
}
function anyAt(b: Uint8Array, j: number, texts: readonly string[]): boolean {
  for (const t of texts) if (bytesAre(b, j, t)) return true;
  return false;
}

/**
 * A root of a secret key word ends at e (exclusive), in any letter case. Its first letter may be the letter
 * of an escape (`\token=`, text-bytes.ts: `& 0x7f` gives it back; any other non-ASCII byte gives a space).
 */
function rootEndsAt(b: Uint8Array, e: number): boolean {
  const root = ROOT_BY_LAST[b[e - 1]! | 32]!;
  const n = root.length;
  if (n === 0) return false;
  if (((b[e - n]! | 32) & 0x7f) !== root.charCodeAt(0)) return false;
  for (let k = 1; k < n - 1; k++) if ((b[e - n + k]! | 32) !== root.charCodeAt(k)) return false;
  return true;
}

/**
 * The separator at j follows a secret-looking key: a root, up to 46 key characters ([A-Za-z0-9_.-]), an
 * optional quote and blanks.
 */
function keyBefore(b: Uint8Array, j: number): boolean {
  let e = j;
  while (b[e - 1] === 32 || b[e - 1] === 9) e--;
  if (b[e - 1] === 34 || b[e - 1] === 39) e--;
  const stop = e - KEY_WINDOW;
  for (;;) {
    if (rootEndsAt(b, e)) return true;
    if (e <= stop || (CLASS[b[e - 1]!]! & C_KEY) === 0) return false;
    e--;
  }
}

/** The `>` at j ends an XML start tag without attributes: `<`, 1-64 key characters ([A-Za-z0-9_.-]), `>`. */
function tagNameBefore(b: Uint8Array, j: number): boolean {
  let k = j;
  while (k > j - 65 && (CLASS[b[k - 1]!]! & C_KEY) !== 0) k--;
  return k < j && j - k <= 64 && b[k - 1] === 60;
}

/** Length (up to max + 1) of the run of hex digits starting at j. */
function hexRun(b: Uint8Array, j: number, max: number): number {
  let k = j;
  while (k - j <= max && isHexAt(b, k)) k++;
  return k - j;
}

/**
 * After the first `:` of an IPv6 address at r: two more `group:` (1-4 hex digits each), or a `:` (the
 * second of a `::`) before that.
 */
function ipv6Tail(b: Uint8Array, r: number): boolean {
  let pos = r;
  for (let g = 0; g < 2; g++) {
    if (b[pos] === 58) return true;
    const h = hexRun(b, pos, 4);
    if (h === 0 || h > 4 || b[pos + h] !== 58) return false;
    pos += h + 1;
  }
  return true;
}

/**
 * The word before the separator at j is exactly one of `prefixes`, not after a word character or dash. The
 * letter of an escape before the word (text-bytes.ts) may also be the prefix's first letter: `\npm_…` is
 * `npm_…` in a path and a line break before `pm_…` in COPY text.
 */
function prefixBefore(b: Uint8Array, j: number, prefixes: readonly string[]): boolean {
  let w = j;
  while (w > j - 8 && (CLASS[b[w - 1]!]! & C_WORD) !== 0) w--;
  if (w === j || (CLASS[b[w - 1]!]! & C_WORD) !== 0 || b[w - 1] === 45) return false;
  for (const p of prefixes) if (p.length === j - w && bytesAre(b, w, p)) return true;
  const e = b[w - 1]!;
  if (e > 0x80 && b[w - 2] === 92) {
    for (const p of prefixes) if (p.length === j - w + 1 && p.charCodeAt(0) === (e & 0x7f) && bytesAre(b, w, p.slice(1))) return true;
  }
  return false;
}

/**
 * A digit run at j that a numeric detector can start on; its length, or 0. Not inside a word or number
 * (after a word character, `.`, or a digit and `-`, `:` or `/`), not a date's year (four digits, `-`, two
 * digits, unless after `+`), and one of: 13-19 digits starting with 2-6 (an issuer; epoch milliseconds
 * start with 1) or after `+`; 9 digits; 10 starting with 2-9; 11 of the form 1[2-9]…; 9-11 after `+`; a
 * group of up to 6 digits followed by a separator and a digit or `(`, or by `)`; or the first group of an
 * IPv6 address.
 */
function digitsAt(b: Uint8Array, j: number, c: number): number {
  const before = b[j - 1]!;
  if ((before === 45 || before === 58 || before === 47) && isDigitAt(b, j - 2)) return 0;
  const plus = before === 43;
  if (!plus && isDigitAt(b, j + 1) && isDigitAt(b, j + 2) && isDigitAt(b, j + 3) && b[j + 4] === 45 && isDigitAt(b, j + 5) && isDigitAt(b, j + 6) && !isDigitAt(b, j + 7)) {
    return 0;
  }
  let e = j + 1;
  while (isDigitAt(b, e)) e++;
  const d = e - j;
  const f = c - 48;
  if (d >= 13 && d <= 19 && (plus || (f >= 2 && f <= 6))) return d;
  if (d === 9 || (plus && d >= 9 && d <= 11) || (d === 10 && f >= 2) || (d === 11 && f === 1 && b[j + 1]! >= 50)) return d;
  if (d <= 6) {
    const next = b[e]!;
    if (next === 32 || next === 46 || next === 45 || next === 47) {
      if (isDigitAt(b, e + 1) || b[e + 1] === 40) return d;
    } else if (next === 41) {
      if (isDigitAt(b, e + 1) || (b[e + 1] === 32 && isDigitAt(b, e + 2))) return d;
    }
  }
  // the first group of an IPv6 address: up to 4 digits, then at most 3 more hex digits before the `:`
  const k = Math.min(3, d - 1);
  const q = j + 1 + k;
  const h = hexRun(b, q, 3);
  if (h <= 3 && b[q + h] === 58 && ipv6Tail(b, q + h + 1)) return 1 + k;
  return 0;
}

// groups of the byte before a candidate, by what they allow after them
const G_OTHER = 0; // not a word character or dot (also the padding and non-ASCII)
const G_DOT = 1;
const G_UNDERSCORE = 2;
const G_ALNUM = 3; // a letter or digit that ends no prefix
const G_DASH_END = 4; // a letter that ends a `-` prefix only
const G_UNDERSCORE_END = 5; // … a `_` prefix only
const G_BOTH_END = 6; // … both
const GROUPS = 7;
/** The group of each byte, shifted left by 8 (an index into a trigger's filter table). */
const GROUP = new Uint16Array(256);
for (let c = 0; c < 256; c++) {
  const k = CLASS[c]!;
  let g = G_OTHER;
  if (c === 46) g = G_DOT;
  else if (c === 95) g = G_UNDERSCORE;
  else if ((k & C_DASH_END) !== 0 && (k & C_UNDERSCORE_END) !== 0) g = G_BOTH_END;
  else if ((k & C_DASH_END) !== 0) g = G_DASH_END;
  else if ((k & C_UNDERSCORE_END) !== 0) g = G_UNDERSCORE_END;
  else if ((k & C_ALNUM) !== 0) g = G_ALNUM;
  GROUP[c] = g << 8;
}

/** The kind of byte c after a byte of group g: 0 when the byte before already rules every match out. */
function kindAfter(g: number, c: number, k: number, pem: boolean): number {
  const word = g >= G_UNDERSCORE; // the byte before is a word character
  const alnum = g >= G_ALNUM;
  switch (k) {
    case K_DIGIT:
      return word || g === G_DOT ? 0 : k;
    case K_UPPER:
      return alnum && c !== 74 ? 0 : k;
    case K_UNDERSCORE:
      return g === G_UNDERSCORE_END || g === G_BOTH_END ? k : 0;
    case K_DASH:
      if (g === G_DASH_END || g === G_BOTH_END) return k;
      return pem ? K_PEM : 0;
    default:
      return k;
  }
}

/**
 * The next byte at or after j (before end) where a match can start, or -1. One table lookup per byte:
 * the byte's kind given the group of the byte before it. Most bytes that can start a match cannot after
 * the one before (a digit or capital inside a word, a dash or underscore after a word that is no
 * prefix), and the table already says so. (A function of its own, so that V8 optimizes this loop by
 * itself early: it runs once per candidate.)
 */
function candidate(b: Uint8Array, filter: Uint8Array, j: number, end: number): number {
  let g = GROUP[b[j - 1]!]!;
  for (; j < end; j++) {
    const c = b[j]!;
    if (filter[g | c] !== 0) return j;
    g = GROUP[c]!;
  }
  return -1;
}

/**
 * The byte buffer is reused for texts up to SHARED_MAX; a larger text gets one of its own (a fresh
 * multi-megabyte buffer per call made repeated large scans ~40% slower: page faults and GC of external
 * memory). A buffer above KEEP is given back after RELEASE_AFTER loads that did not need it, so that one
 * large statement or body does not hold megabytes for the life of a tunnel.
 */
const SHARED_MAX = 16 << 20;
const KEEP = 1 << 20;
const RELEASE_AFTER = 64;
let shared = new Uint8Array(4096);
const NONE = new Uint8Array(2 * PAD);
let smallLoads = 0;

/** Bytes held by the reused buffer (tests). */
export function retainedTriggerBytes(): number {
  return shared.length;
}

/**
 * Copies `s` into a byte buffer at PAD, zero bytes on both sides: ASCII as is, any other character as
 * 0x80 (text-bytes.ts; class 0 here: it is neither a word character nor any character a check looks for,
 * as in the regex without the `u` flag), and so is the letter of a `\n`, `\t`… escape (markEscapeLetters).
 */
function load(s: string): Uint8Array {
  const n = s.length;
  const need = n + 2 * PAD;
  if (need > KEEP) smallLoads = 0;
  else if (shared.length > KEEP && ++smallLoads >= RELEASE_AFTER) shared = new Uint8Array(KEEP);
  let b: Uint8Array;
  if (need <= shared.length) b = shared;
  else if (need <= SHARED_MAX) b = shared = new Uint8Array(Math.min(SHARED_MAX, Math.max(need, shared.length * 2)));
  else b = new Uint8Array(need);
  writeTextBytes(s, b, PAD);
  markEscapeLetters(s, b, PAD);
  b.fill(0, PAD + n, need);
  return b;
}

export class Trigger {
  /** Length of the last match. */
  length = 0;
  readonly #w: Wanted;
  /** kind of byte c after a byte of group g, at g | c (0: no match can start there). */
  readonly #filter: Uint8Array;
  #b: Uint8Array = NONE;
  #n = 0;

  constructor(entities: ReadonlySet<string>) {
    const has = (e: string): boolean => entities.has(e);
    const w: Wanted = {
      numeric: has('credit_card') || has('us_ssn') || has('phone') || has('ipv4') || has('ipv6'),
      email: has('email'),
      keyed: has('generic_secret') || has('aws_secret_access_key'),
      scheme: has('connection_string') || has('slack_webhook'),
      ipv6: has('ipv6'),
      pem: has('private_key'),
      capitalPair: has('iban') || has('gitlab_token'),
    };
    this.#w = w;
    const kind = new Uint8Array(256);
    if (w.numeric) for (let c = 48; c <= 57; c++) kind[c] = K_DIGIT;
    for (let c = 65; c <= 90; c++) kind[c] = K_UPPER;
    if (w.email) {
      kind[64] = K_AT;
      kind[92] = K_BACKSLASH;
      kind[37] = K_PERCENT;
    }
    if (w.scheme || w.keyed || w.ipv6) kind[58] = K_COLON;
    if (w.keyed) {
      kind[61] = K_EQUALS;
      kind[62] = K_GT;
    }
    kind[45] = K_DASH;
    kind[95] = K_UNDERSCORE;
    kind[46] = K_DOT;
    const filter = new Uint8Array(GROUPS << 8);
    for (let g = 0; g < GROUPS; g++) {
      for (let c = 0; c < 256; c++) filter[(g << 8) | c] = kindAfter(g, c, kind[c]!, w.pem);
    }
    this.#filter = filter;
  }

  /** Prepares `s` for next(). Valid until the next start() of any trigger. */
  start(s: string): void {
    this.#b = load(s);
    this.#n = s.length;
  }

  /**
   * The started text as bytes (text-bytes.ts) from index TRIGGER_PAD, zero bytes around it, for the
   * detectors' loops. Valid until finish(); beyond the text and its padding it holds stale bytes.
   */
  get bytes(): Uint8Array {
    return this.#b;
  }

  /** Lets go of the text's buffer (which may be large) once the scan is over. */
  finish(): void {
    this.#b = NONE;
    this.#n = 0;
  }

  /** Index in the started text of the next match at or after `from` (its length in `length`), or -1. */
  next(from: number): number {
    const filter = this.#filter;
    const b = this.#b;
    const end = PAD + this.#n;
    for (let j = PAD + from; ; j++) {
      j = candidate(b, filter, j, end);
      if (j < 0) return -1;
      const len = this.#matchAt(b, j, b[j]!, filter[GROUP[b[j - 1]!]! | b[j]!]!);
      if (len > 0) {
        this.length = len;
        return j - PAD;
      }
    }
  }

  #matchAt(b: Uint8Array, j: number, c: number, k: number): number {
    switch (k) {
      case K_DIGIT:
        return digitsAt(b, j, c);
      case K_UPPER:
        return this.#capitalAt(b, j, c);
      case K_AT:
        return 1;
      case K_BACKSLASH:
        return bytesAre(b, j + 1, 'u0040') ? 6 : 0;
      case K_PERCENT:
        return b[j + 1] === 52 && b[j + 2] === 48 ? 3 : 0;
      case K_COLON:
        return this.#colonAt(b, j);
      case K_EQUALS:
        return keyBefore(b, j) ? 1 : 0;
      case K_GT:
        return tagNameBefore(b, j) && keyBefore(b, j) ? 1 : 0;
      case K_PEM:
        return bytesAre(b, j + 1, '----BEGIN ') ? 11 : 0;
      case K_DASH:
        if (this.#w.pem && bytesAre(b, j + 1, '----BEGIN ')) return 11;
        return prefixBefore(b, j, DASH_PREFIXES) ? 1 : 0;
      case K_UNDERSCORE:
        return prefixBefore(b, j, UNDERSCORE_PREFIXES) ? 1 : 0;
      default: // K_DOT
        return b[j + 1] === 115 && bytesAre(b, j + 1, 'slack.com/') && bytesAre(b, j - 5, 'hooks') ? 11 : 0;
    }
  }

  #colonAt(b: Uint8Array, j: number): number {
    const w = this.#w;
    if (w.scheme && b[j + 1] === 47 && b[j + 2] === 47) return 3;
    if (w.keyed && keyBefore(b, j)) return 1;
    if (!w.ipv6) return 0;
    const before = CLASS[b[j - 1]!]!;
    if ((before & C_WORD) === 0 && b[j - 1] !== 58) {
      // `::` then a hex digit, not after a word character or colon
      return b[j + 1] === 58 && isHexAt(b, j + 2) ? 3 : 0;
    }
    // a group of 1-4 hex digits starting with a letter, not after a word character or colon, then `:`
    if ((before & C_HEX) === 0) return 0;
    let g = j - 1;
    while (g > j - 4 && isHexAt(b, g - 1)) g--;
    if (isDigitAt(b, g) || (CLASS[b[g - 1]!]! & C_WORD) !== 0 || b[g - 1] === 58) return 0;
    return b[j + 1] === 58 || isHexAt(b, j + 1) ? 1 : 0;
  }

  #capitalAt(b: Uint8Array, j: number, c: number): number {
    const before = b[j - 1]!;
    const bc = CLASS[before]!;
    // eyJ (a JWT), not inside a word or after a dash
    if (c === 74 /* J */ && before === 121 && b[j - 2] === 101 && (CLASS[b[j - 3]!]! & C_WORD) === 0 && b[j - 3] !== 45) return 1;
    if (c === 65 /* A */ && (bc & C_WORD) === 0 && before !== 45 && anyAt(b, j + 1, AWS_AND_GOOGLE)) return 4;
    // two capitals and two digits (IBAN, GitLab's GR1348941), not after a letter or digit
    if (this.#w.capitalPair && (bc & C_ALNUM) === 0 && (CLASS[b[j + 1]!]! & C_UPPER) !== 0 && isDigitAt(b, j + 2) && isDigitAt(b, j + 3)) return 4;
    return 0;
  }
}
