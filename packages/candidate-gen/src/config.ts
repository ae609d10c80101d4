import type { FeatureConfig } from "@recsys/features";
import type { SparseOptimizer } from "./sparse.js";

/** The network's shape (stored in the bundle). */
export interface ModelConfig {
  /** Dimension of item embeddings (input watch embeddings and output embeddings) = user vector. */
  readonly embeddingDim: number;
  /** Dimension of search-token embeddings. */
  readonly searchDim: number;
  /** Dimension of each categorical (gender, occupation, geo) embedding. */
  readonly categoricalDim: number;
  /** Widths of the ReLU tower; the last one must equal embeddingDim (it is the user vector). */
  readonly tower: readonly number[];
  /** Activation of the last tower layer: "relu" (as in the paper's figure) or "linear". */
  readonly finalActivation: "relu" | "linear";
  /** One table for input watch embeddings and output item embeddings instead of two. */
  readonly sharedItemEmbeddings: boolean;
  /**
   * How the watch window becomes one vector: "mean" (the paper's average) or "attention"
   * (softmax weights over the window from a learned query and a learned recency bias; see
   * model.ts and docs/attention-pooling.md). Bundles written before this option read as "mean".
   */
  readonly historyPooling: HistoryPooling;
}

export type HistoryPooling = "mean" | "attention";
export const HISTORY_POOLINGS: readonly HistoryPooling[] = ["mean", "attention"];

/**
 * The training loss over the catalogue: "sampled" (sampled softmax over the label and S shared
 * negatives with the logQ correction, the paper's) or "hierarchical" (an exact two-level softmax
 * over a co-watch item tree: cluster, then item within the cluster; hierarchical-softmax.ts and
 * docs/hierarchical-softmax.md). Bundles written before this option were trained "sampled".
 */
export type OutputLayer = "sampled" | "hierarchical";
export const OUTPUT_LAYERS: readonly OutputLayer[] = ["sampled", "hierarchical"];

/** How the model is trained. */
export interface TrainConfig {
  readonly epochs: number;
  readonly batchSize: number;
  /** The training loss over the catalogue (see {@link OutputLayer}). */
  readonly output: OutputLayer;
  /** Clusters of the item tree ("hierarchical" only): 0 = round(√(vocabulary items)). */
  readonly clusters: number;
  /**
   * Self-normalisation weight α of the hierarchical softmax ("hierarchical" only; 0 = off): adds
   * α · (within-cluster log-partition)² to the loss, so that the serving dot product approaches
   * the log-probability (see hierarchical-softmax.ts).
   */
  readonly selfNormalization: number;
  /** Sampled negatives per batch (shared by the batch; "sampled" only). */
  readonly negatives: number;
  /** Negatives are drawn ∝ count^alpha of the training labels. */
  readonly samplingAlpha: number;
  /** Subtract log(expected count) of each class from its logit (sampled-softmax logQ correction). */
  readonly logQ: boolean;
  /** Adam learning rate of the dense tower. */
  readonly learningRate: number;
  /**
   * Where the tower's Adam runs: "js" (one pass over a flat copy of the ~90k parameters, then an
   * upload; the default, cheaper) or "tfjs" (tf.train.adam: ~20 kernel launches per variable).
   */
  readonly towerOptimizer: "js" | "tfjs";
  /** Sparse optimiser of the embedding tables and its learning rate. */
  readonly embeddingOptimizer: SparseOptimizer;
  readonly embeddingLearningRate: number;
  /** L2 penalty on tower weights and (lazily, on touched rows) on embeddings. */
  readonly l2: number;
  /** Standard deviation of the initial embedding values. */
  readonly initScale: number;
  /** Keep at most this many examples per user (the most recent). */
  readonly maxExamplesPerUser: number;
  /** Examples need at least this many earlier watches (0 = the first watch is also a label). */
  readonly minHistory: number;
  /** Learning rates decay linearly to this fraction of their value over training (1 = constant). */
  readonly finalLearningRateFraction: number;
  readonly seed: number;
  /**
   * Threads for synchronous data-parallel training: 1 (single-threaded, the default) or 2 (the
   * main thread and one worker; see parallel.ts). On an idle 2-core machine with the wasm backend
   * one thread was as fast or faster (ml-100k, reference size: 18,325 examples/s against 17,527
   * over a full run) at half the CPU and memory, so 2 is opt-in. A seed gives the same model for
   * a given thread count.
   */
  readonly threads: number;
}

export const DEFAULT_MODEL_CONFIG: ModelConfig = {
  embeddingDim: 64,
  // 16/8 matched 32/16 on ml-100k validation and shrink the tower input (151 → 111 columns).
  searchDim: 16,
  categoricalDim: 8,
  tower: [256, 128, 64],
  finalActivation: "linear",
  sharedItemEmbeddings: false,
  // Attention beat the mean on ml-100k validation on each of 3 seeds (HR@10 0.206 vs 0.166,
  // NDCG@10 0.106 vs 0.083, paired intervals above zero): docs/attention-pooling.md.
  historyPooling: "attention",
};

/** Defaults chosen on ml-100k validation items (protocol lastout); see README.md. */
export const DEFAULT_TRAIN_CONFIG: TrainConfig = {
  epochs: 10,
  batchSize: 256,
  output: "sampled",
  clusters: 0,
  // Hierarchical only. 0.1 beat 0 on ml-100k validation (HR@10 0.226 vs 0.199 over 3 seeds,
  // chosen among 0.03, 0.1, 0.3, 1 on seed 1): docs/hierarchical-softmax.md.
  selfNormalization: 0.1,
  negatives: 500,
  samplingAlpha: 0.75,
  logQ: true,
  learningRate: 2e-3,
  towerOptimizer: "js",
  embeddingOptimizer: "adam",
  embeddingLearningRate: 2e-3,
  l2: 0,
  initScale: 0.05,
  maxExamplesPerUser: 150,
  minHistory: 1,
  finalLearningRateFraction: 0.1,
  seed: 1,
  threads: 1,
};

export function validateModelConfig(c: ModelConfig): void {
  for (const key of ["embeddingDim", "searchDim", "categoricalDim"] as const) {
    if (!Number.isInteger(c[key]) || c[key] < 1) throw new Error(`model config: ${key} must be a positive integer, got ${c[key]}`);
  }
  if (!Array.isArray(c.tower) || c.tower.length === 0 || c.tower.some((w) => !Number.isInteger(w) || w < 1)) {
    throw new Error(`model config: tower must be a non-empty list of positive integers, got ${JSON.stringify(c.tower)}`);
  }
  if (c.tower[c.tower.length - 1] !== c.embeddingDim) {
    throw new Error(`model config: the last tower width (${c.tower[c.tower.length - 1]}) must equal embeddingDim (${c.embeddingDim})`);
  }
  if (c.finalActivation !== "relu" && c.finalActivation !== "linear")
    throw new Error(`model config: finalActivation must be "relu" or "linear"`);
  if (!HISTORY_POOLINGS.includes(c.historyPooling))
    throw new Error(`model config: historyPooling must be "mean" or "attention", got ${JSON.stringify(c.historyPooling)}`);
}

export function validateTrainConfig(c: TrainConfig): void {
  const positiveInts = ["epochs", "batchSize", "negatives", "maxExamplesPerUser"] as const;
  for (const key of positiveInts)
    if (!Number.isInteger(c[key]) || c[key] < 1) throw new Error(`train config: ${key} must be a positive integer, got ${c[key]}`);
  if (!Number.isInteger(c.minHistory) || c.minHistory < 0)
    throw new Error(`train config: minHistory must be an integer >= 0, got ${c.minHistory}`);
  for (const key of ["learningRate", "embeddingLearningRate", "initScale"] as const) {
    if (!(c[key] > 0) || !Number.isFinite(c[key])) throw new Error(`train config: ${key} must be > 0, got ${c[key]}`);
  }
  if (!(c.l2 >= 0)) throw new Error(`train config: l2 must be >= 0, got ${c.l2}`);
  if (!(c.samplingAlpha >= 0 && c.samplingAlpha <= 1))
    throw new Error(`train config: samplingAlpha must be in [0, 1], got ${c.samplingAlpha}`);
  if (!(c.finalLearningRateFraction > 0 && c.finalLearningRateFraction <= 1))
    throw new Error(`train config: finalLearningRateFraction must be in (0, 1]`);
  if (c.towerOptimizer !== "js" && c.towerOptimizer !== "tfjs") throw new Error(`train config: towerOptimizer must be "js" or "tfjs"`);
  if (c.embeddingOptimizer !== "adam" && c.embeddingOptimizer !== "adagrad" && c.embeddingOptimizer !== "rowwise-adagrad") {
    throw new Error(`train config: embeddingOptimizer must be "adam", "adagrad" or "rowwise-adagrad"`);
  }
  if (!Number.isSafeInteger(c.seed)) throw new Error(`train config: seed must be an integer, got ${c.seed}`);
  if (c.threads !== 1 && c.threads !== 2) throw new Error(`train config: threads must be 1 or 2, got ${c.threads}`);
  if (!OUTPUT_LAYERS.includes(c.output))
    throw new Error(`train config: output must be "sampled" or "hierarchical", got ${JSON.stringify(c.output)}`);
  if (!Number.isInteger(c.clusters) || c.clusters < 0) throw new Error(`train config: clusters must be an integer >= 0, got ${c.clusters}`);
  if (!(c.selfNormalization >= 0) || !Number.isFinite(c.selfNormalization))
    throw new Error(`train config: selfNormalization must be a finite number >= 0, got ${c.selfNormalization}`);
  if (c.output === "hierarchical" && c.threads !== 1)
    throw new Error('train config: output "hierarchical" trains with threads 1 only (the data-parallel step has no cluster table)');
}

/** Options of {@link trainCandidateGen}: every field optional, defaults above. */
export interface TrainOptions extends Partial<TrainConfig> {
  readonly holdout?: "test" | "val" | "none";
  readonly model?: Partial<ModelConfig>;
  readonly features?: Partial<FeatureConfig>;
  /** Stop after this many batches in total (benchmarks); default: all epochs. */
  readonly maxSteps?: number;
  /** Called about every `progressEvery` seconds (default 0.5) and at the end of each epoch. */
  readonly onProgress?: (p: TrainProgress) => void;
  readonly progressEvery?: number;
}

export interface TrainProgress {
  readonly epoch: number;
  readonly epochs: number;
  /** Batches done in this epoch / batches per epoch. */
  readonly step: number;
  readonly steps: number;
  /** Mean loss over the batches of this epoch so far. */
  readonly loss: number;
  readonly examplesPerSecond: number;
  readonly elapsedSeconds: number;
  readonly etaSeconds: number;
  readonly epochDone: boolean;
}
