/**
 * Internal plumbing shared by the text, JSON, form and stream maskers: detection in raw coordinates
 * (ANSI-aware) and rendering of the masked text.
 */
import { escapesIn, hasEscapes, stripAnsi } from './ansi.js';
import type { MaskerContext, MaskerName } from './maskers.js';
import { applyMasker, redact } from './maskers.js';
import type { ScanConfig } from './scanner.js';
import { resolve, scan } from './scanner.js';
import type { SpanList } from './spans.js';

/** One detected value: its entity, its span in the input, and the masker applied. Never the value. */
export interface Finding {
  entity: string;
  start: number;
  end: number;
  masker: MaskerName;
}

export interface MaskResult {
  /** The masked text (the input itself, same reference, when nothing was found). */
  text: string;
  findings: Finding[];
  /** Findings per entity. */
  counts: Record<string, number>;
  changed: boolean;
}

export interface Core {
  cfg: ScanConfig;
  maskerFor: (entity: string) => MaskerName;
  mctx: MaskerContext;
}

export interface RawDetection {
  /** Resolved: sorted, not overlapping, so their ends increase too. */
  spans: SpanList;
  pending: number;
}

/** Detects in `raw` (stripping ANSI escapes when present); spans are raw indices, resolved, start ≥ from. */
export function detectRaw(core: Core, raw: string, final: boolean, from: number, keyHint?: string, first = false): RawDetection {
  if (!hasEscapes(raw)) {
    const r = scan(raw, core.cfg, { final, from, keyHint, first });
    return { spans: resolve(r.candidates, from), pending: r.pending };
  }
  const st = stripAnsi(raw, final);
  const map = st.map;
  // first clean index whose raw index is >= from
  let lo = 0;
  let hi = map.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (map[mid]! < from) lo = mid + 1;
    else hi = mid;
  }
  const r = scan(st.clean, core.cfg, { final, from: lo, keyHint, first });
  const spans = resolve(r.candidates, lo);
  for (let k = 0; k < spans.length; k++) spans.setRange(k, map[spans.start(k)]!, map[spans.end(k) - 1]! + 1);
  let pending = r.pending === Infinity ? Infinity : map[Math.min(r.pending, map.length - 1)]!;
  if (st.incomplete !== -1 && st.incomplete < pending) pending = st.incomplete;
  return { spans, pending };
}

/**
 * Renders raw[from, to) with the first `count` spans (all inside [from, to)) replaced; escapes inside a span
 * are kept after its replacement. Each replaced span is pushed to `findings` (at `offset`) unless that is null.
 */
export function render(core: Core, raw: string, spans: SpanList, count: number, from: number, to: number, findings: Finding[] | null, offset = 0): string {
  if (count === 0) return from === 0 && to === raw.length ? raw : raw.slice(from, to);
  // String concatenation (a rope, flattened once by its first reader) is several times faster in V8
  // than collecting tens of thousands of parts and joining them.
  let out = '';
  let pos = from;
  const esc = hasEscapes(raw);
  const mctx = core.mctx;
  let lastEntity = '';
  let lastMasker: MaskerName = 'redact';
  let lastRedacted = '';
  for (let k = 0; k < count; k++) {
    const start = spans.start(k);
    const end = spans.end(k);
    if (start < pos || end > to) continue;
    const entity = spans.entity(k);
    if (entity !== lastEntity) {
      lastEntity = entity;
      lastMasker = core.maskerFor(entity);
      lastRedacted = redact(entity);
    }
    const masker = lastMasker;
    let rep: string;
    if (masker === 'redact' || masker === 'null') rep = lastRedacted;
    else rep = applyMasker(masker, entity, esc ? stripAnsi(raw.slice(start, end), true).clean : raw.slice(start, end), mctx);
    out += raw.slice(pos, start);
    out += rep;
    if (esc) out += escapesIn(raw, start, end);
    if (findings !== null) findings.push({ entity, start: start + offset, end: end + offset, masker });
    pos = end;
  }
  out += raw.slice(pos, to);
  return out;
}

/** The spans as findings. */
export function spanFindings(spans: SpanList, maskerFor: (entity: string) => MaskerName): Finding[] {
  const out: Finding[] = new Array<Finding>(spans.length);
  for (let k = 0; k < spans.length; k++) {
    const entity = spans.entity(k);
    out[k] = { entity, start: spans.start(k), end: spans.end(k), masker: maskerFor(entity) };
  }
  return out;
}

/** Findings per entity. */
export function countFindings(findings: readonly { entity: string }[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const f of findings) counts[f.entity] = (counts[f.entity] ?? 0) + 1;
  return counts;
}

export function maskTextCore(core: Core, text: string, keyHint?: string): MaskResult {
  const { spans } = detectRaw(core, text, true, 0, keyHint);
  if (spans.length === 0) return { text, findings: [], counts: {}, changed: false };
  const out = render(core, text, spans, spans.length, 0, text.length, null);
  return new SpanMaskResult(out, out !== text, spans, core.maskerFor);
}

/**
 * A MaskResult whose findings and counts are made from the resolved spans when first read. Most callers
 * (the tunnels) read only the text and the counts; a finding object per span, kept until the end of a
 * long text, made one pass over PII-dense text 20% slower.
 */
class SpanMaskResult implements MaskResult {
  readonly text: string;
  readonly changed: boolean;
  readonly #spans: SpanList;
  readonly #maskerFor: (entity: string) => MaskerName;
  #findings: Finding[] | undefined;
  #counts: Record<string, number> | undefined;

  constructor(text: string, changed: boolean, spans: SpanList, maskerFor: (entity: string) => MaskerName) {
    this.text = text;
    this.changed = changed;
    this.#spans = spans;
    this.#maskerFor = maskerFor;
  }

  get findings(): Finding[] {
    this.#findings ??= spanFindings(this.#spans, this.#maskerFor);
    return this.#findings;
  }

  get counts(): Record<string, number> {
    this.#counts ??= this.#spans.counts();
    return this.#counts;
  }

  /** A plain object, so that JSON output and spreading see the fields a literal result has. */
  toJSON(): { text: string; findings: Finding[]; counts: Record<string, number>; changed: boolean } {
    return { text: this.text, findings: this.findings, counts: this.counts, changed: this.changed };
  }
}
