/**
 * The two-stage pipeline's part of `recsys evaluate`: when the model directory holds a ranker
 * (DIR/ranker/, and DIR/ranker-noprov/ for the provenance ablation), evaluate the full pipeline
 * (sources → merge → ranker → top-N, see @recsys/ranking `runPipeline`) on the same users as the
 * model and the baselines, under the same protocol (tie order), and return:
 *
 *   "pipeline":                    the full pipeline's ranked lists, evaluated
 *   "pipeline_without_provenance": the same for the ranker trained with --no-provenance
 *   "merged_order":                the candidate stage alone (merged list order, no ranker)
 *   "pipeline_with_session", ...:  with a session model in the bundle, ./session-pipeline.ts
 *
 * "pipeline" is the candidate stage without the session source: its ranker is DIR/ranker/ when
 * that was trained without the session source, else DIR/ranker-nosession/ (`train-ranker
 * --no-session`) when present, else DIR/ranker/ all the same (then the session source's
 * provenance is absent at every candidate, as when serving loses the session source).
 *   details:                       recall of each source at its budget (and at every smaller
 *                                  budget), calibration per ranker, the ranker's version
 *
 * watch_dcg@10 (in the report, for every scorer): the mean over evaluated users of
 * w · [r < 10] / log2(r + 2), where r is the rank of the user's held-out item and w its watch
 * time (watch_seconds; the rating on ml-100k) — NDCG@10's discount applied to the realised watch
 * time of the held-out impression. Higher is better; the unit is the weight's.
 */
import { access } from "node:fs/promises";
import { join } from "node:path";
import type { CandidateGenBundle } from "@recsys/candidate-gen";
import type { Dataset, LastoutSplit } from "@recsys/data";
import { evaluateLastout, type ScorerResult, type Target, type TieOrder } from "@recsys/eval";
import { listScorer, loadRanker, MERGED_ORDER, type Ranker, runPipeline } from "@recsys/ranking";
import type { PipelineDetails } from "./evaluate-report.js";
import { createPipelineSources, noSessionRankerDir, rankerDir } from "./pipeline-setup.js";
import {
  evaluateSessionPipeline,
  PIPELINE_WITH_SESSION,
  PIPELINE_WITH_SESSION_NOSESSION_RANKER,
  trainedWithSession,
} from "./session-pipeline.js";

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Budgets at which recall is reported: 1, 2, 5, 10, 20, 50, 100, … up to `max`, and `max`. */
export function budgetSteps(max: number): number[] {
  const out: number[] = [];
  for (let decade = 1; decade <= max; decade *= 10) for (const m of [1, 2, 5]) if (m * decade <= max) out.push(m * decade);
  if (out[out.length - 1] !== max) out.push(max);
  return out;
}

/** Share of positions in [0, budget). */
function recallAt(positions: Int32Array, budget: number): number {
  let hits = 0;
  for (const p of positions) if (p >= 0 && p < budget) hits++;
  return positions.length > 0 ? hits / positions.length : NaN;
}

/** The pipeline's evaluated lists and details, or null when `modelDir` has no ranker. */
export async function evaluatePipeline(options: {
  readonly dataset: Dataset;
  readonly split: LastoutSplit;
  readonly target: Target;
  readonly tieOrder: TieOrder;
  readonly modelDir: string;
  readonly bundle: CandidateGenBundle;
  readonly log: (message: string) => void;
}): Promise<{ results: ScorerResult[]; details: PipelineDetails } | null> {
  const { dataset, split, target, modelDir, bundle, log } = options;
  const mainDir = rankerDir(modelDir, true);
  if (!(await exists(join(mainDir, "manifest.json")))) return null;
  // Every loaded ranker with the name of the first scorer it ranks for.
  const loaded: { name: string; ranker: Ranker }[] = [{ name: "pipeline", ranker: await loadRanker(mainDir) }];
  const ablationDir = rankerDir(modelDir, false);
  if (await exists(join(ablationDir, "manifest.json")))
    loaded.push({ name: "pipeline_without_provenance", ranker: await loadRanker(ablationDir) });
  const noSessionDir = noSessionRankerDir(modelDir);
  if (await exists(join(noSessionDir, "manifest.json")))
    loaded.push({ name: PIPELINE_WITH_SESSION_NOSESSION_RANKER, ranker: await loadRanker(noSessionDir) });
  try {
    const serving = loaded[0]!.ranker;
    const noSession = loaded.find((r) => r.name === PIPELINE_WITH_SESSION_NOSESSION_RANKER)?.ranker;
    if (noSession !== undefined && trainedWithSession(noSession))
      throw new Error(
        `the ranker in ${noSessionDir} was trained behind the session source; retrain it with recsys train-ranker --no-session`,
      );
    // "pipeline" (no session source) is ranked by a ranker trained without it when there is one.
    const pipelineRanker = trainedWithSession(serving) ? (noSession ?? serving) : serving;
    const rankers = [{ name: "pipeline", ranker: pipelineRanker }, ...loaded.filter((r) => r.name === "pipeline_without_provenance")];
    const main = pipelineRanker.manifest;
    for (const { name, ranker } of loaded) {
      const m = ranker.manifest;
      if (m.datasetFingerprint !== dataset.fingerprint)
        throw new Error(
          `the ranker of "${name}" was trained on dataset "${m.datasetSpec}", not this one; retrain it with recsys train-ranker`,
        );
      if (m.candidateGenVersion !== bundle.manifest.modelVersion) {
        throw new Error(
          `the ranker of "${name}" was trained behind bundle ${m.candidateGenVersion}, but ${modelDir} holds ${bundle.manifest.modelVersion}; retrain it with recsys train-ranker`,
        );
      }
      if (m.holdout !== bundle.manifest.holdout)
        throw new Error(`the ranker of "${name}" was trained with holdout ${m.holdout}, the bundle with ${bundle.manifest.holdout}`);
      if (m.pipeline.budget !== main.pipeline.budget || m.pipeline.mergedSize !== main.pipeline.mergedSize) {
        throw new Error(
          `the rankers were trained behind different candidate settings (${JSON.stringify(m.pipeline)} vs ${JSON.stringify(main.pipeline)})`,
        );
      }
    }
    log(
      `pipeline: ranker ${main.modelVersion}${rankers.length > 1 ? ` and ablation ${rankers[1]!.ranker.manifest.modelVersion}` : ""}, budget ${main.pipeline.budget} per source, merged ${main.pipeline.mergedSize}`,
    );
    if (trainedWithSession(pipelineRanker))
      log(
        `pipeline: note: ${mainDir} was trained behind the session source, absent from "pipeline" (train-ranker --no-session gives it its own ranker)`,
      );
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
    log(
      `pipeline: ${run.users} users through sources, merge and ${rankers.length} ranker(s) in ${run.seconds.toFixed(1)} s; merged recall ${run.merged.recall.toFixed(4)}`,
    );
    const scorers = [
      ...rankers.map((r) => listScorer(r.name, run.lists.get(r.name)!)),
      listScorer("merged_order", run.lists.get(MERGED_ORDER)!),
    ];
    const result = evaluateLastout({ dataset, split, target, scorers, tieOrder: options.tieOrder });
    const sources: Record<string, { recall: number; budget: number; size?: number }> = {};
    for (const s of run.sources) sources[s.source] = { recall: s.recall, budget: s.budget };
    sources["merged"] = { recall: run.merged.recall, budget: main.pipeline.budget, size: run.merged.size };
    const withSession = await evaluateSessionPipeline({
      ...options,
      rankers: [
        { name: PIPELINE_WITH_SESSION, ranker: serving },
        ...(trainedWithSession(serving) && noSession !== undefined
          ? [{ name: PIPELINE_WITH_SESSION_NOSESSION_RANKER, ranker: noSession }]
          : []),
      ],
      pipeline: main.pipeline,
    });
    if (withSession !== null) sources["session"] = { recall: withSession.sessionRecall, budget: main.pipeline.budget };
    const recallByBudget: Record<string, { budget: number; recall: number }[]> = {};
    for (const [name, positions] of run.targetPositions) {
      const max = name === "merged" ? main.pipeline.mergedSize : main.pipeline.budget;
      recallByBudget[name] = budgetSteps(max).map((budget) => ({ budget, recall: recallAt(positions, budget) }));
    }
    return {
      results: [...result.results, ...(withSession?.results ?? [])],
      details: {
        sources,
        recall_by_budget: recallByBudget,
        calibration: Object.fromEntries(run.calibration),
        ranker: {
          modelVersion: main.modelVersion,
          budget: main.pipeline.budget,
          mergedSize: main.pipeline.mergedSize,
          seconds: run.seconds,
          seed: main.trainConfig.seed ?? null,
          sources: main.space.sources,
        },
        ...(withSession === null
          ? {}
          : {
              session_ranker: {
                modelVersion: serving.manifest.modelVersion,
                sources: serving.manifest.space.sources,
                sessionModel: serving.manifest.sessionModel ?? null,
              },
            }),
      },
    };
  } finally {
    for (const r of loaded) r.ranker.dispose();
  }
}
