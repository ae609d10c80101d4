/**
 * The ranking network (Covington et al. 2016, section 4): embeddings of the impression item and
 * of the user's last watches (ONE table shared by both, as the paper shares the video id
 * embedding), demographic embeddings and the normalised continuous features → ReLU tower → one
 * logit, trained by weighted logistic regression (positives weighted by watch time, negatives by 1)
 * so that exp(logit) estimates the expected watch time of an impression.
 *
 * As in @recsys/candidate-gen, the embedding tables live in JavaScript (SparseTable, sparse row
 * updates: a batch touches a few hundred rows, never the whole table) and the dense tower runs in
 * tfjs.
 */
import { SparseTable, type SparseOptimizerConfig } from "@recsys/candidate-gen";
import type { Rng } from "@recsys/data";
import { CATEGORICAL_FEATURES, NUM_CATEGORICAL } from "@recsys/features";
import { tf, variableFrom } from "@recsys/tf";
import type { RankingBatch } from "./encode.js";
import type { RankingSpace } from "./space.js";
import { WIDE_SLOTS } from "./wide.js";

/**
 * "weighted-lr": the deep network alone (the paper's ranker). "wide-deep": the same network plus
 * a wide part, a sparse linear model over hashed crossed categorical features (./wide.ts) whose
 * output is added to the tower's logit; both are trained jointly by the same weighted logistic
 * regression (Cheng et al. 2016's joint training).
 */
export type RankerModelKind = "weighted-lr" | "wide-deep";
export const RANKER_MODEL_KINDS: readonly RankerModelKind[] = ["weighted-lr", "wide-deep"];

export interface RankerModelConfig {
  /** Dimension of the item embedding (impression and history). */
  readonly itemDim: number;
  /** Dimension of each demographic embedding. */
  readonly categoricalDim: number;
  /** Hidden ReLU layer widths; a linear layer of width 1 (the logit) follows. */
  readonly tower: readonly number[];
  /**
   * Also feed the element-wise product of the impression embedding and the mean history
   * embedding (an explicit user-item interaction the tower would otherwise have to learn).
   */
  readonly interaction: boolean;
  readonly kind: RankerModelKind;
  /** Hash buckets of the wide part (its weight count); used by "wide-deep" only. */
  readonly wideBuckets: number;
}

export const DEFAULT_RANKER_MODEL_CONFIG: RankerModelConfig = {
  itemDim: 32,
  categoricalDim: 8,
  tower: [128, 64],
  interaction: true,
  kind: "weighted-lr",
  wideBuckets: 1 << 20,
};

export function validateRankerModelConfig(c: RankerModelConfig): void {
  for (const key of ["itemDim", "categoricalDim"] as const) {
    if (!Number.isInteger(c[key]) || c[key] < 1) throw new Error(`ranker model config: ${key} must be a positive integer, got ${c[key]}`);
  }
  if (!Array.isArray(c.tower) || c.tower.some((w) => !Number.isInteger(w) || w < 1)) {
    throw new Error(`ranker model config: tower must be a list of positive integers, got ${JSON.stringify(c.tower)}`);
  }
  if (typeof c.interaction !== "boolean") throw new Error("ranker model config: interaction must be a boolean");
  if (!RANKER_MODEL_KINDS.includes(c.kind))
    throw new Error(`ranker model config: kind must be one of ${RANKER_MODEL_KINDS.join(", ")}, got ${JSON.stringify(c.kind)}`);
  if (!Number.isInteger(c.wideBuckets) || c.wideBuckets < 1)
    throw new Error(`ranker model config: wideBuckets must be a positive integer, got ${c.wideBuckets}`);
}

/** Plain-array weights (what the ranker bundle stores). */
export interface RankerWeights {
  /** items.size × itemDim (row 0 = OOV). */
  readonly item: Float32Array;
  /** CATEGORICAL_FEATURES order, vocabulary size × categoricalDim each. */
  readonly categorical: readonly Float32Array[];
  /** Layers in order: w (inDim × outDim, row-major), b (outDim); the last has outDim 1. */
  readonly tower: readonly { readonly w: Float32Array; readonly b: Float32Array }[];
  /** wideBuckets weights of the wide part ("wide-deep" only). */
  readonly wide?: Float32Array;
}

export interface RankerLayer {
  readonly inDim: number;
  readonly outDim: number;
  readonly w: tf.Variable;
  readonly b: tf.Variable;
  readonly relu: boolean;
}

let instances = 0;

/**
 * Weighted logistic loss of logits z with labels y ∈ {0, 1} and weights w, and its gradient:
 *   L = Σ_i w_i · (softplus(z_i) − y_i z_i) / Σ_i w_i        (the weighted mean cross-entropy)
 *   ∂L/∂z_i = w_i · (σ(z_i) − y_i) / Σ_i w_i
 * With positives weighted by their watch time T_i and negatives by 1, the optimum of a shared
 * logit is exp(z) = Σ T_i / (number of negatives): the odds estimate the expected watch time
 * (Covington et al., section 4.2). Dividing by Σ w keeps the gradient scale independent of the
 * watch-time unit and does not move the optimum. Fills `grad` when given; returns L.
 */
export function weightedLogisticLoss(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  weights: ArrayLike<number>,
  grad?: Float32Array,
): number {
  let num = 0;
  let den = 0;
  const n = logits.length;
  for (let i = 0; i < n; i++) den += weights[i]!;
  if (!(den > 0)) throw new Error("weightedLogisticLoss: the weights must have a positive sum");
  for (let i = 0; i < n; i++) {
    const z = logits[i]!;
    const w = weights[i]!;
    const y = labels[i]!;
    // softplus(z) = log(1 + e^z), computed without overflow.
    const softplus = z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
    num += w * (softplus - y * z);
    if (grad !== undefined) {
      const sigma = z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
      grad[i] = (w * (sigma - y)) / den;
    }
  }
  return num / den;
}

export class RankerModel {
  readonly item: SparseTable;
  readonly categorical: readonly SparseTable[];
  readonly layers: readonly RankerLayer[];
  /** The wide part: wideBuckets × 1 weights ("wide-deep"), null for "weighted-lr". */
  readonly wide: SparseTable | null;
  readonly inputDim: number;
  readonly offsets: {
    readonly item: number;
    readonly history: number;
    readonly product: number;
    readonly categorical: number;
    readonly continuous: number;
  };
  private disposed = false;

  private constructor(
    readonly space: RankingSpace,
    readonly config: RankerModelConfig,
    weights: RankerWeights,
  ) {
    validateRankerModelConfig(config);
    const d = config.itemDim;
    const dc = config.categoricalDim;
    this.item = new SparseTable("item", space.features.items.size, d, weights.item);
    this.categorical = CATEGORICAL_FEATURES.map(
      (f, j) => new SparseTable(f, space.features.categorical(f).size, dc, weights.categorical[j]),
    );
    if (config.kind === "wide-deep") {
      if (weights.wide === undefined || weights.wide.length !== config.wideBuckets)
        throw new Error(
          `ranker weights: a wide-deep model needs ${config.wideBuckets} wide weights, got ${weights.wide?.length ?? "none"}`,
        );
      this.wide = new SparseTable("wide", config.wideBuckets, 1, weights.wide);
    } else {
      this.wide = null;
    }
    const product = 2 * d;
    const categorical = product + (config.interaction ? d : 0);
    const continuous = categorical + NUM_CATEGORICAL * dc;
    this.offsets = { item: 0, history: d, product, categorical, continuous };
    this.inputDim = continuous + space.width;
    const id = ++instances;
    const widths = [...config.tower, 1];
    let inDim = this.inputDim;
    this.layers = widths.map((outDim, l) => {
      const lw = weights.tower[l];
      if (lw === undefined || lw.w.length !== inDim * outDim || lw.b.length !== outDim) {
        throw new Error(`ranker weights: layer ${l} must be ${inDim}x${outDim} plus a bias of ${outDim}`);
      }
      const layer: RankerLayer = {
        inDim,
        outDim,
        w: variableFrom(tf.tensor2d(lw.w, [inDim, outDim]), `ranker${id}/dense${l}/w`),
        b: variableFrom(tf.tensor1d(lw.b), `ranker${id}/dense${l}/b`),
        relu: l < widths.length - 1,
      };
      inDim = outDim;
      return layer;
    });
  }

  /** A fresh model: embeddings N(0, initScale²), hidden layers He-uniform, the logit layer small, biases 0. */
  static create(space: RankingSpace, config: RankerModelConfig, rng: Rng, initScale: number): RankerModel {
    validateRankerModelConfig(config);
    const normal = (n: number): Float32Array => {
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = rng.normal() * initScale;
      return a;
    };
    const d = config.itemDim;
    const dc = config.categoricalDim;
    const inputDim = 2 * d + (config.interaction ? d : 0) + NUM_CATEGORICAL * dc + space.width;
    const widths = [...config.tower, 1];
    const tower: { w: Float32Array; b: Float32Array }[] = [];
    let inDim = inputDim;
    widths.forEach((outDim, l) => {
      const limit = l < widths.length - 1 ? Math.sqrt(6 / inDim) : Math.sqrt(1 / inDim);
      const w = new Float32Array(inDim * outDim);
      for (let i = 0; i < w.length; i++) w[i] = (2 * rng.next() - 1) * limit;
      tower.push({ w, b: new Float32Array(outDim) });
      inDim = outDim;
    });
    return new RankerModel(space, config, {
      item: normal(space.features.items.size * d),
      categorical: CATEGORICAL_FEATURES.map((f) => normal(space.features.categorical(f).size * dc)),
      tower,
      ...(config.kind === "wide-deep" ? { wide: new Float32Array(config.wideBuckets) } : {}),
    });
  }

  static fromWeights(space: RankingSpace, config: RankerModelConfig, weights: RankerWeights): RankerModel {
    return new RankerModel(space, config, weights);
  }

  /**
   * Writes the tower input of each batch row into `x` (batch.size × inputDim): the impression
   * embedding, the mean history embedding (zeros without history), their element-wise product
   * (when configured), the demographic embeddings and the continuous features. Rows of one group
   * share the history mean, computed once.
   */
  pool(batch: RankingBatch, x: Float32Array): void {
    const rows = batch.size;
    const inDim = this.inputDim;
    const d = this.config.itemDim;
    const dc = this.config.categoricalDim;
    const h = batch.historyLength;
    const w = batch.width;
    const table = this.item.data;
    if (x.length < rows * inDim) throw new Error("RankerModel.pool: input buffer too small");
    const { history: ho, product: po, categorical: co, continuous: ko } = this.offsets;
    for (let b = 0; b < rows; b++) {
      const xo = b * inDim;
      const g = batch.group[b]!;
      if (g === b || b === 0) {
        const count = batch.historyCount[b]!;
        for (let c = 0; c < d; c++) x[xo + ho + c] = 0;
        if (count > 0) {
          for (let k = 0; k < count; k++) {
            const ro = batch.history[b * h + k]! * d;
            for (let c = 0; c < d; c++) x[xo + ho + c]! += table[ro + c]!;
          }
          const inv = 1 / count;
          for (let c = 0; c < d; c++) x[xo + ho + c]! *= inv;
        }
      } else {
        x.copyWithin(xo + ho, g * inDim + ho, g * inDim + ho + d);
      }
      const io = batch.item[b]! * d;
      for (let c = 0; c < d; c++) x[xo + c] = table[io + c]!;
      if (this.config.interaction) for (let c = 0; c < d; c++) x[xo + po + c] = x[xo + c]! * x[xo + ho + c]!;
      for (let j = 0; j < NUM_CATEGORICAL; j++) {
        const t = this.categorical[j]!.data;
        const ro = batch.categorical[b * NUM_CATEGORICAL + j]! * dc;
        for (let c = 0; c < dc; c++) x[xo + co + j * dc + c] = t[ro + c]!;
      }
      for (let c = 0; c < w; c++) x[xo + ko + c] = batch.continuous[b * w + c]!;
    }
  }

  /** Logits of x (rows × inputDim) as a [rows] tensor. Call inside tf.tidy. */
  logits(x: tf.Tensor2D): tf.Tensor1D {
    let hidden: tf.Tensor2D = x;
    for (const layer of this.layers) {
      hidden = tf.fused.matMul({ a: hidden, b: layer.w, bias: layer.b, activation: layer.relu ? "relu" : "linear" }) as tf.Tensor2D;
    }
    return tf.reshape(hidden, [-1]) as tf.Tensor1D;
  }

  /** Adds the wide part's output of each batch row to z[row] (nothing for "weighted-lr"). */
  addWide(batch: RankingBatch, z: Float32Array): void {
    const wide = this.wide;
    if (wide === null) return;
    const data = wide.data;
    const buckets = wide.rows;
    for (let r = 0; r < batch.size; r++) {
      let sum = 0;
      for (let s = r * WIDE_SLOTS; s < (r + 1) * WIDE_SLOTS; s++) {
        const h = batch.wide[s]!;
        if (h >= 0) sum += data[h % buckets]!;
      }
      z[r]! += sum;
    }
  }

  /** Logits of an encoded batch (one per row). exp(logit) estimates the expected watch time. */
  score(batch: RankingBatch, scratch?: Float32Array): Float32Array {
    this.checkAlive();
    const rows = batch.size;
    if (rows === 0) return new Float32Array(0);
    const x = scratch !== undefined && scratch.length >= rows * this.inputDim ? scratch : new Float32Array(rows * this.inputDim);
    this.pool(batch, x);
    const z = tf.tidy(() => this.logits(tf.tensor2d(x.subarray(0, rows * this.inputDim), [rows, this.inputDim])));
    const out = (z.dataSync() as Float32Array).slice();
    z.dispose();
    this.addWide(batch, out);
    return out;
  }

  /** The current weights (tower weights read back from tfjs). */
  weights(): RankerWeights {
    this.checkAlive();
    return {
      item: this.item.data,
      categorical: this.categorical.map((t) => t.data),
      tower: this.layers.map((l) => ({ w: l.w.dataSync() as Float32Array, b: l.b.dataSync() as Float32Array })),
      ...(this.wide === null ? {} : { wide: this.wide.data }),
    };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const l of this.layers) {
      l.w.dispose();
      l.b.dispose();
    }
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error("RankerModel: used after dispose()");
  }
}

/** Settings of one optimisation step. */
export interface RankerStepConfig {
  readonly learningRate: number;
  readonly embeddings: SparseOptimizerConfig;
  readonly l2: number;
  /** Optimiser of the wide part's weights ("wide-deep"); defaults to `embeddings`. */
  readonly wide?: SparseOptimizerConfig;
}

/**
 * One weighted-logistic-regression step, with hand-written backpropagation as in
 * @recsys/candidate-gen (every matmul without transposed operands: explicit tf.transpose, which
 * keeps tfjs-wasm on its fast XNNPACK kernel; tfjs's own gradients of fused matmuls use the slow
 * transposed path):
 * JS: pool the inputs x (rows × inputDim) and xᵀ.
 * tfjs: the tower's activations and the logits z.
 * JS: the loss and ∂z = w (σ(z) − y) / Σ w.
 * tfjs: ∂W, ∂b of every layer and ∂x.
 * JS: scatter ∂x into the touched embedding rows (the history gradient summed per group, then
 *     spread over the window ÷ count); tfjs Adam on the tower, lazy sparse Adam on the rows.
 */
export class RankerTrainStep {
  private x: Float32Array;
  private xT: Float32Array;
  private dz: Float32Array;
  private zt: Float32Array;
  private readonly optimizer: tf.AdamOptimizer;
  private readonly groupGrad: Float32Array;
  private readonly itemGrad: Float32Array;

  constructor(
    readonly model: RankerModel,
    readonly config: RankerStepConfig,
    capacity: number,
  ) {
    this.x = new Float32Array(capacity * model.inputDim);
    this.xT = new Float32Array(capacity * model.inputDim);
    this.dz = new Float32Array(capacity);
    this.zt = new Float32Array(capacity);
    this.groupGrad = new Float32Array(model.config.itemDim);
    this.itemGrad = new Float32Array(model.config.itemDim);
    this.optimizer = tf.train.adam(config.learningRate);
  }

  /** Runs one step on the batch; returns the batch loss. */
  run(batch: RankingBatch, labels: Float32Array, weights: Float32Array): number {
    const model = this.model;
    const rows = batch.size;
    const inDim = model.inputDim;
    if (rows === 0) return 0;
    if (this.x.length < rows * inDim) {
      this.x = new Float32Array(rows * inDim);
      this.xT = new Float32Array(rows * inDim);
    }
    if (this.dz.length < rows) {
      this.dz = new Float32Array(rows);
      this.zt = new Float32Array(rows);
    }
    const x = this.x;
    const xT = this.xT;
    model.pool(batch, x);
    for (let b = 0; b < rows; b++) {
      const o = b * inDim;
      for (let c = 0; c < inDim; c++) xT[c * rows + b] = x[o + c]!;
    }
    const layers = model.layers;
    const acts = tf.tidy(() => {
      const out: tf.Tensor2D[] = [tf.tensor2d(x.subarray(0, rows * inDim), [rows, inDim])];
      let h = out[0]!;
      for (const layer of layers) {
        h = tf.fused.matMul({ a: h, b: layer.w, bias: layer.b, activation: layer.relu ? "relu" : "linear" }) as tf.Tensor2D;
        out.push(h);
      }
      return out;
    });
    // The logit: the tower's output plus the wide part's (wide-deep); one loss trains both.
    const z = this.zt;
    z.set((acts[acts.length - 1]!.dataSync() as Float32Array).subarray(0, rows));
    model.addWide(batch, z);
    const dz = this.dz;
    const loss = weightedLogisticLoss(z.subarray(0, rows), labels.subarray(0, rows), weights.subarray(0, rows), dz);
    if (model.wide !== null) {
      const buckets = model.wide.rows;
      for (let r = 0; r < rows; r++) {
        for (let s = r * WIDE_SLOTS; s < (r + 1) * WIDE_SLOTS; s++) {
          const h = batch.wide[s]!;
          if (h >= 0) model.wide.addGrad(h % buckets, dz, r, 1);
        }
      }
    }
    const l2 = this.config.l2;
    const [dX, ...towerGrads] = tf.tidy(() => {
      const ones = tf.ones([1, rows]) as tf.Tensor2D;
      const grads: tf.Tensor[] = new Array(2 * layers.length);
      let g = tf.tensor2d(dz.subarray(0, rows), [rows, 1]) as tf.Tensor2D;
      for (let l = layers.length - 1; l >= 0; l--) {
        const layer = layers[l]!;
        if (layer.relu) g = tf.mul(g, tf.step(acts[l + 1]!));
        const inT = l === 0 ? tf.tensor2d(xT.subarray(0, inDim * rows), [inDim, rows]) : tf.transpose(acts[l]!);
        let dW: tf.Tensor = tf.matMul(inT, g);
        if (l2 > 0) dW = tf.add(dW, tf.mul(layer.w, l2));
        grads[2 * l] = dW;
        grads[2 * l + 1] = tf.reshape(tf.matMul(ones, g), [layer.outDim]);
        g = tf.matMul(g, tf.transpose(layer.w));
      }
      return [g, ...grads];
    });
    tf.dispose(acts);
    const dx = dX!.dataSync() as Float32Array;
    dX!.dispose();
    this.scatter(batch, dx, x);
    const named = layers.flatMap((layer, l) => [
      { name: layer.w.name, tensor: towerGrads[2 * l]! },
      { name: layer.b.name, tensor: towerGrads[2 * l + 1]! },
    ]);
    this.optimizer.applyGradients(named);
    tf.dispose(towerGrads);
    const emb = this.config.embeddings;
    model.item.apply(emb);
    for (const t of model.categorical) t.apply(emb);
    model.wide?.apply(this.config.wide ?? emb);
    return loss;
  }

  /** ∂x → the touched rows of the item and demographic tables. */
  private scatter(batch: RankingBatch, dx: Float32Array, x: Float32Array): void {
    const model = this.model;
    const inDim = model.inputDim;
    const d = model.config.itemDim;
    const dc = model.config.categoricalDim;
    const h = batch.historyLength;
    const { history: ho, product: po, categorical: co } = model.offsets;
    const interaction = model.config.interaction;
    const gg = this.groupGrad;
    const itemRow = this.itemGrad;
    const rows = batch.size;
    let b = 0;
    while (b < rows) {
      const g = batch.group[b]!;
      gg.fill(0);
      let end = b;
      while (end < rows && batch.group[end] === g) {
        const xo = end * inDim;
        for (let c = 0; c < d; c++) {
          let gi = dx[xo + c]!;
          let gh = dx[xo + ho + c]!;
          if (interaction) {
            const gp = dx[xo + po + c]!;
            gi += gp * x[xo + ho + c]!;
            gh += gp * x[xo + c]!;
          }
          itemRow[c] = gi;
          gg[c]! += gh;
        }
        model.item.addGrad(batch.item[end]!, itemRow, 0, 1);
        for (let j = 0; j < NUM_CATEGORICAL; j++) {
          model.categorical[j]!.addGrad(batch.categorical[end * NUM_CATEGORICAL + j]!, dx, xo + co + j * dc, 1);
        }
        end++;
      }
      const count = batch.historyCount[b]!;
      for (let k = 0; k < count; k++) model.item.addGrad(batch.history[b * h + k]!, gg, 0, 1 / count);
      b = end;
    }
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
