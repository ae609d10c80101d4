/**
 * Protocols `lastout` and `lastout-shuffled` of ../shared/PROTOCOL.md, steps 3–5: full-ranking
 * evaluation of UserScorers.
 *
 * For each evaluated user (one with a test event), the scorer sees the history before the target
 * (target "test": training + validation events; target "val": training events only) and fills a
 * score for every catalogue item. The request is served at the **time of the user's last visible
 * event** (`requestTime`): a live request comes after the user's latest event, and nothing about
 * the target event (not its item, not its timestamp) reaches the scorer. History items are
 * removed; the target's rank is the number of remaining items with a strictly higher score plus
 * those with an equal score that come first in the tie order (item id ascending under `lastout`,
 * the seeded permutation under `lastout-shuffled`). Metrics: HR@k = [rank < k],
 * NDCG@k = 1/log2(rank + 2) if rank < k, MRR = 1/(rank + 1), averaged over users;
 * coverage@k = distinct items in any user's top-k / catalogue size.
 *
 * Each result also keeps the per-user ranks (for curves and paired intervals) and how often each
 * item appeared in a top-`coverageK` list (for coverage and popularity bias).
 */
import type { Dataset, LastoutSplit, UserScorer } from "@recsys/data";
import { idTieOrder, type TieOrder } from "./tie-order.js";

export type Target = "test" | "val";

export interface EvaluateOptions {
  readonly dataset: Dataset;
  readonly split: LastoutSplit;
  readonly scorers: readonly UserScorer[];
  readonly target: Target;
  /** Order of equal scores (default: item id, protocol lastout). */
  readonly tieOrder?: TieOrder;
  /** Cut-offs for HR/NDCG (default [10, 50]). */
  readonly ks?: readonly number[];
  /** Cut-off for coverage and the top-k counts (default 10). */
  readonly coverageK?: number;
  /** Called every ~`progressEvery` users (default 1000) with (scorer, users done, users total). */
  readonly onProgress?: (scorer: string, done: number, total: number) => void;
  readonly progressEvery?: number;
}

export interface ScorerResult {
  readonly name: string;
  /** Users evaluated. */
  readonly users: number;
  /** "hr@10", "ndcg@10", "hr@50", "ndcg@50", "mrr", "coverage@10" (for the default ks). */
  readonly metrics: Readonly<Record<string, number>>;
  /** Wall-clock seconds spent scoring and ranking. */
  readonly seconds: number;
  /** 0-based rank of the target of each evaluated user, in `LastoutResult.userIndex` order. */
  readonly ranks: Int32Array;
  /** Per item index: number of users whose top-`coverageK` list holds it. */
  readonly topCounts: Int32Array;
}

export interface LastoutResult {
  readonly protocol: TieOrder["protocol"];
  readonly target: Target;
  readonly users: number;
  /** Dataset user index of each evaluated user (ascending). */
  readonly userIndex: Int32Array;
  readonly results: readonly ScorerResult[];
}

/** The metric names in report order for the given cut-offs. */
export function metricNames(ks: readonly number[] = [10, 50], coverageK = 10): string[] {
  return [...ks.flatMap((k) => [`hr@${k}`, `ndcg@${k}`]), "mrr", `coverage@${coverageK}`];
}

/**
 * The user's visible history for a target: kept rows before the target event (a view, no copy).
 * `null` for users without a target (fewer than 3 kept events).
 */
export function historyRows(split: LastoutSplit, user: number, target: Target): Int32Array | null {
  if (split.testRow[user] === -1) return null;
  const lo = split.keptOffsets[user]!;
  const hi = split.keptOffsets[user + 1]! - (target === "test" ? 1 : 2);
  return split.keptRows.subarray(lo, hi);
}

/**
 * The time an offline request is served at: the timestamp of the user's last visible event (the
 * latest of `historyRows`), as a live request would come after it. Never the target's time.
 */
export function requestTime(dataset: Dataset, historyRows: ArrayLike<number>): number {
  let t = -Infinity;
  for (let k = 0; k < historyRows.length; k++) t = Math.max(t, dataset.events.timestamp[historyRows[k]!]!);
  if (t === -Infinity) throw new Error("requestTime: the user has no visible event");
  return t;
}

/** Evaluates every scorer on the same users; throws on a non-finite score. */
export function evaluateLastout(options: EvaluateOptions): LastoutResult {
  const { dataset, split, target } = options;
  const ks = options.ks ?? [10, 50];
  const coverageK = options.coverageK ?? 10;
  for (const k of [...ks, coverageK])
    if (!Number.isInteger(k) || k < 1) throw new Error(`evaluateLastout: cut-off ${k} must be a positive integer`);
  const numItems = dataset.items.ids.length;
  const numUsers = dataset.users.ids.length;
  if (split.testRow.length !== numUsers)
    throw new Error(`evaluateLastout: the split has ${split.testRow.length} users, the dataset ${numUsers}`);
  const tieOrder = options.tieOrder ?? idTieOrder(numItems);
  const tie = tieOrder.rank;
  if (tie.length !== numItems) throw new Error(`evaluateLastout: the tie order has ${tie.length} items, the catalogue ${numItems}`);
  const every = options.progressEvery ?? 1000;
  const userIndex = Int32Array.from({ length: numUsers }, (_, u) => u).filter((u) => split.testRow[u] !== -1);

  const scores = new Float32Array(numItems);
  const excludedBy = new Int32Array(numItems).fill(-1); // user index that excludes the item
  const topItems = new Int32Array(coverageK);
  const topScores = new Float32Array(coverageK);
  const results: ScorerResult[] = [];
  // a before b in the ranking (score, then tie order)?
  const before = (sa: number, a: number, sb: number, b: number): boolean => sa > sb || (sa === sb && tie[a]! < tie[b]!);

  for (const scorer of options.scorers) {
    const started = performance.now();
    excludedBy.fill(-1);
    const topCounts = new Int32Array(numItems);
    const ranks = new Int32Array(userIndex.length);
    const hits = new Float64Array(ks.length);
    const ndcg = new Float64Array(ks.length);
    let mrr = 0;
    let users = 0;
    for (const u of userIndex) {
      const history = historyRows(split, u, target)!;
      const targetRow = target === "test" ? split.testRow[u]! : split.valRow[u]!;
      const targetItem = dataset.events.item[targetRow]!;
      for (let k = 0; k < history.length; k++) excludedBy[dataset.events.item[history[k]!]!] = u;
      scores.fill(0);
      scorer.score(u, history, requestTime(dataset, history), scores);

      const targetScore = scores[targetItem]!;
      let rank = 0;
      let topCount = 0;
      for (let i = 0; i < numItems; i++) {
        const s = scores[i]!;
        if (!Number.isFinite(s)) {
          throw new Error(
            `scorer "${scorer.name}" returned a non-finite score (${s}) for item "${dataset.items.ids[i]}" (index ${i}) ` +
              `and user "${dataset.users.ids[u]}" (index ${u}); scores must be finite numbers`,
          );
        }
        if (excludedBy[i] === u) continue;
        if (i !== targetItem && before(s, i, targetScore, targetItem)) rank++;
        // Partial top-k by (score, tie order).
        if (topCount < coverageK || before(s, i, topScores[coverageK - 1]!, topItems[coverageK - 1]!)) {
          let p = topCount < coverageK ? topCount++ : coverageK - 1;
          while (p > 0 && before(s, i, topScores[p - 1]!, topItems[p - 1]!)) {
            topScores[p] = topScores[p - 1]!;
            topItems[p] = topItems[p - 1]!;
            p--;
          }
          topScores[p] = s;
          topItems[p] = i;
        }
      }
      for (let p = 0; p < topCount; p++) topCounts[topItems[p]!]!++;
      for (let j = 0; j < ks.length; j++) {
        if (rank < ks[j]!) {
          hits[j]! += 1;
          ndcg[j]! += 1 / Math.log2(rank + 2);
        }
      }
      mrr += 1 / (rank + 1);
      ranks[users++] = rank;
      if (options.onProgress !== undefined && users % every === 0) options.onProgress(scorer.name, users, split.evaluatedUsers);
    }
    let coveredCount = 0;
    for (let i = 0; i < numItems; i++) if (topCounts[i]! > 0) coveredCount++;
    const metrics: Record<string, number> = {};
    ks.forEach((k, j) => {
      metrics[`hr@${k}`] = users > 0 ? hits[j]! / users : NaN;
      metrics[`ndcg@${k}`] = users > 0 ? ndcg[j]! / users : NaN;
    });
    metrics["mrr"] = users > 0 ? mrr / users : NaN;
    metrics[`coverage@${coverageK}`] = numItems > 0 ? coveredCount / numItems : NaN;
    results.push({ name: scorer.name, users, metrics, seconds: (performance.now() - started) / 1000, ranks, topCounts });
  }
  return { protocol: tieOrder.protocol, target, users: split.evaluatedUsers, userIndex, results };
}
