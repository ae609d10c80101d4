import { RankedScores } from "./ranked-scores.js";
import { TimeGate } from "./time-gate.js";
import {
  checkRequest,
  watchedSet,
  type SourceName,
  type SourceRequest,
  type SourceResult,
  type StatefulSource,
  type WatchEvent,
} from "./types.js";

export interface TrendingOptions {
  /** Defaults to "trending", or "trending-geo" when `userGeo` is given. */
  readonly name?: SourceName;
  /** Half-life of an event's weight, seconds (> 0). */
  readonly halfLifeSeconds: number;
  /**
   * Per-geography trending ("Trending in your area"): the geo code of a user, or -1 when unknown
   * (that user's events are then not counted). When set, a request is answered from the counts
   * of its `geo` only, and a request without `geo` gets an empty list.
   */
  readonly userGeo?: (user: number) => number;
}

/**
 * Items with a score, best first (see `TrendingSource.scoresAt`): `items[p]` scores
 * `sums[p] * scale`, and the scores never increase along the list. Read at once: the arrays
 * change with the next event.
 */
export interface ItemScores {
  readonly items: readonly number[];
  readonly sums: readonly number[];
  readonly scale: number;
}

const NO_SCORES: ItemScores = { items: [], sums: [], scale: 1 };

/** Rescale the stored sums when the newest event is this many half-lives after the reference. */
const RESCALE_HALF_LIVES = 256;

/**
 * Decayed counts of one population (everyone, or one geography).
 *
 * The decayed count of item i at time t is sum over its events e of 2^(-(t - t_e) / halfLife).
 * It is stored as sum[i] = sum of 2^((t_e - ref) / halfLife) for a reference time `ref`, so an
 * event costs O(1) plus the places the item climbs in the ranking, and the ranking of items does
 * not depend on t (a common factor); the value at t is sum[i] * 2^((ref - t) / halfLife). When
 * events get far ahead of `ref` the sums are rescaled to a new reference (O(items), rare) so
 * they never overflow.
 */
class DecayedCounts {
  readonly sums = new RankedScores();
  private ref = Number.NaN;
  /** The last `scale` computed and its time (requests ask for many items at one time). */
  private scaleTime = Number.NaN;
  private scaleValue = 0;

  constructor(private readonly halfLife: number) {}

  add(item: number, timestamp: number): void {
    if (Number.isNaN(this.ref)) this.setRef(timestamp);
    let exponent = (timestamp - this.ref) / this.halfLife;
    if (exponent > RESCALE_HALF_LIVES) {
      // After ~1074 half-lives every old contribution is below the smallest double: the factor
      // underflows to 0 and the old counts are forgotten (they are 0 at any time from now on).
      const factor = Math.pow(2, -exponent);
      if (factor > 0) this.sums.scaleAll(factor);
      else this.sums.clear();
      this.setRef(timestamp);
      exponent = 0;
    }
    this.sums.add(item, Math.pow(2, exponent));
  }

  private setRef(timestamp: number): void {
    this.ref = timestamp;
    this.scaleTime = Number.NaN;
  }

  /** Factor turning a stored sum into the decayed count at `time`. */
  scale(time: number): number {
    if (Number.isNaN(this.ref)) return 0;
    if (time !== this.scaleTime) {
      this.scaleValue = Math.pow(2, (this.ref - time) / this.halfLife);
      this.scaleTime = time;
    }
    return this.scaleValue;
  }
}

/**
 * Trending (non-personalised): items ranked by their exponentially time-decayed watch count at the
 * request time, from events strictly before it; score = the decayed count; ties by item index.
 */
export class TrendingSource implements StatefulSource {
  readonly name: SourceName;
  readonly halfLifeSeconds: number;
  private readonly gate: TimeGate;
  private readonly global: DecayedCounts;
  private readonly byGeo = new Map<number, DecayedCounts>();
  private readonly userGeo: ((user: number) => number) | undefined;

  constructor(options: TrendingOptions) {
    if (!(options.halfLifeSeconds > 0) || !Number.isFinite(options.halfLifeSeconds)) {
      throw new RangeError(`trending halfLifeSeconds must be a positive number, got ${options.halfLifeSeconds}`);
    }
    this.halfLifeSeconds = options.halfLifeSeconds;
    this.userGeo = options.userGeo;
    this.name = options.name ?? (options.userGeo === undefined ? "trending" : "trending-geo");
    this.global = new DecayedCounts(options.halfLifeSeconds);
    this.gate = new TimeGate((event) => this.apply(event));
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

  /**
   * Decayed count of `item` at `asOf` over everyone (or over geography `geo` when given and this
   * source is per-geography), from events strictly before `asOf`.
   */
  scoreAt(item: number, asOf: number, geo?: number): number {
    this.gate.advanceTo(asOf);
    const counts = this.countsFor(geo);
    if (counts === undefined) return 0;
    return counts.sums.get(item) * counts.scale(asOf);
  }

  /**
   * Every item with a count (over everyone, or over `geo` as in `scoreAt`) and its decayed count
   * at `asOf`: the values `scoreAt` returns, in one pass over the ranking instead of one lookup
   * per item. Items it does not list have count 0.
   */
  scoresAt(asOf: number, geo?: number): ItemScores {
    this.gate.advanceTo(asOf);
    const counts = this.countsFor(geo);
    if (counts === undefined) return NO_SCORES;
    const { items, scores } = counts.sums.entries();
    return { items, sums: scores, scale: counts.scale(asOf) };
  }

  candidates(request: SourceRequest): SourceResult {
    checkRequest(request);
    this.gate.advanceTo(request.asOf);
    const counts = this.countsFor(request.geo);
    if (counts === undefined || (this.userGeo !== undefined && request.geo === undefined)) {
      return { source: this.name, candidates: [] };
    }
    const watched = watchedSet(request);
    const exclude = request.exclude;
    const scale = counts.scale(request.asOf);
    const candidates = counts.sums
      .top(request.budget, (i) => watched.has(i) || exclude?.has(i) === true)
      .map((c) => ({ item: c.item, score: c.score * scale }));
    return { source: this.name, candidates };
  }

  private countsFor(geo: number | undefined): DecayedCounts | undefined {
    if (this.userGeo === undefined) return this.global;
    return geo === undefined ? undefined : this.byGeo.get(geo);
  }

  private apply(event: WatchEvent): void {
    if (this.userGeo === undefined) {
      this.global.add(event.item, event.timestamp);
      return;
    }
    const geo = this.userGeo(event.user);
    if (geo < 0) return;
    let counts = this.byGeo.get(geo);
    if (counts === undefined) {
      counts = new DecayedCounts(this.halfLifeSeconds);
      this.byGeo.set(geo, counts);
    }
    counts.add(event.item, event.timestamp);
  }
}
