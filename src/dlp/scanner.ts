/**
 * The detection core: one pass of the trigger (trigger.ts) finds candidate positions (digit runs, `@`,
 * `://`, `-----BEGIN`, known secret prefixes, IBAN country codes, secret-looking keys followed by `=`/`:`),
 * and the specific validator for that trigger runs only there. Every detector reads a bounded number of
 * characters from its trigger, so a scan is linear in the input.
 *
 * Candidates are then resolved left to right: the earliest start wins, at equal starts the longer span,
 * then the more specific detector; a candidate that overlaps a kept one extends it (masking a little more
 * is better than leaking the tail of a value).
 *
 * Locality contract (the streaming masker relies on it): whether a candidate starts at position p depends
 * only on the text in [p - LOOKBEHIND, p + MAX_SPAN]; the only detectors that can read further are the
 * "long" ones (PEM blocks, JWTs, values of secret keys), which report `pending` instead of deciding when
 * they reach the end of a non-final buffer.
 */
import type { CustomDetector } from './custom.js';
import { SpanList } from './spans.js';
import type { Trigger } from './trigger.js';
import { TRIGGER_PAD } from './trigger.js';
import { bytesOf } from './text-bytes.js';
import {
  cardIssuerOf,
  countryCodeLength,
  ibanLength,
  isPlaceholder,
  isPlaceholderAt,
  luhnAt,
  shannonEntropyAt,
  validNanpParts,
  validSsnParts,
} from './validators.js';

export interface ScanConfig {
  entities: ReadonlySet<string>;
  allowPrivateIps: boolean;
  custom: readonly CustomDetector[];
  trigger: Trigger;
}

export interface ScanInput {
  /** Text is complete (no more chunks will follow). */
  final: boolean;
  /** Candidates starting before this index are discarded (context kept for look-behind only). */
  from: number;
  /** Name of the JSON key / form field the text is the value of: context for the detectors. */
  keyHint?: string | undefined;
  /** Stop at the first candidate (for `containsAny`). */
  first?: boolean;
}

export interface ScanResult {
  candidates: SpanList;
  /** Smallest start of a candidate that cannot be decided until more text arrives (Infinity if none). */
  pending: number;
}

/** Longest span a non-"long" detector reads from its trigger; the stream window must exceed it. */
export const MAX_SPAN = 230;
/** Bound for PEM blocks and JWTs (the streaming exception). */
export const MAX_LONG = 16 * 1024;
/** Bound for the value of a secret-looking key. */
export const MAX_VALUE = 4096;
/** Bound for an unquoted value. */
const MAX_BARE_VALUE = 1024;
export const LOOKBEHIND = 64;

// Priorities: more specific detectors win ties.
const P_SECRET = 10;
const P_JWT = 9;
const P_CONN = 8;
const P_EMAIL = 7;
const P_CARD = 6;
const P_SSN = 5;
const P_CUSTOM = 5;
const P_PHONE = 4;
const P_IP = 4;
const P_AWS_SECRET = 3;
const P_GENERIC = 1;

// ---------------------------------------------------------------------------------------------------------
// character classes

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isUpper(c: number): boolean {
  return c >= 65 && c <= 90;
}
function isLower(c: number): boolean {
  return c >= 97 && c <= 122;
}
function isAlnum(c: number): boolean {
  return isDigit(c) || isUpper(c) || isLower(c);
}
function isWord(c: number): boolean {
  return isAlnum(c) || c === 95;
}
function isHex(c: number): boolean {
  return isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}
/** base64url + standard base64 body chars. */
function isB64url(c: number): boolean {
  return isAlnum(c) || c === 45 || c === 95;
}
function isEmailLocal(c: number): boolean {
  return isAlnum(c) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45;
}
function isSpaceOrTab(c: number): boolean {
  return c === 32 || c === 9;
}

// ---------------------------------------------------------------------------------------------------------
// scan state

interface State {
  s: string;
  /** The text as bytes while the trigger has it loaded: s[i] is b[o + i] (text-bytes.ts). */
  b: Uint8Array;
  o: number;
  cfg: ScanConfig;
  inp: ScanInput;
  out: SpanList;
  pending: number;
  /** Memo for the PEM END search so that many BEGINs without END stay linear. */
  pemEndFrom: number;
  pemEndAt: number;
}

function add(st: State, entity: string, start: number, end: number, prio: number): void {
  if (start < st.inp.from || end <= start) return;
  if (!st.cfg.entities.has(entity)) return;
  st.out.push(entity, start, end, prio);
}

function markPending(st: State, start: number): void {
  if (!st.inp.final && start < st.pending) st.pending = start;
}

/**
 * True when the trigger cannot match anywhere in `s`: only ASCII digits, lower-case letters and spaces, and
 * no digit run that can start a candidate. No alternative starts on a lower-case letter or a space; a digit
 * run after a letter starts none; a run at the start or after a space starts one only with 9+ digits (a
 * card, SSN or phone number; 8 are refused too, for margin), or as a group of up to 6 digits followed by a
 * separator and another digit (`555 0100`) or a colon or `(` (absent here). Database cells (ids, hex
 * digests, enum words, `name 42`) are mostly of this shape, and for a short cell this pass is several times
 * cheaper than loading it for the trigger. test/dlp/fastpaths.test.ts checks it against the trigger's
 * specification.
 */
export function cannotTrigger(s: string): boolean {
  const n = s.length;
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      const j = i;
      while (i < n && isAsciiDigit(s.charCodeAt(i))) i++;
      if (j === 0 || s.charCodeAt(j - 1) === 32) {
        const d = i - j;
        if (d >= 8 || (d <= 6 && s.charCodeAt(i) === 32 && isAsciiDigit(s.charCodeAt(i + 1)))) return false;
      }
      continue;
    }
    if (!((c >= 97 && c <= 122) || c === 32)) return false;
    i++;
  }
  return true;
}

function isAsciiDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** cannotTrigger on the UTF-8 bytes b[start, end) of a text (any non-ASCII byte: false), without decoding them. */
export function cannotTriggerBytes(b: Uint8Array, start = 0, end = b.length): boolean {
  let i = start;
  while (i < end) {
    const c = b[i]!;
    if (c >= 48 && c <= 57) {
      const j = i;
      while (i < end && isAsciiDigit(b[i]!)) i++;
      if (j === start || b[j - 1] === 32) {
        const d = i - j;
        if (d >= 8 || (d <= 6 && i + 1 < end && b[i] === 32 && isAsciiDigit(b[i + 1]!))) return false;
      }
      continue;
    }
    if (!((c >= 97 && c <= 122) || c === 32)) return false;
    i++;
  }
  return true;
}

const NO_BYTES = new Uint8Array(0);

export function scan(s: string, cfg: ScanConfig, inp: ScanInput): ScanResult {
  const st: State = { s, cfg, inp, b: NO_BYTES, o: 0, out: new SpanList(), pending: Infinity, pemEndFrom: -1, pemEndAt: -1 };
  const ents = cfg.entities;
  // short cells of the shape that cannot trigger skip the trigger (see cannotTrigger)
  if (!(s.length <= 256 && cannotTrigger(s))) {
    const tr = cfg.trigger;
    tr.start(s);
    st.b = tr.bytes;
    st.o = TRIGGER_PAD;
    let at = Math.max(0, inp.from - LOOKBEHIND);
    let p: number;
    while ((p = tr.next(at)) >= 0) {
      const len = tr.length;
      at = p + len;
      const c0 = st.b[st.o + p]!;
      let next = -1;
      if (isDigit(c0)) {
        onDigits(st, p, p + len);
      } else if (c0 === 64 /* @ */ || c0 === 92 /* \\ */ || c0 === 37 /* % */) {
        onAt(st, p, len);
      } else if (c0 === 58 /* : */) {
        if (len === 3 && s.charCodeAt(p + 1) === 47) onScheme(st, p);
        else if (len > 1) {
          if (ents.has('ipv6')) tryIpv6(st, p);
          at = p + 1;
        } else {
          onSeparator(st, p, len);
          if (ents.has('ipv6')) ipv6FromColon(st, p);
        }
      } else if (c0 === 61 /* = */) {
        onSeparator(st, p, len);
      } else if (c0 === 62 /* > */) {
        onXmlElement(st, p);
      } else if (c0 === 45 /* - */) {
        if (len > 1) next = onPem(st, p);
        else {
          const start = dashPrefixStart(st, p);
          if (start >= 0) next = onPrefix(st, start, s.slice(start, p + 1));
        }
      } else if (c0 === 95 /* _ */) {
        const pre = underscorePrefix(s, p);
        if (pre !== null) next = onPrefix(st, pre.start, pre.tok);
      } else if (c0 === 74 /* J */ && len === 1) {
        next = onPrefix(st, p - 2, 'eyJ');
      } else if (c0 === 46 /* . */) {
        if (!s.startsWith('://', p - 8)) tryWebhook(st, p - 5);
      } else if (len === 4 && isDigit(s.charCodeAt(p + 2))) {
        if (s.startsWith('GR1348941', p)) onPrefix(st, p, 'GR1348941');
        else if (ents.has('iban')) tryIban(st, p);
      } else {
        next = onPrefix(st, p, s.slice(p, p + len));
      }
      if (next > at) at = next;
      if (inp.first === true && st.out.length > 0) break;
    }
    tr.finish();
    st.b = NO_BYTES;
  }
  if (cfg.custom.length > 0) runCustom(st);
  if (inp.keyHint !== undefined) keyHintWholeValue(st, inp.keyHint);
  return { candidates: st.out, pending: st.pending };
}

// ---------------------------------------------------------------------------------------------------------
// numbers: cards, SSNs, phones, IPv4, IPv6 starting with a digit

function onDigits(st: State, p: number, e: number): void {
  const b = st.b;
  const o = st.o;
  const prev = b[o + p - 1]!;
  if (isAlnum(prev) || prev === 95) {
    return;
  }
  if ((prev === 46 || prev === 45 || prev === 58 || prev === 47) && isDigit(b[o + p - 2]!)) return; // continuation 1.2 / 1-2 / 1:2
  const L = e - p;
  const next = b[o + e]!;
  const ents = st.cfg.entities;
  if (next === 46 && L <= 3 && ents.has('ipv4')) tryIpv4(st, p);
  if (L <= 4 && (next === 58 || isHex(next)) && ents.has('ipv6')) tryIpv6(st, p);
  if (prev === 43 /* + */) {
    if (ents.has('phone')) tryIntlPhone(st, p);
    return;
  }
  const sep = next === 32 || next === 45;
  if (ents.has('credit_card') && ((L >= 13 && L <= 19) || (sep && L >= 3 && L <= 6))) tryCard(st, p);
  if (ents.has('us_ssn') && ((L === 3 && sep) || L === 9)) trySsn(st, p, L);
  if (ents.has('phone')) {
    if ((L === 3 && (sep || next === 46 || (next === 41 && prev === 40))) || (L === 1 && b[o + p] === 49 && (sep || next === 46 || next === 40)) || L === 10 || L === 11) {
      tryNanp(st, p, L);
    }
  }
}

/** The k digits at text index i as a number (the caller checked they are digits). */
function digitsValue(st: State, i: number, k: number): number {
  const b = st.b;
  let v = 0;
  for (let j = st.o + i; j < st.o + i + k; j++) v = v * 10 + (b[j]! - 48);
  return v;
}

/** The lengths and ends of the digit groups readGroups read (a card has at most 19 digits: 19 groups). */
const GROUP_LEN = new Int32Array(20);
const GROUP_END = new Int32Array(20);

/**
 * Reads digit groups separated by one consistent separator (space or dash) from p into GROUP_LEN and
 * GROUP_END. Returns their count, or −(count + 1) when the digits ran past maxDigits (count: the groups
 * completed before that).
 */
function readGroups(st: State, p: number, maxDigits: number): number {
  const b = st.b;
  const o = st.o;
  const n = st.s.length;
  let sep = 0;
  let i = p;
  let total = 0;
  let g = 0;
  for (;;) {
    const g0 = i;
    while (i < n && isDigit(b[o + i]!)) {
      i++;
      if (++total > maxDigits) return -g - 1;
    }
    GROUP_LEN[g] = i - g0;
    GROUP_END[g] = i;
    g++;
    const c = b[o + i]!;
    if (i >= n || (c !== 32 && c !== 45) || !isDigit(b[o + i + 1]!)) break;
    if (sep === 0) sep = c;
    else if (c !== sep) break;
    i++;
  }
  return g;
}

function tailOk(st: State, end: number): boolean {
  const c = st.b[st.o + end]!;
  if (isWord(c)) return false;
  // "1.5" continuing with a digit after a decimal point: part of a longer number. A comma is a separator
  // (`{4111111111111111,5}` in a PostgreSQL array, a CSV row, a JSON array): no card, SSN or phone
  // number is written with a decimal comma after it, and a thousands separator never follows 9+ digits.
  if (c === 46 && isDigit(st.b[st.o + end + 1]!)) return false;
  return true;
}

function fourFours(): boolean {
  return GROUP_LEN[0] === 4 && GROUP_LEN[1] === 4 && GROUP_LEN[2] === 4 && GROUP_LEN[3] === 4;
}

function tryCard(st: State, p: number): void {
  const r = readGroups(st, p, 19);
  if (r < 0) {
    // A run longer than a card: accept only a standard 4-4-4-4 grouping followed by more digits.
    if (-r - 1 >= 4 && fourFours()) checkCard(st, p, GROUP_END[3]!, 4);
    return;
  }
  const n = r;
  if (n === 1) {
    checkCard(st, p, GROUP_END[0]!, 1);
    return;
  }
  // grouped: try the whole sequence, then the first 4 groups when they are 4-4-4-4
  checkCard(st, p, GROUP_END[n - 1]!, n);
  if (n > 4 && fourFours()) checkCard(st, p, GROUP_END[3]!, 4);
}

/** A card number from p to end in n groups (their lengths in GROUP_LEN). */
function checkCard(st: State, p: number, end: number, n: number): void {
  if (!tailOk(st, end)) return;
  if (n > 1) {
    if (GROUP_LEN[0] !== 4) return;
    for (let k = 1; k < n; k++) {
      const g = GROUP_LEN[k]!;
      if (g < 3 || g > 7) return;
    }
  }
  // the digits without separators: only their count and first six matter to the issuer table, and Luhn
  // skips separators, so no copy is made
  const count = end - p - (n - 1);
  if (count < 12 || count > 19) return;
  const b = st.b;
  const o = st.o;
  let p6 = 0;
  for (let i = o + p, k = 0; k < 6; i++) {
    const c = b[i]!;
    if (isDigit(c)) {
      p6 = p6 * 10 + (c - 48);
      k++;
    }
  }
  if (cardIssuerOf(p6, count) === null || !luhnAt(b, o + p, o + end)) return;
  add(st, 'credit_card', p, end, P_CARD);
}

const SSN_CONTEXT = /ssn|social.?security|ss#|ss no|taxpayer|\btin\b|itin/i;
const PHONE_CONTEXT = /phone|\btel|mobile|cell|call|fax|sms|whatsapp|contact|dial/i;

function contextBefore(st: State, p: number, re: RegExp): boolean {
  if (st.inp.keyHint !== undefined && re.test(st.inp.keyHint)) return true;
  return re.test(st.s.slice(Math.max(0, p - 50), p));
}

function trySsn(st: State, p: number, L: number): void {
  const b = st.b;
  const o = st.o;
  if (L === 9) {
    if (!tailOk(st, p + 9) || b[o + p + 9] === 45) return;
    if (!contextBefore(st, p, SSN_CONTEXT)) return;
    if (validSsnParts(digitsValue(st, p, 3), digitsValue(st, p + 3, 2), digitsValue(st, p + 5, 4))) add(st, 'us_ssn', p, p + 9, P_SSN);
    return;
  }
  if (b[o + p + 6] !== b[o + p + 3]) return;
  if (!digitsAt(st, p + 4, 2) || !digitsAt(st, p + 7, 4)) return;
  const end = p + 11;
  const c = b[o + end]!;
  if (isDigit(c) || (c === 45 && isDigit(b[o + end + 1]!)) || !tailOk(st, end)) return;
  if (validSsnParts(digitsValue(st, p, 3), digitsValue(st, p + 4, 2), digitsValue(st, p + 7, 4))) add(st, 'us_ssn', p, end, P_SSN);
}

function digitsAt(st: State, i: number, n: number): boolean {
  for (let k = 0; k < n; k++) if (!isDigit(st.b[st.o + i + k]!)) return false;
  return true;
}

/** North-American numbers: (AAA) EEE-SSSS, AAA-EEE-SSSS, AAA.EEE.SSSS, AAA EEE SSSS, 1-AAA-…, 10/11 plain digits with context. */
function tryNanp(st: State, p: number, L: number): void {
  const b = st.b;
  const o = st.o;
  let start = p;
  let i = p;
  if (L === 10 || L === 11) {
    const off = L === 11 ? 1 : 0;
    if (L === 11 && b[o + p] !== 49) return;
    if (!tailOk(st, p + L)) return;
    if (!contextBefore(st, p, PHONE_CONTEXT)) return;
    if (validNanpParts(digitsValue(st, p + off, 3), digitsValue(st, p + off + 3, 3))) add(st, 'phone', p, p + L, P_PHONE);
    return;
  }
  let prefixSep = 0;
  if (L === 1) {
    // "1-415-…", "1 (415) …"
    prefixSep = b[o + p + 1]!;
    i = p + 2;
    if (prefixSep === 40 /* ( */) i = p + 1;
    else if (b[o + i] === 40) {
      i++;
    }
  }
  let paren = false;
  // "(415) 555-2671"; an opening parenthesis without its closing one is a composite value's, "(415-555-2671,1)"
  if (b[o + i - 1] === 40 && b[o + i + 3] === 41) {
    paren = true;
    if (L === 3) start = p - 1;
  }
  if (!digitsAt(st, i, 3)) return;
  const area = digitsValue(st, i, 3);
  i += 3;
  let sep1: number;
  if (paren) {
    if (b[o + i] !== 41) return;
    i++;
    if (b[o + i] === 32) i++;
    sep1 = 0; // (not compared: after a parenthesis the second separator may differ)
  } else {
    sep1 = b[o + i]!;
    if (sep1 !== 45 && sep1 !== 46 && sep1 !== 32) return;
    if (L === 1 && prefixSep !== sep1) return;
    i++;
  }
  if (!digitsAt(st, i, 3)) return;
  const exch = digitsValue(st, i, 3);
  i += 3;
  const sep2 = b[o + i]!;
  if (paren) {
    if (sep2 !== 45 && sep2 !== 32 && sep2 !== 46) return;
  } else if (sep2 !== sep1) return;
  i++;
  if (!digitsAt(st, i, 4)) return;
  i += 4;
  if (!tailOk(st, i) || (b[o + i] === sep2 && isDigit(b[o + i + 1]!))) return;
  if (!validNanpParts(area, exch)) return;
  // include a "+" before a leading 1
  if (L === 1 && b[o + p - 1] === 43) start = p - 1;
  add(st, 'phone', start, i, P_PHONE);
}

/** International form "+CC …": country code from the ITU table, 8–15 digits, groups separated by one of " -.". */
function tryIntlPhone(st: State, p: number): void {
  const b = st.b;
  const o = st.o;
  const n = st.s.length;
  const pp = p - 1; // the '+'
  if (pp > 0 && isWord(b[o + pp - 1]!)) return;
  let i = p;
  let count = 0;
  let head = 0; // the first seven digits
  let groups = 0;
  for (;;) {
    let paren = false;
    if (b[o + i] === 40) {
      paren = true;
      i++;
    }
    const g0 = i;
    while (i < n && isDigit(b[o + i]!)) {
      if (count < 7) head = head * 10 + (b[o + i]! - 48);
      count++;
      i++;
      if (count > 15) return;
    }
    if (i === g0) return;
    groups++;
    if (paren) {
      if (b[o + i] !== 41) return;
      i++;
      if (b[o + i] === 32 || b[o + i] === 45) {
        if (!isDigit(b[o + i + 1]!)) break;
        i++;
        continue;
      }
      if (isDigit(b[o + i]!)) continue;
      break;
    }
    if (i >= n) break;
    const c = b[o + i]!;
    if ((c === 32 || c === 45 || c === 46) && (isDigit(b[o + i + 1]!) || (b[o + i + 1] === 40 && isDigit(b[o + i + 2]!)))) {
      i++;
      continue;
    }
    if (c === 40 && isDigit(b[o + i + 1]!)) continue;
    break;
  }
  // fewer than 8 digits is never a number here (and +1 needs 11), so the first seven are all in `head`
  if (!tailOk(st, i) || groups > 6 || count < 8) return;
  const first2 = Math.floor(head / 100000);
  const ccl = countryCodeLength(first2);
  if (ccl === 0) return;
  if (first2 >= 10 && first2 <= 19) {
    // +1: a North-American number
    if (count !== 11 || !validNanpParts(Math.floor(head / 1000) % 1000, head % 1000)) return;
  }
  add(st, 'phone', pp, i, P_PHONE);
}

const VERSION_BEFORE = /(?:^|[^A-Za-z])(?:version|ver|release|build|firmware|v)[\s:=]*$/i;
/** What VERSION_BEFORE's `[\s:=]*` can match, by byte (0x80: a non-ASCII character, maybe a space). */
const VERSION_SEP = new Uint8Array(256);
for (const c of [9, 10, 11, 12, 13, 32, 58, 61, 0x80]) VERSION_SEP[c] = 1;

/** "version 1.2.3.4", "v1.2.3.4": a version number before p, not an address. */
function versionBefore(st: State, p: number): boolean {
  // Every word of VERSION_BEFORE ends in n, r, e, d or v: only then can the regex match.
  const b = st.b;
  const o = st.o;
  const lo = Math.max(0, p - 12);
  let k = p;
  while (k > lo && VERSION_SEP[b[o + k - 1]!] === 1) k--;
  if (k === lo) return false;
  const last = b[o + k - 1]! | 32;
  if (last !== 110 && last !== 114 && last !== 101 && last !== 100 && last !== 118) return false;
  return VERSION_BEFORE.test(st.s.slice(lo, p));
}

function tryIpv4(st: State, p: number): void {
  const b = st.b;
  const o = st.o;
  const n = st.s.length;
  let i = p;
  let first = 0;
  let second = 0;
  for (let k = 0; k < 4; k++) {
    const g0 = i;
    while (i < n && i - g0 < 4 && isDigit(b[o + i]!)) i++;
    const len = i - g0;
    if (len === 0 || len > 3) return;
    if (len > 1 && b[o + g0] === 48) return;
    const v = digitsValue(st, g0, len);
    if (v > 255) return;
    if (k === 0) first = v;
    else if (k === 1) second = v;
    if (k < 3) {
      if (b[o + i] !== 46) return;
      i++;
    }
  }
  const c = b[o + i]!;
  if (isWord(c) || ((c === 46 || c === 45) && isDigit(b[o + i + 1]!))) return;
  if (versionBefore(st, p)) return;
  if (st.cfg.allowPrivateIps && privateV4(first, second)) return;
  add(st, 'ipv4', p, i, P_IP);
}

/** Private, loopback, link-local, shared and broadcast IPv4 ranges, by the first two octets. */
function privateV4(a: number, b: number): boolean {
  return a === 10 || a === 127 || a === 0 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || (a === 255 && b === 255);
}

function tryIpv6(st: State, p: number): void {
  const s = st.s;
  const prev = st.b[st.o + p - 1]!; // (a byte: an escape's letter, `\n2001:db8::1`, is a separator)
  if (isWord(prev) || prev === 58 || prev === 46) return;
  let i = p;
  while (i < s.length && i - p <= 45) {
    const c = s.charCodeAt(i);
    if (isHex(c) || c === 58 || c === 46) i++;
    else break;
  }
  if (i - p > 45) return;
  let end = i;
  if (isWord(s.charCodeAt(end))) return;
  for (let tries = 0; tries < 2 && end > p; tries++) {
    const cand = s.slice(p, end);
    const v = parseIpv6(cand);
    if (v !== null) {
      if (st.cfg.allowPrivateIps && privateV6(v)) return;
      add(st, 'ipv6', p, end, P_IP);
      return;
    }
    const last = s[end - 1];
    if (last === '.' || last === ':') end--;
    else return;
  }
}

/** Parses an IPv6 address into 8 groups (with an embedded IPv4 tail allowed); null when invalid. */
export function parseIpv6(a: string): number[] | null {
  if (a.indexOf(':') === a.lastIndexOf(':')) return null;
  const dbl = a.indexOf('::');
  if (dbl !== -1 && a.indexOf('::', dbl + 1) !== -1) return null;
  const parseSide = (x: string): number[] | null => {
    if (x === '') return [];
    const parts = x.split(':');
    const out: number[] = [];
    for (let k = 0; k < parts.length; k++) {
      const part = parts[k]!;
      if (k === parts.length - 1 && part.includes('.')) {
        const o = part.split('.');
        if (o.length !== 4) return null;
        const nums = o.map((q) => (/^(?:0|[1-9]\d{0,2})$/.test(q) ? Number(q) : 256));
        if (nums.some((n) => n > 255)) return null;
        out.push((nums[0]! << 8) | nums[1]!, (nums[2]! << 8) | nums[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return null;
        out.push(parseInt(part, 16));
      }
    }
    return out;
  };
  if (dbl === -1) {
    const g = parseSide(a);
    return g !== null && g.length === 8 ? g : null;
  }
  const left = parseSide(a.slice(0, dbl));
  const right = parseSide(a.slice(dbl + 2));
  if (left === null || right === null || left.length + right.length > 7) return null;
  if (left.length + right.length === 0) return null; // "::" alone
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

function privateV6(g: readonly number[]): boolean {
  const first = g[0]!;
  if (g.slice(0, 7).every((x) => x === 0) && (g[7] === 1 || g[7] === 0)) return true;
  if ((first & 0xfe00) === 0xfc00 || (first & 0xffc0) === 0xfe80) return true;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return privateV4(g[6]! >> 8, g[6]! & 255);
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// IBAN

function tryIban(st: State, p: number): void {
  const b = st.b;
  const o = st.o;
  const len = ibanLength(b[o + p]!, b[o + p + 1]!);
  if (len === 0) return;
  // read the compact characters (capitals and digits, a single space allowed every four) without copying
  // (the text ends in zero bytes, which stop the loop)
  let n = 0;
  let i = p;
  while (n < len) {
    const c = b[o + i]!;
    if (isUpper(c) || isDigit(c)) {
      n++;
      i++;
      continue;
    }
    if (c === 32 && n % 4 === 0 && n > 0 && b[o + i + 1] !== 32) {
      i++;
      continue;
    }
    return;
  }
  if (isAlnum(b[o + i]!)) return;
  if (!ibanMod97At(b, o + p, o + i)) return;
  add(st, 'iban', p, i, P_CARD);
}

/** `mod97` of the compact IBAN in b[a, z) (capitals and digits, spaces skipped): the first four moved last. */
function ibanMod97At(b: Uint8Array, a: number, z: number): boolean {
  let rem = 0;
  let k = 0;
  let head = a;
  for (let i = a; i < z; i++) {
    const c = b[i]!;
    if (c === 32) continue;
    if (k++ < 4) {
      head = i + 1;
      continue;
    }
    rem = c <= 57 ? (rem * 10 + (c - 48)) % 97 : (rem * 100 + (c - 55)) % 97;
  }
  for (let i = a; i < head; i++) {
    const c = b[i]!;
    rem = c <= 57 ? (rem * 10 + (c - 48)) % 97 : (rem * 100 + (c - 55)) % 97;
  }
  return rem === 1;
}

// ---------------------------------------------------------------------------------------------------------
// email

function onAt(st: State, at: number, sepLen: number): void {
  if (!st.cfg.entities.has('email')) return;
  const b = st.b;
  const o = st.o;
  const n = st.s.length;
  let a = at;
  while (a > 0 && at - a <= 64 && isEmailLocal(b[o + a - 1]!)) a--;
  if (at - a > 64) return;
  while (a < at && (b[o + a] === 46 || b[o + a] === 45)) a++;
  if (a === at || b[o + at - 1] === 46) return;
  if (isUrlUserinfo(st, a)) return;
  const d0 = at + sepLen;
  let i = d0;
  let labels = 0;
  let lastLabelStart = d0;
  for (;;) {
    const l0 = i;
    while (i < n && i - d0 <= 190) {
      const c = b[o + i]!;
      if (isAlnum(c) || c === 45) i++;
      else break;
    }
    if (i - d0 > 190) return;
    if (i === l0 || b[o + l0] === 45 || b[o + i - 1] === 45) {
      if (i === l0 && labels >= 2 && b[o + i - 1] === 46) {
        i--; // trailing dot
        break;
      }
      return;
    }
    labels++;
    lastLabelStart = l0;
    if (b[o + i] === 46 && isAlnum(b[o + i + 1]!)) {
      i++;
      continue;
    }
    break;
  }
  if (labels < 2 || !tldOk(b, o + lastLabelStart, o + i)) return;
  const c = b[o + i]!;
  if (isWord(c) || c === 64) return;
  add(st, 'email', a, i, P_EMAIL);
}

/** A top-level domain label in b[l, r) (letters, digits and dashes): 2–24 letters, or `xn--` and 2–20 more. */
function tldOk(b: Uint8Array, l: number, r: number): boolean {
  const n = r - l;
  if (b[l] === 120 && b[l + 1] === 110 && b[l + 2] === 45 && b[l + 3] === 45) return n - 4 >= 2 && n - 4 <= 20;
  if (n < 2 || n > 24) return false;
  for (let k = l; k < r; k++) if (!isUpper(b[k]!) && !isLower(b[k]!)) return false;
  return true;
}

/** `scheme://user@` or `scheme://user:pass@`: the part before `@` is URL userinfo, not an email's local part. */
function isUrlUserinfo(st: State, a: number): boolean {
  const b = st.b;
  const o = st.o;
  let k = a;
  if (b[o + k - 1] === 58) k--;
  const lim = Math.max(0, k - 200);
  while (k > lim) {
    const c = b[o + k - 1]!;
    if (c <= 32 || c === 64 || c === 34 || c === 39) return false;
    if (c === 47 && b[o + k - 2] === 47 && b[o + k - 3] === 58) return true;
    if (c === 47) return false;
    k--;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// URLs with credentials; Slack webhooks

function onScheme(st: State, p: number): void {
  const s = st.s;
  const after = p + 3;
  if (s.startsWith('hooks.slack.com/', after)) {
    tryWebhook(st, after);
    return;
  }
  if (!st.cfg.entities.has('connection_string')) return;
  let a = p;
  while (a > 0 && p - a < 20) {
    const c = s.charCodeAt(a - 1);
    if (isAlnum(c) || c === 43 || c === 46 || c === 45) a--;
    else break;
  }
  if (a === p || !isLower(s.charCodeAt(a)) && !isUpper(s.charCodeAt(a))) return;
  if (a > 0 && isAlnum(s.charCodeAt(a - 1))) return;
  let i = after;
  let colon = -1;
  while (i < s.length && i - after <= 200) {
    const c = s.charCodeAt(i);
    if (c === 64 /* @ */) break;
    if (c <= 32 || c === 47 || c === 63 || c === 35 || c === 34 || c === 39 || c === 60 || c === 62 || c === 96) return;
    if (c === 58 && colon === -1) colon = i;
    i++;
  }
  if (s.charCodeAt(i) !== 64 || colon === -1) return;
  const pw0 = colon + 1;
  const pw1 = i;
  if (pw1 - pw0 < 1) return;
  const h = s.charCodeAt(i + 1);
  if (!(isAlnum(h) || h === 91)) return;
  const pw = s.slice(pw0, pw1);
  if (isPlaceholder(pw) || pw.startsWith('$') || pw.startsWith('%') || /^[*x.]+$/i.test(pw)) return;
  add(st, 'connection_string', pw0, pw1, P_CONN);
}

function tryWebhook(st: State, host: number): void {
  const s = st.s;
  let start = host;
  if (s.startsWith('://', host - 3)) {
    start = host - 3;
    while (start > 0 && isLower(st.b[st.o + start - 1]!) && host - start < 12) start--;
  }
  let i = host + 'hooks.slack.com/'.length;
  const p0 = i;
  while (i < s.length && i - p0 < 160) {
    const c = s.charCodeAt(i);
    if (isAlnum(c) || c === 47 || c === 95 || c === 45) i++;
    else break;
  }
  const path = s.slice(p0, i);
  if (!/^(?:services\/T[A-Z0-9]{6,}\/B[A-Z0-9]{6,}\/[A-Za-z0-9]{16,}|workflows\/T[A-Z0-9]{6,}\/A[A-Z0-9]{6,}\/\d+\/[A-Za-z0-9]{16,}|triggers\/T[A-Z0-9]{6,}\/\d+\/[A-Za-z0-9]{16,})$/.test(path)) return;
  if (isPlaceholder(path)) return;
  add(st, 'slack_webhook', start, i, P_SECRET);
}

// ---------------------------------------------------------------------------------------------------------
// PEM private keys

const PEM_HEADER = /-----BEGIN ([A-Z0-9 ]{0,40})-----/y;

function onPem(st: State, p: number): number {
  const s = st.s;
  PEM_HEADER.lastIndex = p;
  const m = PEM_HEADER.exec(s);
  if (m === null) {
    if (s.length - p < 60) markPending(st, p);
    return p + 1;
  }
  const label = m[1]!;
  if (!/PRIVATE KEY( BLOCK)?$/.test(label)) return p + 1;
  const hdrEnd = p + m[0].length;
  if (st.pemEndFrom === -1 || st.pemEndFrom > hdrEnd || (st.pemEndAt !== -1 && st.pemEndAt < hdrEnd)) {
    st.pemEndFrom = hdrEnd;
    st.pemEndAt = s.indexOf('-----END ', hdrEnd);
  }
  const endAt = st.pemEndAt;
  const limit = p + MAX_LONG;
  if (endAt !== -1 && endAt < limit) {
    const close = s.indexOf('-----', endAt + 9);
    if (close !== -1 && close - endAt < 60) {
      const end = close + 5;
      const body = s.slice(hdrEnd, endAt);
      if (isPlaceholder(body.replace(/\s/g, '')) && body.replace(/\s/g, '').length < 64) return end;
      add(st, 'private_key', p, end, P_SECRET);
      return end;
    }
    if (close === -1 && !st.inp.final) {
      markPending(st, p);
      return s.length;
    }
  }
  if (!st.inp.final && s.length < limit) {
    markPending(st, p);
    return s.length;
  }
  // No END marker within the bound: redact the header and every base64 line after it (a key body has no
  // other characters), so an oversized or truncated block never leaks its tail.
  // (In a stream the text after the bound has not arrived yet: the stream masker swallows it instead,
  // see `pemTail` in stream.ts, so both give the same output.)
  let end = Math.min(s.length, limit);
  if (st.inp.final) end = pemTailEnd(s, end).end;
  add(st, 'private_key', p, end, P_SECRET);
  return end;
}

/**
 * Where the rest of a PEM block that ran past the scan bound ends, from `from`: over its base64 body and
 * its END line. `done` is false when the text ran out before the block visibly ended (a stream must keep
 * swallowing what comes next).
 */
export function pemTailEnd(s: string, from: number, final = true): { end: number; done: boolean } {
  let end = from;
  while (end < s.length && isPemBodyChar(s.charCodeAt(end))) end++;
  if (end === s.length) return { end, done: final };
  if (s.startsWith('-----END ', end) || '-----END '.startsWith(s.slice(end))) {
    const close = s.indexOf('-----', end + 9);
    if (close !== -1 && close - end < 60) return { end: close + 5, done: true };
    if (!final && s.length - end < 60) return { end, done: false };
  }
  return { end, done: true };
}

/** Base64 alphabet, padding and line breaks: what a PEM body is made of. */
function isPemBodyChar(c: number): boolean {
  return isAlnum(c) || c === 43 /* + */ || c === 47 /* / */ || c === 61 /* = */ || c === 10 || c === 13;
}

// ---------------------------------------------------------------------------------------------------------
// prefixed secrets

// byte classes for the runs that prefixed secrets are made of
const B_DIGIT = 1;
const B_UPPER = 2;
const B_LOWER = 4;
const B_UNDERSCORE = 8;
const B_DASH = 16;
const B_DOT = 32;
const B_ALNUM = B_DIGIT | B_UPPER | B_LOWER;
const B_B64URL = B_ALNUM | B_DASH | B_UNDERSCORE;
const BYTE_CLASS = new Uint8Array(256);
for (let c = 48; c <= 57; c++) BYTE_CLASS[c] = B_DIGIT;
for (let c = 65; c <= 90; c++) BYTE_CLASS[c] = B_UPPER;
for (let c = 97; c <= 122; c++) BYTE_CLASS[c] = B_LOWER;
BYTE_CLASS[95] = B_UNDERSCORE;
BYTE_CLASS[45] = B_DASH;
BYTE_CLASS[46] = B_DOT;

/** End of the run from i (read up to max + 1 characters) of characters in the byte classes `mask`. */
function runEnd(st: State, i: number, max: number, mask: number): number {
  const b = st.b;
  const o = st.o;
  const lim = Math.min(st.s.length, i + max + 1);
  while (i < lim && (BYTE_CLASS[b[o + i]!]! & mask) !== 0) i++;
  return i;
}

/**
 * A prefixed token from p whose body runs from `body` to `end`: reported when the body's length is in
 * [min, max] and it is no placeholder. Returns where the trigger may continue.
 */
function emitPrefixed(st: State, entity: string, p: number, body: number, end: number, min: number, max: number): number {
  const len = end - body;
  if (len < min || len > max) return body;
  if (isPlaceholderAt(st.s, st.b, st.o, body, end)) return end;
  add(st, entity, p, end, P_SECRET);
  return end;
}

function onPrefix(st: State, p: number, tok: string): number {
  const s = st.s;
  const c0 = tok.charCodeAt(0);
  if (tok === 'eyJ') return tryJwt(st, p);
  const body = p + tok.length;
  switch (c0) {
    case 65: // A
      if (tok === 'AIza') return emitPrefixed(st, 'google_api_key', p, body, runEnd(st, body, 40, B_B64URL), 35, 35);
      return emitPrefixed(st, 'aws_access_key_id', p, body, runEnd(st, body, 20, B_UPPER | B_DIGIT), 16, 16);
    case 103: // g
      if (tok === 'github_pat_') return emitPrefixed(st, 'github_token', p, body, runEnd(st, body, 255, B_ALNUM | B_UNDERSCORE), 50, 255);
      if (tok.startsWith('gh')) return emitPrefixed(st, 'github_token', p, body, runEnd(st, body, 255, B_ALNUM), 36, 251);
      return emitPrefixed(st, 'gitlab_token', p, body, trimDot(s, body, runEnd(st, body, 120, B_B64URL | B_DOT), false), 20, 120);
    case 71: // GR1348941 runner registration token
      return emitPrefixed(st, 'gitlab_token', p, body, runEnd(st, body, 60, B_B64URL), 20, 60);
    case 115: // s
    case 114: // r
      if (tok.includes('_')) return emitPrefixed(st, 'stripe_key', p, body, runEnd(st, body, 247, B_ALNUM), 16, 247);
      return onSk(st, p, body);
    case 120: // x
      return onSlackToken(st, p, body);
    case 110: // n
      return emitPrefixed(st, 'npm_token', p, body, runEnd(st, body, 36, B_ALNUM), 36, 36);
    case 104: // hooks.slack.com/
      if (!s.startsWith('://', p - 3)) tryWebhook(st, p);
      return p + 1;
    default:
      return p + 1;
  }
}

/** Start of `sk-`, `xoxb-`, `glpat-` … ending at the dash at p, or -1. */
function dashPrefixStart(st: State, p: number): number {
  const s = st.s;
  if (s.startsWith('sk', p - 2)) return p - 2;
  if (s.startsWith('xox', p - 4)) return p - 4;
  // (over the bytes: the letter of an escape such as `\n` before the prefix is no part of it)
  let k = p;
  while (k > 0 && p - k < 7 && isLower(st.b[st.o + k - 1]!)) k--;
  return s.startsWith('gl', k) ? k : -1;
}

/** The prefix (`ghp_`, `github_pat_`, `sk_live_`, `npm_` …) whose first underscore is at p. */
function underscorePrefix(s: string, p: number): { start: number; tok: string } | null {
  if (s.startsWith('github_pat_', p - 6)) return { start: p - 6, tok: 'github_pat_' };
  if (s.startsWith('npm', p - 3)) return { start: p - 3, tok: 'npm_' };
  if (s.startsWith('gh', p - 3)) return { start: p - 3, tok: s.slice(p - 3, p + 1) };
  const t = s.slice(p - 2, p + 6);
  if (t === 'sk_live_' || t === 'sk_test_' || t === 'rk_live_' || t === 'rk_test_') return { start: p - 2, tok: t };
  return null;
}

function trimDot(s: string, body: number, end: number, dash = true): number {
  while (end > body && (s[end - 1] === '.' || (dash && s[end - 1] === '-'))) end--;
  return end;
}

function onSk(st: State, p: number, body: number): number {
  const s = st.s;
  const end = runEnd(st, body, 220, B_B64URL);
  const len = end - body;
  if (len > 220) return body;
  const rest = s.slice(body, end);
  const value = s.slice(p, end);
  let entity: string | null = null;
  if (rest.startsWith('ant-')) {
    if (len >= 36) entity = 'anthropic_api_key';
  } else if (/^(?:proj|svcacct|admin|None)-/.test(rest)) {
    if (len - rest.indexOf('-') - 1 >= 20) entity = 'openai_api_key';
  } else if (/^[A-Za-z0-9]{48}$/.test(rest) || /^[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}$/.test(rest)) {
    entity = 'openai_api_key';
  }
  if (entity === null) return body;
  const keyPart = rest.replace(/^(?:ant-(?:api\d\d|admin\d\d)-|proj-|svcacct-|admin-|None-)/, '');
  if (isPlaceholder(keyPart) || isPlaceholder(value)) return end;
  add(st, entity, p, end, P_SECRET);
  return end;
}

function onSlackToken(st: State, p: number, body: number): number {
  const s = st.s;
  const end = trimDot(s, body, runEnd(st, body, 255, B_ALNUM | B_DASH));
  const len = end - body;
  if (len < 10 || len > 255) return body;
  const rest = s.slice(body, end);
  if (!/\d/.test(rest) || !/^\d+-/.test(rest)) return end;
  if (isPlaceholder(rest)) return end;
  add(st, 'slack_token', p, end, P_SECRET);
  return end;
}

function tryJwt(st: State, p: number): number {
  const s = st.s;
  const lim = Math.min(s.length, p + MAX_LONG);
  let i = p;
  const segs: number[] = [];
  let seg0 = i;
  for (;;) {
    while (i < lim && isB64url(s.charCodeAt(i))) i++;
    segs.push(i - seg0);
    if (i < lim && s.charCodeAt(i) === 46 && segs.length < 5) {
      i++;
      seg0 = i;
      continue;
    }
    break;
  }
  if (i === s.length && !st.inp.final && i < p + MAX_LONG) {
    markPending(st, p);
    return s.length;
  }
  if (segs.length > 1 && segs[segs.length - 1] === 0) {
    // "…sig." at the end of a sentence
    segs.pop();
    i--;
  }
  if (segs.length !== 3 && segs.length !== 5) return p + 3;
  if (segs[0]! < 10 || segs[1]! < 10) return i;
  const second = p + segs[0]! + 1;
  if (segs.length === 3 && !s.startsWith('ey', second)) return i;
  add(st, 'jwt', p, i, P_JWT);
  return i;
}

// ---------------------------------------------------------------------------------------------------------
// key = value secrets

const KEY_EXCLUDE = /(?:^|[_.-])(?:id|ids|name|type|count|length|len|size|limit|file|path|url|uri|endpoint|expiry|expires|expires_at|expiresat|ttl|format|prefix|hint|field|header|policy|kind|mode|version|index|usage|min|max)$|public|tokens$|tokenizer|_at$|keyboard|keystroke|keyword|keyspace|monkey|turkey|author(?!i)/i;
const KEY_PASSWORD = /pass(?:word|wd|phrase)$|(?:^|[_.-])pass$|pwd$|^pass(?:word|wd|phrase)?(?:[_.-]|$)|password/i;
const KEY_STRONG = /secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credential|auth|bearer|session[_-]?key|signing[_-]?key|encryption[_-]?key|master[_-]?key/i;
const KEY_WEAK = /key$|key[_-]|^key/i;
const KEY_AWS = /aws.?secret|secret.?access.?key/i;

export type KeyClass = 'password' | 'strong' | 'weak' | 'aws';

const KEY_CLASS_CACHE = new Map<string, KeyClass | null>();

export function classifyKey(rawKey: string): KeyClass | null {
  // Keys repeat (`token`, `password`, …): memoise the (pure) classification, bounded.
  const hit = KEY_CLASS_CACHE.get(rawKey);
  if (hit !== undefined) return hit;
  const kc = classifyKeyUncached(rawKey);
  if (KEY_CLASS_CACHE.size >= 4096) KEY_CLASS_CACHE.clear();
  KEY_CLASS_CACHE.set(rawKey, kc);
  return kc;
}

function classifyKeyUncached(rawKey: string): KeyClass | null {
  const key = rawKey.replace(/([a-z])([A-Z])/g, '$1_$2');
  if (KEY_EXCLUDE.test(key)) return null;
  if (KEY_AWS.test(key)) return 'aws';
  if (KEY_PASSWORD.test(key)) return 'password';
  if (KEY_STRONG.test(key)) return 'strong';
  if (KEY_WEAK.test(key)) return 'weak';
  return null;
}

const REFERENCE_RE = /^(?:\$|%|\{\{|<|env\(|process\.env|os\.environ|getenv|secrets\.|vault:|ENC\[|!|&|\*|@)|\(|^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$|^[A-Z][A-Z0-9]*_[A-Z0-9_]*$/;
const NOT_A_SECRET_WORD = /^(?:true|false|null|nil|none|yes|no|on|off|\d{1,5})$/i;

const CH_DIGIT = 1;
const CH_LOWER = 2;
const CH_UPPER = 4;
const CH_SPACE = 8;
const CH_NON_ASCII = 16;
const CH_COLON = 32;
/** By byte, without branches: a value's random characters made an if-chain mispredict at every one. */
const CH_OF = new Uint8Array(256);
for (let c = 97; c <= 122; c++) CH_OF[c] = CH_LOWER;
for (let c = 65; c <= 90; c++) CH_OF[c] = CH_UPPER;
for (let c = 48; c <= 57; c++) CH_OF[c] = CH_DIGIT;
for (const c of [9, 10, 11, 12, 13, 32]) CH_OF[c] = CH_SPACE;
CH_OF[58] = CH_COLON;
for (let c = 128; c < 256; c++) CH_OF[c] = CH_NON_ASCII;

/** Whether `value` under a key of class `kc` is a secret worth reporting. */
export function secretValueOk(kc: KeyClass, value: string): boolean {
  return secretValueOkAt(kc, value, bytesOf(value), 0, 0, value.length);
}

/** secretValueOk of s[from, to), whose characters are b[o + from, o + to) as bytes (text-bytes.ts). */
export function secretValueOkAt(kc: KeyClass, s: string, b: Uint8Array, o: number, from: number, to: number): boolean {
  const len = to - from;
  if (len <= 0) return false;
  // Cheap exits first (length, character classes); every condition is a conjunct, so the order is free.
  switch (kc) {
    case 'password':
      if (len < 6) return false;
      break;
    case 'aws':
    case 'strong':
      if (len < 12) return false;
      break;
    case 'weak':
      if (len < 16) return false;
      break;
  }
  let f = 0;
  if (kc !== 'password') {
    // the character classes present (ASCII whitespace; CH_NON_ASCII when a regex must decide `\s`)
    for (let i = o + from; i < o + to; i++) f |= CH_OF[b[i]!]!;
    if ((f & CH_SPACE) !== 0 || ((f & CH_NON_ASCII) !== 0 && /\s/.test(s.slice(from, to)))) return false;
    if (kc === 'weak' && ((f & CH_DIGIT) === 0 || (f & (CH_LOWER | CH_UPPER)) === 0)) return false;
    if ((f & CH_COLON) !== 0 && s.slice(from, to).includes('://')) return false;
  }
  if (REFERENCE_RE.test(s.slice(from, to)) || isPlaceholderAt(s, b, o, from, to)) return false;
  if (len <= 5 && NOT_A_SECRET_WORD.test(s.slice(from, to))) return false;
  switch (kc) {
    case 'password': {
      const value = s.slice(from, to);
      return !/^\s|\s$|\s\s|[\r\n]/.test(value) && value.split(' ').length <= 4;
    }
    case 'aws':
    case 'strong': {
      const mixed = (f & CH_DIGIT) !== 0 || ((f & CH_LOWER) !== 0 && (f & CH_UPPER) !== 0);
      return (mixed || len >= 24) && shannonEntropyAt(s, b, o, from, to) >= 3;
    }
    case 'weak':
      return shannonEntropyAt(s, b, o, from, to) >= 3.5;
  }
}

function isKeyChar(c: number): boolean {
  return isWord(c) || c === 46 || c === 45;
}

/** A `=`, `:`, `=>` or `:=` after a secret-looking key (the trigger checked the keyword): read key and value. */
function onSeparator(st: State, sep: number, sepLen: number): void {
  const s = st.s;
  let k1 = sep;
  while (k1 > 0 && isSpaceOrTab(s.charCodeAt(k1 - 1))) k1--;
  if (k1 > 0 && (s[k1 - 1] === '"' || s[k1 - 1] === "'")) k1--;
  let k0 = k1;
  while (k0 > 0 && k1 - k0 < 60 && isKeyChar(s.charCodeAt(k0 - 1))) k0--;
  if (k0 === k1) return;
  const kc = classifyKey(s.slice(k0, k1));
  if (kc === null) return;
  let i = sep + sepLen;
  if (s[i] === '>' || s[i] === '=') i++;
  while (i < s.length && isSpaceOrTab(s.charCodeAt(i))) i++;
  if (i >= s.length) {
    markPending(st, k0);
    return;
  }
  valueAt(st, i, kc, k0);
}

/**
 * `<password>value</password>`: the `>` of a start tag named like a secret key (the trigger checked the
 * shape): the element's text up to the next `<`, blanks around it trimmed, is the value.
 */
function onXmlElement(st: State, gt: number): void {
  const s = st.s;
  let k0 = gt;
  while (k0 > 0 && isKeyChar(s.charCodeAt(k0 - 1))) k0--;
  const kc = classifyKey(s.slice(k0, gt));
  if (kc === null) return;
  let end = s.indexOf('<', gt + 1);
  if (end === -1 || end - gt - 1 > MAX_VALUE) {
    if (!st.inp.final && s.length - gt - 1 <= MAX_VALUE) {
      markPending(st, k0 - 1);
      return;
    }
    if (end === -1) end = s.length;
    else return;
  }
  let v0 = gt + 1;
  let v1 = end;
  while (v0 < v1 && s.charCodeAt(v0) <= 32) v0++;
  while (v1 > v0 && s.charCodeAt(v1 - 1) <= 32) v1--;
  if (v0 === v1) return;
  if (kc === 'aws' && awsSecretAt(s, v0, v1)) {
    add(st, 'aws_secret_access_key', v0, v1, P_AWS_SECRET);
    return;
  }
  if (secretValueOkAt(kc, s, st.b, st.o, v0, v1)) add(st, 'generic_secret', v0, v1, P_GENERIC);
}

/** An IPv6 address starting with a hex letter (`fe80::1`): the trigger anchored on its first colon. */
function ipv6FromColon(st: State, colon: number): void {
  const b = st.b;
  const o = st.o;
  let k = colon;
  while (k > 0 && colon - k < 4 && (isHex(b[o + k - 1]!) || hexEscapeLetter(b, o + k - 1))) k--;
  if (k < colon && !isDigit(b[o + k]!)) tryIpv6(st, k);
}

/**
 * b[i] is the letter of a `\b` or `\f` escape (text-bytes.ts), which may as well be the first hex digit of
 * an address after a backslash (`\\fe80::1`): the address is read whole rather than leak its first digit.
 */
function hexEscapeLetter(b: Uint8Array, i: number): boolean {
  const c = b[i]!;
  return (c === (98 | 0x80) || c === (102 | 0x80)) && b[i - 1] === 92;
}

/** Characters that end an unquoted value: blanks and controls, quotes, `,;&)}]<>`. */
const BARE_STOP = new Uint8Array(256);
for (let c = 0; c <= 32; c++) BARE_STOP[c] = 1;
for (const ch of '"\'`,;&)}]><') BARE_STOP[ch.charCodeAt(0)] = 1;
function isBareStop(c: number): boolean {
  return BARE_STOP[c] === 1;
}

const AUTH_SCHEME = /^(?:bearer|basic|token|digest|apikey|key)[ \t]+/i;

/** `AUTH_SCHEME.exec(s.slice(a, b))`, without the slice and the regex when the first letter rules it out. */
function authSchemeAt(s: string, a: number, b: number): RegExpExecArray | null {
  if (a >= b) return null;
  const c = s.charCodeAt(a) | 32; // b t d a k
  if (c !== 98 && c !== 116 && c !== 100 && c !== 97 && c !== 107) return null;
  return AUTH_SCHEME.exec(s.slice(a, b));
}

/** Reads the value starting at i (quoted or bare) and adds a candidate when it passes the gate. */
function valueAt(st: State, i: number, kc: KeyClass, pendingAt: number): void {
  const s = st.s;
  let q = s[i];
  let v0: number;
  let v1: number;
  const b = st.b;
  const o = st.o;
  if (q === '"' || q === "'" || q === '`') {
    v0 = i + 1;
    let j = v0;
    const lim = Math.min(s.length, v0 + MAX_VALUE);
    const qc = q.charCodeAt(0);
    while (j < lim) {
      const c = b[o + j]!;
      if (c === 92 /* \ */) {
        j += 2;
        continue;
      }
      if (c === qc || c === 10 || c === 13) break;
      j++;
    }
    if (j >= s.length && !st.inp.final) {
      markPending(st, pendingAt);
      return;
    }
    if (s[j] !== q) return;
    v1 = j;
  } else {
    q = undefined;
    const am = authSchemeAt(s, i, Math.min(s.length, i + 16));
    if (am !== null) {
      i += am[0].length;
      if (kc === 'weak' || kc === 'password') kc = 'strong';
    }
    v0 = i;
    let j = i;
    const lim = Math.min(s.length, i + MAX_BARE_VALUE);
    while (j < lim) {
      const c = b[o + j]!;
      if (isBareStop(c)) break;
      // '=' ends a bare value unless it is base64 padding (followed by '=' or the end of the value)
      if (c === 61 && j + 1 < s.length && b[o + j + 1] !== 61 && !isBareStop(b[o + j + 1]!)) break;
      j++;
    }
    if (j >= s.length && !st.inp.final) {
      markPending(st, pendingAt);
      return;
    }
    v1 = j;
    while (v1 > v0 && (s[v1 - 1] === '.' || s[v1 - 1] === ':')) v1--;
  }
  if (q !== undefined) {
    // "Bearer abc", "Basic dXNlcjpw" → the credential after the scheme word
    const am = authSchemeAt(s, v0, Math.min(v1, v0 + 16));
    if (am !== null) {
      v0 += am[0].length;
      if (kc === 'weak' || kc === 'password') kc = 'strong';
    }
  }
  if (kc === 'aws' && awsSecretAt(s, v0, v1)) {
    add(st, 'aws_secret_access_key', v0, v1, P_AWS_SECRET);
    return;
  }
  if (!secretValueOkAt(kc, s, st.b, st.o, v0, v1)) return;
  add(st, 'generic_secret', v0, v1, P_GENERIC);
}

const AWS_SECRET = /^[A-Za-z0-9/+]{40}$/;

/** s[from, to) is an AWS secret access key (40 base64 characters, no placeholder), under an AWS key name. */
function awsSecretAt(s: string, from: number, to: number): boolean {
  if (to - from !== 40) return false;
  const value = s.slice(from, to);
  return AWS_SECRET.test(value) && !isPlaceholder(value);
}

/** JSON/form context: the key itself says the whole value is secret. */
function keyHintWholeValue(st: State, keyHint: string): void {
  const kc = classifyKey(keyHint);
  if (kc === null) return;
  const s = st.s;
  let v0 = 0;
  let v1 = s.length;
  while (v0 < v1 && s.charCodeAt(v0) <= 32) v0++;
  while (v1 > v0 && s.charCodeAt(v1 - 1) <= 32) v1--;
  if (v1 - v0 > MAX_VALUE) return;
  const am = authSchemeAt(s, v0, Math.min(s.length, v0 + 16));
  const kc2: KeyClass = am !== null && (kc === 'weak' || kc === 'password') ? 'strong' : kc;
  if (am !== null) v0 += am[0].length;
  const value = s.slice(v0, v1);
  if (kc2 === 'aws' && awsSecretAt(s, v0, v1)) {
    add(st, 'aws_secret_access_key', v0, v1, P_AWS_SECRET);
    return;
  }
  if (kc2 === 'password' || kc2 === 'aws' || kc2 === 'strong' || kc2 === 'weak') {
    if (secretValueOk(kc2 === 'aws' ? 'strong' : kc2, value)) add(st, 'generic_secret', v0, v1, P_GENERIC);
  }
}

// ---------------------------------------------------------------------------------------------------------
// custom detectors

function runCustom(st: State): void {
  const s = st.s;
  for (const d of st.cfg.custom) {
    if (!st.cfg.entities.has(d.name)) continue;
    const re = d.regex;
    re.lastIndex = Math.max(0, st.inp.from - LOOKBEHIND);
    let m: RegExpExecArray | null;
    while ((m = re.exec(s)) !== null) {
      const v = m[0];
      if (v.length === 0) {
        re.lastIndex++;
        continue;
      }
      if (d.validator !== undefined && !d.validator(v)) continue;
      if (d.context !== undefined && d.context.length > 0) {
        const around = (s.slice(Math.max(0, m.index - 50), m.index) + ' ' + s.slice(m.index + v.length, m.index + v.length + 50)).toLowerCase();
        const hint = (st.inp.keyHint ?? '').toLowerCase();
        if (!d.context.some((w) => around.includes(w) || hint.includes(w))) continue;
      }
      add(st, d.name, m.index, m.index + v.length, P_CUSTOM);
    }
    re.lastIndex = 0;
  }
}

// ---------------------------------------------------------------------------------------------------------
// resolution

/** Greedy left-to-right resolution, in place; overlapping later candidates extend the kept span. */
export function resolve(cands: SpanList, from: number): SpanList {
  const n = cands.length;
  if (n === 0) return cands;
  // Earliest start first, at equal starts the longer span, then the more specific detector.
  const order = (a: number, b: number): number =>
    cands.start(a) - cands.start(b) || cands.end(b) - cands.start(b) - (cands.end(a) - cands.start(a)) || cands.prio(b) - cands.prio(a);
  if (!cands.isSorted(order)) cands.sort(order);
  let w = 0;
  let lastEnd = -1;
  for (let k = 0; k < n; k++) {
    const start = cands.start(k);
    if (start < from) continue;
    const end = cands.end(k);
    if (w > 0 && start < lastEnd) {
      if (end > lastEnd) {
        lastEnd = end;
        cands.setRange(w - 1, cands.start(w - 1), end);
      }
      continue;
    }
    if (k !== w) cands.move(k, w);
    w++;
    lastEnd = end;
  }
  cands.truncate(w);
  return cands;
}
