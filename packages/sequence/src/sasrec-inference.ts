/**
 * SASRec's state after one sequence (the encoder's output at its last position), computed in
 * plain JS from a copy of the weights: the serving path of a session source (one short session
 * per request).
 *
 * `SasRecEncoder.encode` runs a batch [B, L, d] as ~40 tensor ops per block over all L positions,
 * padding included; for one session of a few items most of that is per-op dispatch and work on
 * padding. The result here is the same state: padding positions are zero and masked out as keys,
 * so a real position depends only on the real positions before it, and only those (n <= L rows,
 * the item at k of n at position L − n + k) are computed. In the last block only the last
 * position's query, attention, feed-forward and LayerNorms are needed (its keys and values are
 * still every real position's). The dense layers' products run on the native BLAS when the
 * sequence ops do (`sequenceBlas()`: not with `setSequenceKernels("tfjs")`), else in JS loops. It
 * agrees with `encode` to float rounding (sasrec-inference.test.ts).
 */
import type { Blas } from "@recsys/tf";
import { LAYER_NORM_EPSILON, layerNormForward, sequenceBlas } from "./ops.js";

/** One block's weights (row-major, as the encoder's variables: w [in, out]). */
export interface SasRecBlockWeights {
  readonly ln1g: Float32Array;
  readonly ln1b: Float32Array;
  readonly wq: Float32Array;
  readonly bq: Float32Array;
  readonly wk: Float32Array;
  readonly bk: Float32Array;
  readonly wv: Float32Array;
  readonly bv: Float32Array;
  readonly wo: Float32Array;
  readonly bo: Float32Array;
  readonly ln2g: Float32Array;
  readonly ln2b: Float32Array;
  readonly w1: Float32Array;
  readonly b1: Float32Array;
  readonly w2: Float32Array;
  readonly b2: Float32Array;
}

/** A copy of a SasRecEncoder's weights (`SasRecEncoder.weights()`). */
export interface SasRecWeights {
  readonly dim: number;
  readonly maxLength: number;
  /** Learned positions [L, d]. */
  readonly positions: Float32Array;
  readonly blocks: readonly SasRecBlockWeights[];
  readonly lnG: Float32Array;
  readonly lnB: Float32Array;
}

export class SasRecInference {
  readonly dim: number;
  readonly maxLength: number;
  // Scratch rows [L, d] reused by every call (one call at a time: JS is single-threaded).
  private readonly h: Float32Array;
  private readonly q: Float32Array;
  private readonly queries: Float32Array;
  private readonly keys: Float32Array;
  private readonly values: Float32Array;
  private readonly attended: Float32Array;
  private readonly r: Float32Array;
  private readonly hidden: Float32Array;
  private readonly scores: Float64Array;

  constructor(private readonly w: SasRecWeights) {
    const { dim: d, maxLength: L } = w;
    if (w.positions.length !== L * d) throw new Error(`SasRecInference: positions hold ${w.positions.length} values, expected ${L}·${d}`);
    this.dim = d;
    this.maxLength = L;
    this.h = new Float32Array(L * d);
    this.q = new Float32Array(L * d);
    this.queries = new Float32Array(L * d);
    this.keys = new Float32Array(L * d);
    this.values = new Float32Array(L * d);
    this.attended = new Float32Array(L * d);
    this.r = new Float32Array(L * d);
    this.hidden = new Float32Array(L * d);
    this.scores = new Float64Array(L);
  }

  /**
   * The state after `ids` (item index + 1 each, never the padding 0; the last maxLength are
   * read) with item embeddings `table` (row id at [id·d, (id + 1)·d)): a new [d] array.
   */
  lastState(ids: ArrayLike<number>, table: Float32Array): Float32Array {
    const d = this.dim;
    const L = this.maxLength;
    const n = Math.min(L, ids.length);
    const out = new Float32Array(d);
    if (n === 0) return out;
    const { h, q, queries, keys, values, attended, r, hidden } = this;
    const w = this.w;
    const blas = sequenceBlas();
    // Embeddings · √d + the position of each real item (items are left-padded to L).
    const scaleIn = Math.sqrt(d);
    for (let k = 0; k < n; k++) {
      const id = ids[ids.length - n + k]!;
      if (!(Number.isInteger(id) && id >= 1 && (id + 1) * d <= table.length))
        throw new RangeError(`SasRecInference: id ${id} outside the table`);
      const e = id * d;
      const p = (L - n + k) * d;
      for (let c = 0; c < d; c++) h[k * d + c] = table[e + c]! * scaleIn + w.positions[p + c]!;
    }
    const scale = 1 / Math.sqrt(d);
    for (let bi = 0; bi < w.blocks.length; bi++) {
      const b = w.blocks[bi]!;
      // Rows whose output is needed: every real position, in the last block only the last one.
      const first = bi === w.blocks.length - 1 ? n - 1 : 0;
      const rows = n - first;
      layerNorm(h, first, rows, d, b.ln1g, b.ln1b, q);
      dense(blas, q, first, rows, d, b.wq, b.bq, d, queries);
      dense(blas, h, 0, n, d, b.wk, b.bk, d, keys);
      dense(blas, h, 0, n, d, b.wv, b.bv, d, values);
      for (let t = first; t < n; t++) this.attend(t, d, scale, queries, keys, values, attended);
      dense(blas, attended, first, rows, d, b.wo, b.bo, d, r);
      // r ← LayerNorm(q + o)
      for (let i = first * d; i < n * d; i++) r[i] = q[i]! + r[i]!;
      layerNorm(r, first, rows, d, b.ln2g, b.ln2b, r);
      dense(blas, r, first, rows, d, b.w1, b.b1, d, hidden);
      for (let i = first * d; i < n * d; i++) if (!(hidden[i]! > 0)) hidden[i] = 0;
      dense(blas, hidden, first, rows, d, b.w2, b.b2, d, h);
      for (let i = first * d; i < n * d; i++) h[i] = r[i]! + h[i]!;
    }
    layerNorm(h, n - 1, 1, d, w.lnG, w.lnB, h);
    out.set(h.subarray((n - 1) * d, n * d));
    return out;
  }

  /** attended[t] = softmax_s≤t(Q_t·K_s·scale)·V (the causal mask: keys 0..t). */
  private attend(t: number, d: number, scale: number, Q: Float32Array, K: Float32Array, V: Float32Array, out: Float32Array): void {
    const scores = this.scores;
    const qo = t * d;
    let max = -Infinity;
    for (let s = 0; s <= t; s++) {
      let dot = 0;
      const ko = s * d;
      for (let c = 0; c < d; c++) dot += Q[qo + c]! * K[ko + c]!;
      // Rounded to float32 as the batched path's scores tensor is.
      const score = Math.fround(dot * scale);
      scores[s] = score;
      if (score > max) max = score;
    }
    let sum = 0;
    for (let s = 0; s <= t; s++) {
      const e = Math.exp(scores[s]! - max);
      scores[s] = e;
      sum += e;
    }
    out.fill(0, qo, qo + d);
    for (let s = 0; s <= t; s++) {
      const a = scores[s]! / sum;
      const vo = s * d;
      for (let c = 0; c < d; c++) out[qo + c]! += a * V[vo + c]!;
    }
  }
}

/** y[r] = x[r]·w + bias for rows first..first+rows−1 of x [*, k] (w [k, m]) into the same rows of y [*, m] (y is not x). */
function dense(
  blas: Blas | null,
  x: Float32Array,
  first: number,
  rows: number,
  k: number,
  w: Float32Array,
  bias: Float32Array,
  m: number,
  y: Float32Array,
): void {
  for (let r = first; r < first + rows; r++) y.set(bias, r * m);
  if (blas !== null) {
    blas.sgemm(
      false,
      false,
      rows,
      m,
      k,
      1,
      x.subarray(first * k, (first + rows) * k),
      k,
      w,
      m,
      1,
      y.subarray(first * m, (first + rows) * m),
      m,
    );
    return;
  }
  for (let r = first; r < first + rows; r++) {
    const yo = r * m;
    const xo = r * k;
    for (let i = 0; i < k; i++) {
      const xv = x[xo + i]!;
      if (xv === 0) continue;
      const wo = i * m;
      for (let j = 0; j < m; j++) y[yo + j]! += xv * w[wo + j]!;
    }
  }
}

/** LayerNorm of rows first..first+rows−1 of x [*, d] into the same rows of y (y may be x). */
function layerNorm(x: Float32Array, first: number, rows: number, d: number, g: Float32Array, b: Float32Array, y: Float32Array): void {
  const from = first * d;
  const to = (first + rows) * d;
  layerNormForward(x.subarray(from, to), g, b, rows, d, LAYER_NORM_EPSILON, null, null, y.subarray(from, to));
}
