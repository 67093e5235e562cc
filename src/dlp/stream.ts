/**
 * Streaming masker. Invariant: for any chunking, the concatenation of everything `push` and `end` return
 * equals the masking of the whole input.
 *
 * How: each push scans `context + held + chunk`, where `context` is the last CONTEXT characters already
 * emitted (look-behind only: candidates starting there are dropped), and emits up to a cut point that is
 *  - at most `held.length - window` characters from the end (the window exceeds the longest span an
 *    ordinary detector can read, so every candidate before the cut is fully decided), and
 *  - before any candidate a "long" detector could not decide yet (an open `-----BEGIN … PRIVATE KEY-----`
 *    without its END, a JWT or a secret key's value running into the end of the text, an unterminated
 *    ANSI escape). That hold is bounded: 16 KiB for PEM/JWT (after which the block is masked up to the
 *    bound, never leaked), 4 KiB for values;
 *  - never inside a finding (a finding straddling the cut is held whole).
 * A value split across chunks therefore never leaks in part.
 *
 * The window is an upper bound, not a delay: text is released sooner when no candidate can still reach it
 * (`reachableTail`). Every built-in detector's span is one run of characters without a line break, in which
 * a space or tab only ever joins groups of digits or capitals (cards, SSNs, phones, IBANs); open-ended
 * values (quoted or bare secret values, JWTs, PEM blocks) are held through `pending` as before. So a
 * candidate completed by later input can start no earlier than the last line break, or the last space or
 * tab that follows a lower-case letter, `,`, `;`, `!`, `?`, a quote or another blank: everything before it
 * is final. Prose from a language model thus flows word by word instead of 256 characters at a time.
 * Custom detectors (any regex) and text with terminal escapes keep the plain window.
 */
import type { Core, Finding } from './core.js';
import { hasEscapes } from './ansi.js';
import { countFindings, detectRaw, render } from './core.js';
import { MAX_SPAN, pemTailEnd } from './scanner.js';

export const DEFAULT_WINDOW = 256;
const CONTEXT = 128;

export interface StreamMasker {
  /** Feeds a chunk; returns the text that is now safe to emit (possibly empty). */
  push(chunk: string): string;
  /** Flushes everything held. The masker cannot be used afterwards. */
  end(): string;
  /** Findings so far, in stream offsets. */
  readonly findings: readonly Finding[];
  /** Counts per entity so far. */
  counts(): Record<string, number>;
  /** Number of characters currently held back. */
  readonly held: number;
}

export interface ByteStreamMasker {
  push(chunk: Uint8Array): Buffer;
  end(): Buffer;
  readonly findings: readonly Finding[];
  counts(): Record<string, number>;
}

export function createStreamMaskerCore(core: Core, window = DEFAULT_WINDOW): StreamMasker {
  const W = Math.max(window, MAX_SPAN + 16);
  let ctx = '';
  let buf = '';
  let offset = 0;
  let ended = false;
  const findings: Finding[] = [];

  /** A private key block ran past the scan bound: its remaining body and END line are dropped, not emitted. */
  let pemTail = false;

  const flush = (final: boolean): string => {
    if (pemTail) {
      const tail = pemTailEnd(buf, 0, final);
      offset += tail.end;
      buf = buf.slice(tail.end);
      if (!tail.done) return '';
      pemTail = false;
    }
    const text = ctx + buf;
    const base = ctx.length;
    // Terminal escapes (`\x1b[0m`) put letters between the groups of a number: keep the plain window there.
    const early = !final && core.cfg.custom.length === 0 && !hasEscapes(text) ? reachableTail(text, base) : base;
    if (!final && text.length - base <= W && early <= base) return '';
    const det = detectRaw(core, text, final, base);
    const spans = det.spans;
    let cut = text.length;
    if (!final) {
      cut = Math.max(text.length - W, early);
      if (det.pending < cut) cut = det.pending;
      for (let k = 0; k < spans.length; k++) {
        if (spans.start(k) >= cut) break;
        if (spans.end(k) > cut) {
          cut = spans.start(k);
          break;
        }
      }
      if (cut <= base) return '';
    }
    // resolved spans do not overlap, so their ends increase: the ones to emit are a prefix
    let emit = 0;
    while (emit < spans.length && spans.end(emit) <= cut) emit++;
    const last = emit - 1;
    if (last >= 0 && spans.entity(last) === 'private_key' && !final && !text.slice(spans.start(last), spans.end(last)).endsWith('-----')) {
      // Cut at the bound: what follows is still the key's body; swallow it on the next pushes.
      cut = spans.end(last);
      pemTail = true;
    }
    const out = render(core, text, spans, emit, base, cut, findings, offset - base);
    offset += cut - base;
    ctx = text.slice(Math.max(0, cut - CONTEXT), cut);
    buf = text.slice(cut);
    return out;
  };

  return {
    push(chunk: string): string {
      if (ended) throw new Error('stream masker: push() after end()');
      if (chunk.length === 0) return '';
      buf += chunk;
      return flush(false);
    },
    end(): string {
      if (ended) return '';
      const out = flush(true);
      ended = true;
      ctx = '';
      buf = '';
      return out;
    },
    get findings(): readonly Finding[] {
      return findings;
    },
    counts: () => countFindings(findings),
    get held(): number {
      return buf.length;
    },
  };
}

/**
 * Where the tail that later input could still extend begins (see the module doc): walking back from the end,
 * the first line break, or the first space or tab after a character no entity joins across a blank.
 */
export function reachableTail(text: string, from: number): number {
  for (let i = text.length; i > from; i--) {
    const c = text.charCodeAt(i - 1);
    if (c === 10 || c === 13) return i;
    if (c === 32 || c === 9) {
      const p = i >= 2 ? text.charCodeAt(i - 2) : -1;
      if ((p >= 97 && p <= 122) || p === 44 || p === 59 || p === 33 || p === 63 || p === 34 || p === 39 || p === 32 || p === 9) return i;
    }
  }
  return from;
}

/** Byte-level wrapper: UTF-8 sequences split across chunks are reassembled (TextDecoder stream mode). */
export function createByteStreamMaskerCore(core: Core, window = DEFAULT_WINDOW): ByteStreamMasker {
  const dec = new TextDecoder('utf-8');
  const sm = createStreamMaskerCore(core, window);
  return {
    push(chunk: Uint8Array): Buffer {
      return Buffer.from(sm.push(dec.decode(chunk, { stream: true })), 'utf8');
    },
    end(): Buffer {
      const tail = dec.decode();
      return Buffer.from(sm.push(tail) + sm.end(), 'utf8');
    },
    get findings(): readonly Finding[] {
      return sm.findings;
    },
    counts: () => sm.counts(),
  };
}
