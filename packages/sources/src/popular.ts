import { growInt32 } from "./growable.js";
import { TimeGate } from "./time-gate.js";
import {
  checkRequest,
  watchedSet,
  type Candidate,
  type SourceName,
  type SourceRequest,
  type SourceResult,
  type StatefulSource,
  type WatchEvent,
} from "./types.js";

export interface PopularOptions {
  /** Defaults to "popular". */
  readonly name?: SourceName;
  /** Catalogue size hint (the structure grows when a larger item index is observed). */
  readonly numItems?: number;
}

/**
 * Most-popular (non-personalised): items ranked by their all-time watch count from events strictly
 * before the request time; score = count; ties by item index ascending. Items never watched are
 * not nominated.
 *
 * The items are kept sorted by count at all times with the constant-time increment of a
 * bucket-sorted array: `order` lists items by count descending, `start[c]` is the number of items
 * with count > c (the first position of the block of count c). Incrementing item i of count c
 * swaps it with the first item of its block and grows `start[c]` by one. A request walks `order`
 * from the top, so it costs O(budget + skipped history items + the last count block), not
 * O(catalogue).
 */
export class PopularSource implements StatefulSource {
  readonly name: SourceName;
  private readonly gate: TimeGate;
  private counts = new Int32Array(0);
  private order = new Int32Array(0);
  private pos = new Int32Array(0);
  private start: number[] = [0];
  private numItems = 0;

  constructor(options: PopularOptions = {}) {
    this.name = options.name ?? "popular";
    this.gate = new TimeGate((event) => this.increment(event.item));
    if (options.numItems !== undefined) this.ensureItem(options.numItems - 1);
  }

  observe(event: WatchEvent): void {
    this.gate.observe(event);
  }

  /** Applies the observed events before `time` (see `TimeGate`). */
  advanceTo(time: number): void {
    this.gate.advanceTo(time);
  }

  /** Every applied event is before this time. */
  get clock(): number {
    return this.gate.clock;
  }

  /** Watch count of `item` from events strictly before `asOf`. */
  countAt(item: number, asOf: number): number {
    this.gate.advanceTo(asOf);
    return item < this.numItems ? this.counts[item]! : 0;
  }

  candidates(request: SourceRequest): SourceResult {
    checkRequest(request);
    this.gate.advanceTo(request.asOf);
    const watched = watchedSet(request);
    const exclude = request.exclude;
    const budget = request.budget;
    const picked: number[] = [];
    if (budget > 0) {
      let boundary = -1;
      for (let p = 0; p < this.numItems; p++) {
        const item = this.order[p]!;
        const count = this.counts[item]!;
        if (count === 0 || (boundary >= 0 && count < boundary)) break;
        if (watched.has(item) || exclude?.has(item)) continue;
        picked.push(item);
        // Once full, keep collecting the rest of the last count block so that ties are decided
        // by item index, not by position inside the block.
        if (picked.length === budget) boundary = count;
      }
    }
    const counts = this.counts;
    picked.sort((a, b) => counts[b]! - counts[a]! || a - b);
    const candidates: Candidate[] = [];
    for (let k = 0; k < picked.length && k < budget; k++) candidates.push({ item: picked[k]!, score: counts[picked[k]!]! });
    return { source: this.name, candidates };
  }

  private ensureItem(item: number): void {
    if (item < this.numItems) return;
    const n = item + 1;
    this.counts = growInt32(this.counts, n);
    this.order = growInt32(this.order, n);
    this.pos = growInt32(this.pos, n);
    // New items have count 0: they go to the end of `order` (the count-0 block).
    for (let i = this.numItems; i < n; i++) {
      this.order[i] = i;
      this.pos[i] = i;
    }
    this.numItems = n;
  }

  private increment(item: number): void {
    this.ensureItem(item);
    const c = this.counts[item]!;
    const s = this.start[c]!;
    const p = this.pos[item]!;
    const other = this.order[s]!;
    this.order[s] = item;
    this.pos[item] = s;
    this.order[p] = other;
    this.pos[other] = p;
    this.start[c] = s + 1;
    this.counts[item] = c + 1;
    if (this.start.length === c + 1) this.start.push(0);
  }
}
