/**
 * The bundle's session model (DIR/session/, written by `recsys train-session`) as a candidate
 * source of the offline pipeline. `recsys train-ranker` trains the ranker behind it when the
 * bundle holds one for the same dataset and holdout (the ranker's manifest records the session
 * model and its `space.sources` include "session"), and `recsys evaluate` reports, next to
 * "pipeline":
 *
 *   "pipeline_with_session":                  the standard sources, the bundle's dnn and the
 *                                             session source, ranked by the bundle's ranker
 *                                             (DIR/ranker/: the one serving uses)
 *   "pipeline_with_session_nosession_ranker": the same candidates ranked by the ranker trained
 *                                             without the session source (DIR/ranker-nosession/,
 *                                             `train-ranker --no-session`), when both exist
 *   "session_model":                          the session model alone, scoring every item
 */
import { access } from "node:fs/promises";
import { join } from "node:path";
import type { CandidateGenBundle } from "@recsys/candidate-gen";
import type { Dataset, LastoutSplit } from "@recsys/data";
import { evaluateLastout, type ScorerResult, type Target, type TieOrder } from "@recsys/eval";
import { dnnFromBundle, listScorer, type PipelineSettings, type Ranker, runPipeline, type SessionModelRef } from "@recsys/ranking";
import { loadSequenceModel, type SequenceManifest, type SequenceModel, sequenceScorer, sessionEncoder } from "@recsys/sequence";
import { BruteForceIndex, createStandardSources, type SourceSet } from "@recsys/sources";
import { sessionDir } from "./commands/train-session.js";

/** The name of the session source in the candidate stage and in a ranker's `space.sources`. */
export const SESSION_SOURCE = "session";

/** The bundle's session model: the model and what identifies it in a ranker's manifest. */
export interface BundleSessionModel {
  readonly model: SequenceModel;
  readonly ref: SessionModelRef;
}

/** How a ranker's manifest names a session model. */
export function sessionModelRef(manifest: SequenceManifest): SessionModelRef {
  return { kind: manifest.encoder.kind, savedAt: manifest.savedAt };
}

/** The bundle's session model when it has one for this dataset and holdout; throws when it has one for another. */
export async function loadBundleSession(
  modelDir: string,
  dataset: Dataset,
  bundle: CandidateGenBundle,
): Promise<BundleSessionModel | null> {
  const dir = sessionDir(modelDir);
  try {
    await access(join(dir, "manifest.json"));
  } catch {
    return null;
  }
  const { model, manifest } = await loadSequenceModel(dir);
  const t = manifest.training ?? {};
  const problem =
    t["datasetFingerprint"] !== dataset.fingerprint
      ? `was trained on dataset "${String(t["datasetSpec"])}", not this one`
      : t["holdout"] !== bundle.manifest.holdout
        ? `was trained with holdout ${String(t["holdout"])}, the bundle with ${bundle.manifest.holdout}`
        : manifest.itemIds.length !== dataset.items.ids.length || manifest.itemIds.some((id, i) => id !== dataset.items.ids[i])
          ? "has another item catalogue than the dataset"
          : undefined;
  if (problem !== undefined) {
    model.dispose();
    throw new Error(`the session model in ${dir} ${problem}; retrain it with recsys train-session`);
  }
  return { model, ref: sessionModelRef(manifest) };
}

/**
 * The pipeline's sources with the session source added, as the orchestrator serves it: the same
 * `SessionSource` over a brute-force index of the model's item vectors, the request's history as
 * the session, the request's budget and merge weight 1.
 */
export function createSessionPipelineSources(
  dataset: Dataset,
  bundle: CandidateGenBundle,
  settings: PipelineSettings,
  model: SequenceModel,
): SourceSet {
  return createStandardSources(dataset, {
    mergedSize: settings.mergedSize,
    dnn: dnnFromBundle(bundle, dataset),
    session: { index: new BruteForceIndex(model.itemVectors(), model.dim), encoder: sessionEncoder(model) },
  });
}

/** Whether a ranker was trained behind the session source. */
export function trainedWithSession(ranker: Ranker): boolean {
  return ranker.manifest.space.sources.includes(SESSION_SOURCE);
}

/** The scorer names of the pipeline with the session source and of the session model alone. */
export const PIPELINE_WITH_SESSION = "pipeline_with_session";
export const PIPELINE_WITH_SESSION_NOSESSION_RANKER = "pipeline_with_session_nosession_ranker";
export const SESSION_MODEL = "session_model";

/**
 * The pipeline again with the session source among its sources, ranked by each of `rankers`
 * (a ranker trained without the session source ignores its provenance), and the session model
 * alone, when the bundle holds a session model; null when it does not. A ranker trained behind
 * the session source must have been trained behind this very session model.
 */
export async function evaluateSessionPipeline(options: {
  readonly dataset: Dataset;
  readonly split: LastoutSplit;
  readonly target: Target;
  readonly tieOrder: TieOrder;
  readonly modelDir: string;
  readonly bundle: CandidateGenBundle;
  readonly rankers: readonly { readonly name: string; readonly ranker: Ranker }[];
  readonly pipeline: PipelineSettings;
  readonly log: (message: string) => void;
}): Promise<{ results: ScorerResult[]; sessionRecall: number; mergedRecall: number } | null> {
  const { dataset, split, target, bundle, pipeline, log } = options;
  const session = await loadBundleSession(options.modelDir, dataset, bundle);
  if (session === null) {
    const expecting = options.rankers.find((r) => trainedWithSession(r.ranker));
    if (expecting !== undefined)
      throw new Error(
        `the ranker of "${expecting.name}" was trained behind a session model, but ${options.modelDir} holds none; retrain it with recsys train-ranker`,
      );
    return null;
  }
  const { model, ref } = session;
  try {
    for (const { name, ranker } of options.rankers) {
      const trained = ranker.manifest.sessionModel;
      if (trainedWithSession(ranker) && (trained?.kind !== ref.kind || trained.savedAt !== ref.savedAt)) {
        throw new Error(
          `the ranker of "${name}" was trained behind the session model ${JSON.stringify(trained ?? null)}, but ${options.modelDir} holds ${JSON.stringify(ref)}; retrain it with recsys train-ranker`,
        );
      }
      log(
        `pipeline with session: "${name}" ranked by ${ranker.manifest.modelVersion}, trained ${trainedWithSession(ranker) ? "behind" : "without"} the session source`,
      );
    }
    log(`pipeline with session: the bundle's ${model.config.kind} session model (saved ${ref.savedAt}) as a source`);
    const run = runPipeline(dataset, {
      split,
      target,
      sources: createSessionPipelineSources(dataset, bundle, pipeline, model),
      budget: pipeline.budget,
      mergedSize: pipeline.mergedSize,
      rankers: options.rankers,
    });
    log(`pipeline with session: ${run.users} users in ${run.seconds.toFixed(1)} s; merged recall ${run.merged.recall.toFixed(4)}`);
    const result = evaluateLastout({
      dataset,
      split,
      target,
      scorers: [...options.rankers.map((r) => listScorer(r.name, run.lists.get(r.name)!)), sequenceScorer(model, dataset, SESSION_MODEL)],
      tieOrder: options.tieOrder,
    });
    return {
      results: [...result.results],
      sessionRecall: run.sources.find((s) => s.source === SESSION_SOURCE)?.recall ?? 0,
      mergedRecall: run.merged.recall,
    };
  } finally {
    model.dispose();
  }
}
