/**
 * Checksums and structural rules used by the detectors (and by custom detectors through `validator:`).
 * All functions are total: they return false on malformed input rather than throwing. The `…At` forms
 * read a span of a text through its bytes (text-bytes.ts), as the scanner has them.
 */
import { bytesOf } from './text-bytes.js';

/** Luhn (mod 10) over the decimal digits of `s`; other characters are ignored. */
export function luhn(s: string): boolean {
  return luhnAt(bytesOf(s), 0, s.length);
}

/** luhn over b[a, z) (bytes of a text, text-bytes.ts): the decimal digits, other characters ignored. */
export function luhnAt(b: Uint8Array, a: number, z: number): boolean {
  let sum = 0;
  let dbl = false;
  let n = 0;
  for (let i = z - 1; i >= a; i--) {
    const c = b[i]! - 48;
    if (c < 0 || c > 9) continue;
    n++;
    let d = c;
    if (dbl) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    dbl = !dbl;
  }
  return n > 1 && sum % 10 === 0;
}

/** Issuer (IIN) ranges and lengths of the card schemes in common use. */
export function cardIssuer(digits: string, length?: number): string | null {
  // `length`: the length of the whole number when `digits` holds only its first (six or more) digits
  return cardIssuerOf(Number(digits.slice(0, 6).padEnd(6, '0')), length ?? digits.length);
}

/** cardIssuer of a number of `len` digits whose first six are `p6`. */
export function cardIssuerOf(p6: number, len: number): string | null {
  const p2 = Math.floor(p6 / 10000);
  const p3 = Math.floor(p6 / 1000);
  const p4 = Math.floor(p6 / 100);
  if (p6 >= 400000 && p6 <= 499999) return len === 13 || len === 16 || len === 19 ? 'visa' : null;
  if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return len === 16 ? 'mastercard' : null;
  if (p2 === 34 || p2 === 37) return len === 15 ? 'amex' : null;
  if (p4 >= 2200 && p4 <= 2204) return len >= 16 && len <= 19 ? 'mir' : null;
  if (p4 === 6011 || (p3 >= 644 && p3 <= 649) || p2 === 65 || (p6 >= 622126 && p6 <= 622925)) {
    return len >= 16 && len <= 19 ? 'discover' : null;
  }
  if ((p3 >= 300 && p3 <= 305) || p4 === 3095 || p2 === 36 || p2 === 38 || p2 === 39) {
    return len >= 14 && len <= 19 ? 'diners' : null;
  }
  if (p4 >= 3528 && p4 <= 3589) return len >= 16 && len <= 19 ? 'jcb' : null;
  if (p2 === 62) return len >= 16 && len <= 19 ? 'unionpay' : null;
  if (p2 === 50 || (p2 >= 56 && p2 <= 58) || p2 === 60 || p2 === 63 || p2 === 67 || p2 === 69 || p2 === 64) {
    return len >= 12 && len <= 19 ? 'maestro' : null;
  }
  return null;
}

/** IBAN lengths by country (SWIFT IBAN registry). */
export const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BI: 27, BR: 29, BY: 28, CH: 21,
  CR: 22, CY: 28, CZ: 24, DE: 22, DJ: 27, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FK: 18, FO: 18,
  FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HN: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23,
  IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20, LV: 21, LY: 25, MC: 27,
  MD: 24, ME: 22, MK: 19, MN: 20, MR: 27, MT: 31, MU: 30, NI: 28, NL: 18, NO: 15, OM: 23, PK: 24, PL: 28,
  PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, RU: 33, SA: 24, SC: 31, SD: 18, SE: 24, SI: 19, SK: 24, SM: 27,
  SO: 23, ST: 25, SV: 28, TL: 23, TN: 24, TR: 26, UA: 29, VA: 22, VG: 24, XK: 20, YE: 30,
  // not in the registry but issued and in use
  AO: 25, BF: 28, BJ: 28, CF: 27, CG: 27, CI: 28, CM: 27, CV: 25, DZ: 26, GA: 27, GQ: 27, GW: 25, IR: 26, KM: 27,
  MA: 28, MG: 27, ML: 28, MZ: 25, NE: 28, SN: 28, TD: 27, TG: 28,
};

/** ISO 7064 mod 97-10 over an IBAN without spaces (the check used by IBANs). */
export function mod97(iban: string): boolean {
  if (iban.length < 5) return false;
  const s = iban.slice(4) + iban.slice(0, 4);
  let rem = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) rem = (rem * 10 + (c - 48)) % 97;
    else if (c >= 65 && c <= 90) rem = (rem * 100 + (c - 55)) % 97;
    else if (c >= 97 && c <= 122) rem = (rem * 100 + (c - 87)) % 97;
    else return false;
  }
  return rem === 1;
}

export function validIban(compact: string): boolean {
  const len = IBAN_LENGTHS[compact.slice(0, 2).toUpperCase()];
  return len !== undefined && compact.length === len && /^[A-Z]{2}\d\d[A-Z0-9]+$/i.test(compact) && mod97(compact);
}

/** SSA rules: area not 000/666/900-999, group not 00, serial not 0000; plus well-known published examples. */
export function validSsn(area: string, group: string, serial: string): boolean {
  return /^\d{3}$/.test(area) && /^\d\d$/.test(group) && /^\d{4}$/.test(serial) && validSsnParts(Number(area), Number(group), Number(serial));
}

/** validSsn of the parts as numbers. */
export function validSsnParts(a: number, g: number, s: number): boolean {
  if (a === 0 || a === 666 || a >= 900) return false;
  if (g === 0 || s === 0) return false;
  // well-known published examples: 078-05-1120, 219-09-9999, 123-45-6789
  if ((a === 78 && g === 5 && s === 1120) || (a === 219 && g === 9 && s === 9999) || (a === 123 && g === 45 && s === 6789)) return false;
  return true;
}

/** NANP: area code and exchange are NXX (N = 2-9), not N11; area codes N9X are reserved. */
export function validNanp(area: string, exchange: string): boolean {
  return /^\d{3}$/.test(area) && /^\d{3}$/.test(exchange) && validNanpParts(Number(area), Number(exchange));
}

/** validNanp of the three-digit area code and exchange as numbers. */
export function validNanpParts(area: number, exchange: number): boolean {
  const a1 = Math.floor(area / 10) % 10;
  if (area < 200 || a1 === 9 || area % 100 === 11) return false;
  if (exchange < 200 || exchange % 100 === 11) return false;
  return true;
}

/** Length of the ITU country calling code by the first two digits of a number (00–99). */
const CC_LENGTH = new Uint8Array(100);
for (const d2 of [20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98]) CC_LENGTH[d2] = 2;
for (const d2 of [21, 22, 23, 24, 25, 26, 29, 35, 37, 38, 42, 50, 59, 67, 68, 69, 85, 88, 96, 97, 99]) CC_LENGTH[d2] = 3;
for (let d = 0; d < 10; d++) {
  CC_LENGTH[10 + d] = 1; // +1 (NANP)
  CC_LENGTH[70 + d] = 1; // +7
}

/** Length of the ITU country calling code of a number whose first two digits are `first2` (0 when none). */
export function countryCodeLength(first2: number): number {
  return CC_LENGTH[first2]!;
}

/** IBAN length by country code, at (first letter − 65) × 26 + (second − 65); 0 for none. */
const IBAN_LENGTH_BY_PAIR = new Uint8Array(26 * 26);
for (const [cc, len] of Object.entries(IBAN_LENGTHS)) IBAN_LENGTH_BY_PAIR[(cc.charCodeAt(0) - 65) * 26 + cc.charCodeAt(1) - 65] = len;

/** IBAN length for the country code of two capital letters (character codes), or 0. */
export function ibanLength(c0: number, c1: number): number {
  return c0 >= 65 && c0 <= 90 && c1 >= 65 && c1 <= 90 ? IBAN_LENGTH_BY_PAIR[(c0 - 65) * 26 + c1 - 65]! : 0;
}

const ENTROPY_COUNTS = new Int32Array(128);
/** k·log2(k) for the counts of the values the scanner reads (up to 4096 characters). */
const K_LOG_K = new Float64Array(4097);
for (let k = 2; k < K_LOG_K.length; k++) K_LOG_K[k] = k * Math.log2(k);

/**
 * Shannon entropy in bits per character: log2(n) − Σ k·log2(k) / n over the count k of each distinct
 * character, with k·log2(k) from a table (one log2 per call instead of one per distinct character). It
 * decides every threshold like the textbook −Σ p·log2(p) (checked for every count distribution of up to 26
 * characters in the tests).
 */
export function shannonEntropy(s: string): number {
  return shannonEntropyAt(s, bytesOf(s), 0, 0, s.length);
}

/** shannonEntropy of s[from, to), whose characters are b[o + from, o + to) as bytes (text-bytes.ts). */
export function shannonEntropyAt(s: string, b: Uint8Array, o: number, from: number, to: number): number {
  const n = to - from;
  if (n <= 0) return 0;
  if (n >= K_LOG_K.length) return entropyExact(s.slice(from, to));
  // One shared count table, cleared by the second pass: no allocation per call.
  const counts = ENTROPY_COUNTS;
  const a = o + from;
  const z = o + to;
  for (let i = a; i < z; i++) {
    const c = b[i]!;
    if (c >= 128) {
      for (let j = a; j < i; j++) counts[b[j]!] = 0;
      return entropyExact(s.slice(from, to));
    }
    counts[c]!++;
  }
  let sum = 0;
  for (let i = a; i < z; i++) {
    const c = b[i]!;
    const k = counts[c]!;
    if (k !== 0) {
      sum += K_LOG_K[k]!;
      counts[c] = 0;
    }
  }
  return Math.log2(n) - sum / n;
}

/** −Σ p·log2(p), summed in ascending code point order (any string). */
function entropyExact(s: string): number {
  const n = s.length;
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  let h = 0;
  for (const c of [...counts.keys()].sort((x, y) => x - y)) {
    const p = counts.get(c)! / n;
    h -= p * Math.log2(p);
  }
  return h;
}

const PLACEHOLDER_SUBSTRINGS = [
  'example', 'xxxx', '***', '...', 'your', 'placeholder', 'changeme', 'change_me', 'change-me', 'dummy', 'redacted',
  'sample', '${', '{{', '%s', 'replaceme', 'replace_me', 'replace-me', 'insert_', 'insert-', 'todo', 'fixme',
];
/**
 * The same substrings as one case-insensitive regex, for ASCII values (non-unicode `/i` folds only ASCII
 * letters onto ASCII letters, so for an ASCII value it is exactly `toLowerCase().includes(…)`).
 */
const PLACEHOLDER_SUBSTRINGS_RE = /example|xxxx|\*\*\*|\.\.\.|your|placeholder|change[_-]?me|dummy|redacted|sample|\$\{|\{\{|%s|replace[_-]?me|insert[_-]|todo|fixme/i;
const PLACEHOLDER_WORDS = new Set([
  'password', 'passwd', 'secret', 'token', 'none', 'null', 'nil', 'true', 'false', 'undefined', 'required', 'optional',
  'string', 'hidden', 'empty', 'masked', 'test', 'testing', 'pass', 'admin', 'default', 'unset', 'value', 'apikey',
  'api_key', 'secretkey', 'mysecret', 'mypassword', 'foobar', 'foo', 'bar', 'baz', 'abc123', 'letmein',
]);
const PLACEHOLDER_WORD_MAX = 10;
/**
 * The first two characters (lower case) of each alternative of PLACEHOLDER_SUBSTRINGS_RE, at
 * (first << 7) | second: a value in which none of them occurs cannot match it, and skips it.
 */
const PLACEHOLDER_BIGRAMS = new Uint8Array(128 * 128);
for (const b of ['ex', 'xx', '**', '..', 'yo', 'pl', 'ch', 'du', 're', 'sa', '${', '{{', '%s', 'in', 'to', 'fi']) {
  PLACEHOLDER_BIGRAMS[(b.charCodeAt(0) << 7) | b.charCodeAt(1)] = 1;
}

/** ASCII letters in lower case by byte (a table: the case of random characters defeats branch prediction). */
const LOWER_CASE = new Uint8Array(256);
for (let c = 0; c < 256; c++) LOWER_CASE[c] = c >= 65 && c <= 90 ? c + 32 : c;

/** Placeholders and documented examples that look like secrets but are not (`AKIAIOSFODNN7EXAMPLE`, `<token>`, …). */
export function isPlaceholder(value: string): boolean {
  return isPlaceholderAt(value, bytesOf(value), 0, 0, value.length);
}

/** isPlaceholder of s[from, to), whose characters are b[o + from, o + to) as bytes (text-bytes.ts). */
export function isPlaceholderAt(s: string, b: Uint8Array, o: number, from: number, to: number): boolean {
  const n = to - from;
  // ASCII fast path (the common case): one pass for the run length, `<…>` and ASCII-ness, no lowercased copy.
  let run = 1;
  let maxRun = n > 0 ? 1 : 0;
  let lt = false;
  let angle = false;
  let bigram = false;
  let prev = -1;
  const a = o + from;
  const z = o + to;
  for (let i = a; i < z; i++) {
    const c = LOWER_CASE[b[i]!]!;
    if (c >= 128) return isPlaceholderSlow(s.slice(from, to));
    if (c === 60) lt = true;
    else if (c === 62 && lt) angle = true;
    if (i > a) {
      run = c === prev ? run + 1 : 1;
      if (run > maxRun) maxRun = run;
      if (PLACEHOLDER_BIGRAMS[(prev << 7) | c] !== 0) bigram = true;
    }
    prev = c;
  }
  if (angle) return true;
  if (maxRun >= 8 || (n >= 6 && maxRun === n)) return true;
  if (n <= PLACEHOLDER_WORD_MAX && PLACEHOLDER_WORDS.has(s.slice(from, to).toLowerCase())) return true;
  return bigram && PLACEHOLDER_SUBSTRINGS_RE.test(s.slice(from, to));
}

/** The reference definition (any string). */
function isPlaceholderSlow(value: string): boolean {
  const l = value.toLowerCase();
  if (PLACEHOLDER_WORDS.has(l)) return true;
  for (const sub of PLACEHOLDER_SUBSTRINGS) if (l.includes(sub)) return true;
  const lt = l.indexOf('<');
  if (lt !== -1 && l.indexOf('>', lt) !== -1) return true;
  // one character repeated: "00000000", "aaaaaa", or a run of 8 inside
  let run = 1;
  let maxRun = l.length > 0 ? 1 : 0;
  for (let i = 1; i < l.length; i++) {
    run = l.charCodeAt(i) === l.charCodeAt(i - 1) ? run + 1 : 1;
    if (run > maxRun) maxRun = run;
  }
  return maxRun >= 8 || (l.length >= 6 && maxRun === l.length);
}

/** Built-in validators that a custom detector may name. */
export const VALIDATORS: Readonly<Record<string, (value: string) => boolean>> = {
  luhn: (v) => luhn(v),
  mod97: (v) => mod97(v.replace(/[\s-]/g, '')),
  iban: (v) => validIban(v.replace(/[\s-]/g, '')),
  ssn: (v) => {
    const d = v.replace(/\D/g, '');
    return d.length === 9 && validSsn(d.slice(0, 3), d.slice(3, 5), d.slice(5));
  },
  entropy: (v) => shannonEntropy(v) >= 3.5,
};
