import { growFloat64, growInt32 } from "./growable.js";
import { IntIntMap } from "./int-map.js";
import { TimeGate } from "./time-gate.js";
import { TopK } from "./top-k.js";
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

export interface CoWatchOptions {
  /** Defaults to "co-watch". */
  readonly name?: SourceName;
  /** Two watches of a user co-occur when at most `window` watches apart (>= 1). Default 10. */
  readonly window?: number;
  /** ... and at most this many seconds apart. Default: no limit. */
  readonly maxGapSeconds?: number;
  /** How many of the most recent distinct history items a request is scored from. Default 20. */
  readonly historyLength?: number;
  /**
   * Only the `maxNeighbors` most co-watched neighbours of each history item are scored (by raw
   * count; ties in the order they reached it). Default 200. Bounds the cost of a request.
   */
  readonly maxNeighbors?: number;
  /** Weight of the k-th most recent history item (k = 0 the latest) is recencyDecay^k. Default 0.9. */
  readonly recencyDecay?: number;
  /**
   * Similarity of history item h and candidate j from their co-watch count c(h, j) and watch
   * counts n(.): "cosine" = c / sqrt(n(h) n(j)) (default), "conditional" = c / n(h) = P(j | h).
   */
  readonly normalization?: "cosine" | "conditional";
  /** Catalogue size hint. */
  readonly numItems?: number;
}

/**
 * Co-watch counts of one item, its neighbours kept sorted by count descending at all times (the
 * constant-time increment of a bucket-sorted array, as in `PopularSource`): `items`/`counts` in
 * parallel typed arrays so that scoring iterates plain memory and can stop after the strongest
 * neighbours; `slot` maps a neighbour to its position; `start[c]` is the number of neighbours
 * with count > c.
 */
class NeighborList {
  private readonly slot = new IntIntMap();
  private readonly start: number[] = [0];
  items = new Int32Array(4);
  counts = new Int32Array(4);
  size = 0;

  increment(neighbor: number): void {
    let p = this.slot.get(neighbor);
    if (p < 0) {
      if (this.size === this.items.length) {
        this.items = growInt32(this.items, this.size + 1);
        this.counts = growInt32(this.counts, this.size + 1);
      }
      p = this.size++;
      this.items[p] = neighbor;
      this.counts[p] = 0;
      this.slot.set(neighbor, p);
    }
    const c = this.counts[p]!;
    const s = this.start[c]!;
    if (s !== p) {
      const other = this.items[s]!;
      this.items[s] = neighbor;
      this.items[p] = other;
      this.counts[p] = this.counts[s]!;
      this.slot.set(neighbor, s);
      this.slot.set(other, p);
    }
    this.counts[s] = c + 1;
    this.start[c] = s + 1;
    if (this.start.length === c + 1) this.start.push(0);
  }

  get(neighbor: number): number {
    const k = this.slot.get(neighbor);
    return k < 0 ? 0 : this.counts[k]!;
  }
}

/** The last `window` watches of one user (a ring buffer). */
interface RecentWatches {
  readonly items: Int32Array;
  readonly times: Float64Array;
  /** Number of watches seen (the next slot is size % window). */
  size: number;
}

/**
 * Co-watch item-to-item ("people who watched X also watched Y"), like gorse's item_to_item.
 *
 * State: for each item the number of times it was watched, and for each pair of items the number
 * of times one user watched both within `window` consecutive watches (and `maxGapSeconds`), from
 * events strictly before the request time (see `TimeGate`). Symmetric; a re-watch of the same
 * item is not a pair.
 *
 * A request is scored from the last `historyLength` distinct items of its history, the latest
 * weighted 1 and each older one `recencyDecay` times less: score(j) = sum over h of
 * weight(h) * sim(h, j). Each candidate reports the history item with the largest term as
 * `because` (ties: the more recent one).
 */
export class CoWatchSource implements StatefulSource {
  readonly name: SourceName;
  readonly window: number;
  readonly maxGapSeconds: number;
  readonly historyLength: number;
  readonly recencyDecay: number;
  readonly maxNeighbors: number;
  readonly normalization: "cosine" | "conditional";
  private readonly gate: TimeGate;
  private readonly recent = new Map<number, RecentWatches>();
  private neighbors: (NeighborList | undefined)[] = [];
  private watchCount = new Float64Array(0);
  // Normalisation factors by item, kept up to date as watches are applied.
  private invSqrtCount = new Float64Array(0);
  private invCount = new Float64Array(0);
  private ones = new Float64Array(0);
  private numItems = 0;
  // Scratch space of one request, by item index; reset after each request.
  private acc = new Float64Array(0);
  private best = new Float64Array(0);
  private because = new Int32Array(0);
  private touched = new Int32Array(0);

  constructor(options: CoWatchOptions = {}) {
    this.name = options.name ?? "co-watch";
    this.window = options.window ?? 10;
    this.maxGapSeconds = options.maxGapSeconds ?? Infinity;
    this.historyLength = options.historyLength ?? 20;
    this.recencyDecay = options.recencyDecay ?? 0.9;
    this.normalization = options.normalization ?? "cosine";
    this.maxNeighbors = options.maxNeighbors ?? 200;
    if (!(this.maxNeighbors >= 1)) throw new RangeError(`co-watch maxNeighbors must be >= 1, got ${this.maxNeighbors}`);
    if (!Number.isInteger(this.window) || this.window < 1)
      throw new RangeError(`co-watch window must be an integer >= 1, got ${this.window}`);
    if (!(this.maxGapSeconds > 0)) throw new RangeError(`co-watch maxGapSeconds must be positive, got ${this.maxGapSeconds}`);
    if (!Number.isInteger(this.historyLength) || this.historyLength < 1) {
      throw new RangeError(`co-watch historyLength must be an integer >= 1, got ${this.historyLength}`);
    }
    if (!(this.recencyDecay > 0 && this.recencyDecay <= 1)) {
      throw new RangeError(`co-watch recencyDecay must be in (0, 1], got ${this.recencyDecay}`);
    }
    if (this.normalization !== "cosine" && this.normalization !== "conditional") {
      throw new RangeError(`co-watch normalization must be "cosine" or "conditional", got ${String(this.normalization)}`);
    }
    this.gate = new TimeGate((event) => this.apply(event));
    if (options.numItems !== undefined && options.numItems > 0) this.ensureItem(options.numItems - 1);
  }

  observe(event: WatchEvent): void {
    this.gate.observe(event);
  }

  advanceTo(time: number): void {
    this.gate.advanceTo(time);
  }

  get clock(): number {
    return this.gate.clock;
  }

  /** Co-watch count of items a and b from events strictly before `asOf`. */
  coCountAt(a: number, b: number, asOf: number): number {
    this.gate.advanceTo(asOf);
    return this.neighbors[a]?.get(b) ?? 0;
  }

  /** Watch count of `item` from events strictly before `asOf`. */
  watchCountAt(item: number, asOf: number): number {
    this.gate.advanceTo(asOf);
    return item < this.numItems ? this.watchCount[item]! : 0;
  }

  candidates(request: SourceRequest): SourceResult {
    checkRequest(request);
    this.gate.advanceTo(request.asOf);
    if (request.budget === 0 || request.history.length === 0) return { source: this.name, candidates: [] };
    const acc = this.acc;
    const best = this.best;
    const because = this.because;
    const touched = this.touched;
    let numTouched = 0;
    // term(h, j) = weight(h) * c(h, j) * rowNorm[h] * colNorm[j]
    const rowNorm = this.normalization === "cosine" ? this.invSqrtCount : this.invCount;
    const colNorm = this.normalization === "cosine" ? this.invSqrtCount : this.ones;
    const used = new Set<number>();
    let weight = 1;
    for (let k = request.history.length - 1; k >= 0 && used.size < this.historyLength; k--) {
      const h = request.history[k]!;
      if (used.has(h)) continue;
      used.add(h);
      const w = weight;
      weight *= this.recencyDecay;
      const nbrs = this.neighbors[h];
      if (nbrs === undefined) continue;
      const hw = w * rowNorm[h]!;
      const ns = nbrs.items;
      const cs = nbrs.counts;
      const n = Math.min(nbrs.size, this.maxNeighbors);
      for (let q = 0; q < n; q++) {
        const j = ns[q]!;
        const term = cs[q]! * hw * colNorm[j]!;
        const a = acc[j]!;
        if (a === 0) touched[numTouched++] = j;
        acc[j] = a + term;
        // History is visited latest first, so ">" keeps the more recent item on ties.
        if (term > best[j]!) {
          best[j] = term;
          because[j] = h;
        }
      }
    }
    const watched = watchedSet(request);
    const exclude = request.exclude;
    const top = new TopK(request.budget);
    for (let q = 0; q < numTouched; q++) {
      const j = touched[q]!;
      const s = acc[j]!;
      if (s >= top.threshold && !watched.has(j) && exclude?.has(j) !== true) top.push(j, s);
    }
    const candidates: Candidate[] = top.sorted().map((c) => ({ item: c.item, score: c.score, because: because[c.item]! }));
    for (let q = 0; q < numTouched; q++) {
      const j = touched[q]!;
      acc[j] = 0;
      best[j] = 0;
    }
    return { source: this.name, candidates };
  }

  private ensureItem(item: number): void {
    if (item < this.numItems) return;
    const n = item + 1;
    this.watchCount = growFloat64(this.watchCount, n);
    this.invSqrtCount = growFloat64(this.invSqrtCount, n);
    this.invCount = growFloat64(this.invCount, n);
    if (this.ones.length < n) this.ones = growFloat64(this.ones, n).fill(1);
    this.touched = growInt32(this.touched, n);
    this.acc = growFloat64(this.acc, n);
    this.best = growFloat64(this.best, n);
    this.because = growInt32(this.because, n, -1);
    // Keep `neighbors` a packed array (assigning far past its end would make it a dictionary).
    while (this.neighbors.length < n) this.neighbors.push(undefined);
    this.numItems = n;
  }

  private apply(event: WatchEvent): void {
    const { user, item, timestamp } = event;
    this.ensureItem(item);
    this.watchCount[item]! += 1;
    this.invSqrtCount[item] = 1 / Math.sqrt(this.watchCount[item]!);
    this.invCount[item] = 1 / this.watchCount[item]!;
    let recent = this.recent.get(user);
    if (recent === undefined) {
      recent = { items: new Int32Array(this.window), times: new Float64Array(this.window), size: 0 };
      this.recent.set(user, recent);
    }
    const n = Math.min(recent.size, this.window);
    for (let k = 0; k < n; k++) {
      const other = recent.items[k]!;
      if (other === item || Math.abs(timestamp - recent.times[k]!) > this.maxGapSeconds) continue;
      this.addPair(item, other);
      this.addPair(other, item);
    }
    const slot = recent.size % this.window;
    recent.items[slot] = item;
    recent.times[slot] = timestamp;
    recent.size++;
  }

  private addPair(a: number, b: number): void {
    let nbrs = this.neighbors[a];
    if (nbrs === undefined) {
      nbrs = new NeighborList();
      this.neighbors[a] = nbrs;
    }
    nbrs.increment(b);
  }
}
