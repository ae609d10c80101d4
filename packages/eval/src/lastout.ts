/**
 * Protocol `lastout` of ../shared/PROTOCOL.md, steps 3–5: full-ranking evaluation of UserScorers.
 *
 * For each evaluated user (one with a test event), the scorer sees the history before the target
 * (target "test": training + validation events; target "val": training events only) and fills a
 * score for every catalogue item. History items are removed; the target's rank is the number of
 * remaining items with a strictly higher score plus those with an equal score and a lower item
 * index (ties by item id ascending, which is item index order). Metrics:
 * HR@k = [rank < k], NDCG@k = 1/log2(rank + 2) if rank < k, MRR = 1/(rank + 1), averaged over
 * users; coverage@k = distinct items in any user's top-k / catalogue size.
 */
import type { Dataset, LastoutSplit, UserScorer } from "@recsys/data";

export type Target = "test" | "val";

export interface EvaluateOptions {
  readonly dataset: Dataset;
  readonly split: LastoutSplit;
  readonly scorers: readonly UserScorer[];
  readonly target: Target;
  /** Cut-offs for HR/NDCG (default [10, 50]). */
  readonly ks?: readonly number[];
  /** Cut-off for coverage (default 10). */
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
}

export interface LastoutResult {
  readonly protocol: "lastout";
  readonly target: Target;
  readonly users: number;
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

/** Evaluates every scorer on the same users; throws on a non-finite score. */
export function evaluateLastout(options: EvaluateOptions): LastoutResult {
  const { dataset, split, target } = options;
  const ks = options.ks ?? [10, 50];
  const coverageK = options.coverageK ?? 10;
  for (const k of [...ks, coverageK]) if (!Number.isInteger(k) || k < 1) throw new Error(`evaluateLastout: cut-off ${k} must be a positive integer`);
  const numItems = dataset.items.ids.length;
  const numUsers = dataset.users.ids.length;
  if (split.testRow.length !== numUsers) throw new Error(`evaluateLastout: the split has ${split.testRow.length} users, the dataset ${numUsers}`);
  const every = options.progressEvery ?? 1000;

  const scores = new Float32Array(numItems);
  const excludedBy = new Int32Array(numItems).fill(-1); // user index that excludes the item
  const topItems = new Int32Array(coverageK);
  const topScores = new Float32Array(coverageK);
  const covered = new Uint8Array(numItems);
  const results: ScorerResult[] = [];

  for (const scorer of options.scorers) {
    const started = performance.now();
    excludedBy.fill(-1);
    covered.fill(0);
    const hits = new Float64Array(ks.length);
    const ndcg = new Float64Array(ks.length);
    let mrr = 0;
    let users = 0;
    for (let u = 0; u < numUsers; u++) {
      const history = historyRows(split, u, target);
      if (history === null) continue;
      const targetRow = target === "test" ? split.testRow[u]! : split.valRow[u]!;
      const targetItem = dataset.events.item[targetRow]!;
      const asOf = dataset.events.timestamp[targetRow]!;
      for (let k = 0; k < history.length; k++) excludedBy[dataset.events.item[history[k]!]!] = u;
      scores.fill(0);
      scorer.score(u, history, asOf, scores);

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
        if (s > targetScore || (s === targetScore && i < targetItem)) rank++;
        // Partial top-k: items arrive in index order, so an equal score never displaces.
        if (topCount < coverageK) {
          let p = topCount++;
          while (p > 0 && topScores[p - 1]! < s) {
            topScores[p] = topScores[p - 1]!;
            topItems[p] = topItems[p - 1]!;
            p--;
          }
          topScores[p] = s;
          topItems[p] = i;
        } else if (s > topScores[coverageK - 1]!) {
          let p = coverageK - 1;
          while (p > 0 && topScores[p - 1]! < s) {
            topScores[p] = topScores[p - 1]!;
            topItems[p] = topItems[p - 1]!;
            p--;
          }
          topScores[p] = s;
          topItems[p] = i;
        }
      }
      for (let p = 0; p < topCount; p++) covered[topItems[p]!] = 1;
      for (let j = 0; j < ks.length; j++) {
        if (rank < ks[j]!) {
          hits[j]! += 1;
          ndcg[j]! += 1 / Math.log2(rank + 2);
        }
      }
      mrr += 1 / (rank + 1);
      users++;
      if (options.onProgress !== undefined && users % every === 0) options.onProgress(scorer.name, users, split.evaluatedUsers);
    }
    let coveredCount = 0;
    for (let i = 0; i < numItems; i++) coveredCount += covered[i]!;
    const metrics: Record<string, number> = {};
    ks.forEach((k, j) => {
      metrics[`hr@${k}`] = users > 0 ? hits[j]! / users : NaN;
      metrics[`ndcg@${k}`] = users > 0 ? ndcg[j]! / users : NaN;
    });
    metrics["mrr"] = users > 0 ? mrr / users : NaN;
    metrics[`coverage@${coverageK}`] = numItems > 0 ? coveredCount / numItems : NaN;
    results.push({ name: scorer.name, users, metrics, seconds: (performance.now() - started) / 1000 });
  }
  return { protocol: "lastout", target, users: split.evaluatedUsers, results };
}
