import { writeFileSync } from "node:fs";
import { IndexFormatError } from "./errors.js";
import { validateAnnotations } from "./annotations.js";
import type { IndexMetadata, LoadOptions } from "./persist.js";
import { FORMAT_VERSION, INDEX_FORMAT, readFloat32Rows, readIndexMetadata, saveIndexFiles } from "./persist.js";
import type { ItemVectors } from "./shard.js";
import { checkItemVectors } from "./shard.js";
import { TopK } from "./top-k.js";
import type { SearchHit, VectorIndex } from "./vector-index.js";
import { toFloat32Vector, validateDim, validateExclude, validateId, validateK, validateModelVersion } from "./vector-index.js";

export interface BruteForceIndexOptions {
  readonly dim: number;
  readonly modelVersion: string;
  readonly annotations?: Readonly<Record<string, string>>;
  /** Initial capacity in rows (grows by doubling). Default 1024. */
  readonly capacity?: number;
}

/**
 * Exact top-k by a full scan (float64 dot products of the float32 vectors). The reference for
 * HNSW recall, and a fine index for small catalogues (a 100k×64 scan is a few milliseconds).
 * Vectors live in one growable row-major Float32Array; removal moves the last row into the hole.
 */
export class BruteForceIndex implements VectorIndex {
  readonly kind = "brute-force" as const;
  readonly dim: number;
  readonly modelVersion: string;
  readonly annotations: Readonly<Record<string, string>>;
  private data: Float32Array;
  private readonly rowIds: string[] = [];
  private readonly rowOf = new Map<string, number>();
  /** See VectorIndex.savedAt. */
  private savedAtValue: string | undefined;

  constructor(options: BruteForceIndexOptions) {
    this.dim = validateDim(options.dim);
    this.modelVersion = validateModelVersion(options.modelVersion);
    this.annotations = validateAnnotations(options.annotations ?? {});
    const capacity = Math.max(1, Math.floor(options.capacity ?? 1024));
    this.data = new Float32Array(capacity * this.dim);
  }

  /** An exact index over row-major item vectors (a repeated id keeps its last row). */
  static build(
    items: ItemVectors,
    options: { readonly modelVersion: string; readonly annotations?: Readonly<Record<string, string>> },
  ): BruteForceIndex {
    checkItemVectors(items);
    const { ids, vectors, dim } = items;
    const index = new BruteForceIndex({ ...options, dim, capacity: Math.max(1, ids.length) });
    for (let i = 0; i < ids.length; i++) index.upsert(ids[i]!, vectors.subarray(i * dim, (i + 1) * dim));
    return index;
  }

  size(): number {
    return this.rowIds.length;
  }

  has(id: string): boolean {
    return this.rowOf.has(id);
  }

  upsert(id: string, vector: ArrayLike<number>): void {
    validateId(id);
    const v = toFloat32Vector(vector, this.dim, "vector");
    let row = this.rowOf.get(id);
    if (row === undefined) {
      row = this.rowIds.length;
      if ((row + 1) * this.dim > this.data.length) {
        const grown = new Float32Array(Math.max(this.data.length * 2, (row + 1) * this.dim));
        grown.set(this.data);
        this.data = grown;
      }
      this.rowIds.push(id);
      this.rowOf.set(id, row);
    }
    this.data.set(v, row * this.dim);
  }

  remove(id: string): boolean {
    validateId(id);
    const row = this.rowOf.get(id);
    if (row === undefined) return false;
    const last = this.rowIds.length - 1;
    if (row !== last) {
      const lastId = this.rowIds[last]!;
      this.data.copyWithin(row * this.dim, last * this.dim, (last + 1) * this.dim);
      this.rowIds[row] = lastId;
      this.rowOf.set(lastId, row);
    }
    this.rowIds.pop();
    this.rowOf.delete(id);
    return true;
  }

  search(query: ArrayLike<number>, k: number, exclude?: ReadonlySet<string>): SearchHit[] {
    const q = toFloat32Vector(query, this.dim, "query");
    validateK(k);
    validateExclude(exclude);
    const top = new TopK(k);
    const { data, dim, rowIds } = this;
    const skip = exclude !== undefined && exclude.size > 0 ? exclude : undefined;
    const n = rowIds.length;
    const dim4 = dim - (dim % 4);
    for (let row = 0, base = 0; row < n; row++, base += dim) {
      // Unrolled by 4 (about 1.5× faster in V8), summing in the same order as a plain loop, so
      // the scores are bit-identical to the sequential float64 sum.
      let s = 0;
      let j = 0;
      for (; j < dim4; j += 4) {
        const b = base + j;
        s += q[j]! * data[b]!;
        s += q[j + 1]! * data[b + 1]!;
        s += q[j + 2]! * data[b + 2]!;
        s += q[j + 3]! * data[b + 3]!;
      }
      for (; j < dim; j++) s += q[j]! * data[base + j]!;
      if (s < top.threshold()) continue;
      const id = rowIds[row]!;
      if (skip !== undefined && skip.has(id)) continue;
      top.push(s, id);
    }
    return top.sorted();
  }

  /** The stored vector of `id` (a copy), or undefined. */
  vectorOf(id: string): Float32Array | undefined {
    const row = this.rowOf.get(id);
    return row === undefined ? undefined : this.data.slice(row * this.dim, (row + 1) * this.dim);
  }

  get savedAt(): string | undefined {
    return this.savedAtValue;
  }

  async save(dir: string): Promise<void> {
    const savedAt = new Date().toISOString();
    await saveIndexFiles(
      dir,
      [{ prefix: "vectors", write: (path) => this.writeRows(path) }],
      ([data]): IndexMetadata => ({
        format: INDEX_FORMAT,
        formatVersion: FORMAT_VERSION,
        kind: "brute-force",
        metric: "inner_product",
        dim: this.dim,
        modelVersion: this.modelVersion,
        annotations: this.annotations,
        savedAt,
        size: this.size(),
        file: data!.file,
        fileBytes: data!.fileBytes,
        labels: this.ids(),
        options: {},
      }),
    );
    this.savedAtValue = savedAt;
  }

  /** The ids in row order (the order `writeRows` writes the vectors in). */
  ids(): string[] {
    return this.rowIds.slice();
  }

  /**
   * Writes the vectors synchronously to `path` as raw little-endian float32 rows, row i being
   * `ids()[i]` (the brute-force data file; also the exact head of an HnswIndex).
   */
  writeRows(path: string): void {
    writeFileSync(path, littleEndianBytes(this.data.subarray(0, this.rowIds.length * this.dim)));
  }

  static async load(dir: string, options: LoadOptions = {}): Promise<BruteForceIndex> {
    const { meta, dataPath } = await readIndexMetadata(dir, options);
    if (meta.kind !== "brute-force") throw new IndexFormatError(`${dir} holds a ${meta.kind} index, not brute-force`);
    for (const id of meta.labels) {
      if (id === null) throw new IndexFormatError(`${dir}: brute-force labels must not contain null`);
    }
    const index = await BruteForceIndex.readRows(dataPath, meta.labels as readonly string[], {
      dim: meta.dim,
      modelVersion: meta.modelVersion,
      annotations: meta.annotations,
    });
    index.savedAtValue = meta.savedAt;
    return index;
  }

  /**
   * An index over a file written by `writeRows`: row i of `dataPath` belongs to `ids[i]`.
   * Throws IndexFormatError when the file does not hold exactly ids.length rows of finite values
   * or an id repeats.
   */
  static async readRows(
    dataPath: string,
    ids: readonly string[],
    options: Omit<BruteForceIndexOptions, "capacity">,
  ): Promise<BruteForceIndex> {
    const rows = ids.length;
    const index = new BruteForceIndex({ ...options, capacity: Math.max(1, rows) });
    await readFloat32Rows(dataPath, rows, index.dim, index.data.subarray(0, rows * index.dim));
    for (let row = 0; row < rows; row++) {
      const id = ids[row]!;
      if (index.rowOf.has(id)) throw new IndexFormatError(`${dataPath}: id ${JSON.stringify(id)} appears twice`);
      index.rowIds.push(id);
      index.rowOf.set(id, row);
    }
    return index;
  }
}

/** Loads a brute-force index directory written by `BruteForceIndex.save`. */
export function loadBruteForceIndex(dir: string, options: LoadOptions = {}): Promise<BruteForceIndex> {
  return BruteForceIndex.load(dir, options);
}

function littleEndianBytes(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return out;
}
