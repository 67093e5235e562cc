/**
 * A small bounded cache that keeps what is used: two generations of `Map`. New entries and hits go to the young
 * one; when it holds half the bound, it becomes the old one and the previous old one is dropped whole. An entry
 * used at least once per half-bound of insertions stays; the rest age out.
 *
 * (A single `Map` evicting its oldest key at each insertion — `keys().next()` then `delete` — costs time in
 * proportion to the keys already evicted: V8 leaves each deleted entry as a hole at the front of the table
 * until it is rebuilt, and the iterator walks over every hole. At 10,000 entries, with every statement text
 * new — a driver that inlines its parameters — that walk was a visible share of a tunnel's CPU per statement.)
 */
export class Lru<K, V> {
  readonly #half: number;
  #young = new Map<K, V>();
  #old = new Map<K, V>();

  /** `max`: the most entries held (at least 2). */
  constructor(max: number) {
    this.#half = Math.max(1, Math.floor(max / 2));
  }

  get(key: K): V | undefined {
    const v = this.#young.get(key);
    if (v !== undefined) return v;
    const o = this.#old.get(key);
    if (o !== undefined) {
      this.#old.delete(key);
      this.#insert(key, o);
    }
    return o;
  }

  set(key: K, value: V): void {
    this.#old.delete(key);
    if (this.#young.has(key)) this.#young.set(key, value);
    else this.#insert(key, value);
  }

  #insert(key: K, value: V): void {
    if (this.#young.size >= this.#half) {
      this.#old = this.#young;
      this.#young = new Map();
    }
    this.#young.set(key, value);
  }

  get size(): number {
    return this.#young.size + this.#old.size;
  }

  clear(): void {
    this.#young.clear();
    this.#old.clear();
  }
}
