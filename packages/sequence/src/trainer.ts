/**
 * Training of a sequence model: next-item prediction at every position of left-padded windows of
 * the users' chronological sequences, with
 *  - "full" softmax: cross-entropy over the whole catalogue (logits = h · Eᵀ), or
 *  - "sampled" softmax: the positive against S negatives shared by the batch, drawn ∝ count^α,
 *    every logit corrected by −log Q(j) (Q(j) = S·p(j), the logQ correction).
 *
 * The candidate generator's sparse-embedding technique: the item embeddings live in a JS
 * SparseTable (lazy Adam on the touched rows only); a step gathers the rows it needs into input
 * tensors, tfjs-wasm computes the encoder, the loss and the gradients with respect to those
 * inputs, and the gradients are scattered back into the table in JS. Only the encoder's dense
 * weights are tfjs variables (tf.train.adam).
 */
import { Rng } from "@recsys/data";
import { AliasSampler, type SparseOptimizerConfig } from "@recsys/candidate-gen";
import { assignFrom, tf, variableFrom } from "@recsys/tf";
import type { EncoderConfig } from "./encoders.js";
import { PAD, SequenceModel } from "./model.js";
import { fullSoftmaxLoss, gatherRows } from "./ops.js";

export type SoftmaxKind = "full" | "sampled";

export interface SequenceTrainConfig {
  readonly encoder: EncoderConfig;
  readonly softmax: SoftmaxKind;
  /** Shared negatives per batch ("sampled" only). */
  readonly negatives: number;
  /** Exponent of the label counts of the negative sampler ("sampled" only). */
  readonly samplerAlpha: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly dropout: number;
  /**
   * "last": one window per user (the most recent L + 1 items), as SASRec trains; "all": every
   * user's history cut into consecutive windows of L + 1 items from the end (older watches too).
   */
  readonly windows: "last" | "all";
  readonly maxEpochs: number;
  /** Validate every this many epochs (when a validation function is given). */
  readonly evalEvery: number;
  /** Stop after this many validations without improvement. */
  readonly patience: number;
  readonly seed: number;
}

export const DEFAULT_SEQUENCE_CONFIG: SequenceTrainConfig = {
  encoder: { kind: "sasrec", dim: 64, maxLength: 50, numBlocks: 2 },
  softmax: "full",
  negatives: 256,
  samplerAlpha: 0.75,
  batchSize: 128,
  learningRate: 1e-3,
  dropout: 0.2,
  windows: "last",
  maxEpochs: 200,
  evalEvery: 5,
  patience: 4,
  seed: 1,
};

export interface TrainProgress {
  readonly epoch: number;
  readonly loss: number;
  readonly validation?: number;
}

export interface SequenceTrainOptions {
  /** Validation metric of the model (higher is better), for early stopping. */
  readonly validate?: (model: SequenceModel) => number;
  readonly onEpoch?: (progress: TrainProgress) => void;
}

export interface SequenceTrainResult {
  readonly model: SequenceModel;
  /** Epochs run. */
  readonly epochs: number;
  /** Epoch of the best validation (the last epoch without validation). */
  readonly bestEpoch: number;
  readonly bestValidation: number;
  /** Next-item examples (non-padding target positions) per second of the training steps. */
  readonly examplesPerSecond: number;
  /** Seconds spent in training steps (validation excluded). */
  readonly trainSeconds: number;
  /** CPU seconds of this process during the training steps (less sensitive to a busy machine). */
  readonly trainCpuSeconds: number;
  readonly examples: number;
  readonly epochLosses: readonly number[];
  /** Milliseconds per step phase. */
  readonly profileMs: Readonly<Record<string, number>>;
}

/** Training windows: input ids and target ids (item index + 1, 0 = none), each [L]. */
export function buildWindows(
  sequences: readonly ArrayLike<number>[],
  maxLength: number,
  windows: "last" | "all",
): { inputs: Int32Array; targets: Int32Array; count: number } {
  const L = maxLength;
  const list: [ArrayLike<number>, number][] = []; // (sequence, end): window covers items end-L-1 .. end-1
  for (const s of sequences) {
    for (let end = s.length; end >= 2; end -= L) {
      list.push([s, end]);
      if (windows === "last") break;
    }
  }
  const inputs = new Int32Array(list.length * L);
  const targets = new Int32Array(list.length * L);
  list.forEach(([s, end], w) => {
    const start = Math.max(0, end - L - 1);
    const n = end - start - 1; // inputs s[start..end-2], targets s[start+1..end-1]
    for (let k = 0; k < n; k++) {
      inputs[w * L + L - n + k] = s[start + k]! + 1;
      targets[w * L + L - n + k] = s[start + k + 1]! + 1;
    }
  });
  return { inputs, targets, count: list.length };
}

export function validateSequenceConfig(c: SequenceTrainConfig): void {
  const positive = (name: string, v: number): void => {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`sequence config: ${name} must be a positive integer, got ${v}`);
  };
  positive("encoder.dim", c.encoder.dim);
  positive("encoder.maxLength", c.encoder.maxLength);
  positive("encoder.numBlocks", c.encoder.numBlocks);
  positive("batchSize", c.batchSize);
  positive("negatives", c.negatives);
  positive("maxEpochs", c.maxEpochs);
  positive("evalEvery", c.evalEvery);
  positive("patience", c.patience);
  if (!(c.learningRate > 0)) throw new RangeError(`sequence config: learningRate must be > 0, got ${c.learningRate}`);
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new RangeError(`sequence config: dropout must be in [0, 1), got ${c.dropout}`);
  if (c.softmax !== "full" && c.softmax !== "sampled")
    throw new RangeError(`sequence config: softmax must be "full" or "sampled", got ${String(c.softmax)}`);
  if (c.windows !== "last" && c.windows !== "all")
    throw new RangeError(`sequence config: windows must be "last" or "all", got ${String(c.windows)}`);
}

/**
 * Trains a sequence model on the chronological item sequences (item indices 0..numItems-1).
 * With `validate`, evaluates every `evalEvery` epochs and stops after `patience` evaluations
 * without improvement (the returned model is the last one; `bestEpoch` says when validation
 * peaked, for retraining on more data for exactly that many epochs).
 */
export function trainSequenceModel(
  sequences: readonly ArrayLike<number>[],
  numItems: number,
  config: SequenceTrainConfig,
  options: SequenceTrainOptions = {},
): SequenceTrainResult {
  validateSequenceConfig(config);
  const model = new SequenceModel(numItems, config.encoder, config.seed);
  const L = config.encoder.maxLength;
  const d = config.encoder.dim;
  const B = config.batchSize;
  const { inputs, targets, count } = buildWindows(sequences, L, config.windows);
  if (count === 0) throw new Error("trainSequenceModel: no sequence has two items");
  const rng = new Rng(config.seed, 12);
  const dropRng = new Rng(config.seed, 13);
  const negRng = new Rng(config.seed, 14);

  const labelCounts = new Float64Array(numItems);
  for (let i = 0; i < targets.length; i++) if (targets[i]! !== PAD) labelCounts[targets[i]! - 1]!++;
  const sampled = config.softmax === "sampled";
  const S = Math.min(config.negatives, numItems);
  let sampler: AliasSampler | null = null;
  if (sampled) {
    const w = new Float64Array(numItems);
    for (let i = 0; i < numItems; i++) w[i] = Math.pow(labelCounts[i]! + 1, config.samplerAlpha);
    sampler = new AliasSampler(w);
  }

  // Step buffers and the tfjs variables the gathered rows are assigned to.
  const ids = new Int32Array(B * L);
  const tgt = new Int32Array(B * L);
  const x = new Float32Array(B * L * d);
  const mask = new Float32Array(B * L);
  const weight = new Float32Array(B * L);
  const validRows = new Int32Array(B * L);
  const validTargets = new Int32Array(B * L);
  const attention = model.encoder.needsAttentionMask ? new Float32Array(B * L * L) : null;
  const xVar = variableFrom(tf.zeros([B, L, d]), "seq/x");
  const outT = sampled ? new Float32Array(d * S) : new Float32Array(d * numItems);
  const outVar = variableFrom(tf.zeros(sampled ? [d, S] : [d, numItems]), "seq/out");
  const posRows = sampled ? new Float32Array(B * L * d) : null;
  const posVar = sampled ? variableFrom(tf.zeros([B * L, d]), "seq/pos") : null;
  const negIds = new Int32Array(S);
  const negOffset = new Float32Array(S);
  const posOffset = new Float32Array(B * L);
  const gradVars = [xVar, outVar, ...(posVar === null ? [] : [posVar]), ...model.encoder.variables];
  const optimizer = tf.train.adam(config.learningRate, 0.9, 0.98, 1e-8);
  const embeddingOptimizer: SparseOptimizerConfig = {
    optimizer: "adam",
    learningRate: config.learningRate,
    l2: 0,
    beta1: 0.9,
    beta2: 0.98,
    epsilon: 1e-8,
  };
  const keep = 1 - config.dropout;
  const dropout = <T extends tf.Tensor>(t: T): T => {
    if (config.dropout === 0) return t;
    const m = new Float32Array(t.size);
    for (let i = 0; i < m.length; i++) m[i] = dropRng.next() < keep ? 1 / keep : 0;
    return tf.mul(t, tf.tensor(m, t.shape)) as T;
  };

  const profile: Record<string, number> = {};
  const tick = (phase: string, since: number): number => {
    const now = performance.now();
    profile[phase] = (profile[phase] ?? 0) + now - since;
    return now;
  };

  const order = new Int32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const epochLosses: number[] = [];
  let examples = 0;
  let trainMs = 0;
  let trainCpuMs = 0;
  let best = -Infinity;
  let bestEpoch = 0;
  let sinceBest = 0;
  let epoch = 0;
  const table = model.items;
  const tableData = table.data;

  while (epoch < config.maxEpochs) {
    epoch++;
    for (let i = count - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    let lossSum = 0;
    let batches = 0;
    const epochStart = performance.now();
    const cpuStart = process.cpuUsage();
    for (let start = 0; start < count; start += B) {
      let t = performance.now();
      const rows = Math.min(B, count - start);
      ids.fill(PAD);
      tgt.fill(PAD);
      for (let b = 0; b < rows; b++) {
        const w = order[start + b]!;
        ids.set(inputs.subarray(w * L, (w + 1) * L), b * L);
        tgt.set(targets.subarray(w * L, (w + 1) * L), b * L);
      }
      model.gather(ids, x, mask);
      if (attention !== null) model.attentionMask(ids, B, attention);
      let valid = 0;
      for (let p = 0; p < B * L; p++) if (tgt[p] !== PAD) valid++;
      for (let p = 0, v = 0; p < B * L; p++) {
        weight[p] = tgt[p] !== PAD ? 1 / valid : 0;
        if (tgt[p] !== PAD) {
          validRows[v] = p;
          validTargets[v++] = tgt[p]! - 1;
        }
      }
      assignFrom(xVar, tf.tensor3d(x, [B, L, d]));
      if (sampled) {
        for (let j = 0; j < S; j++) {
          const item = sampler!.sample(negRng);
          negIds[j] = item;
          negOffset[j] = -Math.log(S * sampler!.prob(item));
          const o = (item + 1) * d;
          for (let c = 0; c < d; c++) outT[c * S + j] = tableData[o + c]!;
        }
        for (let p = 0; p < B * L; p++) {
          const id = tgt[p]!;
          if (id === PAD) {
            posRows!.fill(0, p * d, (p + 1) * d);
            posOffset[p] = 0;
          } else {
            posRows!.set(tableData.subarray(id * d, (id + 1) * d), p * d);
            posOffset[p] = -Math.log(S * sampler!.prob(id - 1));
          }
        }
        assignFrom(posVar!, tf.tensor2d(posRows!, [B * L, d]));
      } else {
        for (let i = 0; i < numItems; i++) {
          const o = (i + 1) * d;
          for (let c = 0; c < d; c++) outT[c * numItems + i] = tableData[o + c]!;
        }
      }
      assignFrom(outVar, tf.tensor2d(outT, [d, sampled ? S : numItems]));
      t = tick("gather", t);

      const { value, grads } = tf.variableGrads(() => {
        const h = model.encoder.encode(
          {
            x: xVar as tf.Tensor3D,
            mask: tf.tensor2d(mask, [B, L]),
            attentionMask: attention === null ? null : tf.tensor3d(attention, [B, L, L]),
          },
          dropout,
        );
        if (!sampled)
          return fullSoftmaxLoss(gatherRows(h, validRows.subarray(0, valid)), outVar as tf.Tensor2D, validTargets.subarray(0, valid));
        const w = tf.tensor1d(weight);
        const pos = tf.add(tf.sum(tf.mul(h, posVar!), 1, true), tf.tensor2d(posOffset, [B * L, 1]));
        const hits = new Float32Array(B * L * S);
        for (let p = 0; p < B * L; p++) {
          const id = tgt[p]! - 1;
          for (let j = 0; j < S; j++) if (negIds[j] === id) hits[p * S + j] = -1e9;
        }
        const neg = tf.add(tf.add(tf.matMul(h, outVar as tf.Tensor2D), tf.tensor1d(negOffset)), tf.tensor2d(hits, [B * L, S]));
        const logp = tf.logSoftmax(tf.concat([pos, neg], 1));
        return tf.neg(tf.sum(tf.mul(tf.reshape(tf.slice(logp, [0, 0], [B * L, 1]), [B * L]), w))) as tf.Scalar;
      }, gradVars);
      t = tick("tfjs", t);
      lossSum += (value.dataSync() as Float32Array)[0]!;
      value.dispose();

      // Sparse part: scatter the gradients of the gathered rows into the item table.
      const dx = grads[xVar.name]!.dataSync() as Float32Array;
      for (let p = 0; p < B * L; p++) if (ids[p] !== PAD) table.addGrad(ids[p]!, dx, p * d, 1);
      const dOut = grads[outVar.name]!.dataSync() as Float32Array;
      if (sampled) {
        for (let j = 0; j < S; j++) table.addGradStrided(negIds[j]! + 1, dOut, j, S, 1);
        const dPos = grads[posVar!.name]!.dataSync() as Float32Array;
        for (let p = 0; p < B * L; p++) if (tgt[p] !== PAD) table.addGrad(tgt[p]!, dPos, p * d, 1);
      } else {
        for (let i = 0; i < numItems; i++) table.addGradStrided(i + 1, dOut, i, numItems, 1);
      }
      table.apply(embeddingOptimizer);
      tableData.fill(0, 0, d); // the padding row stays zero
      t = tick("sparse", t);

      const dense = model.encoder.variables.map((v) => ({ name: v.name, tensor: grads[v.name]! }));
      optimizer.applyGradients(dense);
      tf.dispose(Object.values(grads));
      tick("dense_update", t);
      examples += valid;
      batches++;
    }
    trainMs += performance.now() - epochStart;
    const cpu = process.cpuUsage(cpuStart);
    trainCpuMs += (cpu.user + cpu.system) / 1000;
    const loss = lossSum / batches;
    epochLosses.push(loss);
    let validation: number | undefined;
    if (options.validate !== undefined && epoch % config.evalEvery === 0) {
      validation = options.validate(model);
      if (validation > best) {
        best = validation;
        bestEpoch = epoch;
        sinceBest = 0;
      } else if (++sinceBest >= config.patience) {
        options.onEpoch?.({ epoch, loss, validation });
        break;
      }
    }
    options.onEpoch?.(validation === undefined ? { epoch, loss } : { epoch, loss, validation });
  }
  optimizer.dispose();
  tf.dispose([xVar, outVar, ...(posVar === null ? [] : [posVar])]);
  if (options.validate === undefined) bestEpoch = epoch;
  return {
    model,
    epochs: epoch,
    bestEpoch,
    bestValidation: best,
    examplesPerSecond: examples / (trainMs / 1000),
    trainSeconds: trainMs / 1000,
    trainCpuSeconds: trainCpuMs / 1000,
    examples,
    epochLosses,
    profileMs: profile,
  };
}
