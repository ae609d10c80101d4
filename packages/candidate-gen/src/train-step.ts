import { type EncodedBatch, NUM_CATEGORICAL } from "@recsys/features";
import { assignFrom, type Blas, nativeBlas, tf } from "@recsys/tf";
import type { CandidateGenModel } from "./model.js";
import type { RowPartition, SparseOptimizerConfig } from "./sparse.js";
import { DenseAdam } from "./dense-adam.js";
import { expNonPositive } from "./fast-exp.js";
import type { HierarchicalSoftmax } from "./hierarchical-softmax.js";

/** Unflattens tower gradients or weights [W₀, b₀, W₁, …] into tensors. */
export function towerTensors(model: CandidateGenModel, flat: Float32Array): tf.Tensor[] {
  const out: tf.Tensor[] = [];
  let o = 0;
  for (const l of model.layers) {
    out.push(tf.tensor2d(flat.subarray(o, o + l.inDim * l.outDim), [l.inDim, l.outDim]));
    o += l.inDim * l.outDim;
    out.push(tf.tensor1d(flat.subarray(o, o + l.outDim)));
    o += l.outDim;
  }
  return out;
}

/** Downloads tower gradient tensors into a flat array (and disposes them). */
export function flattenTower(grads: tf.Tensor[], into: Float32Array): void {
  let o = 0;
  for (const g of grads) {
    const v = g.dataSync() as Float32Array;
    into.set(v, o);
    o += v.length;
  }
  tf.dispose(grads);
}

/** The model's current tower weights, flat [W₀, b₀, W₁, …]. */
export function flattenWeights(model: CandidateGenModel): Float32Array {
  let size = 0;
  for (const l of model.layers) size += l.inDim * l.outDim + l.outDim;
  const out = new Float32Array(size);
  let o = 0;
  for (const l of model.layers) {
    out.set(l.w.dataSync() as Float32Array, o);
    o += l.inDim * l.outDim;
    out.set(l.b.dataSync() as Float32Array, o);
    o += l.outDim;
  }
  return out;
}

/** Settings of one optimisation step. */
export interface StepConfig {
  readonly batchSize: number;
  readonly negatives: number;
  readonly learningRate: number;
  readonly embeddings: SparseOptimizerConfig;
  readonly l2: number;
  /** Tower Adam in "js" (one pass over a flat copy, then upload) or with "tfjs"'s tf.train.adam. */
  readonly towerOptimizer: "js" | "tfjs";
  /**
   * Matmuls of a single-threaded step: "auto" (the native BLAS of @recsys/tf when it is installed
   * and the tower optimizer is "js", else tfjs), "blas" (required) or "tfjs". Not a model or
   * training choice: both compute the same step (float32, summed in another order).
   */
  readonly matmul?: "auto" | "blas" | "tfjs";
}

/**
 * The inputs of one step (arrays may be views of SharedArrayBuffers read by several threads):
 * the encoded batch, each row's positive (item vocabulary id) and logit offset, the S shared
 * negatives and their offsets. Offsets are −log Q(j), Q(j) = S·p(j) the expected count of j in
 * the sample (the logQ correction), or 0 without correction.
 */
export interface StepInputs {
  readonly batch: EncodedBatch;
  readonly labels: Int32Array;
  readonly labelOffsets: Float32Array;
  readonly negatives: Int32Array;
  readonly negativeOffsets: Float32Array;
}

/** Logit of a sampled negative equal to the row's positive ("accidental hit"): removed. */
const MASKED = -1e9;

/**
 * Forward and backward pass of the sampled softmax for a range of batch rows, backpropagated by
 * hand (no tfjs autograd tape):
 *
 * JS:   x = pooled embeddings (rows × inputDim) and xᵀ; the negatives' output embeddings V⁻
 *       (S × d) and V⁻ᵀ; the positives' v⁺_b.
 * tfjs: u = tower(x) (fused matmul + bias + ReLU per layer); N = u·V⁻ᵀ.
 * JS:   logits [u_b·v⁺_b + o⁺_b, N_bj + o⁻_j] (accidental hits masked), softmax, loss, and
 *       ∂logits = (p − e₀)/B; ∂v⁺_b = ∂pos_b·u_b straight into the output table's gradient.
 * tfjs: ∂u = ∂pos·v⁺ + ∂N·V⁻, ∂V⁻ᵀ = uᵀ·∂N, then the tower: ∂z = ∂h ⊙ [h > 0],
 *       ∂W = inᵀ·∂z, ∂b = 1ᵀ·∂z, ∂in = ∂z·Wᵀ down to ∂x.
 *       Every matmul has untransposed operands (transposes are explicit or built in JS), which
 *       keeps tfjs-wasm on its XNNPACK kernel; its transposed-operand kernel is ~10x slower.
 * JS:   ∂x is scattered into the touched watch / search / categorical rows (÷ window size for
 *       the mean pooling; through the softmax weights for attention pooling, see
 *       scatterAttention) and ∂V⁻ into the negatives' output rows: sparse gradients.
 *
 * With a {@link HierarchicalSoftmax} (train config output "hierarchical") the negatives are not
 * read: the loss and ∂u come from its exact two-level softmax (JS, sparse gradients into the
 * cluster and output tables), then the tower's backward pass is the same.
 */
export class TrainStep {
  private readonly x: Float32Array;
  private readonly xT: Float32Array;
  private readonly vPos: Float32Array;
  private readonly vNeg: Float32Array;
  private readonly vNegT: Float32Array;
  private readonly dNeg: Float32Array;
  private readonly dUPos: Float32Array;
  private readonly optimizer: tf.AdamOptimizer | null;
  private readonly denseAdam: DenseAdam | null;
  /** Flat tower weights [W₀, b₀, W₁, …] (the "js" tower optimizer's master copy). */
  private readonly towerFlat: Float32Array | null;
  private readonly towerGradFlat: Float32Array | null;
  private lrScale = 1;
  /** The native BLAS the single-threaded step runs its matmuls on (null: tfjs). */
  readonly blas: Blas | null;
  /** BLAS path buffers: activations [h₁, …, u], ∂ buffers, ∂V⁻ (S × d). */
  private readonly acts: Float32Array[] = [];
  private readonly gradA: Float32Array;
  private readonly gradB: Float32Array;
  private readonly dVNeg: Float32Array;
  private readonly rowScale: Float32Array;
  private readonly uScaled: Float32Array;
  private readonly ones = new Map<number, tf.Tensor2D>();
  private embeddingScale = 1;

  /** Milliseconds spent in each phase so far (for profiling and the benchmark). */
  readonly profile: Record<string, number> = {};

  constructor(
    readonly model: CandidateGenModel,
    readonly config: StepConfig,
    readonly hierarchy: HierarchicalSoftmax | null = null,
  ) {
    if (hierarchy !== null && hierarchy.output !== model.output)
      throw new Error("TrainStep: the hierarchical softmax must use the model's output table");
    const b = config.batchSize;
    const s = config.negatives;
    const d = model.dim;
    this.x = new Float32Array(b * model.inputDim);
    this.xT = new Float32Array(b * model.inputDim);
    this.vPos = new Float32Array(b * d);
    this.vNeg = new Float32Array(s * d);
    this.vNegT = new Float32Array(d * s);
    this.dNeg = new Float32Array(b * s);
    this.dUPos = new Float32Array(b * d);
    if (config.towerOptimizer === "js") {
      this.towerFlat = flattenWeights(model);
      this.towerGradFlat = new Float32Array(this.towerFlat.length);
      this.denseAdam = new DenseAdam(this.towerFlat.length);
      this.optimizer = null;
    } else {
      this.towerFlat = null;
      this.towerGradFlat = null;
      this.denseAdam = null;
      this.optimizer = tf.train.adam(config.learningRate);
    }
    const matmul = config.matmul ?? "auto";
    if (matmul === "blas" && config.towerOptimizer !== "js")
      throw new Error('TrainStep: matmul "blas" needs towerOptimizer "js" (the weights live in JS)');
    const blas = matmul === "tfjs" || config.towerOptimizer !== "js" ? null : nativeBlas();
    if (matmul === "blas" && blas === null)
      throw new Error('TrainStep: matmul "blas" but no native BLAS is installed (the optional package nblas; see @recsys/tf)');
    this.blas = blas;
    let widest = Math.max(model.inputDim, d);
    for (const l of model.layers) {
      this.acts.push(new Float32Array(blas === null ? 0 : b * l.outDim));
      widest = Math.max(widest, l.outDim);
    }
    this.gradA = new Float32Array(blas === null ? 0 : b * widest);
    this.gradB = new Float32Array(blas === null ? 0 : b * widest);
    this.dVNeg = new Float32Array(blas === null ? 0 : s * d);
    this.rowScale = new Float32Array(blas === null ? 0 : b);
    this.uScaled = new Float32Array(blas === null ? 0 : b * d);
  }

  private tick(phase: string, since: number): number {
    const now = performance.now();
    this.profile[phase] = (this.profile[phase] ?? 0) + (now - since);
    return now;
  }

  /** Scales both the tower and the embedding learning rates (for a decay schedule). */
  setLearningRateScale(scale: number): void {
    // tfjs's Adam reads its (protected) learningRate field at every step.
    if (this.optimizer !== null) (this.optimizer as unknown as { learningRate: number }).learningRate = this.config.learningRate * scale;
    this.lrScale = scale;
    this.embeddingScale = scale;
  }

  /** A cached [1 × rows] tensor of ones (bias gradients as 1ᵀ·∂z: faster than a column sum). */
  private onesFor(rows: number): tf.Tensor2D {
    let t = this.ones.get(rows);
    if (t === undefined) {
      t = tf.keep(tf.tensor2d(new Float32Array(rows).fill(1), [1, rows])); // cached: survives tf.tidy
      this.ones.set(rows, t);
    }
    return t;
  }

  /**
   * Forward and backward pass for batch rows start..end-1, the loss being the mean over
   * `totalRows` rows (the whole batch, which other threads may share). Accumulates embedding
   * gradients into the model's sparse tables; returns the summed loss of these rows and the tower
   * gradients [∂W₀, ∂b₀, ∂W₁, …] (the caller applies or disposes them).
   */
  forwardBackward(
    inputs: StepInputs,
    start = 0,
    end = inputs.batch.size,
    totalRows = end - start,
  ): { lossSum: number; towerGrads: tf.Tensor[] } {
    const model = this.model;
    const { batch, labels, negatives, negativeOffsets } = inputs;
    const rows = end - start;
    const s = this.config.negatives;
    const d = model.dim;
    const inDim = model.inputDim;
    if (rows < 1 || rows > this.config.batchSize || start < 0 || end > batch.size)
      throw new Error(`TrainStep: rows ${start}..${end} out of the batch (${batch.size} rows, capacity ${this.config.batchSize})`);
    const hier = this.hierarchy;
    if (hier === null && (negatives.length < s || negativeOffsets.length < s)) throw new Error(`TrainStep: fewer than ${s} negatives`);

    // --- JS: inputs.
    let t = performance.now();
    const x = this.x;
    const xT = this.xT;
    model.pool(batch, x, start, end);
    for (let i = 0; i < rows; i++) {
      const o = i * inDim;
      for (let c = 0; c < inDim; c++) xT[c * rows + i] = x[o + c]!;
    }
    t = this.tick("pool", t);
    const out = model.output.data;
    if (hier === null) {
      for (let i = 0; i < rows; i++) {
        const label = labels[start + i]!;
        this.vPos.set(out.subarray(label * d, (label + 1) * d), i * d);
      }
      for (let j = 0; j < s; j++) {
        const ro = negatives[j]! * d;
        for (let c = 0; c < d; c++) {
          const v = out[ro + c]!;
          this.vNeg[j * d + c] = v;
          this.vNegT[c * s + j] = v;
        }
      }
    }
    t = this.tick("gather", t);

    // --- tfjs: the tower and the negatives' logits.
    const layers = model.layers;
    const acts = tf.tidy(() => {
      const a = model.forward(tf.tensor2d(x.subarray(0, rows * inDim), [rows, inDim]));
      return hier === null ? [...a, tf.matMul(a[a.length - 1]!, tf.tensor2d(this.vNegT, [d, s]))] : a;
    });
    const negLogitsT = hier === null ? acts.pop()! : null;
    const u = acts[acts.length - 1]!;
    const uv = u.dataSync() as Float32Array;
    const negLogits = negLogitsT === null ? null : (negLogitsT.dataSync() as Float32Array);
    negLogitsT?.dispose();
    t = this.tick("tfjs_forward", t);

    // --- JS: sampled softmax (or the hierarchical one), loss and ∂logits (÷ totalRows: the loss is the batch mean).
    const dNeg = this.dNeg;
    const dUPos = this.dUPos;
    const output = model.output;
    const lossSum =
      hier === null
        ? this.softmax(inputs, uv, negLogits!, start, end, totalRows)
        : hier.lossAndGrad(uv, labels, start, rows, totalRows, dUPos);
    t = this.tick("softmax", t);

    // --- tfjs: backward through the logits and the tower.
    const [dX, dVNegT, ...towerGrads] = tf.tidy(() => {
      const dUPosM = tf.tensor2d(dUPos.subarray(0, rows * d), [rows, d]);
      const dNegM = hier === null ? tf.tensor2d(dNeg.subarray(0, rows * s), [rows, s]) : null;
      const dU = dNegM === null ? dUPosM : (tf.add(dUPosM, tf.matMul(dNegM, tf.tensor2d(this.vNeg, [s, d]))) as tf.Tensor2D);
      // ∂V⁻ᵀ = uᵀ·∂N (d × S): transposing u (rows × d) is cheaper than transposing ∂N (rows × S).
      // (Hierarchical: no negatives; a placeholder keeps the returned list's shape.)
      const dVNegT = dNegM === null ? tf.zeros([1]) : tf.matMul(tf.transpose(u), dNegM);
      const ones = this.onesFor(rows);
      const grads: tf.Tensor[] = new Array(2 * layers.length);
      let g: tf.Tensor2D = dU;
      for (let l = layers.length - 1; l >= 0; l--) {
        const layer = layers[l]!;
        if (layer.relu) g = tf.mul(g, tf.step(acts[l + 1]!));
        const inT = l === 0 ? tf.tensor2d(xT.subarray(0, inDim * rows), [inDim, rows]) : tf.transpose(acts[l]!);
        let dW: tf.Tensor = tf.matMul(inT, g);
        if (this.config.l2 > 0) dW = tf.add(dW, tf.mul(layer.w, this.config.l2 * (rows / totalRows)));
        grads[2 * l] = dW;
        grads[2 * l + 1] = tf.reshape(tf.matMul(ones, g), [layer.outDim]);
        g = tf.matMul(g, tf.transpose(layer.w));
      }
      return [g, dVNegT, ...grads];
    });
    tf.dispose(acts);
    const dx = dX!.dataSync() as Float32Array;
    const dvNegT = dVNegT!.dataSync() as Float32Array;
    tf.dispose([dX!, dVNegT!]);
    t = this.tick("tfjs_backward", t);

    this.scatterInputGrads(batch, dx, start, end);
    if (hier === null) for (let j = 0; j < s; j++) output.addGradStrided(negatives[j]!, dvNegT, j, s, 1);
    this.tick("scatter", t);
    return { lossSum, towerGrads };
  }

  /**
   * The step of {@link forwardBackward} on all rows with every matmul on the native BLAS and the
   * tower weights read from the flat JS master copy (no tfjs kernel, no upload, no transpose:
   * BLAS takes transposed operands as they are). The tower gradient goes to towerGradFlat.
   *   forward:  h_{l+1} = act(h_l·W_l + b_l), N = u·V⁻ᵀ;
   *   backward: ∂u = ∂pos·v⁺ + ∂N·V⁻, ∂V⁻ = ∂Nᵀ·u, then per layer ∂z = ∂h ⊙ [h > 0],
   *             ∂W = h_lᵀ·∂z (+ l2·W), ∂b = 1ᵀ·∂z, ∂h_l = ∂z·W_lᵀ down to ∂x.
   */
  private forwardBackwardBlas(inputs: StepInputs, rows: number): number {
    const blas = this.blas!;
    const model = this.model;
    const { batch, labels, negatives, negativeOffsets } = inputs;
    const s = this.config.negatives;
    const d = model.dim;
    if (rows < 1 || rows > this.config.batchSize)
      throw new Error(`TrainStep: ${rows} rows out of the batch capacity ${this.config.batchSize}`);
    const hier = this.hierarchy;
    if (hier === null && (negatives.length < s || negativeOffsets.length < s)) throw new Error(`TrainStep: fewer than ${s} negatives`);
    const flat = this.towerFlat!;
    const layers = model.layers;

    let t = performance.now();
    const x = this.x;
    model.pool(batch, x, 0, rows);
    t = this.tick("pool", t);
    const out = model.output.data;
    const vPos = this.vPos;
    const vNeg = this.vNeg;
    // Plain loops: a subarray per row would allocate ~750 views per step.
    if (hier === null) {
      for (let i = 0; i < rows; i++) {
        const ro = labels[i]! * d;
        const wo = i * d;
        for (let c = 0; c < d; c++) vPos[wo + c] = out[ro + c]!;
      }
      for (let j = 0; j < s; j++) {
        const ro = negatives[j]! * d;
        const wo = j * d;
        for (let c = 0; c < d; c++) vNeg[wo + c] = out[ro + c]!;
      }
    }
    t = this.tick("gather", t);

    // --- forward.
    let h = x;
    let o = 0;
    for (let l = 0; l < layers.length; l++) {
      const layer = layers[l]!;
      const w = flat.subarray(o, o + layer.inDim * layer.outDim);
      o += layer.inDim * layer.outDim;
      const bias = flat.subarray(o, o + layer.outDim);
      o += layer.outDim;
      const z = this.acts[l]!;
      const n = layer.outDim;
      for (let i = 0; i < rows; i++) z.set(bias, i * n);
      blas.sgemm(false, false, rows, n, layer.inDim, 1, h, layer.inDim, w, n, 1, z, n);
      if (layer.relu) for (let k = 0; k < rows * n; k++) if (!(z[k]! > 0)) z[k] = 0;
      h = z;
    }
    const uv = h;
    const negLogits = this.dNeg;
    if (hier === null) blas.sgemm(false, true, rows, s, d, 1, uv, d, vNeg, d, 0, negLogits, s);
    t = this.tick("blas_forward", t);

    const g = this.gradA;
    const gNext = this.gradB;
    const dUPos = this.dUPos;
    if (hier !== null) {
      // The exact two-level softmax: ∂u straight into gradA.
      const lossSum = hier.lossAndGrad(uv, labels, 0, rows, rows, dUPos);
      g.set(dUPos.subarray(0, rows * d));
      t = this.tick("softmax", t);
      this.backwardTowerBlas(batch, g, gNext, rows, t);
      return lossSum;
    }
    // dNeg holds the unnormalised exponentials E; row i of ∂N is rowScale[i]·E_i.
    const rowScale = this.rowScale;
    const lossSum = this.softmax(inputs, uv, negLogits, 0, rows, rows, rowScale);
    t = this.tick("softmax", t);

    // --- backward. ∂u = ∂u⁺ + diag(rowScale)·(E·V⁻) (rows × d) in gradA; ∂V⁻ = Eᵀ·(diag(rowScale)·u) (S × d):
    // scaling the rows × d factors instead of the rows × S exponentials.
    const dNeg = this.dNeg;
    blas.sgemm(false, false, rows, d, s, 1, dNeg, s, vNeg, d, 0, gNext, d);
    const uScaled = this.uScaled;
    for (let i = 0; i < rows; i++) {
      const f = rowScale[i]!;
      const o = i * d;
      for (let c = 0; c < d; c++) {
        g[o + c] = dUPos[o + c]! + f * gNext[o + c]!;
        uScaled[o + c] = f * uv[o + c]!;
      }
    }
    blas.sgemm(true, false, s, d, rows, 1, dNeg, s, uScaled, d, 0, this.dVNeg, d);
    t = this.backwardTowerBlas(batch, g, gNext, rows, t);
    const output = model.output;
    for (let j = 0; j < s; j++) output.addGrad(negatives[j]!, this.dVNeg, j * d, 1);
    this.tick("scatter", t);
    return lossSum;
  }

  /**
   * The tower's backward pass on the native BLAS from ∂u (rows × d, in `g`; `gNext` a buffer as
   * large), then ∂x scattered into the input embedding rows. Returns the time after the scatter.
   */
  private backwardTowerBlas(batch: EncodedBatch, g0: Float32Array, gNext0: Float32Array, rows: number, since: number): number {
    const blas = this.blas!;
    const model = this.model;
    const flat = this.towerFlat!;
    const grad = this.towerGradFlat!;
    const layers = model.layers;
    const x = this.x;
    let t = since;
    let g = g0;
    let gNext = gNext0;
    let end = flat.length;
    for (let l = layers.length - 1; l >= 0; l--) {
      const layer = layers[l]!;
      const n = layer.outDim;
      const m = layer.inDim;
      const bo = end - n;
      const wo = bo - m * n;
      end = wo;
      const hOut = this.acts[l]!;
      if (layer.relu) for (let k = 0; k < rows * n; k++) if (!(hOut[k]! > 0)) g[k] = 0;
      const hIn = l === 0 ? x : this.acts[l - 1]!;
      const dW = grad.subarray(wo, wo + m * n);
      const l2 = this.config.l2;
      if (l2 > 0) {
        const w = flat.subarray(wo, wo + m * n);
        for (let k = 0; k < m * n; k++) dW[k] = l2 * w[k]!;
      }
      blas.sgemm(true, false, m, n, rows, 1, hIn, m, g, n, l2 > 0 ? 1 : 0, dW, n);
      const db = grad.subarray(bo, bo + n);
      db.fill(0);
      for (let i = 0; i < rows; i++) {
        const go = i * n;
        for (let k = 0; k < n; k++) db[k]! += g[go + k]!;
      }
      blas.sgemm(false, true, rows, m, n, 1, g, n, flat.subarray(wo, wo + m * n), n, 0, gNext, m);
      const tmp = g;
      g = gNext;
      gNext = tmp;
    }
    t = this.tick("blas_backward", t);
    this.scatterInputGrads(batch, g, 0, rows);
    return this.tick("scatter", t);
  }

  /**
   * Sampled softmax of rows start..end-1 (local row i = batch row start + i): reads u (rows × d)
   * and the negatives' logits (rows × S, in `negLogits`, overwritten with ∂N), writes ∂u⁺ to
   * dUPos, adds ∂v⁺ to the output table; the loss is the mean over `totalRows`. Returns the
   * summed loss of the rows. With `rowScale`, ∂N is left as the unnormalised exponentials E and
   * row i's factor (∂N_i = rowScale[i]·E_i) goes to rowScale[i].
   */
  private softmax(
    inputs: StepInputs,
    uv: Float32Array,
    negLogits: Float32Array,
    start: number,
    end: number,
    totalRows: number,
    rowScale?: Float32Array,
  ): number {
    const { labels, labelOffsets, negatives, negativeOffsets } = inputs;
    const rows = end - start;
    const s = this.config.negatives;
    const d = this.model.dim;
    const vPos = this.vPos;
    const dNeg = this.dNeg;
    const dUPos = this.dUPos;
    const output = this.model.output;
    let lossSum = 0;
    const invRows = 1 / totalRows;
    for (let i = 0; i < rows; i++) {
      const pos = labels[start + i]!;
      const uo = i * d;
      let lp = labelOffsets[start + i]!;
      for (let c = 0; c < d; c++) lp += uv[uo + c]! * vPos[uo + c]!;
      const lo = i * s;
      let m = lp;
      for (let j = 0; j < s; j++) {
        const l = negatives[j] === pos ? MASKED : negLogits[lo + j]! + negativeOffsets[j]!;
        dNeg[lo + j] = l;
        if (l > m) m = l;
      }
      const ep = expNonPositive(lp - m);
      let z = ep;
      for (let j = 0; j < s; j++) {
        const e = expNonPositive(dNeg[lo + j]! - m);
        dNeg[lo + j] = e;
        z += e;
      }
      lossSum += Math.log(z) - (lp - m);
      const scale = invRows / z;
      if (rowScale === undefined) for (let j = 0; j < s; j++) dNeg[lo + j]! *= scale;
      else rowScale[i] = scale;
      const dPos = ep * scale - invRows;
      for (let c = 0; c < d; c++) dUPos[uo + c] = dPos * vPos[uo + c]!;
      output.addGrad(pos, uv, uo, dPos);
    }
    return lossSum;
  }

  /** ∂x → touched embedding rows (mean pooling spreads ∂ over the window: ÷ count). */
  private scatterInputGrads(batch: EncodedBatch, dx: Float32Array, start: number, end: number): void {
    const model = this.model;
    const inDim = model.inputDim;
    const n = batch.historyLength;
    const m = batch.searchLength;
    const dc = model.config.categoricalDim;
    for (let b = start; b < end; b++) {
      const xo = (b - start) * inDim;
      const wc = batch.watchCount[b]!;
      if (model.attnQuery !== null) this.scatterAttention(batch, b, dx, xo + model.offsets.watch);
      else for (let k = 0; k < wc; k++) model.watch.addGrad(batch.watchIds[b * n + k]!, dx, xo + model.offsets.watch, 1 / wc);
      const sc = batch.searchCount[b]!;
      for (let k = 0; k < sc; k++) model.search.addGrad(batch.searchIds[b * m + k]!, dx, xo + model.offsets.search, 1 / sc);
      for (let j = 0; j < NUM_CATEGORICAL; j++) {
        model.categorical[j]!.addGrad(batch.categorical[b * NUM_CATEGORICAL + j]!, dx, xo + model.offsets.categorical + j * dc, 1);
      }
    }
  }

  /**
   * Backward of attention pooling for row b, g = ∂(pooled watch vector) at dx[go ..]:
   *   p = Σ a_k e_k, s_k = q·e_k/√d + r[age_k], a = softmax(s)
   *   ∂e_k = a_k g + ∂s_k q/√d,  ∂s_k = a_k (g·e_k − g·p),  ∂q = Σ ∂s_k e_k/√d,  ∂r[age_k] = ∂s_k.
   * The weights are recomputed by the model's own attentionWeights (the forward's code).
   */
  private scatterAttention(batch: EncodedBatch, b: number, dx: Float32Array, go: number): void {
    const model = this.model;
    const query = model.attnQuery!;
    const recency = model.attnRecency!;
    const d = model.dim;
    const n = batch.historyLength;
    const wc = batch.watchCount[b]!;
    if (wc === 0) return;
    const a = model.attentionWeights(batch, b);
    const wt = model.watch.data;
    const ge = this.attnGe.length >= wc ? this.attnGe : (this.attnGe = new Float32Array(n));
    let gp = 0;
    for (let k = 0; k < wc; k++) {
      const ro = batch.watchIds[b * n + k]! * d;
      let dot = 0;
      for (let c = 0; c < d; c++) dot += dx[go + c]! * wt[ro + c]!;
      ge[k] = dot;
      gp += a[k]! * dot;
    }
    const scale = 1 / Math.sqrt(d);
    const one = this.attnOne;
    for (let k = 0; k < wc; k++) {
      const id = batch.watchIds[b * n + k]!;
      const ds = a[k]! * (ge[k]! - gp);
      model.watch.addGrad(id, dx, go, a[k]!);
      model.watch.addGrad(id, query.data, 0, ds * scale);
      query.addGrad(0, wt, id * d, ds * scale);
      recency.addGrad(wc - 1 - k, one, 0, ds);
    }
  }

  private attnGe = new Float32Array(0);
  private readonly attnOne = new Float32Array([1]);

  /** Adam step on the tower with gradient tensors [∂W₀, ∂b₀, …]; disposes them. */
  applyTowerGrads(towerGrads: tf.Tensor[]): void {
    if (this.optimizer === null) {
      const t = performance.now();
      flattenTower(towerGrads, this.towerGradFlat!);
      this.tick("tower_update", t);
      this.applyTowerFlat(this.towerGradFlat!);
      return;
    }
    const t = performance.now();
    const named: { name: string; tensor: tf.Tensor }[] = [];
    this.model.layers.forEach((layer, l) => {
      named.push({ name: layer.w.name, tensor: towerGrads[2 * l]! }, { name: layer.b.name, tensor: towerGrads[2 * l + 1]! });
    });
    this.optimizer.applyGradients(named);
    tf.dispose(towerGrads);
    this.tick("tower_update", t);
  }

  /** Adam step on the tower with a flat gradient [∂W₀, ∂b₀, …] (e.g. summed over threads). */
  applyTowerFlat(grad: Float32Array): void {
    if (this.denseAdam === null) {
      this.applyTowerGrads(towerTensors(this.model, grad));
      return;
    }
    const t = performance.now();
    this.denseAdam.update(this.towerFlat!, grad, this.config.learningRate * this.lrScale);
    const flat = this.towerFlat!;
    let o = 0;
    for (const layer of this.model.layers) {
      const nw = layer.inDim * layer.outDim;
      assignFrom(layer.w, tf.tensor2d(flat.subarray(o, o + nw), [layer.inDim, layer.outDim]));
      o += nw;
      assignFrom(layer.b, tf.tensor1d(flat.subarray(o, o + layer.outDim)));
      o += layer.outDim;
    }
    this.tick("tower_update", t);
  }

  /**
   * Lazy sparse updates of the rows touched since the last call, on every table (with a
   * partition: only its rows; the others' gradients are dropped, another thread updates them).
   */
  applySparseGrads(partition?: RowPartition): void {
    const t = performance.now();
    const model = this.model;
    const emb: SparseOptimizerConfig = {
      ...this.config.embeddings,
      learningRate: this.config.embeddings.learningRate * this.embeddingScale,
    };
    model.watch.apply(emb, partition);
    model.search.apply(emb, partition);
    for (const table of model.categorical) table.apply(emb, partition);
    if (model.output !== model.watch) model.output.apply(emb, partition);
    model.attnQuery?.apply(emb, partition);
    model.attnRecency?.apply(emb, partition);
    this.hierarchy?.clusters.apply(emb, partition);
    this.tick("sparse_update", t);
  }

  /** Drops accumulated sparse gradients without applying them. */
  clearSparseGrads(): void {
    const model = this.model;
    for (const table of [model.watch, model.search, model.output, ...model.categorical]) table.clearGrad();
    model.attnQuery?.clearGrad();
    model.attnRecency?.clearGrad();
    this.hierarchy?.clusters.clearGrad();
  }

  /** A whole single-threaded step on all rows: forward/backward, then the updates. Returns the mean loss. */
  run(inputs: StepInputs): number {
    const rows = inputs.batch.size;
    if (this.blas !== null) {
      const lossSum = this.forwardBackwardBlas(inputs, rows);
      this.applyTowerFlat(this.towerGradFlat!);
      this.applySparseGrads();
      return lossSum / rows;
    }
    const { lossSum, towerGrads } = this.forwardBackward(inputs, 0, rows, rows);
    this.applyTowerGrads(towerGrads);
    this.applySparseGrads();
    return lossSum / rows;
  }

  dispose(): void {
    this.optimizer?.dispose();
    for (const t of this.ones.values()) t.dispose();
    this.ones.clear();
  }
}
