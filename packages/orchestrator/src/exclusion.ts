/**
 * The items a request must never see, as the `ReadonlySet<number>` the candidate sources and the
 * merge take (`exclude`): the union of a few sets (the caller's excluded items, the taken-down
 * items) and an optional predicate (the request's filters), without copying any of them. Sources
 * only call `has`; iteration walks the catalogue's indices and exists for completeness.
 */
export class Exclusion implements ReadonlySet<number> {
  constructor(
    private readonly sets: readonly ReadonlySet<number>[],
    /** True for an item the filters drop. */
    private readonly rejects: ((item: number) => boolean) | undefined,
    /** Item indices are below this (the catalogue size). */
    private readonly universe: number,
  ) {}

  has(item: number): boolean {
    for (const set of this.sets) if (set.has(item)) return true;
    return this.rejects !== undefined && this.rejects(item);
  }

  *values(): SetIterator<number> {
    for (let item = 0; item < this.universe; item++) if (this.has(item)) yield item;
  }

  keys(): SetIterator<number> {
    return this.values();
  }

  *entries(): SetIterator<[number, number]> {
    for (const item of this.values()) yield [item, item];
  }

  [Symbol.iterator](): SetIterator<number> {
    return this.values();
  }

  get size(): number {
    let n = 0;
    for (const _ of this.values()) n++;
    return n;
  }

  forEach(callback: (value: number, key: number, set: ReadonlySet<number>) => void, thisArg?: unknown): void {
    for (const item of this.values()) callback.call(thisArg, item, item, this);
  }
}
