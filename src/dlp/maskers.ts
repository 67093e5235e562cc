/**
 * Maskers turn one detected value into its replacement. They are pure functions of (entity, value) plus,
 * for `hash`, a key and, for `pseudonymize`, a `PseudonymVault` that remembers originals for `restore`.
 */
import { createHmac } from 'node:crypto';
import { isSecretEntity } from './entities.js';

export const MASKER_NAMES = ['redact', 'partial', 'hash', 'null', 'pseudonymize'] as const;
export type MaskerName = (typeof MASKER_NAMES)[number];

export function isMaskerName(x: string): x is MaskerName {
  return (MASKER_NAMES as readonly string[]).includes(x);
}

const REDACTED = new Map<string, string>();
export function redact(entity: string): string {
  let r = REDACTED.get(entity);
  if (r === undefined) {
    r = `[REDACTED:${entity}]`;
    if (REDACTED.size < 1024) REDACTED.set(entity, r); // entity names come from config: a bounded set
  }
  return r;
}

function isAlnumChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/**
 * Keeps the last `keep` letters/digits and replaces the others with `*`, keeping separators
 * (`4111-1111-1111-1111` → `****-****-****-1111`). A letter or digit is an ASCII one or any character beyond
 * ASCII (a name in Cyrillic, CJK or with accents is masked like a Latin one; non-ASCII punctuation is masked
 * too, which errs on the safe side); each character is one `*`, whatever its length. Secrets keep their last
 * `keep` characters only when that is at most a quarter of the value (`****…wxyz`), otherwise they are
 * redacted; private keys are always redacted.
 */
export function partial(entity: string, value: string, keep = 4): string {
  keep = keep < 0 || !Number.isFinite(keep) ? 4 : Math.ceil(keep);
  if (isSecretEntity(entity)) {
    if (entity === 'private_key' || keep === 0 || keep * 4 > value.length) return redact(entity);
    return `****${value.slice(value.length - keep)}`;
  }
  const chars = isAscii(value) ? value : Array.from(value);
  // Where the kept tail starts: at the `keep`-th letter/digit from the end (0 when there are no more than
  // `keep`; the length when `keep` is 0). Every letter/digit before it is masked.
  let cut = keep === 0 ? chars.length : 0;
  for (let i = chars.length - 1, kept = 0; i >= 0 && keep > 0; i--) {
    if (isMaskable(chars[i]!.codePointAt(0)!) && ++kept === keep) {
      cut = i;
      break;
    }
  }
  if (cut === 0) return value;
  let head = '';
  for (let i = 0; i < cut; i++) head += isMaskable(chars[i]!.codePointAt(0)!) ? '*' : chars[i]!;
  return head + (typeof chars === 'string' ? chars.slice(cut) : chars.slice(cut).join(''));
}

function isMaskable(cp: number): boolean {
  return cp >= 0x80 || isAlnumChar(cp);
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

/**
 * `partial` over UTF-8 bytes, for a cell masked whole (the `label` is a column name, not a secret entity):
 * the result is the UTF-8 of `partial(label, text, keep)`. An ASCII cell is starred in place; one with a
 * character beyond ASCII goes through `partial` on its text. `start`/`end` pick the value out of a larger
 * buffer (a cell in a row).
 */
export function partialBytes(value: Buffer, keep = 4, start = 0, end = value.length): Buffer {
  // (beyond ASCII, the text path; looked at before copying, so such a cell is not copied for nothing)
  for (let i = start; i < end; i++) if (value[i]! >= 0x80) return Buffer.from(partial('column', value.toString('utf8', start, end), keep), 'utf8');
  const out = Buffer.allocUnsafe(end - start);
  value.copy(out, 0, start, end);
  partialInPlace(out, keep);
  return out;
}

/**
 * `partial` on ASCII bytes where they lie, value[start, end): the masked text has the same length, so a
 * message can be masked without being rebuilt. False (and nothing changed) when a byte is beyond ASCII: a
 * character of several bytes becomes one `*`, and the caller masks a copy instead.
 */
export function partialInPlace(value: Buffer, keep = 4, start = 0, end = value.length): boolean {
  keep = keep < 0 || !Number.isFinite(keep) ? 4 : Math.ceil(keep);
  for (let i = start; i < end; i++) if (value[i]! >= 0x80) return false;
  let cut = keep === 0 ? end : start;
  for (let i = end - 1, kept = 0; i >= start && keep > 0; i--) {
    if (isAlnumChar(value[i]!) && ++kept === keep) {
      cut = i;
      break;
    }
  }
  for (let i = start; i < cut; i++) if (isAlnumChar(value[i]!)) value[i] = 42; // '*'
  return true;
}

/** Keyed HMAC-SHA256 token: the same (key, entity, value) gives the same token; nothing is reversible. */
export function hashToken(entity: string, value: string, key: string | Uint8Array): string {
  const h = createHmac('sha256', key).update(entity).update('\0').update(value).digest('hex');
  return `[HASH:${entity}:${h.slice(0, 8)}]`;
}

/**
 * Per-session table of placeholders (`<EMAIL_1>`) ↔ originals. The same original always gets the same
 * placeholder within a vault; `restore` puts originals back into a reply (for example the LLM's answer).
 *
 * A vault built on a `numbering` vault (one per tunnel) takes its placeholders from it, so a value has the
 * same placeholder in every session and no two values ever share one, but it restores only the placeholders
 * issued through itself: a placeholder another session was given stays as it is.
 */
export class PseudonymVault {
  readonly #byValue = new Map<string, string>();
  readonly #byPlaceholder = new Map<string, string>();
  /** Originals as they go inside a JSON string, by placeholder (filled by restoreJson as it meets them). */
  readonly #jsonEscaped = new Map<string, string>();
  readonly #counters = new Map<string, number>();
  readonly #numbering: PseudonymVault | null;

  constructor(numbering?: PseudonymVault) {
    this.#numbering = numbering ?? null;
  }

  placeholderFor(entity: string, value: string): string {
    const k = `${entity}\0${value}`;
    const existing = this.#byValue.get(k);
    if (existing !== undefined) return existing;
    let ph: string;
    if (this.#numbering) ph = this.#numbering.placeholderFor(entity, value);
    else {
      const n = (this.#counters.get(entity) ?? 0) + 1;
      this.#counters.set(entity, n);
      ph = `<${entity.toUpperCase()}_${n}>`;
    }
    this.#byValue.set(k, ph);
    this.#byPlaceholder.set(ph, value);
    return ph;
  }

  /** The original for a placeholder, if this vault issued it. */
  lookup(placeholder: string): string | undefined {
    return this.#byPlaceholder.get(placeholder);
  }

  get size(): number {
    return this.#byPlaceholder.size;
  }

  /** Replaces every placeholder this vault issued with its original. Unknown placeholders stay. */
  restore(text: string): string {
    if (this.#byPlaceholder.size === 0 || !text.includes('<')) return text;
    return text.replace(/<([A-Z][A-Z0-9_]*_\d+)>/g, (m) => this.#byPlaceholder.get(m) ?? m);
  }

  /**
   * Like `restore`, for JSON text: also finds `\u003c…\u003e`-escaped placeholders and JSON-escapes the
   * originals so that the result stays valid JSON.
   */
  restoreJson(text: string): string {
    if (this.#byPlaceholder.size === 0) return text;
    return text.replace(/(?:<|\\u003[cC])([A-Z][A-Z0-9_]*_\d+)(?:>|\\u003[eE])/g, (m, name: string) => {
      // A reply repeats its placeholders: each original is JSON-escaped once, then taken from #jsonEscaped.
      const issued = `<${name}>`;
      let escaped = this.#jsonEscaped.get(issued);
      if (escaped === undefined) {
        const v = this.#byPlaceholder.get(issued);
        if (v === undefined) return m;
        escaped = JSON.stringify(v).slice(1, -1);
        this.#jsonEscaped.set(issued, escaped);
      }
      return escaped;
    });
  }

  /** Forgets every original (end of session). */
  clear(): void {
    this.#byValue.clear();
    this.#byPlaceholder.clear();
    this.#jsonEscaped.clear();
    this.#counters.clear();
  }
}

export function createPseudonymVault(): PseudonymVault {
  return new PseudonymVault();
}

export interface MaskerContext {
  keep: number;
  hashKey: string | Uint8Array;
  vault: PseudonymVault;
}

/** The textual replacement for one value (`null` masks as redact in text). */
export function applyMasker(masker: MaskerName, entity: string, value: string, ctx: MaskerContext): string {
  switch (masker) {
    case 'redact':
    case 'null':
      return redact(entity);
    case 'partial':
      return partial(entity, value, ctx.keep);
    case 'hash':
      return hashToken(entity, value, ctx.hashKey);
    case 'pseudonymize':
      return ctx.vault.placeholderFor(entity, value);
  }
}
