import { expNonPositive } from "./fast-exp.js";
import type { ItemTree } from "./item-tree.js";
import type { SparseTable } from "./sparse.js";

/**
 * The two-level (class-based) softmax over the items of an {@link ItemTree}:
 *
 *   log P(j | u) = log softmax_c(u · w_c)[c(j)] + log softmax_{k ∈ c(j)}(u · v_k)[j]
 *
 * w_c the cluster vectors (`clusters`, C × d), v_k the model's output item vectors (`output`),
 * c(j) the cluster of item j. Both softmaxes are exact (no sampling): a training example costs
 * C + |c(j)| dot products, O(√N) with C ≈ √N balanced clusters, against 1 + S for the sampled
 * softmax with S shared negatives.
 *
 * Serving (the retrieval index scores items by a dot product with the user vector) uses one
 * vector per item, w_c(j) + v_j: u · (w_c(j) + v_j) = log P(j | u) + Z(u) + Z_c(j)(u), with
 * Z(u) = log Σ_c exp(u · w_c) the same for every item (no effect on the ranking) and
 * Z_c(u) = log Σ_{k ∈ c} exp(u · v_k) the within-cluster log-partition, which differs between
 * clusters: the serving ranking is that of log P(j | u) up to that per-cluster term.
 *
 * `selfNormalization` α > 0 adds α · Z_c(j)(u)² to each example's loss (self-normalisation, as
 * in Devlin et al. 2014), which pushes the within-cluster log-partition of the label's cluster
 * towards 0, so that the serving score approaches log P(j | u) + Z(u). It changes the training
 * objective, not the model's probabilities (logProbabilities stays exact).
 */
export class HierarchicalSoftmax {
  private readonly clusterLogits: Float32Array;
  private readonly itemLogits: Float32Array;
  /** ∂ of the cluster table over the rows of one call (C × d), added to its sparse gradient at the end. */
  private readonly dClusters: Float32Array;

  constructor(
    readonly tree: ItemTree,
    readonly clusters: SparseTable,
    readonly output: SparseTable,
    readonly selfNormalization = 0,
  ) {
    if (!(selfNormalization >= 0)) throw new Error(`HierarchicalSoftmax: selfNormalization must be >= 0, got ${selfNormalization}`);
    if (clusters.rows !== tree.clusters || clusters.dim !== output.dim)
      throw new Error(`HierarchicalSoftmax: cluster table ${clusters.rows}x${clusters.dim}, expected ${tree.clusters}x${output.dim}`);
    if (tree.itemCluster.length !== output.rows)
      throw new Error(`HierarchicalSoftmax: tree over ${tree.itemCluster.length} ids, output table has ${output.rows} rows`);
    let widest = 0;
    for (let c = 0; c < tree.clusters; c++) widest = Math.max(widest, tree.memberOffsets[c + 1]! - tree.memberOffsets[c]!);
    this.clusterLogits = new Float32Array(tree.clusters);
    this.itemLogits = new Float32Array(widest);
    this.dClusters = new Float32Array(tree.clusters * output.dim);
  }

  /**
   * Loss and gradients of rows 0..rows-1 of the user vectors `uv` (rows × d) with labels
   * labels[start + i]: returns the summed −log P(label | u) (+ α · Z_c² with self-normalisation) of the rows; writes ∂u (rows × d,
   * the loss being the mean over `totalRows`) to `dU`; adds the gradients of the cluster vectors
   * and of the label clusters' item vectors to the sparse tables (applied by the step).
   */
  lossAndGrad(uv: Float32Array, labels: Int32Array, start: number, rows: number, totalRows: number, dU: Float32Array): number {
    const d = this.output.dim;
    const k = this.tree.clusters;
    const { itemCluster, memberOffsets, members } = this.tree;
    const w = this.clusters.data;
    const v = this.output.data;
    const s = this.clusterLogits;
    const t = this.itemLogits;
    const dW = this.dClusters;
    dW.fill(0);
    const invRows = 1 / totalRows;
    let lossSum = 0;
    for (let i = 0; i < rows; i++) {
      const label = labels[start + i]!;
      const c = itemCluster[label]!;
      if (c < 0) throw new Error(`HierarchicalSoftmax: label ${label} is in no cluster (OOV)`);
      const uo = i * d;
      dU.fill(0, uo, uo + d);

      // Top level: softmax over the C clusters.
      let m = -Infinity;
      for (let q = 0; q < k; q++) {
        const l = dot(uv, uo, w, q * d, d);
        s[q] = l;
        if (l > m) m = l;
      }
      const target = s[c]! - m;
      let z = 0;
      for (let q = 0; q < k; q++) {
        const e = expNonPositive(s[q]! - m);
        z += e;
        s[q] = e;
      }
      lossSum += Math.log(z) - target;
      for (let q = 0; q < k; q++) {
        const g = (s[q]! / z - (q === c ? 1 : 0)) * invRows;
        axpy(g, w, q * d, dU, uo, d);
        axpy(g, uv, uo, dW, q * d, d);
      }

      // Bottom level: softmax over the members of the label's cluster.
      const m0 = memberOffsets[c]!;
      const n = memberOffsets[c + 1]! - m0;
      m = -Infinity;
      for (let p = 0; p < n; p++) {
        const l = dot(uv, uo, v, members[m0 + p]! * d, d);
        t[p] = l;
        if (l > m) m = l;
      }
      const pos = this.tree.position[label]!;
      const targetItem = t[pos]! - m;
      z = 0;
      for (let p = 0; p < n; p++) {
        const e = expNonPositive(t[p]! - m);
        z += e;
        t[p] = e;
      }
      const logZ = m + Math.log(z);
      lossSum += Math.log(z) - targetItem + this.selfNormalization * logZ * logZ;
      // ∂/∂t_p: q_p − [p = label] from −log q_label, 2α·Z_c·q_p from α·Z_c² (∂Z_c/∂t_p = q_p).
      const factor = 1 + 2 * this.selfNormalization * logZ; // exactly 1 when α = 0
      for (let p = 0; p < n; p++) {
        const id = members[m0 + p]!;
        const g = ((t[p]! / z) * factor - (p === pos ? 1 : 0)) * invRows;
        axpy(g, v, id * d, dU, uo, d);
        this.output.addGrad(id, uv, uo, g);
      }
    }
    for (let q = 0; q < k; q++) this.clusters.addGrad(q, dW, q * d, 1);
    return lossSum;
  }

  /** The serving item vectors w_c(j) + v_j of vocabulary ids 1..size-1 ((size − 1) × d, row-major). */
  servingItemVectors(): Float32Array {
    const d = this.output.dim;
    const size = this.output.rows;
    const out = new Float32Array((size - 1) * d);
    const v = this.output.data;
    const w = this.clusters.data;
    for (let id = 1; id < size; id++) {
      const wo = this.tree.itemCluster[id]! * d;
      const o = (id - 1) * d;
      for (let c = 0; c < d; c++) out[o + c] = v[id * d + c]! + w[wo + c]!;
    }
    return out;
  }

  /** Exact log P(j | u) of every vocabulary id j >= 1 into out[j] (out[0] = −Infinity). */
  logProbabilities(u: Float32Array, out: Float64Array): void {
    const d = this.output.dim;
    const k = this.tree.clusters;
    const { memberOffsets, members } = this.tree;
    const w = this.clusters.data;
    const v = this.output.data;
    const top = new Float64Array(k);
    for (let q = 0; q < k; q++) top[q] = dot(u, 0, w, q * d, d);
    const zTop = logSumExp(top, 0, k);
    out[0] = -Infinity;
    for (let q = 0; q < k; q++) {
      const m0 = memberOffsets[q]!;
      const n = memberOffsets[q + 1]! - m0;
      if (n === 0) continue;
      const within = new Float64Array(n);
      for (let p = 0; p < n; p++) within[p] = dot(u, 0, v, members[m0 + p]! * d, d);
      const z = logSumExp(within, 0, n);
      for (let p = 0; p < n; p++) out[members[m0 + p]!] = top[q]! - zTop + within[p]! - z;
    }
  }
}

function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, d: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let c = 0;
  for (; c + 3 < d; c += 4) {
    s0 += a[ao + c]! * b[bo + c]!;
    s1 += a[ao + c + 1]! * b[bo + c + 1]!;
    s2 += a[ao + c + 2]! * b[bo + c + 2]!;
    s3 += a[ao + c + 3]! * b[bo + c + 3]!;
  }
  for (; c < d; c++) s0 += a[ao + c]! * b[bo + c]!;
  return s0 + s1 + s2 + s3;
}

/** y[yo ..] += g · x[xo ..] over d values. */
function axpy(g: number, x: Float32Array, xo: number, y: Float32Array, yo: number, d: number): void {
  let c = 0;
  for (; c + 3 < d; c += 4) {
    y[yo + c]! += g * x[xo + c]!;
    y[yo + c + 1]! += g * x[xo + c + 1]!;
    y[yo + c + 2]! += g * x[xo + c + 2]!;
    y[yo + c + 3]! += g * x[xo + c + 3]!;
  }
  for (; c < d; c++) y[yo + c]! += g * x[xo + c]!;
}

function logSumExp(a: Float64Array, start: number, end: number): number {
  let m = -Infinity;
  for (let i = start; i < end; i++) if (a[i]! > m) m = a[i]!;
  let z = 0;
  for (let i = start; i < end; i++) z += Math.exp(a[i]! - m);
  return m + Math.log(z);
}
