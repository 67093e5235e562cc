/**
 * JSON-aware masking that works on the text: a strict, iterative tokenizer (no recursion, so 10k levels of
 * nesting are fine) visits every string and number. Only the tokens that change are re-serialised, so
 * untouched bytes (formatting, number spellings, escapes) are passed through verbatim and finding spans
 * are exact input offsets.
 *
 * - String values are decoded (`\u0040` → `@`) before detection; a value that is itself JSON (an OpenAI
 *   tool call's `arguments`) is masked as JSON, recursively (bounded depth).
 * - The nearest object key is context: `"password": "…"`, `"api_key": "…"` mask the whole value as
 *   `generic_secret`; `"ssn": "123456789"` accepts a bare 9-digit SSN; arrays inherit their key.
 * - Integers that are cards/SSNs/phones under such keys are replaced by a JSON string.
 * - With the `null` masker a value that holds a finding becomes JSON `null` (the "database NULL" of a cell).
 * - Object keys are scanned too (without context).
 * Returns `null` for input that is not valid JSON; the caller then scans it as text.
 */
import type { Core, Finding, MaskResult } from './core.js';
import { countFindings, detectRaw, maskTextCore } from './core.js';

const MAX_EMBED_DEPTH = 8;

interface Decoded {
  dec: string;
  /** dec index → raw index (undefined when the string had no escapes: raw = start + 1 + index). */
  map: number[] | undefined;
  end: number; // raw index just past the closing quote
}

function isWs(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** Parses the JSON string starting at text[i] === '"'; null when invalid. */
function readString(text: string, i: number): Decoded | null {
  const n = text.length;
  let j = i + 1;
  while (j < n) {
    const c = text.charCodeAt(j);
    if (c === 34) return { dec: text.slice(i + 1, j), map: undefined, end: j + 1 };
    if (c === 92 || c < 32) break;
    j++;
  }
  if (j >= n || text.charCodeAt(j) < 32) return null;
  // slow path with escapes
  const parts: string[] = [text.slice(i + 1, j)];
  const map: number[] = [];
  for (let k = i + 1; k < j; k++) map.push(k);
  while (j < n) {
    const c = text.charCodeAt(j);
    if (c === 34) {
      map.push(j);
      return { dec: parts.join(''), map, end: j + 1 };
    }
    if (c < 32) return null;
    if (c !== 92) {
      parts.push(text[j]!);
      map.push(j);
      j++;
      continue;
    }
    const e = text[j + 1];
    let ch: string;
    let len = 2;
    switch (e) {
      case '"': ch = '"'; break;
      case '\\': ch = '\\'; break;
      case '/': ch = '/'; break;
      case 'b': ch = '\b'; break;
      case 'f': ch = '\f'; break;
      case 'n': ch = '\n'; break;
      case 'r': ch = '\r'; break;
      case 't': ch = '\t'; break;
      case 'u': {
        let v = 0;
        for (let k = 2; k < 6; k++) {
          const h = hexVal(text.charCodeAt(j + k));
          if (h < 0) return null;
          v = v * 16 + h;
        }
        ch = String.fromCharCode(v);
        len = 6;
        break;
      }
      default:
        return null;
    }
    parts.push(ch);
    map.push(j);
    j += len;
  }
  return null;
}

const NUM = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

const enum_ = { VALUE: 0, VALUE_OR_END: 1, KEY: 2, KEY_OR_END: 3, COLON: 4, AFTER: 5 } as const;

export function maskJsonCore(core: Core, text: string, depth = 0, validate = true): MaskResult | null {
  // Fast path: no escapes and nothing a text scan would even consider → nothing to mask (key context is
  // visible to the text scan too: `"ssn": "…"`, `"password": "…"`). Still validate that it is JSON, unless
  // the caller (`validate` false) would scan invalid JSON as plain text anyway, which gives the same result.
  if (text.indexOf('\\') === -1 && detectRaw(core, text, true, 0, undefined, true).spans.length === 0) {
    return !validate || isJsonShaped(text) ? { text, findings: [], counts: {}, changed: false } : null;
  }
  const n = text.length;
  const parts: string[] = [];
  let copied = 0; // text[0, copied) already in parts
  const findings: Finding[] = [];
  const stack: number[] = []; // 1 object, 2 array
  const hints: (string | undefined)[] = [];
  let state: number = enum_.VALUE;
  let i = 0;
  let done = false;

  const replace = (a: number, b: number, token: string): void => {
    parts.push(text.slice(copied, a), token);
    copied = b;
  };
  const hint = (): string | undefined => (hints.length > 0 ? hints[hints.length - 1] : undefined);
  const toRaw = (d: Decoded, start: number, k: number): number => (d.map === undefined ? start + 1 + k : d.map[k]!);

  /** Masks a decoded string; returns the replacement token or null if unchanged. */
  const maskString = (start: number, d: Decoded, keyHint: string | undefined, isKey: boolean): string | null => {
    let r: MaskResult | null = null;
    const t = d.dec;
    if (depth < MAX_EMBED_DEPTH && t.length >= 2) {
      const f = t.charCodeAt(0) === 123 || t.charCodeAt(0) === 91 ? t : t.trimStart();
      const c0 = f.charCodeAt(0);
      if (c0 === 123 || c0 === 91) r = maskJsonCore(core, t, depth + 1);
    }
    if (r === null) r = maskTextCore(core, t, isKey ? undefined : keyHint);
    if (!r.changed) return null;
    let nullify = false;
    for (const f of r.findings) {
      findings.push({ entity: f.entity, masker: f.masker, start: toRaw(d, start, f.start), end: toRaw(d, start, f.end - 1) + 1 });
      if (f.masker === 'null') nullify = true;
    }
    if (nullify && !isKey) return 'null';
    return JSON.stringify(r.text);
  };

  while (!done) {
    while (i < n && isWs(text.charCodeAt(i))) i++;
    if (i >= n) break;
    const c = text.charCodeAt(i);
    switch (state) {
      case enum_.VALUE:
      case enum_.VALUE_OR_END: {
        if (c === 93 /* ] */ && state === enum_.VALUE_OR_END) {
          stack.pop();
          hints.pop();
          i++;
          state = enum_.AFTER;
          break;
        }
        if (c === 123 /* { */) {
          stack.push(1);
          hints.push(hint());
          i++;
          state = enum_.KEY_OR_END;
        } else if (c === 91 /* [ */) {
          stack.push(2);
          hints.push(hint());
          i++;
          state = enum_.VALUE_OR_END;
        } else if (c === 34 /* " */) {
          const d = readString(text, i);
          if (d === null) return null;
          const tok = maskString(i, d, hint(), false);
          if (tok !== null) replace(i, d.end, tok);
          i = d.end;
          state = enum_.AFTER;
        } else if (c === 45 || (c >= 48 && c <= 57)) {
          NUM.lastIndex = i;
          const m = NUM.exec(text);
          if (m === null) return null;
          const num = m[0];
          const end = i + num.length;
          if (num.length >= 9 && num.length <= 19 && /^\d+$/.test(num)) {
            const r = maskTextCore(core, num, hint());
            const f = r.findings[0];
            if (f !== undefined && f.start === 0 && f.end === num.length) {
              findings.push({ ...f, start: i, end });
              replace(i, end, f.masker === 'null' ? 'null' : JSON.stringify(r.text));
            }
          }
          i = end;
          state = enum_.AFTER;
        } else if (text.startsWith('true', i)) {
          i += 4;
          state = enum_.AFTER;
        } else if (text.startsWith('false', i)) {
          i += 5;
          state = enum_.AFTER;
        } else if (text.startsWith('null', i)) {
          i += 4;
          state = enum_.AFTER;
        } else return null;
        break;
      }
      case enum_.KEY:
      case enum_.KEY_OR_END: {
        if (c === 125 /* } */ && state === enum_.KEY_OR_END) {
          stack.pop();
          hints.pop();
          i++;
          state = enum_.AFTER;
          break;
        }
        if (c !== 34) return null;
        const d = readString(text, i);
        if (d === null) return null;
        const tok = maskString(i, d, undefined, true);
        if (tok !== null) replace(i, d.end, tok);
        hints[hints.length - 1] = d.dec;
        i = d.end;
        state = enum_.COLON;
        break;
      }
      case enum_.COLON:
        if (c !== 58) return null;
        i++;
        state = enum_.VALUE;
        break;
      case enum_.AFTER: {
        const top = stack[stack.length - 1];
        if (top === undefined) return null; // trailing garbage
        if (c === 44 /* , */) {
          state = top === 1 ? enum_.KEY : enum_.VALUE;
          i++;
        } else if ((c === 125 && top === 1) || (c === 93 && top === 2)) {
          stack.pop();
          hints.pop();
          i++;
          state = enum_.AFTER;
        } else return null;
        break;
      }
    }
  }
  if (stack.length !== 0 || state !== enum_.AFTER) return null;
  if (copied === 0) return { text, findings, counts: countFindings(findings), changed: false };
  parts.push(text.slice(copied));
  const out = parts.join('');
  return { text: out, findings, counts: countFindings(findings), changed: true };
}

/** Cheap validity check for the fast path (the full tokenizer is the reference). */
function isJsonShaped(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
