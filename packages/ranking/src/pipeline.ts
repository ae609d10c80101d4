/**
 * The full two-stage pipeline offline, for protocol lastout (../shared/PROTOCOL.md): for each
 * evaluated user, at the request time (`offlineRequestTime`: the time of the user's last visible
 * event, as a live request comes after it; never anything of the target event), the candidate
 * sources (fed with the allowed training events up to that time) nominate and merge candidates,
 * the ranker orders the merged list, and the result is a full ranking of the catalogue:
 *
 *   1. the merged candidates, by ranker logit (ties by merged position);
 *   2. then the other items the sources listed within their budgets (beyond the merged size), in
 *      the order the merge's round-robin would have continued with ("merged order");
 *   3. then every other item, in the protocol's tie order (they all get the same score).
 *
 * The run also measures each source's recall of the target at its budget and the merged list's
 * recall (the ceiling the ranker works under), and collects calibration data.
 */
import { type Dataset, type LastoutSplit, Rng, trainingRows, type UserScorer } from "@recsys/data";
import { datasetRequest, eventAt, mergeCandidates, timeOrder, type SourceSet } from "@recsys/sources";
import type { Ranker } from "./bundle.js";
import { rankingCandidates, rankingContextFromDataset, sourceItemStats } from "./dataset-inputs.js";

export interface PipelineOptions {
  readonly split: LastoutSplit;
  readonly target: "test" | "val";
  /** A fresh source set (no events), configured as when the ranker was trained. */
  readonly sources: SourceSet;
  /** Per-source budget of each request. */
  readonly budget: number;
  /** Merged list size (the ranker ranks this many candidates). */
  readonly mergedSize: number;
  /** Rankers to evaluate behind the same candidates, by name. */
  readonly rankers: readonly { readonly name: string; readonly ranker: Ranker }[];
  /** Negatives sampled per user from the merged list for the calibration table (default 20). */
  readonly calibrationNegatives?: number;
  readonly seed?: number;
  readonly onProgress?: (done: number, total: number) => void;
}

export interface CalibrationBucket {
  /** Mean predicted exp(logit) over the bucket's impressions. */
  readonly predicted: number;
  /** Mean realised watch time per impression (the target's weight for the positive, 0 for the others). */
  readonly realisedWatch: number;
  /** Realised odds: Σ watch time / number of negatives — what exp(logit) estimates under weighted LR. */
  readonly realisedOdds: number;
  readonly impressions: number;
  readonly positives: number;
}

export interface PipelineRun {
  readonly users: number;
  /** The final ranked list of each user (item indices), per ranker name and "merged-order"; null for users without a target. */
  readonly lists: ReadonlyMap<string, readonly (Int32Array | null)[]>;
  readonly sources: readonly { readonly source: string; readonly budget: number; readonly recall: number; readonly meanLength: number }[];
  readonly merged: { readonly size: number; readonly recall: number; readonly meanLength: number };
  /**
   * Per source (and "merged" for the unlimited merge's order), the 0-based position of each served
   * user's target in its list, -1 when absent: recall at any budget up to the run's is the share
   * below it.
   */
  readonly targetPositions: ReadonlyMap<string, Int32Array>;
  /** Per ranker: impressions bucketed by predicted exp(logit) (10 equal-count buckets). */
  readonly calibration: ReadonlyMap<string, readonly CalibrationBucket[]>;
  readonly seconds: number;
}

/** The name of the list that keeps the candidate stage's own order (no ranker). */
export const MERGED_ORDER = "merged-order";

export function runPipeline(dataset: Dataset, options: PipelineOptions): PipelineRun {
  const started = performance.now();
  const { split, target, sources } = options;
  const events = dataset.events;
  const numUsers = dataset.users.ids.length;
  if (split.testRow.length !== numUsers)
    throw new Error(`runPipeline: the split has ${split.testRow.length} users, the dataset ${numUsers}`);
  const fed = trainingRows(split, target === "test" ? "test" : "val");
  const targetRow = target === "test" ? split.testRow : split.valRow;
  // Users in order of their request time (then user index); the target's own time plays no part.
  const askedAt = new Float64Array(numUsers).fill(NaN);
  const users: number[] = [];
  for (let u = 0; u < numUsers; u++) {
    if (targetRow[u]! < 0) continue;
    askedAt[u] = offlineRequestTime(events, visibleRows(split, u, target));
    users.push(u);
  }
  users.sort((a, b) => askedAt[a]! - askedAt[b]! || a - b);
  const feed = timeOrder(events, fed);
  const stats = sourceItemStats(sources);
  const rng = new Rng(options.seed ?? 1, 31);
  const negatives = options.calibrationNegatives ?? 20;

  const lists = new Map<string, (Int32Array | null)[]>();
  for (const name of [MERGED_ORDER, ...options.rankers.map((r) => r.name)]) {
    if (lists.has(name)) throw new Error(`runPipeline: two lists named "${name}"`);
    lists.set(name, new Array<Int32Array | null>(numUsers).fill(null));
  }
  const calib = new Map<string, { p: number[]; w: number[]; y: number[] }>();
  for (const r of options.rankers) calib.set(r.name, { p: [], w: [], y: [] });
  const sourceHits = new Map<string, number>();
  const sourceLength = new Map<string, number>();
  let mergedHits = 0;
  let mergedLength = 0;
  const positions = new Map<string, Int32Array>();
  for (const name of [...sources.names, "merged"]) positions.set(name, new Int32Array(users.length).fill(-1));

  let fedUpTo = 0;
  let done = 0;
  for (const user of users) {
    const row = targetRow[user]!;
    const time = askedAt[user]!;
    while (fedUpTo < feed.length && events.timestamp[feed[fedUpTo]!]! <= time) {
      sources.observe(eventAt(events, feed[fedUpTo]!));
      fedUpTo++;
    }
    const historyRows = visibleRows(split, user, target);
    const history = Int32Array.from(historyRows, (r) => events.item[r]!);
    const watched = new Set(history);
    const positive = events.item[row]!;
    const run = sources.run(datasetRequest(dataset, user, history, time, options.budget, { watched }), { mergedSize: options.mergedSize });
    for (const r of run.results) {
      sourceLength.set(r.source, (sourceLength.get(r.source) ?? 0) + r.candidates.length);
      const at = r.candidates.findIndex((c) => c.item === positive);
      if (at >= 0) sourceHits.set(r.source, (sourceHits.get(r.source) ?? 0) + 1);
      const column = positions.get(r.source);
      if (column !== undefined) column[done] = at;
    }
    const merged = run.merged;
    const union = mergeCandidates(run.results, { size: Number.MAX_SAFE_INTEGER, watched, weights: sources.weights });
    for (let p = 0; p < merged.length; p++) {
      if (union[p]?.item !== merged[p]!.item)
        throw new Error("runPipeline: the merged list is not a prefix of the unlimited merge (merge policy changed?)");
    }
    mergedLength += merged.length;
    const positiveIndex = merged.findIndex((m) => m.item === positive);
    if (positiveIndex >= 0) mergedHits++;
    lists.get(MERGED_ORDER)![user] = Int32Array.from(union, (m) => m.item);
    positions.get("merged")![done] = union.findIndex((m) => m.item === positive);

    const ctx = rankingContextFromDataset(dataset, user, historyRows, time);
    const candidates = rankingCandidates(dataset, merged, stats, time);
    // Calibration sample: the positive (when retrieved) and `negatives` random other candidates.
    const sample: number[] = [];
    if (positiveIndex >= 0) {
      sample.push(positiveIndex);
      const others: number[] = [];
      for (let p = 0; p < merged.length; p++) if (p !== positiveIndex) others.push(p);
      for (let j = 0; j < Math.min(negatives, others.length); j++) {
        const pick = j + rng.int(others.length - j);
        const t = others[pick]!;
        others[pick] = others[j]!;
        others[j] = t;
        sample.push(t);
      }
    }
    const weight = events.weight[row]!;
    const realised = Number.isFinite(weight) && weight > 0 ? weight : 1;
    for (const { name, ranker } of options.rankers) {
      const logits = ranker.score(ctx, candidates, time);
      const order = Array.from(merged, (_, p) => p).sort((a, b) => logits[b]! - logits[a]! || a - b);
      const list = new Int32Array(union.length);
      order.forEach((p, k) => {
        list[k] = merged[p]!.item;
      });
      for (let k = merged.length; k < union.length; k++) list[k] = union[k]!.item;
      lists.get(name)![user] = list;
      const c = calib.get(name)!;
      for (const p of sample) {
        c.p.push(Math.exp(logits[p]!));
        c.y.push(p === positiveIndex ? 1 : 0);
        c.w.push(p === positiveIndex ? realised : 0);
      }
    }
    done++;
    if (options.onProgress !== undefined && done % 200 === 0) options.onProgress(done, users.length);
  }

  const per = (x: number): number => (users.length === 0 ? 0 : x / users.length);
  const calibration = new Map<string, CalibrationBucket[]>();
  for (const [name, c] of calib) calibration.set(name, buckets(c.p, c.w, c.y, 10));
  return {
    users: users.length,
    lists,
    sources: sources.names.map((source) => ({
      source,
      budget: options.budget,
      recall: per(sourceHits.get(source) ?? 0),
      meanLength: per(sourceLength.get(source) ?? 0),
    })),
    merged: { size: options.mergedSize, recall: per(mergedHits), meanLength: per(mergedLength) },
    targetPositions: positions,
    calibration,
    seconds: (performance.now() - started) / 1000,
  };
}

/** The user's visible rows for a target: kept rows before it (training + validation for "test"). */
function visibleRows(split: LastoutSplit, user: number, target: "test" | "val"): Int32Array {
  const lo = split.keptOffsets[user]!;
  const hi = split.keptOffsets[user + 1]! - (target === "test" ? 1 : 2);
  return split.keptRows.subarray(lo, hi);
}

/**
 * The time an offline request is served at: the timestamp of the user's last visible event (a
 * live request comes after the user's latest event). Nothing of the held-out event — neither its
 * item nor its timestamp — decides it. @recsys/eval's `requestTime` is the same rule.
 */
export function offlineRequestTime(events: Dataset["events"], historyRows: ArrayLike<number>): number {
  let t = -Infinity;
  for (let k = 0; k < historyRows.length; k++) t = Math.max(t, events.timestamp[historyRows[k]!]!);
  if (t === -Infinity) throw new Error("offlineRequestTime: the user has no visible event");
  return t;
}

/** Equal-count buckets of impressions sorted by predicted value. */
export function buckets(
  predicted: readonly number[],
  watch: readonly number[],
  label: readonly number[],
  count: number,
): CalibrationBucket[] {
  const n = predicted.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => predicted[a]! - predicted[b]!);
  const out: CalibrationBucket[] = [];
  for (let b = 0; b < count; b++) {
    const lo = Math.floor((b * n) / count);
    const hi = Math.floor(((b + 1) * n) / count);
    if (hi <= lo) continue;
    let p = 0;
    let w = 0;
    let pos = 0;
    for (let k = lo; k < hi; k++) {
      const i = order[k]!;
      p += predicted[i]!;
      w += watch[i]!;
      pos += label[i]!;
    }
    const m = hi - lo;
    out.push({ predicted: p / m, realisedWatch: w / m, realisedOdds: m - pos > 0 ? w / (m - pos) : NaN, impressions: m, positives: pos });
  }
  return out;
}

/**
 * A UserScorer over precomputed ranked lists (user → item indices, best first): the item at
 * position k scores (length − k); every other item scores −1, so the evaluator orders them by
 * the protocol's tie order. Exact in float32 for lists shorter than 2^24.
 */
export function listScorer(name: string, lists: readonly (Int32Array | null)[]): UserScorer {
  return {
    name,
    score(user: number, _historyRows: Int32Array, _asOf: number, out: Float32Array): void {
      out.fill(-1);
      const list = lists[user];
      if (list === null || list === undefined) return;
      if (list.length >= 1 << 24) throw new Error(`listScorer: list of ${list.length} items is too long for exact float32 scores`);
      for (let k = 0; k < list.length; k++) out[list[k]!] = list.length - k;
    },
  };
}
