/**
 * The spans a scan finds, as parallel typed arrays (start, end, priority, entity number) instead of one
 * object each. PII-dense text has a finding every ~30 characters; an object per finding, alive until the
 * end of the scan, cost about a fifth of the scan's time in allocation and garbage collection, and so did
 * an array of entity names beside typed arrays (measured: an Int32Array of entity numbers costs nothing).
 */

const NO_INTS = new Int32Array(0);

/** Entity names by number, and numbers by name: built-in and custom names, numbered on first use. */
const NAMES: string[] = [];
const NUMBERS = new Map<string, number>();

function entityNumber(entity: string): number {
  let k = NUMBERS.get(entity);
  if (k === undefined) {
    k = NAMES.length;
    NAMES.push(entity);
    NUMBERS.set(entity, k);
  }
  return k;
}

export class SpanList {
  length = 0;
  #start: Int32Array = NO_INTS;
  #end: Int32Array = NO_INTS;
  #prio: Int32Array = NO_INTS;
  #entity: Int32Array = NO_INTS;

  push(entity: string, start: number, end: number, prio: number): void {
    const n = this.length;
    if (n === this.#start.length) this.#grow(n === 0 ? 8 : n * 2);
    this.#start[n] = start;
    this.#end[n] = end;
    this.#prio[n] = prio;
    this.#entity[n] = entityNumber(entity);
    this.length = n + 1;
  }

  start(i: number): number {
    return this.#start[i]!;
  }
  end(i: number): number {
    return this.#end[i]!;
  }
  prio(i: number): number {
    return this.#prio[i]!;
  }
  entity(i: number): string {
    return NAMES[this.#entity[i]!]!;
  }

  setRange(i: number, start: number, end: number): void {
    this.#start[i] = start;
    this.#end[i] = end;
  }

  /** Copies span `from` over span `to` (to ≤ from), for compaction in place. */
  move(from: number, to: number): void {
    this.#start[to] = this.#start[from]!;
    this.#end[to] = this.#end[from]!;
    this.#prio[to] = this.#prio[from]!;
    this.#entity[to] = this.#entity[from]!;
  }

  truncate(n: number): void {
    if (n < this.length) this.length = n;
  }

  /** Spans per entity. */
  counts(n = this.length): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const e = NAMES[this.#entity[i]!]!;
      out[e] = (out[e] ?? 0) + 1;
    }
    return out;
  }

  /** Whether the spans are in `order` already (they arrive almost sorted: one trigger after the other). */
  isSorted(order: (a: number, b: number) => number): boolean {
    for (let k = 1; k < this.length; k++) if (order(k - 1, k) > 0) return false;
    return true;
  }

  /** Sorts the spans by `order` (a comparison of two indices). */
  sort(order: (a: number, b: number) => number): void {
    const n = this.length;
    const idx = Array.from({ length: n }, (_, k) => k).sort(order);
    const start = new Int32Array(this.#start.length);
    const end = new Int32Array(this.#start.length);
    const prio = new Int32Array(this.#start.length);
    const entity = new Int32Array(this.#start.length);
    for (let k = 0; k < n; k++) {
      const j = idx[k]!;
      start[k] = this.#start[j]!;
      end[k] = this.#end[j]!;
      prio[k] = this.#prio[j]!;
      entity[k] = this.#entity[j]!;
    }
    this.#start = start;
    this.#end = end;
    this.#prio = prio;
    this.#entity = entity;
  }

  #grow(cap: number): void {
    const start = new Int32Array(cap);
    start.set(this.#start);
    const end = new Int32Array(cap);
    end.set(this.#end);
    const prio = new Int32Array(cap);
    prio.set(this.#prio);
    const entity = new Int32Array(cap);
    entity.set(this.#entity);
    this.#start = start;
    this.#end = end;
    this.#prio = prio;
    this.#entity = entity;
  }
}
