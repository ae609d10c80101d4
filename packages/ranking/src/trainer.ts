/**
 * Training the ranker: replayed examples (./examples.ts) → feature space fitted on them →
 * weighted logistic regression with sparse embedding updates (./model.ts). Every example is
 * encoded with `encodeCandidates`, the function the serving path calls.
 */
import { type Dataset, Rng } from "@recsys/data";
import { fitFeatureSpace } from "@recsys/features";
import type { SourceSet } from "@recsys/sources";
import { tf } from "@recsys/tf";
import { Catalog } from "./catalog.js";
import { encodeCandidates, RankingBatch, rawCandidates } from "./encode.js";
import { buildServedExamples } from "./served-examples.js";
import { buildRankingExamples, exampleCandidates, exampleContext, exampleCount, type RankingExamples } from "./examples.js";
import { DEFAULT_RANKER_MODEL_CONFIG, RankerModel, type RankerModelConfig, RankerTrainStep, validateRankerModelConfig } from "./model.js";
import { DEFAULT_RANKING_FEATURE_CONFIG, fitNormalizers, type RankingFeatureConfig, RankingSpace } from "./space.js";

export interface RankerTrainConfig {
  readonly epochs: number;
  /** Examples per batch (each brings its positive and its negatives). */
  readonly batchExamples: number;
  /** Adam learning rate of the tower. */
  readonly learningRate: number;
  /** Lazy-Adam learning rate of the embedding rows. */
  readonly embeddingLearningRate: number;
  /** Lazy-Adam learning rate of the wide part's weights (model kind "wide-deep"). */
  readonly wideLearningRate: number;
  /** L2 penalty on the tower weights and (lazily) on touched embedding rows. */
  readonly l2: number;
  readonly initScale: number;
  /** Negatives sampled per example from the merged candidates. */
  readonly negatives: number;
  readonly maxExamplesPerUser: number;
  readonly minHistory: number;
  /** See ExampleOptions.missedPositives. */
  readonly missedPositives: "drop" | "keep";
  /** See ExampleOptions.slateNegatives. */
  readonly slateNegatives: boolean;
  /** Candidates used to fit the quantile normalisers (a random subset of the examples'). */
  readonly normalizerSample: number;
  readonly seed: number;
}

/** Chosen on ml-100k validation (see the README): 8 epochs over every replayed watch. */
export const DEFAULT_RANKER_TRAIN_CONFIG: RankerTrainConfig = {
  epochs: 8,
  batchExamples: 32,
  learningRate: 1e-3,
  embeddingLearningRate: 1e-3,
  wideLearningRate: 1e-2,
  l2: 0,
  initScale: 0.05,
  negatives: 20,
  maxExamplesPerUser: 1000,
  minHistory: 1,
  missedPositives: "drop",
  slateNegatives: true,
  normalizerSample: 200_000,
  seed: 1,
};

export function validateRankerTrainConfig(c: RankerTrainConfig): void {
  for (const key of ["epochs", "batchExamples", "maxExamplesPerUser", "normalizerSample"] as const) {
    if (!Number.isInteger(c[key]) || c[key] < 1) throw new Error(`ranker train config: ${key} must be a positive integer, got ${c[key]}`);
  }
  for (const key of ["negatives", "minHistory"] as const) {
    if (!Number.isInteger(c[key]) || c[key] < 0) throw new Error(`ranker train config: ${key} must be an integer >= 0, got ${c[key]}`);
  }
  for (const key of ["learningRate", "embeddingLearningRate", "wideLearningRate", "initScale"] as const) {
    if (!(c[key] > 0) || !Number.isFinite(c[key])) throw new Error(`ranker train config: ${key} must be > 0, got ${c[key]}`);
  }
  if (!(c.l2 >= 0)) throw new Error(`ranker train config: l2 must be >= 0, got ${c.l2}`);
  if (c.missedPositives !== "drop" && c.missedPositives !== "keep")
    throw new Error(`ranker train config: missedPositives must be "drop" or "keep"`);
  if (!Number.isSafeInteger(c.seed)) throw new Error(`ranker train config: seed must be an integer, got ${c.seed}`);
}

export interface RankerTrainProgress {
  readonly phase: "replay" | "train";
  readonly epoch: number;
  readonly epochs: number;
  /** Examples done in this epoch (train) or watches replayed (replay). */
  readonly done: number;
  readonly total: number;
  readonly loss: number;
  readonly elapsedSeconds: number;
}

export interface RankerTrainOptions {
  /** Training event-log rows (the candidate-gen bundle's, so both stages see the same events). */
  readonly rows: ArrayLike<number>;
  /**
   * A fresh source set (no events yet): replayed over `rows`, or with `served`, only its
   * "popular" and "trending" item statistics are used.
   */
  readonly sources: SourceSet;
  /**
   * Train from the dataset's served log (what was shown and watched, ./served-examples.ts)
   * instead of replaying the sources: a shown item watched within `windowSeconds` is a positive.
   */
  readonly served?: { readonly windowSeconds: number; readonly labelsUntil?: number };
  /** Per-source budget of the replayed requests (sources with their own budget keep it). */
  readonly budget: number;
  readonly train?: Partial<RankerTrainConfig>;
  readonly model?: Partial<RankerModelConfig>;
  readonly features?: Partial<RankingFeatureConfig>;
  /**
   * Stop after this many batches (0: the model keeps its initial random weights). For tests of
   * what checks a ranker (`recsys retrain --ranker-epochs 0`: a deliberately broken ranker).
   */
  readonly maxSteps?: number;
  readonly onProgress?: (p: RankerTrainProgress) => void;
}

export interface RankerTrainStats {
  readonly examples: number;
  readonly candidates: number;
  readonly replayed: number;
  /** Fraction of replayed watches whose item was in the merged candidates. */
  readonly positiveInMerged: number;
  readonly droppedMissed: number;
  readonly keptMissed: number;
  readonly slateNegatives: number;
  readonly replaySeconds: number;
  readonly seconds: number;
  readonly epochLosses: readonly number[];
  readonly examplesPerSecond: number;
  readonly backend: string;
}

export interface RankerTrainResult {
  readonly model: RankerModel;
  readonly space: RankingSpace;
  readonly trainConfig: RankerTrainConfig;
  readonly modelConfig: RankerModelConfig;
  readonly stats: RankerTrainStats;
  readonly examples: RankingExamples;
}

const STREAM_INIT = 21;
const STREAM_SHUFFLE = 22;
const STREAM_SAMPLE = 23;

/** Trains a ranker. Call `initBackend()` from @recsys/tf first. Deterministic for a seed on a backend. */
export async function trainRanker(dataset: Dataset, options: RankerTrainOptions): Promise<RankerTrainResult> {
  const cfg: RankerTrainConfig = { ...DEFAULT_RANKER_TRAIN_CONFIG, ...stripUndefined(options.train ?? {}) };
  validateRankerTrainConfig(cfg);
  const modelCfg: RankerModelConfig = { ...DEFAULT_RANKER_MODEL_CONFIG, ...stripUndefined(options.model ?? {}) };
  validateRankerModelConfig(modelCfg);
  const featureCfg: RankingFeatureConfig = { ...DEFAULT_RANKING_FEATURE_CONFIG, ...stripUndefined(options.features ?? {}) };
  if (options.rows.length === 0) throw new Error(`dataset ${dataset.spec}: no training rows for the ranker`);
  const maxSteps = options.maxSteps ?? Infinity;
  if (!(maxSteps >= 0)) throw new Error(`maxSteps must be >= 0, got ${options.maxSteps}`);
  const started = performance.now();
  const progress = options.onProgress;

  const examples =
    options.served !== undefined
      ? buildServedExamples(dataset, {
          rows: options.rows,
          sources: options.sources,
          windowSeconds: options.served.windowSeconds,
          ...(options.served.labelsUntil === undefined ? {} : { labelsUntil: options.served.labelsUntil }),
          maxExamplesPerUser: cfg.maxExamplesPerUser,
          minHistory: cfg.minHistory,
        })
      : buildRankingExamples(dataset, options.sources, {
          rows: options.rows,
          budget: options.budget,
          negatives: cfg.negatives,
          maxExamplesPerUser: cfg.maxExamplesPerUser,
          minHistory: cfg.minHistory,
          missedPositives: cfg.missedPositives,
          slateNegatives: cfg.slateNegatives,
          seed: cfg.seed,
          ...(progress === undefined
            ? {}
            : {
                onProgress: (done: number) =>
                  progress({
                    phase: "replay",
                    epoch: 0,
                    epochs: cfg.epochs,
                    done,
                    total: options.rows.length,
                    loss: NaN,
                    elapsedSeconds: (performance.now() - started) / 1000,
                  }),
              }),
        });
  const n = exampleCount(examples);
  if (n === 0) {
    throw new Error(
      options.served !== undefined
        ? `dataset ${dataset.spec}: no ranker training examples (no served answer with a shown item and enough history)`
        : `dataset ${dataset.spec}: no ranker training examples (no replayed watch had its item among the merged candidates)`,
    );
  }

  const space = fitRankingSpace(dataset, options.rows, examples, featureCfg, cfg.normalizerSample, new Rng(cfg.seed, STREAM_SAMPLE));

  const model = RankerModel.create(space, modelCfg, new Rng(cfg.seed, STREAM_INIT), cfg.initScale);
  let maxRows = 0;
  for (let e = 0; e < n; e++) maxRows = Math.max(maxRows, examples.candidateOffsets[e + 1]! - examples.candidateOffsets[e]!);
  const capacity = cfg.batchExamples * maxRows;
  const step = new RankerTrainStep(
    model,
    {
      learningRate: cfg.learningRate,
      l2: cfg.l2,
      embeddings: { optimizer: "adam", learningRate: cfg.embeddingLearningRate, l2: cfg.l2, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
      wide: { optimizer: "adam", learningRate: cfg.wideLearningRate, l2: cfg.l2, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
    },
    capacity,
  );
  const batch = RankingBatch.forSpace(space, capacity);
  const labels = new Float32Array(capacity);
  const weights = new Float32Array(capacity);
  const shuffleRng = new Rng(cfg.seed, STREAM_SHUFFLE);
  const loopStart = performance.now();
  const epochLosses: number[] = [];
  let lastReport = loopStart;
  let steps = 0;
  try {
    for (let epoch = 0; epoch < cfg.epochs && steps < maxSteps; epoch++) {
      const perm = shuffled(n, shuffleRng);
      let lossSum = 0;
      let weightSum = 0;
      for (let start = 0; start < n && steps < maxSteps; start += cfg.batchExamples, steps++) {
        const end = Math.min(n, start + cfg.batchExamples);
        batch.size = 0;
        for (let k = start; k < end; k++) {
          const e = perm[k]!;
          const first = batch.size;
          encodeCandidates(space, exampleContext(dataset, examples, e), exampleCandidates(dataset, examples, e), examples.asOf[e]!, batch);
          const c0 = examples.candidateOffsets[e]!;
          for (let r = first; r < batch.size; r++) {
            labels[r] = examples.label[c0 + r - first]!;
            weights[r] = examples.weight[c0 + r - first]!;
          }
        }
        let w = 0;
        for (let r = 0; r < batch.size; r++) w += weights[r]!;
        lossSum += step.run(batch, labels, weights) * w;
        weightSum += w;
        const now = performance.now();
        if (progress !== undefined && (now - lastReport > 1000 || end === n)) {
          lastReport = now;
          progress({
            phase: "train",
            epoch: epoch + 1,
            epochs: cfg.epochs,
            done: end,
            total: n,
            loss: lossSum / weightSum,
            elapsedSeconds: (now - started) / 1000,
          });
        }
      }
      epochLosses.push(lossSum / Math.max(weightSum, 1e-12));
    }
  } catch (err) {
    model.dispose();
    throw err;
  } finally {
    step.dispose();
  }
  const seconds = (performance.now() - loopStart) / 1000;
  return {
    model,
    space,
    trainConfig: cfg,
    modelConfig: modelCfg,
    examples,
    stats: {
      examples: n,
      candidates: examples.item.length,
      replayed: examples.stats.replayed,
      positiveInMerged: examples.stats.replayed > 0 ? examples.stats.positiveInMerged / examples.stats.replayed : 0,
      droppedMissed: examples.stats.droppedMissed,
      keptMissed: examples.stats.keptMissed,
      slateNegatives: examples.stats.slateNegatives,
      replaySeconds: examples.stats.seconds,
      seconds,
      epochLosses,
      examplesPerSecond: (n * cfg.epochs) / Math.max(seconds, 1e-9),
      backend: tf.getBackend(),
    },
  };
}

/**
 * The ranking feature space of training examples: vocabularies fitted on the training rows
 * (@recsys/features), the dataset's item catalogue, the examples' source list, and quantile
 * normalisers fitted on the raw features of a random subset of about `sample` candidates,
 * computed by the same code as encoding (`rawCandidates`).
 */
export function fitRankingSpace(
  dataset: Dataset,
  rows: ArrayLike<number>,
  examples: RankingExamples,
  config: Partial<RankingFeatureConfig>,
  sample: number,
  rng: Rng,
): RankingSpace {
  const featureCfg: RankingFeatureConfig = { ...DEFAULT_RANKING_FEATURE_CONFIG, ...stripUndefined(config) };
  const base = new RankingSpace(featureCfg, fitFeatureSpace(dataset, rows), Catalog.fromDataset(dataset), examples.sources, null);
  const n = exampleCount(examples);
  const order = shuffled(n, rng);
  let sampleRows = 0;
  let sampleExamples = 0;
  while (sampleExamples < n && sampleRows < sample) {
    const e = order[sampleExamples++]!;
    sampleRows += examples.candidateOffsets[e + 1]! - examples.candidateOffsets[e]!;
  }
  const raw = new Float64Array(sampleRows * base.rawWidth);
  let at = 0;
  for (let k = 0; k < sampleExamples; k++) {
    const e = order[k]!;
    const cands = exampleCandidates(dataset, examples, e);
    rawCandidates(base, exampleContext(dataset, examples, e), cands, examples.asOf[e]!, raw, at * base.rawWidth);
    at += cands.length;
  }
  return base.withNormalizers(fitNormalizers(base, raw, sampleRows));
}

function shuffled(n: number, rng: Rng): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
