import { type Dataset, type Holdout, lastoutSplit, Rng, trainingRows } from "@recsys/data";
import {
  EncodedBatch,
  encodeResolved,
  type FeatureSpace,
  fitFeatureSpace,
  NUM_CATEGORICAL,
  NUM_CONTINUOUS,
  resolveDatasetUser,
  type ResolvedUser,
  Vocabulary,
} from "@recsys/features";
import {
  DEFAULT_MODEL_CONFIG,
  DEFAULT_TRAIN_CONFIG,
  type ModelConfig,
  type TrainConfig,
  type TrainOptions,
  validateModelConfig,
  validateTrainConfig,
} from "./config.js";
import { tf } from "@recsys/tf";
import { allocateTableData } from "./adam-wasm.js";
import { HierarchicalSoftmax } from "./hierarchical-softmax.js";
import { buildItemTree, defaultClusterCount } from "./item-tree.js";
import { CandidateGenModel } from "./model.js";
import { ParallelStep } from "./parallel.js";
import { AliasSampler } from "./sampler.js";
import { allocateShared, tableShapes, tablesInOrder, towerSize, viewsOf } from "./shared-step.js";
import { SparseTable } from "./sparse.js";
import { type StepConfig, type StepInputs, TrainStep } from "./train-step.js";

/** The training examples: example k is position pos[k] of user user[k]'s resolved history. */
export interface TrainingExamples {
  readonly users: readonly (ResolvedUser | null)[];
  readonly user: Int32Array;
  readonly pos: Int32Array;
  /** Label (item vocabulary id) counts over the examples, by vocabulary id. */
  readonly labelCounts: Float64Array;
}

/**
 * One example per position t of each user's chronological training rows (t >= minHistory, label
 * in the item vocabulary): the label is the watch at t, the features see only watches before t.
 * At most `maxExamplesPerUser` per user, keeping the most recent.
 */
export function buildExamples(
  dataset: Dataset,
  space: FeatureSpace,
  rows: Int32Array,
  cfg: Pick<TrainConfig, "maxExamplesPerUser" | "minHistory">,
): TrainingExamples {
  const { events } = dataset;
  const numUsers = dataset.users.ids.length;
  const users: (ResolvedUser | null)[] = new Array(numUsers).fill(null);
  const exUser: number[] = [];
  const exPos: number[] = [];
  const labelCounts = new Float64Array(space.items.size);
  let k = 0;
  while (k < rows.length) {
    const u = events.user[rows[k]!]!;
    let end = k;
    while (end < rows.length && events.user[rows[end]!] === u) end++;
    const userRows = rows.subarray(k, end);
    const resolved = resolveDatasetUser(space, dataset, u, userRows, events.timestamp[userRows[userRows.length - 1]!]!);
    users[u] = resolved;
    const n = userRows.length;
    const first = Math.max(cfg.minHistory, n - cfg.maxExamplesPerUser);
    for (let t = first; t < n; t++) {
      const label = resolved.watchIds[t]!;
      if (label === Vocabulary.OOV) continue;
      exUser.push(u);
      exPos.push(t);
      labelCounts[label]!++;
    }
    k = end;
  }
  return { users, user: Int32Array.from(exUser), pos: Int32Array.from(exPos), labelCounts };
}

export interface TrainStats {
  /** Examples per second over the training loop (batches only, excluding setup). */
  readonly examplesPerSecond: number;
  /** Seconds of the training loop. */
  readonly seconds: number;
  /** Seconds of setup (split, feature space, examples). */
  readonly setupSeconds: number;
  readonly epochs: number;
  readonly steps: number;
  readonly examples: number;
  /** Mean batch loss of the last epoch. */
  readonly finalLoss: number;
  /** Mean batch loss of each epoch. */
  readonly epochLosses: readonly number[];
  /** Milliseconds spent in each phase of the training loop (encode, pool, tfjs, scatter, ...). */
  readonly profileMs: Readonly<Record<string, number>>;
  /** Threads used (1 or 2). */
  readonly threads: number;
  /** tfjs backend the tower ran on. */
  readonly backend: string;
}

export interface TrainResult {
  readonly model: CandidateGenModel;
  /** The item tree and cluster vectors when trainConfig.output is "hierarchical", else null. */
  readonly hierarchy: HierarchicalSoftmax | null;
  readonly space: FeatureSpace;
  readonly modelConfig: ModelConfig;
  readonly trainConfig: TrainConfig;
  readonly holdout: Holdout;
  readonly datasetSpec: string;
  readonly datasetFingerprint: string;
  readonly stats: TrainStats;
}

/** Width of the tower input for a model config (see CandidateGenModel.inputDim). */
function inputDimOf(c: ModelConfig): number {
  return c.embeddingDim + c.searchDim + NUM_CATEGORICAL * c.categoricalDim + NUM_CONTINUOUS;
}

/** Training-time random streams, all derived from the seed. */
const STREAM_INIT = 1;
const STREAM_SHUFFLE = 2;
const STREAM_NEGATIVES = 3;
const STREAM_TREE = 4;
const STREAM_CLUSTER_INIT = 5;

/**
 * Trains the candidate generator on the training rows of protocol lastout under `holdout`
 * (default "test": the test events are never seen). Call `initBackend()` from @recsys/tf first
 * to pick the fast backend. Deterministic for a given seed on a given backend.
 */
export async function trainCandidateGen(dataset: Dataset, opts: TrainOptions = {}): Promise<TrainResult> {
  const started = performance.now();
  const { holdout = "test", model: modelOpts, features, onProgress, maxSteps, progressEvery = 0.5, ...trainOpts } = opts;
  if (holdout !== "test" && holdout !== "val" && holdout !== "none")
    throw new Error(`holdout must be "test", "val" or "none", got "${String(holdout)}"`);
  const cfg: TrainConfig = { ...DEFAULT_TRAIN_CONFIG, ...stripUndefined(trainOpts) };
  validateTrainConfig(cfg);
  const modelCfg: ModelConfig = { ...DEFAULT_MODEL_CONFIG, ...stripUndefined(modelOpts ?? {}) };
  validateModelConfig(modelCfg);
  if (maxSteps !== undefined && (!Number.isInteger(maxSteps) || maxSteps < 1))
    throw new Error(`maxSteps must be a positive integer, got ${maxSteps}`);

  const split = lastoutSplit(dataset.events, dataset.users.ids.length);
  const rows = trainingRows(split, holdout);
  if (rows.length === 0) throw new Error(`dataset ${dataset.spec} has no training events under holdout "${holdout}"`);
  const space = fitFeatureSpace(dataset, rows, features ?? {});
  const examples = buildExamples(dataset, space, rows, cfg);
  const numExamples = examples.user.length;
  if (numExamples === 0)
    throw new Error(`dataset ${dataset.spec}: no training examples (users need more than ${cfg.minHistory} training events)`);

  const hierarchical = cfg.output === "hierarchical";
  const weights = new Float64Array(space.items.size - 1);
  for (let id = 1; id < space.items.size; id++) weights[id - 1] = Math.pow(examples.labelCounts[id]!, cfg.samplingAlpha);
  const sampler = hierarchical ? null : new AliasSampler(weights);

  const stepConfig: StepConfig = {
    batchSize: cfg.batchSize,
    negatives: cfg.negatives,
    learningRate: cfg.learningRate,
    l2: cfg.l2,
    embeddings: {
      optimizer: cfg.embeddingOptimizer,
      learningRate: cfg.embeddingLearningRate,
      l2: cfg.l2,
      beta1: 0.9,
      beta2: 0.999,
      epsilon: 1e-8,
    },
    towerOptimizer: cfg.towerOptimizer,
  };
  // With two threads the embedding tables and the step inputs live in shared memory.
  const shapes = tableShapes(space, modelCfg, cfg.batchSize, cfg.negatives);
  const towerFloats = towerSize(inputDimOf(modelCfg), modelCfg.tower);
  const threads = cfg.threads;
  const buffers = threads > 1 ? allocateShared(space, shapes, cfg.batchSize, cfg.negatives, towerFloats, cfg.embeddingOptimizer) : null;
  const views =
    buffers === null
      ? null
      : viewsOf(
          buffers,
          shapes,
          cfg.embeddingOptimizer,
          space.config.historyLength,
          space.config.searchLength,
          cfg.batchSize,
          cfg.negatives,
          towerFloats,
        );
  let nextTable = 0;
  const alloc = (n: number): Float32Array => {
    if (views === null) return allocateTableData(n);
    const t = views.tables[nextTable++];
    if (t === undefined || t.length !== n) throw new Error("trainCandidateGen: shared table layout mismatch");
    return t;
  };
  const model = CandidateGenModel.create(space, modelCfg, new Rng(cfg.seed, STREAM_INIT), cfg.initScale, alloc);
  if (views !== null)
    tablesInOrder(model, shapes).forEach((t, i) => t.attachState(cfg.embeddingOptimizer, views.state[i]![0], views.state[i]![1]));
  // The hierarchical softmax's item tree: from the training users' resolved histories (the rows
  // of this holdout only), cluster vectors N(0, initScale²) from their own stream.
  let hierarchy: HierarchicalSoftmax | null = null;
  if (hierarchical) {
    const histories = examples.users.map((u) => (u === null ? null : u.watchIds));
    const clusters = cfg.clusters > 0 ? cfg.clusters : defaultClusterCount(space.items.size - 1);
    const tree = buildItemTree(histories, space.items.size, clusters, new Rng(cfg.seed, STREAM_TREE));
    const table = new SparseTable("clusters", tree.clusters, modelCfg.embeddingDim);
    table.initNormal(new Rng(cfg.seed, STREAM_CLUSTER_INIT), cfg.initScale);
    hierarchy = new HierarchicalSoftmax(tree, table, model.output, cfg.selfNormalization);
  }
  const step = new TrainStep(model, stepConfig, hierarchy);
  let parallel: ParallelStep | null = null;
  if (buffers !== null && views !== null) {
    try {
      parallel = await ParallelStep.start(step, space, modelCfg, stepConfig, buffers, views, shapes, towerFloats);
    } catch (err) {
      step.dispose();
      model.dispose();
      throw err;
    }
  }
  const inputs: StepInputs = views?.inputs ?? {
    batch: EncodedBatch.forSpace(space, cfg.batchSize),
    labels: new Int32Array(cfg.batchSize),
    labelOffsets: new Float32Array(cfg.batchSize),
    negatives: new Int32Array(cfg.negatives),
    negativeOffsets: new Float32Array(cfg.negatives),
  };
  const { batch, labels, labelOffsets, negatives, negativeOffsets } = inputs;
  const negativeRng = new Rng(cfg.seed, STREAM_NEGATIVES);
  // −log Q(j), Q(j) = S·p(j): the expected count of item j among the S sampled negatives.
  const logitOffset = new Float32Array(space.items.size);
  if (cfg.logQ && sampler !== null)
    for (let id = 1; id < space.items.size; id++) logitOffset[id] = -Math.log(cfg.negatives * sampler.prob(id - 1));
  const offsetOf = (id: number): number => logitOffset[id]!;
  const shuffleRng = new Rng(cfg.seed, STREAM_SHUFFLE);
  const order = new Int32Array(numExamples);
  for (let i = 0; i < numExamples; i++) order[i] = i;

  const stepsPerEpoch = Math.ceil(numExamples / cfg.batchSize);
  const totalSteps = maxSteps === undefined ? stepsPerEpoch * cfg.epochs : Math.min(maxSteps, stepsPerEpoch * cfg.epochs);
  const setupSeconds = (performance.now() - started) / 1000;
  const loopStart = performance.now();
  let lastReport = loopStart;
  let stepsDone = 0;
  let examplesDone = 0;
  const epochLosses: number[] = [];
  let epochsRun = 0;
  let encodeMs = 0;

  try {
    for (let epoch = 0; epoch < cfg.epochs && stepsDone < totalSteps; epoch++) {
      for (let i = numExamples - 1; i > 0; i--) {
        const j = shuffleRng.int(i + 1);
        const t = order[i]!;
        order[i] = order[j]!;
        order[j] = t;
      }
      let lossSum = 0;
      let epochSteps = 0;
      for (let start = 0; start < numExamples && stepsDone < totalSteps; start += cfg.batchSize) {
        const end = Math.min(numExamples, start + cfg.batchSize);
        const lrScale =
          cfg.finalLearningRateFraction < 1 ? 1 - (1 - cfg.finalLearningRateFraction) * (stepsDone / Math.max(1, totalSteps - 1)) : 1;
        const encodeStart = performance.now();
        batch.size = 0;
        for (let k = start; k < end; k++) {
          const e = order[k]!;
          const user = examples.users[examples.user[e]!]!;
          const t = examples.pos[e]!;
          const time = user.watchTimes[t]!;
          encodeResolved(space, user, t, time, time, batch, k - start);
          const label = user.watchIds[t]!;
          labels[k - start] = label;
          labelOffsets[k - start] = offsetOf(label);
        }
        if (sampler !== null) {
          for (let j = 0; j < cfg.negatives; j++) {
            const id = sampler.sample(negativeRng) + 1;
            negatives[j] = id;
            negativeOffsets[j] = offsetOf(id);
          }
        }
        encodeMs += performance.now() - encodeStart;
        if (parallel !== null) {
          lossSum += parallel.run(lrScale);
        } else {
          step.setLearningRateScale(lrScale);
          lossSum += step.run(inputs);
        }
        epochSteps++;
        stepsDone++;
        examplesDone += end - start;
        const now = performance.now();
        const epochDone = end === numExamples;
        if (onProgress !== undefined && (epochDone || stepsDone === totalSteps || now - lastReport >= progressEvery * 1000)) {
          lastReport = now;
          const elapsed = (now - loopStart) / 1000;
          const rate = examplesDone / Math.max(elapsed, 1e-9);
          onProgress({
            epoch: epoch + 1,
            epochs: cfg.epochs,
            step: epochSteps,
            steps: stepsPerEpoch,
            loss: lossSum / epochSteps,
            examplesPerSecond: rate,
            elapsedSeconds: elapsed,
            etaSeconds: ((totalSteps - stepsDone) * cfg.batchSize) / Math.max(rate, 1e-9),
            epochDone: epochDone || stepsDone === totalSteps,
          });
        }
      }
      epochLosses.push(lossSum / Math.max(1, epochSteps));
      epochsRun++;
    }
  } catch (err) {
    model.dispose();
    throw err;
  } finally {
    step.dispose();
    if (parallel !== null) await parallel.close();
  }

  const seconds = (performance.now() - loopStart) / 1000;
  return {
    model,
    hierarchy,
    space,
    modelConfig: modelCfg,
    trainConfig: cfg,
    holdout,
    datasetSpec: dataset.spec,
    datasetFingerprint: dataset.fingerprint,
    stats: {
      examplesPerSecond: examplesDone / Math.max(seconds, 1e-9),
      seconds,
      setupSeconds,
      epochs: epochsRun,
      steps: stepsDone,
      examples: numExamples,
      finalLoss: epochLosses[epochLosses.length - 1] ?? NaN,
      epochLosses,
      backend: tf.getBackend(),
      threads,
      profileMs: { encode: encodeMs, ...step.profile },
    },
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
