/**
 * Ranker training data, by replaying the candidate sources over the training rows
 * (@recsys/sources `replayExamples`): for each training watch at time t, the impressions are the
 * merged candidates the sources would have produced at t from events strictly before t, the
 * positive is what the user watched (weight = its watch time), the negatives a fixed-size random
 * subset of the other impressions (weight 1). Nothing after t is used: the sources are
 * time-gated, the item statistics come from the same gated sources, the user's context holds only
 * earlier rows and earlier impressions.
 */
import { type Dataset, Rng } from "@recsys/data";
import { replayExamples, type Provenance, type SourceSet } from "@recsys/sources";
import { provenanceOf, rankingContextFromDataset, sourceItemStats } from "./dataset-inputs.js";
import type { RankingCandidate, RankingContext } from "./types.js";

export interface ExampleOptions {
  /** Training event-log rows (deduplicated per user, e.g. `trainingRows(split, holdout)`). */
  readonly rows: ArrayLike<number>;
  /** Per-source budget of each request (sources with their own budget keep it). */
  readonly budget: number;
  /** Negatives sampled per example from the other merged candidates. */
  readonly negatives: number;
  /** At most this many examples per user (their last ones). */
  readonly maxExamplesPerUser: number;
  /** Examples need at least this many earlier rows. Default 1. */
  readonly minHistory?: number;
  /**
   * A positive the merged list missed: "drop" the example, or "keep" it, appended with the
   * provenance the sources' (budget-cut) lists give it (none when no source listed it) and no
   * merged position.
   */
  readonly missedPositives: "drop" | "keep";
  /**
   * Where the dataset logs impressions (the synthetic generator's slates): also use the items
   * shown to the user at the example's time and not watched as negatives (real skipped
   * impressions, with the provenance the sources give them).
   */
  readonly slateNegatives: boolean;
  readonly seed: number;
  /** Called every ~2 s with the number of replayed watches. */
  readonly onProgress?: (replayed: number, kept: number) => void;
}

/** Grows a typed array by doubling. */
class Column<T extends Int32Array | Float32Array | Float64Array | Uint8Array> {
  data: T;
  length = 0;
  constructor(private readonly make: (n: number) => T) {
    this.data = make(1024);
  }
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = this.make(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  view(): T {
    return this.data.subarray(0, this.length) as T;
  }
}

/**
 * The examples, columnar. Example e: user `user[e]`, time `asOf[e]`, visible history = the
 * user's first `historyLength[e]` rows of `userRows` (chronological), candidates
 * `candidateOffsets[e] .. candidateOffsets[e+1]` (the positive first).
 * Candidate c: dataset item `item[c]`, label, weight (watch time for the positive, 1 for
 * negatives), merged position (-1: not in the merged list), item stats at asOf, and per source
 * (in `sources` order) rank and score (NaN: not nominated by that source).
 */
export interface RankingExamples {
  readonly sources: readonly string[];
  readonly user: Int32Array;
  readonly row: Int32Array;
  readonly asOf: Float64Array;
  readonly historyLength: Int32Array;
  readonly candidateOffsets: Int32Array;
  readonly item: Int32Array;
  readonly label: Uint8Array;
  readonly weight: Float32Array;
  readonly position: Int32Array;
  readonly watchCount: Float32Array;
  readonly trending: Float64Array;
  /** candidates × sources (scores in float64, exactly as the sources gave them). */
  readonly rank: Float32Array;
  readonly score: Float64Array;
  /** Rows by user (chronological) and their offsets: the histories. */
  readonly userRows: Int32Array;
  readonly userOffsets: Int32Array;
  readonly stats: {
    readonly replayed: number;
    readonly kept: number;
    /** Watches whose item the merged list contained. */
    readonly positiveInMerged: number;
    readonly droppedMissed: number;
    readonly keptMissed: number;
    readonly slateNegatives: number;
    readonly seconds: number;
  };
}

/** Builds the examples by replaying `sources` (a fresh set with no events) over `options.rows`. */
export function buildRankingExamples(dataset: Dataset, sources: SourceSet, options: ExampleOptions): RankingExamples {
  const started = performance.now();
  if (!Number.isInteger(options.negatives) || options.negatives < 0)
    throw new Error(`negatives must be a non-negative integer, got ${options.negatives}`);
  const events = dataset.events;
  const numUsers = dataset.users.ids.length;
  const names = sources.names;
  const k = names.length;
  const stats = sourceItemStats(sources);
  const rng = new Rng(options.seed, 11);

  // Histories: rows by user, chronological (the replay's own order).
  const userRows = Int32Array.from(options.rows).sort();
  const userOffsets = new Int32Array(numUsers + 1);
  for (const r of userRows) userOffsets[events.user[r]! + 1]!++;
  for (let u = 0; u < numUsers; u++) userOffsets[u + 1]! += userOffsets[u]!;

  const imp = dataset.impressions;
  const hasImpressions = imp.user.length > 0;

  const exUser = new Column((n) => new Int32Array(n));
  const exRow = new Column((n) => new Int32Array(n));
  const exAsOf = new Column((n) => new Float64Array(n));
  const exHistory = new Column((n) => new Int32Array(n));
  const offsets = new Column((n) => new Int32Array(n));
  offsets.push(0);
  const cItem = new Column((n) => new Int32Array(n));
  const cLabel = new Column((n) => new Uint8Array(n));
  const cWeight = new Column((n) => new Float32Array(n));
  const cPosition = new Column((n) => new Int32Array(n));
  const cCount = new Column((n) => new Float32Array(n));
  const cTrending = new Column((n) => new Float64Array(n));
  const cRank = new Column((n) => new Float32Array(n));
  const cScore = new Column((n) => new Float64Array(n));

  const addCandidate = (
    item: number,
    label: number,
    weight: number,
    position: number,
    provenance: readonly Provenance[],
    asOf: number,
  ): void => {
    cItem.push(item);
    cLabel.push(label);
    cWeight.push(weight);
    cPosition.push(position);
    const s = stats(item, asOf);
    cCount.push(s.watchCount);
    cTrending.push(s.trending);
    const base = cRank.length;
    for (let j = 0; j < k; j++) {
      cRank.push(NaN);
      cScore.push(NaN);
    }
    for (const p of provenance) {
      const j = names.indexOf(p.source);
      if (j < 0) continue;
      cRank.data[base + j] = p.rank;
      cScore.data[base + j] = p.score;
    }
  };

  let replayed = 0;
  let inMerged = 0;
  let droppedMissed = 0;
  let keptMissed = 0;
  let slateCount = 0;
  let lastReport = performance.now();
  const chosen = new Set<number>();
  const pool: number[] = [];
  for (const ex of replayExamples(dataset, sources, {
    rows: options.rows,
    budget: options.budget,
    maxExamplesPerUser: options.maxExamplesPerUser,
    ...(options.minHistory === undefined ? {} : { minHistory: options.minHistory }),
  })) {
    replayed++;
    if (options.onProgress !== undefined && performance.now() - lastReport > 2000) {
      lastReport = performance.now();
      options.onProgress(replayed, exUser.length);
    }
    const merged = ex.candidates;
    if (ex.positiveIndex >= 0) inMerged++;
    else if (options.missedPositives === "drop") {
      droppedMissed++;
      continue;
    } else keptMissed++;
    const w = events.weight[ex.row]!;
    const weight = Number.isFinite(w) && w > 0 ? w : 1;
    exUser.push(ex.user);
    exRow.push(ex.row);
    exAsOf.push(ex.asOf);
    exHistory.push(ex.history.length);
    // The positive first.
    if (ex.positiveIndex >= 0) addCandidate(ex.positive, 1, weight, ex.positiveIndex, merged[ex.positiveIndex]!.provenance, ex.asOf);
    else addCandidate(ex.positive, 1, weight, -1, provenanceOf(ex.results, ex.positive), ex.asOf);
    // Negatives: a uniform sample without replacement of the other merged candidates.
    pool.length = 0;
    for (let p = 0; p < merged.length; p++) if (p !== ex.positiveIndex) pool.push(p);
    const take = Math.min(options.negatives, pool.length);
    chosen.clear();
    chosen.add(ex.positive);
    for (let j = 0; j < take; j++) {
      const pick = j + rng.int(pool.length - j);
      const p = pool[pick]!;
      pool[pick] = pool[j]!;
      pool[j] = p;
      const m = merged[p]!;
      chosen.add(m.item);
      addCandidate(m.item, 0, 1, p, m.provenance, ex.asOf);
    }
    if (options.slateNegatives && hasImpressions) {
      for (let r = imp.userOffsets[ex.user]!; r < imp.userOffsets[ex.user + 1]!; r++) {
        if (imp.timestamp[r] !== ex.asOf || imp.clicked[r] === 1) continue;
        const item = imp.item[r]!;
        if (chosen.has(item)) continue;
        chosen.add(item);
        const position = merged.findIndex((m) => m.item === item);
        addCandidate(item, 0, 1, position, position >= 0 ? merged[position]!.provenance : provenanceOf(ex.results, item), ex.asOf);
        slateCount++;
      }
    }
    offsets.push(cItem.length);
  }
  return {
    sources: names,
    user: exUser.view(),
    row: exRow.view(),
    asOf: exAsOf.view(),
    historyLength: exHistory.view(),
    candidateOffsets: offsets.view(),
    item: cItem.view(),
    label: cLabel.view(),
    weight: cWeight.view(),
    position: cPosition.view(),
    watchCount: cCount.view(),
    trending: cTrending.view(),
    rank: cRank.view(),
    score: cScore.view(),
    userRows,
    userOffsets,
    stats: {
      replayed,
      kept: exUser.length,
      positiveInMerged: inMerged,
      droppedMissed,
      keptMissed,
      slateNegatives: slateCount,
      seconds: (performance.now() - started) / 1000,
    },
  };
}

/** Number of examples. */
export function exampleCount(examples: RankingExamples): number {
  return examples.user.length;
}

/** The context of example `e` (the user's earlier rows, searches and impressions before its time). */
export function exampleContext(dataset: Dataset, examples: RankingExamples, e: number): RankingContext {
  const u = examples.user[e]!;
  const start = examples.userOffsets[u]!;
  return rankingContextFromDataset(dataset, u, examples.userRows.subarray(start, start + examples.historyLength[e]!), examples.asOf[e]!);
}

/** The candidates of example `e` as the ranker sees them (the positive first). */
export function exampleCandidates(dataset: Dataset, examples: RankingExamples, e: number): RankingCandidate[] {
  const ids = dataset.items.ids;
  const k = examples.sources.length;
  const out: RankingCandidate[] = [];
  for (let c = examples.candidateOffsets[e]!; c < examples.candidateOffsets[e + 1]!; c++) {
    const provenance: Provenance[] = [];
    for (let j = 0; j < k; j++) {
      const rank = examples.rank[c * k + j]!;
      if (!Number.isNaN(rank)) provenance.push({ source: examples.sources[j]!, rank, score: examples.score[c * k + j]! });
    }
    out.push({
      itemId: ids[examples.item[c]!]!,
      provenance,
      position: examples.position[c]!,
      stats: { watchCount: examples.watchCount[c]!, trending: examples.trending[c]! },
    });
  }
  return out;
}
