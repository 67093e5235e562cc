/**
 * Custom detectors from configuration: `{ name, pattern, validator?, context? }`.
 *
 * Patterns run over the whole input (they have no trigger in the combined pre-filter), so they must not
 * backtrack catastrophically: `checkRegexSafety` rejects the shapes that do (nested unbounded quantifiers,
 * overlapping alternatives or adjacent overlapping quantifiers under a quantifier, backreferences) by
 * walking a small parse of the pattern. It is conservative: it may reject a safe pattern, never the reverse
 * for those shapes.
 */
import { DlpctlError } from '../errors.js';
import { isBuiltinEntity } from './entities.js';
import { VALIDATORS } from './validators.js';

export interface CustomDetectorSpec {
  name: string;
  pattern: string;
  /** Name of a built-in validator: `luhn`, `mod97`, `iban`, `ssn`, `entropy`. */
  validator?: string;
  /** Words of which one must appear within ~50 characters of the match (case-insensitive). */
  context?: readonly string[];
  /** Regex flags; only `i` and `u` are accepted. */
  flags?: string;
}

export interface CustomDetector {
  readonly name: string;
  readonly regex: RegExp;
  readonly validator?: ((value: string) => boolean) | undefined;
  readonly context?: readonly string[] | undefined;
}

// ---------------------------------------------------------------------------------------------------------
// a small regex parser: enough structure to find the dangerous shapes

/** A set of "first characters": 128 ASCII bits plus a flag for everything else. */
interface CharSet {
  bits: Uint8Array; // 128 entries of 0/1
  other: boolean;
}

type Node =
  | { t: 'char'; set: CharSet }
  | { t: 'seq'; items: Node[] }
  | { t: 'alt'; alts: Node[] }
  | { t: 'group'; body: Node; look: boolean }
  | { t: 'quant'; body: Node; min: number; max: number }
  | { t: 'backref' }
  | { t: 'assert' };

function emptySet(): CharSet {
  return { bits: new Uint8Array(128), other: false };
}
function fullSet(): CharSet {
  const s = emptySet();
  s.bits.fill(1);
  s.other = true;
  return s;
}
function setOf(pred: (c: number) => boolean, other: boolean): CharSet {
  const s = emptySet();
  for (let c = 0; c < 128; c++) if (pred(c)) s.bits[c] = 1;
  s.other = other;
  return s;
}
function union(a: CharSet, b: CharSet): CharSet {
  const s = emptySet();
  for (let c = 0; c < 128; c++) s.bits[c] = a.bits[c]! | b.bits[c]!;
  s.other = a.other || b.other;
  return s;
}
function intersects(a: CharSet, b: CharSet): boolean {
  if (a.other && b.other) return true;
  for (let c = 0; c < 128; c++) if (a.bits[c]! & b.bits[c]!) return true;
  return false;
}
function negate(a: CharSet): CharSet {
  const s = emptySet();
  for (let c = 0; c < 128; c++) s.bits[c] = a.bits[c] ? 0 : 1;
  s.other = true;
  return s;
}

const isD = (c: number): boolean => c >= 48 && c <= 57;
const isW = (c: number): boolean => isD(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const isS = (c: number): boolean => c === 32 || (c >= 9 && c <= 13);

class Parser {
  i = 0;
  groups = 0;
  readonly src: string;
  readonly ci: boolean;
  constructor(src: string, ci: boolean) {
    this.src = src;
    this.ci = ci;
  }

  fail(msg: string): never {
    throw new Error(msg);
  }

  parseAlt(): Node {
    const alts: Node[] = [this.parseSeq()];
    while (this.src[this.i] === '|') {
      this.i++;
      alts.push(this.parseSeq());
    }
    return alts.length === 1 ? alts[0]! : { t: 'alt', alts };
  }

  parseSeq(): Node {
    const items: Node[] = [];
    while (this.i < this.src.length && this.src[this.i] !== '|' && this.src[this.i] !== ')') {
      let atom = this.parseAtom();
      atom = this.parseQuant(atom);
      items.push(atom);
    }
    return { t: 'seq', items };
  }

  parseQuant(atom: Node): Node {
    for (;;) {
      const c = this.src[this.i];
      let min: number;
      let max: number;
      if (c === '*') [min, max] = [0, Infinity];
      else if (c === '+') [min, max] = [1, Infinity];
      else if (c === '?') [min, max] = [0, 1];
      else if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i));
        if (m === null) return atom;
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        this.i += m[0].length - 1;
      } else return atom;
      this.i++;
      if (this.src[this.i] === '?') this.i++; // lazy
      atom = { t: 'quant', body: atom, min, max };
    }
  }

  charLit(c: number): CharSet {
    const s = emptySet();
    if (c < 128) {
      s.bits[c] = 1;
      if (this.ci) {
        const ch = String.fromCharCode(c);
        s.bits[ch.toLowerCase().charCodeAt(0)] = 1;
        s.bits[ch.toUpperCase().charCodeAt(0)] = 1;
      }
    } else s.other = true;
    return s;
  }

  /** Parses an escape after '\' (this.i points past the backslash); returns a set, or a node. */
  parseEscape(inClass: boolean): CharSet | Node {
    const c = this.src[this.i++];
    if (c === undefined) this.fail('the pattern ends with a lone backslash');
    switch (c) {
      case 'd': return setOf(isD, false);
      case 'D': return setOf((x) => !isD(x), true);
      case 'w': return setOf(isW, false);
      case 'W': return setOf((x) => !isW(x), true);
      case 's': return setOf(isS, true);
      case 'S': return setOf((x) => !isS(x), true);
      case 'n': return this.charLit(10);
      case 't': return this.charLit(9);
      case 'r': return this.charLit(13);
      case 'b':
        return inClass ? this.charLit(8) : { t: 'assert' };
      case 'B':
        return { t: 'assert' };
      case 'x': {
        const h = this.src.slice(this.i, this.i + 2);
        this.i += 2;
        return this.charLit(parseInt(h, 16));
      }
      case 'u': {
        if (this.src[this.i] === '{') {
          const e = this.src.indexOf('}', this.i);
          const cp = parseInt(this.src.slice(this.i + 1, e), 16);
          this.i = e + 1;
          return this.charLit(cp);
        }
        const h = this.src.slice(this.i, this.i + 4);
        this.i += 4;
        return this.charLit(parseInt(h, 16));
      }
      case 'p':
      case 'P': {
        if (this.src[this.i] === '{') this.i = this.src.indexOf('}', this.i) + 1;
        return fullSet();
      }
      case 'k':
        if (!inClass) return { t: 'backref' };
        return this.charLit(107);
      default:
        if (c >= '1' && c <= '9' && !inClass) return { t: 'backref' };
        return this.charLit(c.charCodeAt(0));
    }
  }

  parseClass(): CharSet {
    // this.i points past '['
    let neg = false;
    if (this.src[this.i] === '^') {
      neg = true;
      this.i++;
    }
    let set = emptySet();
    let first = true;
    while (this.i < this.src.length && (this.src[this.i] !== ']' || first)) {
      first = false;
      let lo: CharSet | Node;
      let loCode = -1;
      if (this.src[this.i] === '\\') {
        this.i++;
        lo = this.parseEscape(true);
      } else {
        loCode = this.src.charCodeAt(this.i++);
        lo = this.charLit(loCode);
      }
      if (this.src[this.i] === '-' && this.src[this.i + 1] !== ']' && this.i + 1 < this.src.length && loCode >= 0) {
        this.i++;
        let hiCode: number;
        if (this.src[this.i] === '\\') {
          this.i++;
          const e = this.parseEscape(true);
          hiCode = 'bits' in e ? e.bits.indexOf(1) : loCode;
          if (hiCode < 0) hiCode = 0x10ffff;
        } else hiCode = this.src.charCodeAt(this.i++);
        const r = emptySet();
        for (let c = loCode; c <= Math.min(hiCode, 127); c++) {
          r.bits[c] = 1;
          if (this.ci) {
            const ch = String.fromCharCode(c);
            r.bits[ch.toLowerCase().charCodeAt(0)] = 1;
            r.bits[ch.toUpperCase().charCodeAt(0)] = 1;
          }
        }
        if (hiCode > 127) r.other = true;
        set = union(set, r);
        continue;
      }
      if ('bits' in lo) set = union(set, lo);
    }
    if (this.src[this.i] !== ']') this.fail('unterminated character class');
    this.i++;
    return neg ? negate(set) : set;
  }

  parseAtom(): Node {
    const c = this.src[this.i++]!;
    switch (c) {
      case '(': {
        let look = false;
        if (this.src[this.i] === '?') {
          const rest = this.src.slice(this.i, this.i + 4);
          if (rest.startsWith('?:')) this.i += 2;
          else if (rest.startsWith('?=') || rest.startsWith('?!')) {
            this.i += 2;
            look = true;
          } else if (rest.startsWith('?<=') || rest.startsWith('?<!')) {
            this.i += 3;
            look = true;
          } else if (rest.startsWith('?<')) {
            this.i = this.src.indexOf('>', this.i) + 1;
            this.groups++;
          } else {
            // modifiers (?i:...)
            const m = /^\?[ims-]+:/.exec(this.src.slice(this.i));
            if (m === null) this.fail('unsupported group syntax');
            this.i += m[0].length;
          }
        } else this.groups++;
        const body = this.parseAlt();
        if (this.src[this.i] !== ')') this.fail('unbalanced parenthesis');
        this.i++;
        return { t: 'group', body, look };
      }
      case '[':
        return { t: 'char', set: this.parseClass() };
      case '.':
        return { t: 'char', set: fullSet() };
      case '^':
      case '$':
        return { t: 'assert' };
      case '\\': {
        const e = this.parseEscape(false);
        return 'bits' in e ? { t: 'char', set: e } : e;
      }
      default:
        return { t: 'char', set: this.charLit(c.charCodeAt(0)) };
    }
  }
}

interface Info {
  /** Can match the empty string. */
  nullable: boolean;
  /** Contains an unbounded (or large) quantifier. */
  unbounded: boolean;
  first: CharSet;
  /** Set of every character the node can consume. */
  all: CharSet;
}

const BIG = 16;

function analyze(n: Node, problems: string[]): Info {
  switch (n.t) {
    case 'char':
      return { nullable: false, unbounded: false, first: n.set, all: n.set };
    case 'assert':
      return { nullable: true, unbounded: false, first: emptySet(), all: emptySet() };
    case 'backref':
      problems.push('backreferences are not allowed (they can backtrack exponentially)');
      return { nullable: true, unbounded: true, first: fullSet(), all: fullSet() };
    case 'group':
      return analyze(n.body, problems);
    case 'alt': {
      const infos = n.alts.map((a) => analyze(a, problems));
      let first = emptySet();
      let all = emptySet();
      for (const x of infos) {
        first = union(first, x.first);
        all = union(all, x.all);
      }
      return { nullable: infos.some((x) => x.nullable), unbounded: infos.some((x) => x.unbounded), first, all };
    }
    case 'seq': {
      const infos = n.items.map((a) => analyze(a, problems));
      let first = emptySet();
      let all = emptySet();
      let nullable = true;
      for (const x of infos) {
        if (nullable) first = union(first, x.first);
        nullable = nullable && x.nullable;
        all = union(all, x.all);
      }
      // adjacent quantified items over overlapping characters: (\d+\d+), .*.*
      for (let k = 0; k + 1 < n.items.length; k++) {
        const a = n.items[k]!;
        const b = n.items[k + 1]!;
        if (a.t === 'quant' && b.t === 'quant' && a.max > BIG && b.max > BIG && intersects(infos[k]!.all, infos[k + 1]!.first)) {
          problems.push('adjacent unbounded quantifiers over overlapping characters (e.g. `\\d+\\d+` or `.*.*`) backtrack polynomially');
        }
      }
      return { nullable, unbounded: infos.some((x) => x.unbounded), first, all };
    }
    case 'quant': {
      const inner = analyze(n.body, problems);
      const repeats = n.max > 1;
      if (repeats && (n.max > BIG || n.max === Infinity)) {
        if (inner.unbounded && !delimited(n.body)) problems.push('nested quantifiers (e.g. `(a+)+` or `(.*)*`) backtrack exponentially');
        else if (inner.nullable) problems.push('a quantified group that can match the empty string (e.g. `(a?)*`) backtracks exponentially');
        const body = n.body.t === 'group' ? n.body.body : n.body;
        if (body.t === 'alt') {
          const firsts = body.alts.map((a) => analyze(a, []).first);
          outer: for (let x = 0; x < firsts.length; x++) {
            for (let y = x + 1; y < firsts.length; y++) {
              if (intersects(firsts[x]!, firsts[y]!)) {
                problems.push('overlapping alternatives under a quantifier (e.g. `(a|a)*` or `(\\w|\\d)+`) backtrack exponentially');
                break outer;
              }
            }
          }
        }
      }
      return {
        nullable: n.min === 0 || inner.nullable,
        unbounded: inner.unbounded || n.max > BIG,
        first: inner.first,
        all: inner.all,
      };
    }
  }
}

/**
 * `(?:-\d+)*`: each repetition starts with a mandatory character that nothing else in the body can
 * consume, so the repetitions cannot be split in more than one way.
 */
function delimited(body: Node): boolean {
  const b = body.t === 'group' ? body.body : body;
  if (b.t !== 'seq' || b.items.length < 2) return false;
  const head = b.items[0]!;
  if (head.t !== 'char') return false;
  for (let k = 1; k < b.items.length; k++) {
    const info = analyze(b.items[k]!, []);
    if (intersects(head.set, info.all)) return false;
    if (info.unbounded && !isSimpleRepeat(b.items[k]!)) return false;
  }
  return true;
}

/** `x*` / `x+` / `x{n,}` over a plain character set. */
function isSimpleRepeat(n: Node): boolean {
  if (n.t === 'quant') return n.body.t === 'char' || (n.body.t === 'group' && n.body.body.t === 'seq' && n.body.body.items.length === 1 && n.body.body.items[0]!.t === 'char');
  return n.t === 'char';
}

/**
 * Returns a human-readable reason when `source` does not compile or can backtrack catastrophically
 * (nested quantifiers, overlapping alternation under a quantifier, backreferences); `null` when it is
 * acceptable.
 */
export function checkRegexSafety(source: string, flags = ''): string | null {
  try {
    new RegExp(source, flags.replace(/[^imsu]/g, ''));
  } catch (err) {
    return `the pattern does not compile: ${(err as Error).message}`;
  }
  if (source.length > 2000) return 'the pattern is longer than 2000 characters';
  let ast: Node;
  try {
    const p = new Parser(source, flags.includes('i'));
    ast = p.parseAlt();
    if (p.i < source.length) return 'unbalanced parenthesis';
  } catch (err) {
    return `the pattern could not be analysed: ${(err as Error).message}`;
  }
  const problems: string[] = [];
  analyze(ast, problems);
  if (problems.length > 0) return problems[0]!;
  if (new RegExp(source, flags.replace(/[^imsu]/g, '')).test('')) {
    return 'the pattern matches the empty string';
  }
  return null;
}

const NAME_RE = /^[a-z][a-z0-9_]{0,63}$/;

/** Validates and compiles one custom detector; throws `DlpctlError('DLP_PATTERN')` saying why not. */
export function compileCustomDetector(spec: CustomDetectorSpec): CustomDetector {
  if (!NAME_RE.test(spec.name)) {
    throw new DlpctlError('DLP_PATTERN', `custom detector name "${spec.name}" must be lower-case letters, digits and underscores, starting with a letter`);
  }
  if (isBuiltinEntity(spec.name) || spec.name === 'secrets' || spec.name === 'pii' || spec.name === 'all') {
    throw new DlpctlError('DLP_PATTERN', `custom detector name "${spec.name}" is already a built-in entity or group; pick another name`);
  }
  const flags = spec.flags ?? '';
  if (/[^iu]/.test(flags)) throw new DlpctlError('DLP_PATTERN', `custom detector "${spec.name}": only the regex flags "i" and "u" are allowed`);
  const reason = checkRegexSafety(spec.pattern, flags);
  if (reason !== null) {
    throw new DlpctlError('DLP_PATTERN', `custom detector "${spec.name}": ${reason}; rewrite the pattern without it`);
  }
  let validator: ((v: string) => boolean) | undefined;
  if (spec.validator !== undefined) {
    validator = VALIDATORS[spec.validator];
    if (validator === undefined) {
      throw new DlpctlError('DLP_PATTERN', `custom detector "${spec.name}": unknown validator "${spec.validator}"; use one of ${Object.keys(VALIDATORS).join(', ')}`);
    }
  }
  return {
    name: spec.name,
    regex: new RegExp(spec.pattern, `g${flags}`),
    validator,
    context: spec.context?.map((w) => w.toLowerCase()),
  };
}
