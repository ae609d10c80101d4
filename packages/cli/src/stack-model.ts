/**
 * The models the stack serves: a candidate-generation bundle with its ranker in `ranker/`,
 * trained on a dataset, or reused when the directory already holds one trained on the same data
 * (dataset fingerprint and holdout) with a ranker trained behind that very bundle.
 *
 * A new bundle is written next to the target (`<dir>.partial`) and renamed into place once both
 * models are saved, so an interrupted training never leaves a half-written bundle to reuse.
 */
import { existsSync } from "node:fs";
import { readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { loadBundle, saveBundle, trainCandidateGen, type BundleManifest, type TrainOptions } from "@recsys/candidate-gen";
import { lastoutSplit, trainingRows, type Dataset } from "@recsys/data";
import {
  dnnFromBundle,
  saveRanker,
  trainRanker,
  type PipelineSettings,
  type RankerManifest,
  type RankerModelConfig,
  type RankerTrainConfig,
  type RankingFeatureConfig,
} from "@recsys/ranking";
import { createStandardSources } from "@recsys/sources";
import { initBackend } from "@recsys/tf";
import { EVENTS_LOG_NAME } from "./store-opener.js";
import { formatDuration, progressReporter } from "./train-progress.js";

export type Holdout = "test" | "val" | "none";

export interface StackModelSettings {
  /** Which lastout events training leaves out ("test": the bundle can be evaluated). */
  readonly holdout: Holdout;
  /** Candidate-generation training options (holdout is taken from above). */
  readonly candidateGen: Omit<TrainOptions, "holdout" | "onProgress">;
  readonly ranker: {
    readonly pipeline: PipelineSettings;
    readonly train?: Partial<RankerTrainConfig>;
    readonly model?: Partial<RankerModelConfig>;
    readonly features?: Partial<RankingFeatureConfig>;
    /**
     * Replay the bundle's "dnn" source too (default true, what serving sends). Its replay scores
     * the whole catalogue exactly for every replayed watch (~0.1 s per watch at 1M items), so
     * very large catalogues train the ranker behind the other sources only; the ranker then
     * ignores dnn provenance.
     */
    readonly dnnSource?: boolean;
    /** Fresh-upload window of the replayed fresh source (default the sources' 30 days; serve with the same FRESH_WINDOW). */
    readonly freshWindowSeconds?: number;
  };
}

export interface StackModel {
  readonly dir: string;
  readonly manifest: BundleManifest;
  readonly ranker: RankerManifest;
  /** True when an existing bundle was reused. */
  readonly reused: boolean;
  /** Seconds spent training (0 when reused). */
  readonly seconds: number;
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}

/**
 * Why the bundle in `dir` cannot serve `dataset` with `holdout`, or undefined when it can (its
 * manifests, when it can).
 */
export async function reusableModel(
  dir: string,
  dataset: Dataset,
  holdout: Holdout,
): Promise<{ manifest: BundleManifest; ranker: RankerManifest } | { reason: string }> {
  const manifest = await readJson<BundleManifest>(join(dir, "manifest.json"));
  if (manifest === undefined) return { reason: `no bundle in ${dir}` };
  if (manifest.datasetFingerprint !== dataset.fingerprint) {
    return { reason: `the bundle in ${dir} was trained on other data ("${manifest.datasetSpec}")` };
  }
  if (manifest.holdout !== holdout) return { reason: `the bundle in ${dir} was trained with holdout ${manifest.holdout}, not ${holdout}` };
  const ranker = await readJson<RankerManifest>(join(dir, "ranker", "manifest.json"));
  if (ranker === undefined) return { reason: `no ranker in ${join(dir, "ranker")}` };
  if (ranker.candidateGenVersion !== manifest.modelVersion || ranker.datasetFingerprint !== dataset.fingerprint) {
    return { reason: `the ranker in ${join(dir, "ranker")} was trained behind another bundle (${ranker.candidateGenVersion})` };
  }
  return { manifest, ranker };
}

/** Trains both models on `dataset` into `dir` (replacing what is there). */
export async function trainStackModel(
  dataset: Dataset,
  dir: string,
  settings: StackModelSettings,
  log: (message: string) => void = () => undefined,
): Promise<StackModel> {
  const started = performance.now();
  await initBackend({ log: null });
  const partial = `${dir}.partial`;
  await rm(partial, { recursive: true, force: true });

  const progress = progressReporter();
  log(`training the candidate generator (holdout ${settings.holdout})`);
  const result = await trainCandidateGen(dataset, {
    ...settings.candidateGen,
    holdout: settings.holdout,
    onProgress: (p) => progress.update(p),
  });
  progress.done();
  let manifest: BundleManifest;
  try {
    manifest = await saveBundle(partial, result);
  } finally {
    result.model.dispose();
  }
  const s = result.stats;
  log(
    `candidate generator ${manifest.modelVersion}: ${s.examples} examples × ${s.epochs} epochs in ${formatDuration(s.seconds)} on ${s.backend}`,
  );

  const bundle = await loadBundle(partial);
  let ranker: RankerManifest;
  try {
    const split = lastoutSplit(dataset.events, dataset.users.ids.length);
    const rows = trainingRows(split, settings.holdout);
    const pipeline = settings.ranker.pipeline;
    const which = settings.ranker.dnnSource === false ? "the candidate sources without dnn" : "the candidate sources";
    log(
      `training the ranker behind it (replaying ${rows.length} training rows through ${which}, budget ${pipeline.budget}, merged ${pipeline.mergedSize})`,
    );
    let lastEpoch = 0;
    let nextReplayLog = 30;
    const rankerResult = await trainRanker(dataset, {
      rows,
      // createPipelineSources of pipeline-setup.ts, with the options above.
      sources: createStandardSources(dataset, {
        mergedSize: pipeline.mergedSize,
        ...(settings.ranker.dnnSource === false ? {} : { dnn: dnnFromBundle(bundle, dataset) }),
        ...(settings.ranker.freshWindowSeconds === undefined ? {} : { freshWindowSeconds: settings.ranker.freshWindowSeconds }),
      }),
      budget: pipeline.budget,
      ...(settings.ranker.train === undefined ? {} : { train: settings.ranker.train }),
      ...(settings.ranker.model === undefined ? {} : { model: settings.ranker.model }),
      ...(settings.ranker.features === undefined ? {} : { features: settings.ranker.features }),
      onProgress: (p) => {
        if (p.phase === "replay" && p.elapsedSeconds >= nextReplayLog) {
          nextReplayLog = p.elapsedSeconds + 30;
          log(`ranker replay: ${p.done}/${p.total} watches (${formatDuration(p.elapsedSeconds)})`);
        }
        if (p.phase !== "replay" && p.done === p.total && p.epoch !== lastEpoch) {
          lastEpoch = p.epoch;
          log(`ranker epoch ${p.epoch}/${p.epochs}: ${p.total} examples, loss ${p.loss.toFixed(4)} (${formatDuration(p.elapsedSeconds)})`);
        }
      },
    });
    try {
      ranker = await saveRanker(join(partial, "ranker"), rankerResult, {
        datasetSpec: dataset.spec,
        datasetFingerprint: dataset.fingerprint,
        holdout: settings.holdout,
        candidateGenVersion: manifest.modelVersion,
        pipeline,
      });
    } finally {
      rankerResult.model.dispose();
    }
    const r = rankerResult.stats;
    log(
      `ranker ${ranker.modelVersion}: ${r.examples} examples (replay ${formatDuration(r.replaySeconds)}, training ${formatDuration(r.seconds)})`,
    );
  } finally {
    bundle.dispose();
  }
  await rm(dir, { recursive: true, force: true });
  await rename(partial, dir);
  return { dir, manifest, ranker, reused: false, seconds: (performance.now() - started) / 1000 };
}

/**
 * The bundle in `dir` when it was trained on the embedded store in `storeDir` (its datasetSpec is
 * `store:<storeDir>`, with a `?` or `@` suffix or none: what `recsys retrain` publishes) with its
 * ranker behind it; else why not.
 */
export async function storeTrainedModel(
  dir: string,
  storeDir: string,
): Promise<{ manifest: BundleManifest; ranker: RankerManifest } | { reason: string }> {
  const manifest = await readJson<BundleManifest>(join(dir, "manifest.json"));
  if (manifest === undefined) return { reason: `no bundle in ${dir}` };
  const prefix = `store:${storeDir}`;
  const spec = manifest.datasetSpec;
  if (!(spec === prefix || spec.startsWith(`${prefix}@`) || spec.startsWith(`${prefix}?`)))
    return { reason: `the bundle in ${dir} was not trained on ${prefix}` };
  const ranker = await readJson<RankerManifest>(join(dir, "ranker", "manifest.json"));
  if (ranker === undefined || ranker.candidateGenVersion !== manifest.modelVersion)
    return { reason: `the bundle in ${dir} has no ranker trained behind it` };
  // Its store must still hold what it learnt from (seeded stores: no bootstrap needed).
  if (!existsSync(join(storeDir, EVENTS_LOG_NAME))) return { reason: `the store ${storeDir} the bundle in ${dir} was trained on is gone` };
  return { manifest, ranker };
}

/**
 * The bundle in `dir` when it fits `dataset` and `settings.holdout`, or (with `storeDir`) when it
 * was trained on that store, the stack's own (`recsys retrain` published it); else a newly trained one.
 */
export async function ensureStackModel(
  dataset: Dataset,
  dir: string,
  settings: StackModelSettings,
  options: { readonly retrain?: boolean; readonly storeDir?: string; readonly log?: (message: string) => void } = {},
): Promise<StackModel> {
  const log = options.log ?? (() => undefined);
  if (options.retrain !== true && options.storeDir !== undefined) {
    const published = await storeTrainedModel(dir, options.storeDir);
    if ("manifest" in published) {
      log(
        `reusing ${published.manifest.modelVersion} + ranker ${published.ranker.modelVersion} in ${dir}: \`recsys retrain\` trained it on this stack's store (${published.manifest.datasetSpec}); --retrain trains a bootstrap bundle on the dataset instead`,
      );
      return { dir, manifest: published.manifest, ranker: published.ranker, reused: true, seconds: 0 };
    }
  }
  if (options.retrain !== true) {
    const existing = await reusableModel(dir, dataset, settings.holdout);
    if ("manifest" in existing) {
      log(
        `reusing ${existing.manifest.modelVersion} + ranker ${existing.ranker.modelVersion} in ${dir} (same dataset fingerprint ${dataset.fingerprint.slice(0, 12)}…)`,
      );
      return { dir, manifest: existing.manifest, ranker: existing.ranker, reused: true, seconds: 0 };
    }
    log(`${existing.reason}: training`);
  }
  return trainStackModel(dataset, dir, settings, log);
}
