import type { Rng } from "@recsys/data";
import { type EncodedBatch, NUM_CATEGORICAL } from "@recsys/features";
import { tf } from "@recsys/tf";
import type { CandidateGenModel } from "./model.js";
import type { AliasSampler } from "./sampler.js";
import type { SparseOptimizerConfig } from "./sparse.js";

/** Settings of one optimisation step. */
export interface StepConfig {
  readonly batchSize: number;
  readonly negatives: number;
  readonly logQ: boolean;
  readonly learningRate: number;
  readonly embeddings: SparseOptimizerConfig;
  readonly l2: number;
}

/** Logit offset that removes a sampled negative equal to the row's positive ("accidental hit"). */
const MASKED = -1e9;

/**
 * One sampled-softmax training step, with hand-written backpropagation:
 *
 * JS: pool embeddings into x (B × inputDim); gather the positives' output embeddings V⁺ (B × d)
 *     and the S shared negatives' V⁻ (S × d, and its transpose); logit offsets −log Q(j) (logQ
 *     correction, Q(j) = S·p(j) the expected count of j in the sample) and accidental-hit masks.
 * tfjs: u = tower(x); logits = [u·v⁺_b, u·V⁻ᵀ] + offsets; p = softmax(logits);
 *     loss = mean_b −log p_b0; ∂logits = (p − e₀)/B, then ∂u, ∂V⁺, ∂V⁻, the tower weight
 *     gradients and ∂x by the chain rule. Every matmul is written without transposed operands
 *     (explicit tf.transpose instead), which keeps tfjs-wasm on its fast XNNPACK kernel.
 * JS: scatter ∂x into the touched watch / search / categorical rows (÷ window size for the mean
 *     pooling), ∂V⁺ and ∂V⁻ into the touched output rows, then lazy Adam on those rows only;
 *     the tower weights take a tfjs Adam step.
 */
export class TrainStep {
  private readonly x: Float32Array;
  private readonly xT: Float32Array;
  private readonly dNeg: Float32Array;
  private readonly dNegT: Float32Array;
  private readonly dUPos: Float32Array;
  private readonly vPos: Float32Array;
  private readonly vNeg: Float32Array;
  private readonly vNegT: Float32Array;
  private readonly negatives: Int32Array;
  private readonly negOffset: Float32Array;
  private readonly optimizer: tf.AdamOptimizer;
  private readonly ones = new Map<number, tf.Tensor2D>();
  private lr: number;

  constructor(
    readonly model: CandidateGenModel,
    readonly config: StepConfig,
    private readonly sampler: AliasSampler,
    private readonly rng: Rng,
  ) {
    const b = config.batchSize;
    const s = config.negatives;
    const d = model.dim;
    this.x = new Float32Array(b * model.inputDim);
    this.xT = new Float32Array(b * model.inputDim);
    this.dNeg = new Float32Array(b * s);
    this.dNegT = new Float32Array(b * s);
    this.dUPos = new Float32Array(b * d);
    this.vPos = new Float32Array(b * d);
    this.vNeg = new Float32Array(s * d);
    this.vNegT = new Float32Array(d * s);
    this.negatives = new Int32Array(s);
    this.negOffset = new Float32Array(s);
    this.lr = config.learningRate;
    this.optimizer = tf.train.adam(config.learningRate);
  }

  /** Scales both the tower and the embedding learning rates (for a decay schedule). */
  setLearningRateScale(scale: number): void {
    this.lr = this.config.learningRate * scale;
    // tfjs's Adam reads its (protected) learningRate field at every step.
    (this.optimizer as unknown as { learningRate: number }).learningRate = this.lr;
    this.embeddingScale = scale;
  }
  private embeddingScale = 1;

  /** Milliseconds spent in each phase of the step so far (for profiling and the benchmark). */
  readonly profile: Record<string, number> = {};

  private tick(phase: string, since: number): number {
    const now = performance.now();
    this.profile[phase] = (this.profile[phase] ?? 0) + (now - since);
    return now;
  }

  /** Draws the batch's shared negatives (item vocabulary ids) from the sampler. */
  sampleNegatives(): Int32Array {
    for (let i = 0; i < this.negatives.length; i++) this.negatives[i] = this.sampler.sample(this.rng) + 1;
    return this.negatives;
  }

  /** −log Q(j) for item vocabulary id j (0 without the logQ correction). */
  private logitOffset(id: number): number {
    return this.config.logQ ? -Math.log(this.config.negatives * this.sampler.prob(id - 1)) : 0;
  }

  /** A cached [1 × rows] tensor of ones (bias gradients as ones·G, faster than a column sum). */
  private onesFor(rows: number): tf.Tensor2D {
    let t = this.ones.get(rows);
    if (t === undefined) {
      t = tf.keep(tf.tensor2d(new Float32Array(rows).fill(1), [1, rows])); // cached: survives tf.tidy
      this.ones.set(rows, t);
    }
    return t;
  }

  /**
   * Forward and backward pass for rows 0..batch.size-1 with positives `labels` (item vocabulary
   * ids) and the given negatives. Accumulates the embedding gradients into the sparse tables and
   * returns the loss and the tower gradients (the caller applies or disposes them).
   */
  forwardBackward(batch: EncodedBatch, labels: Int32Array, negatives: Int32Array): { loss: number; towerGrads: tf.Tensor[] } {
    const model = this.model;
    const rows = batch.size;
    const s = negatives.length;
    const d = model.dim;
    const inDim = model.inputDim;
    if (rows < 1 || rows > this.config.batchSize) throw new Error(`TrainStep: batch of ${rows} rows, capacity ${this.config.batchSize}`);
    if (s !== this.config.negatives) throw new Error(`TrainStep: ${s} negatives, configured ${this.config.negatives}`);

    // --- JS: inputs.
    let t = performance.now();
    const x = this.x;
    const xT = this.xT;
    model.pool(batch, x);
    for (let b = 0; b < rows; b++) {
      const o = b * inDim;
      for (let c = 0; c < inDim; c++) xT[c * rows + b] = x[o + c]!;
    }
    t = this.tick("pool", t);
    const out = model.output.data;
    for (let b = 0; b < rows; b++) this.vPos.set(out.subarray(labels[b]! * d, (labels[b]! + 1) * d), b * d);
    for (let j = 0; j < s; j++) {
      const ro = negatives[j]! * d;
      for (let c = 0; c < d; c++) {
        const v = out[ro + c]!;
        this.vNeg[j * d + c] = v;
        this.vNegT[c * s + j] = v;
      }
    }
    const negOffset = this.negOffset;
    for (let j = 0; j < s; j++) negOffset[j] = this.logitOffset(negatives[j]!);
    t = this.tick("gather", t);

    // --- tfjs: the tower and the negatives' logits.
    const layers = model.layers;
    const acts = tf.tidy(() => {
      const a = model.forward(tf.tensor2d(x.subarray(0, rows * inDim), [rows, inDim]));
      return [...a, tf.matMul(a[a.length - 1]!, tf.tensor2d(this.vNegT, [d, s]))];
    });
    const negLogitsT = acts.pop()!;
    const u = acts[acts.length - 1]!;
    const uv = u.dataSync() as Float32Array;
    const negLogits = negLogitsT.dataSync() as Float32Array;
    negLogitsT.dispose();
    t = this.tick("tfjs_forward", t);

    // --- JS: sampled softmax with logQ correction, loss and ∂logits (÷ rows for the mean).
    const vPos = this.vPos;
    const dNeg = this.dNeg;
    const dNegT = this.dNegT;
    const dUPos = this.dUPos;
    const output = model.output;
    let loss = 0;
    const invRows = 1 / rows;
    for (let b = 0; b < rows; b++) {
      const pos = labels[b]!;
      const uo = b * d;
      let lp = this.logitOffset(pos);
      for (let c = 0; c < d; c++) lp += uv[uo + c]! * vPos[uo + c]!;
      const lo = b * s;
      let m = lp;
      for (let j = 0; j < s; j++) {
        const l = negatives[j] === pos ? MASKED : negLogits[lo + j]! + negOffset[j]!;
        dNeg[lo + j] = l;
        if (l > m) m = l;
      }
      const ep = Math.exp(lp - m);
      let z = ep;
      for (let j = 0; j < s; j++) {
        const e = Math.exp(dNeg[lo + j]! - m);
        dNeg[lo + j] = e;
        z += e;
      }
      loss += Math.log(z) - (lp - m);
      const scale = invRows / z;
      for (let j = 0; j < s; j++) {
        const g = dNeg[lo + j]! * scale;
        dNeg[lo + j] = g;
        dNegT[j * rows + b] = g;
      }
      const dPos = ep * scale - invRows;
      for (let c = 0; c < d; c++) dUPos[uo + c] = dPos * vPos[uo + c]!;
      output.addGrad(pos, uv, uo, dPos);
    }
    loss *= invRows;
    t = this.tick("softmax", t);

    // --- tfjs: backward through the logits and the tower.
    const [dX, dVNeg, ...towerGrads] = tf.tidy(() => {
      const dNegM = tf.tensor2d(dNeg.subarray(0, rows * s), [rows, s]);
      const dU = tf.add(tf.tensor2d(dUPos.subarray(0, rows * d), [rows, d]), tf.matMul(dNegM, tf.tensor2d(this.vNeg, [s, d]))) as tf.Tensor2D;
      const dVNegM = tf.matMul(tf.tensor2d(dNegT.subarray(0, s * rows), [s, rows]), u);
      const ones = this.onesFor(rows);
      const grads: tf.Tensor[] = new Array(2 * layers.length);
      let g: tf.Tensor2D = dU;
      for (let l = layers.length - 1; l >= 0; l--) {
        const layer = layers[l]!;
        if (layer.relu) g = tf.mul(g, tf.step(acts[l + 1]!));
        const inT = l === 0 ? tf.tensor2d(xT.subarray(0, inDim * rows), [inDim, rows]) : tf.transpose(acts[l]!);
        let dW: tf.Tensor = tf.matMul(inT, g);
        if (this.config.l2 > 0) dW = tf.add(dW, tf.mul(layer.w, this.config.l2));
        grads[2 * l] = dW;
        grads[2 * l + 1] = tf.reshape(tf.matMul(ones, g), [layer.outDim]);
        g = tf.matMul(g, tf.transpose(layer.w));
      }
      return [g, dVNegM, ...grads];
    });
    tf.dispose(acts);
    const dx = dX!.dataSync() as Float32Array;
    const dvNeg = dVNeg!.dataSync() as Float32Array;
    tf.dispose([dX!, dVNeg!]);
    t = this.tick("tfjs_backward", t);

    this.scatterInputGrads(batch, dx);
    for (let j = 0; j < s; j++) output.addGrad(negatives[j]!, dvNeg, j * d, 1);
    this.tick("scatter", t);
    return { loss, towerGrads };
  }

  /** ∂x → touched embedding rows (mean pooling spreads ∂ over the window: ÷ count). */
  private scatterInputGrads(batch: EncodedBatch, dx: Float32Array): void {
    const model = this.model;
    const inDim = model.inputDim;
    const n = batch.historyLength;
    const m = batch.searchLength;
    const dc = model.config.categoricalDim;
    for (let b = 0; b < batch.size; b++) {
      const xo = b * inDim;
      const wc = batch.watchCount[b]!;
      for (let k = 0; k < wc; k++) model.watch.addGrad(batch.watchIds[b * n + k]!, dx, xo + model.offsets.watch, 1 / wc);
      const sc = batch.searchCount[b]!;
      for (let k = 0; k < sc; k++) model.search.addGrad(batch.searchIds[b * m + k]!, dx, xo + model.offsets.search, 1 / sc);
      for (let j = 0; j < NUM_CATEGORICAL; j++) {
        model.categorical[j]!.addGrad(batch.categorical[b * NUM_CATEGORICAL + j]!, dx, xo + model.offsets.categorical + j * dc, 1);
      }
    }
  }

  /** Applies accumulated gradients: tfjs Adam on the tower, lazy sparse updates on the tables. */
  applyUpdates(towerGrads: tf.Tensor[]): void {
    const model = this.model;
    const named: { name: string; tensor: tf.Tensor }[] = [];
    model.layers.forEach((layer, l) => {
      named.push({ name: layer.w.name, tensor: towerGrads[2 * l]! }, { name: layer.b.name, tensor: towerGrads[2 * l + 1]! });
    });
    let t = performance.now();
    this.optimizer.applyGradients(named);
    tf.dispose(towerGrads);
    t = this.tick("tower_adam", t);
    const emb: SparseOptimizerConfig = { ...this.config.embeddings, learningRate: this.config.embeddings.learningRate * this.embeddingScale };
    model.watch.apply(emb);
    model.search.apply(emb);
    for (const t of model.categorical) t.apply(emb);
    if (model.output !== model.watch) model.output.apply(emb);
    this.tick("sparse_update", t);
  }

  /** A full step: sample negatives, forward/backward, update. Returns the batch loss. */
  run(batch: EncodedBatch, labels: Int32Array): number {
    const { loss, towerGrads } = this.forwardBackward(batch, labels, this.sampleNegatives());
    this.applyUpdates(towerGrads);
    return loss;
  }

  dispose(): void {
    this.optimizer.dispose();
    for (const t of this.ones.values()) t.dispose();
    this.ones.clear();
  }
}
