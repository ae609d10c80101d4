import { TopK } from "./top-k.js";
import type { Candidate } from "./types.js";

/**
 * Nearest items to a query vector by inner product. The brute-force implementation below is exact;
 * an approximate one (HNSW) implements the same interface elsewhere.
 */
export interface ItemIndex {
  /**
   * The `k` items with the largest dot product with `vector`, best first (ties by item index),
   * skipping items for which `exclude` returns true. `score` is the dot product.
   */
  search(vector: Float32Array, k: number, exclude?: (item: number) => boolean): Candidate[];
}

/** Exact top-k inner-product search over a row-major item-embedding matrix: O(items * dim). */
export class BruteForceIndex implements ItemIndex {
  readonly numItems: number;

  /** `embeddings` holds item i's vector at [i * dim, (i + 1) * dim). */
  constructor(
    readonly embeddings: Float32Array,
    readonly dim: number,
  ) {
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`embedding dimension must be a positive integer, got ${dim}`);
    if (embeddings.length % dim !== 0) {
      throw new RangeError(`embedding matrix of length ${embeddings.length} is not a whole number of rows of dimension ${dim}`);
    }
    this.numItems = embeddings.length / dim;
  }

  search(vector: Float32Array, k: number, exclude?: (item: number) => boolean): Candidate[] {
    if (vector.length !== this.dim) throw new RangeError(`query vector has dimension ${vector.length}, the index has ${this.dim}`);
    const top = new TopK(k);
    if (k === 0) return [];
    const e = this.embeddings;
    const dim = this.dim;
    const n = this.numItems;
    let threshold = -Infinity;
    const offer = (i: number, s: number): void => {
      if (s < threshold) return;
      if (exclude !== undefined && exclude(i)) return;
      top.push(i, s);
      threshold = top.threshold;
    };
    // Four rows at a time (each query value read once for four products); every row's sum is
    // taken in the same order as one row at a time, so the scores are the same.
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const o0 = i * dim;
      const o1 = o0 + dim;
      const o2 = o1 + dim;
      const o3 = o2 + dim;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let d = 0; d < dim; d++) {
        const v = vector[d]!;
        s0 += e[o0 + d]! * v;
        s1 += e[o1 + d]! * v;
        s2 += e[o2 + d]! * v;
        s3 += e[o3 + d]! * v;
      }
      offer(i, s0);
      offer(i + 1, s1);
      offer(i + 2, s2);
      offer(i + 3, s3);
    }
    for (; i < n; i++) {
      const o = i * dim;
      let s = 0;
      for (let d = 0; d < dim; d++) s += e[o + d]! * vector[d]!;
      offer(i, s);
    }
    return top.sorted();
  }
}

/**
 * Exact top-k inner-product search over some rows of an embedding matrix: the kept rows are copied
 * into a compact BruteForceIndex (rows.length * dim floats) and results keep their row numbers in
 * the full matrix, so a search costs O(rows.length * dim) and never returns another row. `rows`
 * must be strictly increasing (ties by row number stay as BruteForceIndex orders them).
 */
export class BruteForceSubsetIndex implements ItemIndex {
  readonly rows: Int32Array;
  private readonly inner: BruteForceIndex;

  /** `embeddings` holds row i's vector at [i * dim, (i + 1) * dim). */
  constructor(embeddings: Float32Array, dim: number, rows: ArrayLike<number>) {
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`embedding dimension must be a positive integer, got ${dim}`);
    if (embeddings.length % dim !== 0) {
      throw new RangeError(`embedding matrix of length ${embeddings.length} is not a whole number of rows of dimension ${dim}`);
    }
    const total = embeddings.length / dim;
    const kept = Int32Array.from(rows);
    const compact = new Float32Array(kept.length * dim);
    for (let k = 0; k < kept.length; k++) {
      const row = kept[k]!;
      if (!(Number.isInteger(row) && row >= 0 && row < total)) throw new RangeError(`row ${row} outside 0..${total - 1}`);
      if (k > 0 && row <= kept[k - 1]!) throw new RangeError(`rows must be strictly increasing, got ${kept[k - 1]} then ${row}`);
      compact.set(embeddings.subarray(row * dim, (row + 1) * dim), k * dim);
    }
    this.rows = kept;
    this.inner = new BruteForceIndex(compact, dim);
  }

  get numItems(): number {
    return this.rows.length;
  }

  search(vector: Float32Array, k: number, exclude?: (item: number) => boolean): Candidate[] {
    const rows = this.rows;
    const found = this.inner.search(vector, k, exclude === undefined ? undefined : (i) => exclude(rows[i]!));
    return found.map((c) => ({ ...c, item: rows[c.item]! }));
  }
}
