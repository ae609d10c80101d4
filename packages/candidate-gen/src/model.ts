import type { Rng } from "@recsys/data";
import { CATEGORICAL_FEATURES, type EncodedBatch, type FeatureSpace, NUM_CATEGORICAL, NUM_CONTINUOUS } from "@recsys/features";
import { tf, variableFrom } from "@recsys/tf";
import { allocateTableData } from "./adam-wasm.js";
import { type ModelConfig, validateModelConfig } from "./config.js";
import { probeSink, READ_AHEAD_MIN_FLOATS, SparseTable } from "./sparse.js";

let instances = 0;

/** One dense tower layer: weights (inDim × outDim, row-major) and bias. */
export interface DenseLayer {
  readonly inDim: number;
  readonly outDim: number;
  readonly w: tf.Variable;
  readonly b: tf.Variable;
  readonly relu: boolean;
}

/** Plain-array weights of the model (what a bundle stores). */
export interface ModelWeights {
  /** Input watch embeddings, items.size × embeddingDim (row 0 = OOV). */
  readonly watch: Float32Array;
  /** Search-token embeddings, tokens.size × searchDim. */
  readonly search: Float32Array;
  /** Categorical embeddings in CATEGORICAL_FEATURES order, vocabulary size × categoricalDim each. */
  readonly categorical: readonly Float32Array[];
  /** Output item embeddings, items.size × embeddingDim (row 0 = OOV, never a class). */
  readonly output: Float32Array;
  /** Tower layers: w (inDim × outDim, row-major), b (outDim). */
  readonly tower: readonly { readonly w: Float32Array; readonly b: Float32Array }[];
  /** Attention pooling only: the query (embeddingDim) and the recency bias (historyLength, [0] = most recent). */
  readonly attention?: { readonly query: Float32Array; readonly recency: Float32Array };
}

/**
 * The YouTube-DNN candidate generator:
 *   x = [mean(watch embeddings of the history window), mean(search-token embeddings),
 *        gender, occupation and geo embeddings, continuous features (example age, age)]
 *   u = ReLU tower(x)      (the user vector)
 *   P(next watch = j) = softmax_j(u · v_j) over the output item embeddings v.
 * Embedding tables live in JavaScript ({@link SparseTable}, sparse updates); the tower runs in
 * tfjs. The same code computes user vectors in training and serving.
 *
 * With historyPooling "attention" the watch block of x is Σ_k a_k e_k instead of the mean, with
 *   s_k = q·e_k / √d + r[age_k],  a = softmax over the k < watchCount valid slots (padding masked),
 * q a learned query (d floats), r a learned bias per recency (age_k = 0 for the most recent watch,
 * historyLength entries). Both start at zero, so an untrained attention pool is the mean.
 */
export class CandidateGenModel {
  readonly watch: SparseTable;
  readonly search: SparseTable;
  readonly categorical: readonly SparseTable[];
  readonly output: SparseTable;
  readonly layers: readonly DenseLayer[];
  /** Attention pooling's query (1 × embeddingDim) and recency bias (historyLength × 1); null with mean pooling. */
  readonly attnQuery: SparseTable | null;
  readonly attnRecency: SparseTable | null;
  /** Width of the tower input x. */
  readonly inputDim: number;
  /** Column offsets of the blocks of x. */
  readonly offsets: { readonly watch: number; readonly search: number; readonly categorical: number; readonly continuous: number };
  private disposed = false;

  private constructor(
    readonly space: FeatureSpace,
    readonly config: ModelConfig,
    weights: ModelWeights,
  ) {
    validateModelConfig(config);
    const d = config.embeddingDim;
    this.watch = new SparseTable("watch", space.items.size, d, weights.watch);
    this.search = new SparseTable("search", space.tokens.size, config.searchDim, weights.search);
    this.categorical = CATEGORICAL_FEATURES.map(
      (f, j) => new SparseTable(f, space.categorical(f).size, config.categoricalDim, weights.categorical[j]),
    );
    this.output = config.sharedItemEmbeddings ? this.watch : new SparseTable("output", space.items.size, d, weights.output);
    if (config.historyPooling === "attention") {
      const n = space.config.historyLength;
      const a = weights.attention;
      if (a === undefined || a.query.length !== d || a.recency.length !== n) {
        throw new Error(`model weights: attention pooling needs a query of ${d} floats and a recency bias of ${n} (historyLength)`);
      }
      this.attnQuery = new SparseTable("attention_query", 1, d, a.query);
      this.attnRecency = new SparseTable("attention_recency", n, 1, a.recency);
    } else {
      this.attnQuery = null;
      this.attnRecency = null;
    }
    const catStart = d + config.searchDim;
    const contStart = catStart + NUM_CATEGORICAL * config.categoricalDim;
    this.offsets = { watch: 0, search: d, categorical: catStart, continuous: contStart };
    this.inputDim = contStart + NUM_CONTINUOUS;
    const id = ++instances;
    let inDim = this.inputDim;
    const layers: DenseLayer[] = [];
    config.tower.forEach((outDim, l) => {
      const lw = weights.tower[l];
      if (lw === undefined || lw.w.length !== inDim * outDim || lw.b.length !== outDim) {
        throw new Error(`model weights: tower layer ${l} must be ${inDim}x${outDim} plus a bias of ${outDim}`);
      }
      layers.push({
        inDim,
        outDim,
        w: variableFrom(tf.tensor2d(lw.w, [inDim, outDim]), `cg${id}/dense${l}/w`),
        b: variableFrom(tf.tensor1d(lw.b), `cg${id}/dense${l}/b`),
        relu: l < config.tower.length - 1 || config.finalActivation === "relu",
      });
      inDim = outDim;
    });
    this.layers = layers;
  }

  /**
   * A freshly initialised model: embeddings N(0, initScale²), tower He-uniform, biases 0.
   * `alloc` provides the embedding tables' storage (e.g. views of SharedArrayBuffers).
   */
  static create(
    space: FeatureSpace,
    config: ModelConfig,
    rng: Rng,
    initScale: number,
    alloc: (n: number) => Float32Array = allocateTableData,
  ): CandidateGenModel {
    validateModelConfig(config);
    const normal = (n: number): Float32Array => {
      const a = alloc(n);
      for (let i = 0; i < n; i++) a[i] = rng.normal() * initScale;
      return a;
    };
    const d = config.embeddingDim;
    const inputDim = d + config.searchDim + NUM_CATEGORICAL * config.categoricalDim + NUM_CONTINUOUS;
    const watch = normal(space.items.size * d);
    const search = normal(space.tokens.size * config.searchDim);
    const categorical = CATEGORICAL_FEATURES.map((f) => normal(space.categorical(f).size * config.categoricalDim));
    const output = config.sharedItemEmbeddings ? watch : normal(space.items.size * d);
    const tower: { w: Float32Array; b: Float32Array }[] = [];
    let inDim = inputDim;
    for (const outDim of config.tower) {
      const limit = Math.sqrt(6 / inDim);
      const w = new Float32Array(inDim * outDim);
      for (let i = 0; i < w.length; i++) w[i] = (2 * rng.next() - 1) * limit;
      tower.push({ w, b: new Float32Array(outDim) });
      inDim = outDim;
    }
    // Zeros (alloc may hand out views of shared memory, zero-filled when allocated).
    const zeros = (n: number): Float32Array => alloc(n).fill(0);
    const attention = config.historyPooling === "attention" ? { query: zeros(d), recency: zeros(space.config.historyLength) } : undefined;
    return new CandidateGenModel(space, config, {
      watch,
      search,
      categorical,
      output,
      tower,
      ...(attention === undefined ? {} : { attention }),
    });
  }

  static fromWeights(space: FeatureSpace, config: ModelConfig, weights: ModelWeights): CandidateGenModel {
    return new CandidateGenModel(space, config, weights);
  }

  get dim(): number {
    return this.config.embeddingDim;
  }

  /**
   * Writes the tower input x of batch rows start..end-1 into `x` ((end − start) × inputDim, row-major):
   * watch embeddings pooled by historyPooling (mean or attention), mean-pooled search embeddings (zeros for an empty window), categorical embeddings,
   * continuous values.
   */
  pool(batch: EncodedBatch, x: Float32Array, start = 0, end = batch.size): void {
    const rows = end - start;
    const inDim = this.inputDim;
    const d = this.config.embeddingDim;
    const ds = this.config.searchDim;
    const dc = this.config.categoricalDim;
    const n = batch.historyLength;
    const m = batch.searchLength;
    const wt = this.watch.data;
    const st = this.search.data;
    if (x.length < rows * inDim) throw new Error("pool: input buffer too small");
    const readAhead = wt.length >= READ_AHEAD_MIN_FLOATS;
    x.fill(0, 0, rows * inDim);
    for (let b = start; b < end; b++) {
      const xo = (b - start) * inDim;
      const wc = batch.watchCount[b]!;
      if (wc > 0 && this.attnQuery !== null) {
        const a = this.attentionWeights(batch, b);
        for (let k = 0; k < wc; k++) {
          const ro = batch.watchIds[b * n + k]! * d;
          const ak = a[k]!;
          for (let c = 0; c < d; c++) x[xo + c]! += ak * wt[ro + c]!;
        }
      } else if (wc > 0) {
        const inv = 1 / wc;
        // One read per 64-byte line of the window's rows of a large table first: their cache
        // misses overlap instead of coming one row at a time.
        if (readAhead) {
          let probe = 0;
          for (let k = 0; k < wc; k++) {
            const ro = batch.watchIds[b * n + k]! * d;
            for (let c = 0; c < d; c += 16) probe += wt[ro + c]!;
          }
          probeSink[0] = probe;
        }
        for (let k = 0; k < wc; k++) {
          const ro = batch.watchIds[b * n + k]! * d;
          let c = 0;
          for (; c + 3 < d; c += 4) {
            x[xo + c]! += wt[ro + c]!;
            x[xo + c + 1]! += wt[ro + c + 1]!;
            x[xo + c + 2]! += wt[ro + c + 2]!;
            x[xo + c + 3]! += wt[ro + c + 3]!;
          }
          for (; c < d; c++) x[xo + c]! += wt[ro + c]!;
        }
        for (let c = 0; c < d; c++) x[xo + c]! *= inv;
      }
      const sc = batch.searchCount[b]!;
      if (sc > 0) {
        const so = xo + this.offsets.search;
        const inv = 1 / sc;
        for (let k = 0; k < sc; k++) {
          const ro = batch.searchIds[b * m + k]! * ds;
          for (let c = 0; c < ds; c++) x[so + c]! += st[ro + c]!;
        }
        for (let c = 0; c < ds; c++) x[so + c]! *= inv;
      }
      for (let j = 0; j < NUM_CATEGORICAL; j++) {
        const table = this.categorical[j]!.data;
        const ro = batch.categorical[b * NUM_CATEGORICAL + j]! * dc;
        const co = xo + this.offsets.categorical + j * dc;
        for (let c = 0; c < dc; c++) x[co + c] = table[ro + c]!;
      }
      const ko = xo + this.offsets.continuous;
      for (let c = 0; c < NUM_CONTINUOUS; c++) x[ko + c] = batch.continuous[b * NUM_CONTINUOUS + c]!;
    }
  }

  /**
   * Attention weights of row b's watch window (attention pooling only): a view of a scratch
   * buffer, valid until the next call, a[k] for the watchCount[b] valid slots k (oldest first);
   * slots beyond watchCount (padding) get no weight. Training's backward pass recomputes them
   * with this same function.
   */
  attentionWeights(batch: EncodedBatch, b: number): Float32Array {
    const q = this.attnQuery!.data;
    const r = this.attnRecency!.data;
    const wt = this.watch.data;
    const d = this.config.embeddingDim;
    const n = batch.historyLength;
    const wc = batch.watchCount[b]!;
    if (wc > this.attnRecency!.rows)
      throw new Error(`attention pooling: window of ${wc} watches but the recency bias has ${this.attnRecency!.rows} entries`);
    if (this.attnScratch.length < n) this.attnScratch = new Float32Array(n);
    const a = this.attnScratch;
    const scale = 1 / Math.sqrt(d);
    let m = -Infinity;
    for (let k = 0; k < wc; k++) {
      const ro = batch.watchIds[b * n + k]! * d;
      let dot = 0;
      for (let c = 0; c < d; c++) dot += q[c]! * wt[ro + c]!;
      const s = dot * scale + r[wc - 1 - k]!;
      a[k] = s;
      if (s > m) m = s;
    }
    let z = 0;
    for (let k = 0; k < wc; k++) {
      const e = Math.exp(a[k]! - m);
      a[k] = e;
      z += e;
    }
    for (let k = 0; k < wc; k++) a[k]! /= z;
    return a.subarray(0, wc);
  }

  private attnScratch = new Float32Array(0);

  /**
   * The tower's activations for input x (rows × inputDim): [x, h1, …, u]. Each layer is one fused
   * matmul + bias + ReLU kernel. Call inside tf.tidy.
   */
  forward(x: tf.Tensor2D): tf.Tensor2D[] {
    const acts: tf.Tensor2D[] = [x];
    let h = x;
    for (const layer of this.layers) {
      h = tf.fused.matMul({ a: h, b: layer.w, bias: layer.b, activation: layer.relu ? "relu" : "linear" }) as tf.Tensor2D;
      acts.push(h);
    }
    return acts;
  }

  /** User vectors (batch.size × embeddingDim, row-major) of an encoded batch. */
  userVectors(batch: EncodedBatch, scratch?: Float32Array): Float32Array {
    this.checkAlive();
    const rows = batch.size;
    if (rows === 0) return new Float32Array(0);
    const x = scratch !== undefined && scratch.length >= rows * this.inputDim ? scratch : new Float32Array(rows * this.inputDim);
    this.pool(batch, x);
    // (tf.tidy must return tensors: returning a typed array makes it walk every element.)
    const u = tf.tidy(() => {
      const acts = this.forward(tf.tensor2d(x.subarray(0, rows * this.inputDim), [rows, this.inputDim]));
      return acts[acts.length - 1]!;
    });
    const out = (u.dataSync() as Float32Array).slice();
    u.dispose();
    return out;
  }

  /** Copies the current weights out (tower weights are read back from tfjs). */
  weights(): ModelWeights {
    this.checkAlive();
    return {
      watch: this.watch.data,
      search: this.search.data,
      categorical: this.categorical.map((t) => t.data),
      output: this.output.data,
      tower: this.layers.map((l) => ({ w: l.w.dataSync() as Float32Array, b: l.b.dataSync() as Float32Array })),
      ...(this.attnQuery === null ? {} : { attention: { query: this.attnQuery.data, recency: this.attnRecency!.data } }),
    };
  }

  /** Output embedding of item vocabulary id `id` (a view). */
  itemVector(id: number): Float32Array {
    const d = this.config.embeddingDim;
    return this.output.data.subarray(id * d, (id + 1) * d);
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
    if (this.disposed) throw new Error("CandidateGenModel: used after dispose()");
  }
}
