/**
 * URL-encoded forms and query strings: each `key=value` pair is percent-decoded (`+` is a space), the value
 * is masked with its key as context, and a changed part is re-encoded; untouched parts keep their bytes.
 * A full URL is split at `?`: the part before (scheme, userinfo, path) and any `#fragment` are masked as text.
 */
import type { Core, Finding, MaskResult } from './core.js';
import { countFindings, maskTextCore } from './core.js';

interface PctDecoded {
  dec: string;
  /** dec index → offset in the encoded part; map[dec.length] = part length. */
  map: number[];
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** Percent-decodes with an offset map; invalid UTF-8 bytes decode to U+FFFD. */
export function percentDecode(s: string): PctDecoded {
  let dec = '';
  const map: number[] = [];
  let i = 0;
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === 43 /* + */) {
      dec += ' ';
      map.push(i);
      i++;
      continue;
    }
    if (c !== 37 || i + 2 >= n || hexVal(s.charCodeAt(i + 1)) < 0 || hexVal(s.charCodeAt(i + 2)) < 0) {
      dec += s[i];
      map.push(i);
      i++;
      continue;
    }
    // a run of %XX bytes
    const bytes: number[] = [];
    const pos: number[] = [];
    while (i + 2 < n) {
      if (s.charCodeAt(i) !== 37) break;
      const h = hexVal(s.charCodeAt(i + 1));
      const l = hexVal(s.charCodeAt(i + 2));
      if (h < 0 || l < 0) break;
      bytes.push(h * 16 + l);
      pos.push(i);
      i += 3;
    }
    let k = 0;
    while (k < bytes.length) {
      const b = bytes[k]!;
      const need = b < 0x80 ? 0 : b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
      let cp = need === 0 ? b : need === 1 ? b & 0x1f : need === 2 ? b & 0x0f : b & 0x07;
      let ok = need >= 0 && k + need < bytes.length;
      for (let q = 1; ok && q <= need; q++) {
        const cb = bytes[k + q]!;
        if ((cb & 0xc0) !== 0x80) ok = false;
        else cp = (cp << 6) | (cb & 0x3f);
      }
      if (!ok) {
        dec += '\uFFFD';
        map.push(pos[k]!);
        k++;
        continue;
      }
      const ch = String.fromCodePoint(cp);
      dec += ch;
      for (let q = 0; q < ch.length; q++) map.push(pos[k]!);
      k += need + 1;
    }
  }
  map.push(n);
  return { dec, map };
}

function encodePart(s: string): string {
  return encodeURIComponent(s).replace(/%20/g, '+');
}

export function maskFormCore(core: Core, text: string): MaskResult {
  const findings: Finding[] = [];
  const out: string[] = [];
  let changed = false;
  let queryStart = 0;
  let queryEnd = text.length;
  const q = text.indexOf('?');
  const firstEq = text.indexOf('=');
  if (q !== -1 && (firstEq === -1 || q < firstEq)) queryStart = q + 1;
  const hash = text.indexOf('#', queryStart);
  if (hash !== -1) queryEnd = hash;

  const maskSegment = (a: number, b: number, keyHint: string | undefined, encoded: boolean): string => {
    const raw = text.slice(a, b);
    if (raw.length === 0) return raw;
    if (!encoded) {
      const r = maskTextCore(core, raw);
      for (const f of r.findings) findings.push({ ...f, start: f.start + a, end: f.end + a });
      if (r.changed) changed = true;
      return r.text;
    }
    const d = percentDecode(raw);
    const r = maskTextCore(core, d.dec, keyHint);
    if (!r.changed) return raw;
    changed = true;
    for (const f of r.findings) findings.push({ ...f, start: a + d.map[f.start]!, end: a + d.map[f.end - 1]! + 1 });
    return encodePart(r.text);
  };

  if (queryStart > 0) out.push(maskSegment(0, queryStart, undefined, false));
  let i = queryStart;
  while (i <= queryEnd) {
    let amp = text.indexOf('&', i);
    if (amp === -1 || amp > queryEnd) amp = queryEnd;
    const eq = text.indexOf('=', i);
    if (eq !== -1 && eq < amp) {
      const key = percentDecode(text.slice(i, eq)).dec;
      out.push(maskSegment(i, eq, undefined, true), '=', maskSegment(eq + 1, amp, key, true));
    } else {
      out.push(maskSegment(i, amp, undefined, true));
    }
    if (amp < queryEnd) out.push('&');
    i = amp + 1;
  }
  if (queryEnd < text.length) out.push('#', maskSegment(queryEnd + 1, text.length, undefined, false));
  if (!changed) return { text, findings: [], counts: {}, changed: false };
  const res = out.join('');
  return { text: res, findings, counts: countFindings(findings), changed: res !== text };
}
