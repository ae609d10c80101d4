/**
 * The bundle's session model (DIR/session/, written by `recsys train-session`) as a candidate
 * source of the offline pipeline: `recsys evaluate` reports "pipeline_with_session" (the standard
 * sources, the bundle's dnn and the session source, ranked by the bundle's ranker) next to
 * "pipeline" when the bundle holds one trained on the same dataset and holdout.
 */
import { access } from "node:fs/promises";
import { join } from "node:path";
import type { CandidateGenBundle } from "@recsys/candidate-gen";
import type { Dataset, LastoutSplit } from "@recsys/data";
import { evaluateLastout, type ScorerResult, type Target, type TieOrder } from "@recsys/eval";
import { dnnFromBundle, listScorer, type PipelineSettings, type Ranker, runPipeline } from "@recsys/ranking";
import { loadSequenceModel, sessionEncoder, type SequenceModel } from "@recsys/sequence";
import { BruteForceIndex, createStandardSources, type SourceSet } from "@recsys/sources";

/** The bundle's session model when it has one for this dataset and holdout; throws when it has one for another. */
export async function loadBundleSessionModel(
  modelDir: string,
  dataset: Dataset,
  bundle: CandidateGenBundle,
): Promise<SequenceModel | null> {
  const dir = join(modelDir, "session");
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
  return model;
}

/** The pipeline's sources with the session source added. */
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

/** The scorer name of the pipeline with the session source. */
export const PIPELINE_WITH_SESSION = "pipeline_with_session";

/**
 * The pipeline again with the session source among its sources and the same ranker (trained
 * without it: the ranker ignores provenance of sources it does not know), when the bundle holds a
 * session model; null when it does not.
 */
export async function evaluateSessionPipeline(options: {
  readonly dataset: Dataset;
  readonly split: LastoutSplit;
  readonly target: Target;
  readonly tieOrder: TieOrder;
  readonly modelDir: string;
  readonly bundle: CandidateGenBundle;
  readonly ranker: Ranker;
  readonly pipeline: PipelineSettings;
  readonly log: (message: string) => void;
}): Promise<{ results: ScorerResult[]; sessionRecall: number; mergedRecall: number } | null> {
  const { dataset, split, target, bundle, pipeline, log } = options;
  const model = await loadBundleSessionModel(options.modelDir, dataset, bundle);
  if (model === null) return null;
  try {
    log(`pipeline with session: the bundle's ${model.config.kind} session model as a source`);
    const run = runPipeline(dataset, {
      split,
      target,
      sources: createSessionPipelineSources(dataset, bundle, pipeline, model),
      budget: pipeline.budget,
      mergedSize: pipeline.mergedSize,
      rankers: [{ name: PIPELINE_WITH_SESSION, ranker: options.ranker }],
    });
    log(`pipeline with session: ${run.users} users in ${run.seconds.toFixed(1)} s; merged recall ${run.merged.recall.toFixed(4)}`);
    const result = evaluateLastout({
      dataset,
      split,
      target,
      scorers: [listScorer(PIPELINE_WITH_SESSION, run.lists.get(PIPELINE_WITH_SESSION)!)],
      tieOrder: options.tieOrder,
    });
    return {
      results: [...result.results],
      sessionRecall: run.sources.find((s) => s.source === "session")?.recall ?? 0,
      mergedRecall: run.merged.recall,
    };
  } finally {
    model.dispose();
  }
}
