import { lastoutSplit, trainingRows, type Dataset } from "@recsys/data";
import { datasetRequest, eventAt, timeOrder } from "./dataset-sources.js";
import { mergeCandidates } from "./merge.js";
import type { SourceSet } from "./source-set.js";
import type { SourceName, SourceResult } from "./types.js";

export interface RecallOptions {
  /** A new, empty source set (the function feeds it). */
  readonly createSources: () => SourceSet;
  /** Per-source budgets to measure (each source's list cut to the budget). */
  readonly budgets: readonly number[];
  /** Merged sizes to measure, for every budget. */
  readonly mergedSizes: readonly number[];
  /**
   * Which held-out event is predicted: "test" (sources fed with training + validation events) or
   * "val" (sources fed with training events only, for tuning). Default "test".
   */
  readonly target?: "test" | "val";
  /**
   * "replay" (default): each user is served at their target event's timestamp from the fed events
   * strictly before it, as a live system would have been.
   * "static": every fed event is visible and every user is served at one moment, one second
   * after the last fed event (popularity and co-watch counts from all non-test events, as the
   * protocol's baselines; trending and fresh as of the end of the log).
   */
  readonly mode?: "replay" | "static";
}

export interface SourceRecall {
  readonly source: SourceName;
  readonly budget: number;
  /** Fraction of evaluated users whose target item is in the source's list. */
  readonly recall: number;
  /** Mean list length (a source may return fewer than its budget). */
  readonly meanLength: number;
}

export interface MergedRecall {
  readonly budget: number;
  readonly size: number;
  readonly recall: number;
  readonly meanLength: number;
}

export interface RecallReport {
  readonly mode: "replay" | "static";
  readonly target: "test" | "val";
  readonly users: number;
  readonly perSource: readonly SourceRecall[];
  readonly merged: readonly MergedRecall[];
  /** Recall of the union of all sources at each budget (no size limit). */
  readonly union: readonly { readonly budget: number; readonly recall: number; readonly meanLength: number }[];
  /** Wall-clock milliseconds of the whole measurement. */
  readonly ms: number;
}

/**
 * Candidate recall under protocol `lastout` (../shared/PROTOCOL.md): for each evaluated user, is
 * the held-out item among each source's candidates at each budget, and among the merged
 * candidates at each (budget, merged size)? History = the user's kept events before the target.
 *
 * Sources are run once per user at the largest budget; a smaller budget is the prefix of that
 * list (every source here ranks deterministically, so its list at budget b is that prefix).
 */
export function candidateRecall(dataset: Dataset, options: RecallOptions): RecallReport {
  const started = performance.now();
  const mode = options.mode ?? "replay";
  const target = options.target ?? "test";
  if (options.budgets.length === 0) throw new RangeError("candidateRecall: no budgets given");
  const maxBudget = Math.max(...options.budgets);
  const events = dataset.events;
  const numUsers = dataset.users.ids.length;
  const split = lastoutSplit(events, numUsers);
  const fed = trainingRows(split, target === "test" ? "test" : "val");
  const targetRow = target === "test" ? split.testRow : split.valRow;

  // Evaluated users with their target rows, in the order they are served.
  const targets: number[] = [];
  for (let u = 0; u < numUsers; u++) if (targetRow[u]! >= 0) targets.push(targetRow[u]!);
  const servedOrder = timeOrder(events, targets);
  const feedOrder = timeOrder(events, fed);
  const sources = options.createSources();
  if (sources.clock !== -Infinity)
    throw new Error("candidateRecall: createSources must return a new source set (this one already answered requests)");
  let endOfLog = -Infinity;
  if (mode === "static") {
    for (const row of feedOrder) {
      sources.observe(eventAt(events, row));
      endOfLog = Math.max(endOfLog, events.timestamp[row]!);
    }
  }

  const perSourceHits = new Map<string, number>();
  const perSourceLength = new Map<string, number>();
  const mergedHits = new Float64Array(options.budgets.length * options.mergedSizes.length);
  const mergedLength = new Float64Array(mergedHits.length);
  const unionHits = new Float64Array(options.budgets.length);
  const unionLength = new Float64Array(options.budgets.length);
  let fedUpTo = 0;
  for (const row of servedOrder) {
    const user = events.user[row]!;
    const time = events.timestamp[row]!;
    const asOf = mode === "static" ? endOfLog + 1 : time;
    if (mode === "replay") {
      while (fedUpTo < feedOrder.length && events.timestamp[feedOrder[fedUpTo]!]! < time) {
        sources.observe(eventAt(events, feedOrder[fedUpTo]!));
        fedUpTo++;
      }
    }
    // History: the user's kept events before the target (training, and validation for "test").
    const history: number[] = [];
    for (let k = split.keptOffsets[user]!; k < split.keptOffsets[user + 1]!; k++) {
      const r = split.keptRows[k]!;
      if (r === row) break;
      history.push(events.item[r]!);
    }
    const positive = events.item[row]!;
    const run = sources.run(datasetRequest(dataset, user, history, asOf, maxBudget), { mergedSize: 0 });
    const watched = new Set(history);
    const weights = sources.weights;
    options.budgets.forEach((budget, b) => {
      const cut: SourceResult[] = run.results.map((r) => ({ source: r.source, candidates: r.candidates.slice(0, budget) }));
      for (const r of cut) {
        const key = `${r.source}\u0000${budget}`;
        perSourceLength.set(key, (perSourceLength.get(key) ?? 0) + r.candidates.length);
        if (r.candidates.some((c) => c.item === positive)) perSourceHits.set(key, (perSourceHits.get(key) ?? 0) + 1);
      }
      const union = mergeCandidates(cut, { size: Number.MAX_SAFE_INTEGER, watched, weights });
      unionLength[b]! += union.length;
      if (union.some((c) => c.item === positive)) unionHits[b]!++;
      options.mergedSizes.forEach((size, m) => {
        const merged = mergeCandidates(cut, { size, watched, weights });
        const cell = b * options.mergedSizes.length + m;
        mergedLength[cell]! += merged.length;
        if (merged.some((c) => c.item === positive)) mergedHits[cell]!++;
      });
    });
  }

  const users = servedOrder.length;
  const per = (x: number): number => (users === 0 ? 0 : x / users);
  const perSource: SourceRecall[] = [];
  for (const source of sources.names) {
    for (const budget of options.budgets) {
      const key = `${source}\u0000${budget}`;
      perSource.push({ source, budget, recall: per(perSourceHits.get(key) ?? 0), meanLength: per(perSourceLength.get(key) ?? 0) });
    }
  }
  const merged: MergedRecall[] = [];
  options.budgets.forEach((budget, b) =>
    options.mergedSizes.forEach((size, m) => {
      const cell = b * options.mergedSizes.length + m;
      merged.push({ budget, size, recall: per(mergedHits[cell]!), meanLength: per(mergedLength[cell]!) });
    }),
  );
  const union = options.budgets.map((budget, b) => ({ budget, recall: per(unionHits[b]!), meanLength: per(unionLength[b]!) }));
  return { mode, target, users, perSource, merged, union, ms: performance.now() - started };
}
