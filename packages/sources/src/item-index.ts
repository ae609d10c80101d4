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
    for (let i = 0, off = 0; i < this.numItems; i++, off += dim) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += e[off + d]! * vector[d]!;
      if (s < top.threshold) continue;
      if (exclude !== undefined && exclude(i)) continue;
      top.push(i, s);
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
