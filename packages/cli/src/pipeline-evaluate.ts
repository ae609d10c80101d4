/**
 * The two-stage pipeline's part of `recsys evaluate`: when the model directory holds a ranker
 * (DIR/ranker/, and DIR/ranker-noprov/ for the provenance ablation), evaluate the full pipeline
 * (sources → merge → ranker → top-N, see @recsys/ranking `runPipeline`) with protocol lastout on
 * the same users as the model and the baselines, and report:
 *
 *   "pipeline":                    lastout metrics of the full pipeline, plus watch_dcg@10
 *   "pipeline_without_provenance": the same for the ranker trained with --no-provenance
 *   "merged_order":                the candidate stage alone (merged list order, no ranker)
 *   "sources":                     recall of each source at its budget, and of the merged list
 *   "watch_time":                  watch_dcg@10 of every ranking (see below)
 *   "calibration":                 per ranker, held-out impressions bucketed by exp(logit)
 *
 * watch_dcg@10 (watch-time-weighted DCG): the mean over evaluated users of
 * w · [r < 10] / log2(r + 2), where r is the rank of the user's held-out item and w its watch
 * time (watch_seconds; the rating on ml-100k). It is NDCG@10's discount applied to the realised
 * watch time of the held-out impression: the expected watch time a top-10 list captures from the
 * item the user actually watched next. Higher is better; the unit is the weight's.
 */
import { access } from "node:fs/promises";
import { join } from "node:path";
import { type CandidateGenBundle, createDatasetScorer } from "@recsys/candidate-gen";
import type { Dataset, LastoutSplit, UserScorer } from "@recsys/data";
import { evaluateLastout, historyRows, type Target } from "@recsys/eval";
import { type CalibrationBucket, listScorer, loadRanker, MERGED_ORDER, type Ranker, runPipeline } from "@recsys/ranking";
import { createPipelineSources, rankerDir } from "./pipeline-setup.js";

export interface PipelineReport {
  readonly pipeline: Readonly<Record<string, number>>;
  readonly pipeline_without_provenance?: Readonly<Record<string, number>>;
  readonly merged_order: Readonly<Record<string, number>>;
  readonly sources: Readonly<Record<string, { readonly recall: number; readonly budget: number; readonly size?: number }>>;
  readonly watch_time: Readonly<Record<string, number>>;
  readonly calibration: Readonly<Record<string, readonly CalibrationBucket[]>>;
  readonly ranker: { readonly modelVersion: string; readonly budget: number; readonly mergedSize: number; readonly seconds: number };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Ranks (0-based, after removing history items; ties by item index) of each user's target, -1 for users without one. */
export function targetRanks(dataset: Dataset, split: LastoutSplit, target: Target, scorer: UserScorer): Int32Array {
  const numUsers = dataset.users.ids.length;
  const numItems = dataset.items.ids.length;
  const ranks = new Int32Array(numUsers).fill(-1);
  const scores = new Float32Array(numItems);
  const excluded = new Int32Array(numItems).fill(-1);
  for (let u = 0; u < numUsers; u++) {
    const history = historyRows(split, u, target);
    if (history === null) continue;
    const row = target === "test" ? split.testRow[u]! : split.valRow[u]!;
    const item = dataset.events.item[row]!;
    for (let k = 0; k < history.length; k++) excluded[dataset.events.item[history[k]!]!] = u;
    scores.fill(0);
    scorer.score(u, history, dataset.events.timestamp[row]!, scores);
    const s = scores[item]!;
    let rank = 0;
    for (let i = 0; i < numItems; i++) {
      if (excluded[i] === u) continue;
      const v = scores[i]!;
      if (v > s || (v === s && i < item)) rank++;
    }
    ranks[u] = rank;
  }
  return ranks;
}

/** watch_dcg@k: mean over users with a target of weight · [rank < k] / log2(rank + 2) (weight 1 when missing). */
export function watchDcg(dataset: Dataset, split: LastoutSplit, target: Target, ranks: Int32Array, k = 10): number {
  let sum = 0;
  let users = 0;
  for (let u = 0; u < ranks.length; u++) {
    const r = ranks[u]!;
    if (r < 0) continue;
    users++;
    if (r >= k) continue;
    const row = target === "test" ? split.testRow[u]! : split.valRow[u]!;
    const w = dataset.events.weight[row]!;
    sum += (Number.isFinite(w) && w > 0 ? w : 1) / Math.log2(r + 2);
  }
  return users > 0 ? sum / users : NaN;
}

/** The pipeline part of the readable report: metrics by column, source recall, calibration. */
export function formatPipelineTable(report: PipelineReport, metricOrder: readonly string[]): string {
  const columns: [string, Readonly<Record<string, number>>][] = [
    ["pipeline", report.pipeline],
    ...(report.pipeline_without_provenance === undefined ? [] : [["no-provenance", report.pipeline_without_provenance] as [string, Readonly<Record<string, number>>]]),
    ["merged-order", report.merged_order],
  ];
  const width = Math.max(14, ...columns.map(([name]) => name.length + 2));
  const lines = [
    "",
    `pipeline  sources → merge (${report.ranker.budget} per source, ${report.ranker.mergedSize} merged) → ranker ${report.ranker.modelVersion}; ` +
      "items outside the merged list follow in merged order, then by item id",
    "",
    "metric".padEnd(14) + columns.map(([name]) => name.padStart(width)).join(""),
  ];
  for (const m of [...metricOrder, "watch_dcg@10"]) {
    lines.push(m.padEnd(14) + columns.map(([, metrics]) => (metrics[m] ?? NaN).toFixed(4).padStart(width)).join(""));
  }
  lines.push("", "candidate recall of the test item (the ranker's ceiling):");
  for (const [name, s] of Object.entries(report.sources)) {
    lines.push(`  ${name.padEnd(14)} ${s.recall.toFixed(4)}  (${s.size === undefined ? `budget ${s.budget}` : `size ${s.size}`})`);
  }
  lines.push("", "calibration (held-out impressions by predicted exp(logit)): predicted / realised odds");
  for (const [name, buckets] of Object.entries(report.calibration)) {
    lines.push(`  ${name}: ${buckets.map((b) => `${b.predicted.toPrecision(3)}/${b.realisedOdds.toPrecision(3)}`).join("  ")}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * The pipeline entries of the report, or null when `modelDir` has no ranker. `others` are the
 * scorers already evaluated (model and baselines), for the watch_dcg comparison.
 */
export async function evaluatePipeline(options: {
  readonly dataset: Dataset;
  readonly split: LastoutSplit;
  readonly target: Target;
  readonly modelDir: string;
  readonly bundle: CandidateGenBundle;
  readonly baselines?: readonly UserScorer[];
  readonly log: (message: string) => void;
}): Promise<PipelineReport | null> {
  const { dataset, split, target, modelDir, bundle, log } = options;
  const mainDir = rankerDir(modelDir, true);
  if (!(await exists(join(mainDir, "manifest.json")))) return null;
  const rankers: { name: string; ranker: Ranker }[] = [{ name: "pipeline", ranker: await loadRanker(mainDir) }];
  const ablationDir = rankerDir(modelDir, false);
  if (await exists(join(ablationDir, "manifest.json"))) rankers.push({ name: "pipeline_without_provenance", ranker: await loadRanker(ablationDir) });
  try {
    const main = rankers[0]!.ranker.manifest;
    for (const { name, ranker } of rankers) {
      const m = ranker.manifest;
      if (m.datasetFingerprint !== dataset.fingerprint) throw new Error(`the ranker of "${name}" was trained on dataset "${m.datasetSpec}", not this one; retrain it with recsys train-ranker`);
      if (m.candidateGenVersion !== bundle.manifest.modelVersion) {
        throw new Error(`the ranker of "${name}" was trained behind bundle ${m.candidateGenVersion}, but ${modelDir} holds ${bundle.manifest.modelVersion}; retrain it with recsys train-ranker`);
      }
      if (m.holdout !== bundle.manifest.holdout) throw new Error(`the ranker of "${name}" was trained with holdout ${m.holdout}, the bundle with ${bundle.manifest.holdout}`);
      if (m.pipeline.budget !== main.pipeline.budget || m.pipeline.mergedSize !== main.pipeline.mergedSize) {
        throw new Error(`the rankers were trained behind different candidate settings (${JSON.stringify(m.pipeline)} vs ${JSON.stringify(main.pipeline)})`);
      }
    }
    log(`pipeline: ranker ${main.modelVersion}${rankers.length > 1 ? ` and ablation ${rankers[1]!.ranker.manifest.modelVersion}` : ""}, budget ${main.pipeline.budget} per source, merged ${main.pipeline.mergedSize}`);
    const run = runPipeline(dataset, {
      split,
      target,
      sources: createPipelineSources(dataset, bundle, main.pipeline),
      budget: main.pipeline.budget,
      mergedSize: main.pipeline.mergedSize,
      rankers,
      onProgress: (done, total) => {
        if (done % 1000 === 0) log(`pipeline: ${done}/${total} users`);
      },
    });
    log(`pipeline: ${run.users} users through sources, merge and ${rankers.length} ranker(s) in ${run.seconds.toFixed(1)} s; merged recall ${run.merged.recall.toFixed(4)}`);
    const scorers = [...rankers.map((r) => listScorer(r.name, run.lists.get(r.name)!)), listScorer(MERGED_ORDER, run.lists.get(MERGED_ORDER)!)];
    const result = evaluateLastout({ dataset, split, target, scorers });
    const metrics = new Map(result.results.map((r) => [r.name, { ...r.metrics }]));
    const watch: Record<string, number> = {};
    const model = createDatasetScorer(bundle, dataset);
    for (const s of [...scorers, model, ...(options.baselines ?? [])]) {
      const key = s === model ? "model" : s.name === MERGED_ORDER ? "merged_order" : s.name;
      watch[key] = watchDcg(dataset, split, target, targetRanks(dataset, split, target, s));
    }
    for (const [name, m] of metrics) m["watch_dcg@10"] = watch[name === MERGED_ORDER ? "merged_order" : name]!;
    const sources: Record<string, { recall: number; budget: number; size?: number }> = {};
    for (const s of run.sources) sources[s.source] = { recall: s.recall, budget: s.budget };
    sources["merged"] = { recall: run.merged.recall, budget: main.pipeline.budget, size: run.merged.size };
    const calibration: Record<string, readonly CalibrationBucket[]> = {};
    for (const [name, c] of run.calibration) calibration[name] = c;
    return {
      pipeline: metrics.get("pipeline")!,
      ...(metrics.has("pipeline_without_provenance") ? { pipeline_without_provenance: metrics.get("pipeline_without_provenance")! } : {}),
      merged_order: metrics.get(MERGED_ORDER)!,
      sources,
      watch_time: watch,
      calibration,
      ranker: { modelVersion: main.modelVersion, budget: main.pipeline.budget, mergedSize: main.pipeline.mergedSize, seconds: run.seconds },
    };
  } finally {
    for (const r of rankers) r.ranker.dispose();
  }
}
