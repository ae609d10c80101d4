import hnswlib from "hnswlib-node";
import { InvalidArgumentError, IndexFormatError } from "./errors.js";
import type { IndexMetadata, LoadOptions } from "./persist.js";
import { FORMAT_VERSION, INDEX_FORMAT, readIndexMetadata, saveIndexFiles } from "./persist.js";
import type { ItemVectors } from "./shard.js";
import { checkItemVectors } from "./shard.js";
import type { SearchHit, VectorIndex } from "./vector-index.js";
import {
  compareHits,
  toFloat32Vector,
  validateDim,
  validateExclude,
  validateId,
  validateK,
  validateModelVersion,
} from "./vector-index.js";
import { validateAnnotations } from "./annotations.js";

const { HierarchicalNSW } = hnswlib;
type Hnsw = InstanceType<typeof HierarchicalNSW>;

/** Largest capacity hnswlib-node can address (labels are uint32; we keep to int32 for safety). */
const MAX_ELEMENTS = 2 ** 31 - 1;

export interface HnswParams {
  /** Graph degree (hnswlib M). Default 16. */
  readonly M?: number;
  /** Candidate list size while building. Default 200. */
  readonly efConstruction?: number;
  /** Candidate list size while searching (hnswlib uses max(ef, k)). Default 100; settable later. */
  readonly ef?: number;
  /** Initial capacity; the index doubles it automatically when full. Default 1024. */
  readonly maxElements?: number;
  /** Seed of hnswlib's level generator: same seed + same insertion order = same graph. Default 100. */
  readonly seed?: number;
}

export interface HnswIndexOptions extends HnswParams {
  readonly dim: number;
  readonly modelVersion: string;
  readonly annotations?: Readonly<Record<string, string>>;
  /**
   * Norm bound Φ of the inner-product → nearest-neighbour reduction (see the class comment), or
   * null for a plain inner-product graph. `HnswIndex.build` derives it from the data.
   */
  readonly normBound: number | null;
}

export interface HnswBuildOptions extends HnswParams {
  readonly modelVersion: string;
  readonly annotations?: Readonly<Record<string, string>>;
  /** Explicit Φ (or null for a plain inner-product graph); by default the `normQuantile` quantile of the item norms. */
  readonly normBound?: number | null;
  /** Quantile of item norms used as Φ when normBound is not given. Default 0.99. */
  readonly normQuantile?: number;
  /** Called after every 1% of the items (and at the end) while inserting. */
  readonly onProgress?: (inserted: number, total: number) => void;
}

export const HNSW_DEFAULTS = { M: 16, efConstruction: 200, ef: 100, maxElements: 1024, seed: 100, normQuantile: 0.99 } as const;

function intIn(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
  return value;
}

/**
 * HNSW (hnswlib, inner-product space) keyed by external string ids.
 *
 * Inner product is not a metric, and an hnswlib graph built directly on item vectors of varying
 * norms links low-norm items poorly: on clustered synthetic data with a lognormal norm spread,
 * recall@100 stayed at 0.5–0.7 at ef 100–200. So by default the index applies the reduction of
 * Bachrach et al. (2014, "Speeding up the Xbox recommender system using a Euclidean
 * transformation for inner-product spaces"): each item x is stored as (x, sqrt(Φ² − |x|²)) and
 * each query q as (q, 0). The stored dot product is still exactly x·q, but all items whose norm is
 * at most Φ now have norm Φ, so the graph links items by (Euclidean) closeness. Φ defaults to the
 * 99th percentile of the item norms (a maximum is hostage to one outlier); items with a larger
 * norm get 0 as extra coordinate: their scores are still exact, only their links are built as in
 * a plain inner-product graph. `normBound: null` switches the reduction off.
 *
 * Labels: each id is given a uint32 hnswlib label. Removing an id marks its label deleted in
 * hnswlib (it is never returned again and search still fills k from the remaining items) and
 * frees the label; the next new id reuses a freed label, which hnswlib then un-deletes and
 * overwrites in place, so churn does not grow the index. Results are also filtered against the
 * id mapping, so a deleted label can never surface even if hnswlib returned it.
 *
 * Scores are hnswlib's float32 inner products (1 - distance), so they can differ from
 * `BruteForceIndex`'s float64 sums in the 7th significant digit.
 *
 * Not thread-safe in any sense beyond Node's single thread; `save` writes the hnswlib file
 * synchronously (blocking the event loop for the duration of the write) so that no mutation can
 * interleave with it.
 */
export class HnswIndex implements VectorIndex {
  readonly kind = "hnsw" as const;
  readonly dim: number;
  readonly modelVersion: string;
  readonly annotations: Readonly<Record<string, string>>;
  readonly M: number;
  readonly efConstruction: number;
  readonly seed: number;
  /** Φ of the reduction, or null for a plain inner-product graph. */
  readonly normBound: number | null;
  private efValue: number;
  /** Dimension stored in hnswlib: dim + 1 with the reduction. */
  private readonly innerDim: number;
  private readonly hnsw: Hnsw;
  /** label → id; null = deleted (free) label. Its length is the number of labels ever used. */
  private readonly labelToId: (string | null)[];
  private readonly idToLabel = new Map<string, number>();
  /** Deleted labels available for reuse (a stack). */
  private readonly freeLabels: number[] = [];

  constructor(options: HnswIndexOptions) {
    this.dim = validateDim(options.dim);
    this.modelVersion = validateModelVersion(options.modelVersion);
    this.annotations = validateAnnotations(options.annotations ?? {});
    this.M = intIn("M", options.M ?? HNSW_DEFAULTS.M, 2, 256);
    this.efConstruction = intIn("efConstruction", options.efConstruction ?? HNSW_DEFAULTS.efConstruction, 1, 100_000);
    this.efValue = intIn("ef", options.ef ?? HNSW_DEFAULTS.ef, 1, 100_000);
    this.seed = intIn("seed", options.seed ?? HNSW_DEFAULTS.seed, 0, 2 ** 32 - 1);
    const maxElements = intIn("maxElements", options.maxElements ?? HNSW_DEFAULTS.maxElements, 1, MAX_ELEMENTS);
    const normBound: unknown = options.normBound;
    if (normBound !== null && !(typeof normBound === "number" && Number.isFinite(normBound) && normBound > 0)) {
      throw new InvalidArgumentError(
        `normBound must be a positive finite number or null, got ${String(normBound)} (HnswIndex.build derives it from the data)`,
      );
    }
    this.normBound = normBound;
    this.innerDim = normBound === null ? this.dim : this.dim + 1;
    this.hnsw = new HierarchicalNSW("ip", this.innerDim);
    this.hnsw.initIndex({
      maxElements,
      m: this.M,
      efConstruction: this.efConstruction,
      randomSeed: this.seed,
      allowReplaceDeleted: false,
    });
    this.hnsw.setEf(this.efValue);
    this.labelToId = [];
  }

  /** Query-time candidate list size (hnswlib uses max(ef, number of results fetched)). */
  get ef(): number {
    return this.efValue;
  }

  set ef(value: number) {
    this.efValue = intIn("ef", value, 1, 100_000);
    this.hnsw.setEf(this.efValue);
  }

  /** Current capacity of the hnswlib index (grows automatically). */
  capacity(): number {
    return this.hnsw.getMaxElements();
  }

  size(): number {
    return this.idToLabel.size;
  }

  has(id: string): boolean {
    return this.idToLabel.has(id);
  }

  upsert(id: string, vector: ArrayLike<number>): void {
    validateId(id);
    const point = this.itemPoint(toFloat32Vector(vector, this.dim, "vector"));
    const existing = this.idToLabel.get(id);
    if (existing !== undefined) {
      // hnswlib updates the stored vector in place and repairs the neighbourhood.
      this.hnsw.addPoint(point, existing);
      return;
    }
    const reused = this.freeLabels.pop();
    if (reused !== undefined) {
      try {
        // The label is marked deleted: addPoint un-deletes it and overwrites its vector.
        this.hnsw.addPoint(point, reused);
      } catch (err) {
        this.freeLabels.push(reused);
        throw err;
      }
      this.labelToId[reused] = id;
      this.idToLabel.set(id, reused);
      return;
    }
    const label = this.labelToId.length;
    const capacity = this.hnsw.getMaxElements();
    if (label >= capacity) {
      if (capacity >= MAX_ELEMENTS) throw new InvalidArgumentError(`index is full (${MAX_ELEMENTS} items)`);
      this.hnsw.resizeIndex(Math.min(MAX_ELEMENTS, Math.max(capacity * 2, label + 1)));
    }
    this.hnsw.addPoint(point, label);
    this.labelToId.push(id);
    this.idToLabel.set(id, label);
  }

  remove(id: string): boolean {
    validateId(id);
    const label = this.idToLabel.get(id);
    if (label === undefined) return false;
    this.hnsw.markDelete(label);
    this.idToLabel.delete(id);
    this.labelToId[label] = null;
    this.freeLabels.push(label);
    return true;
  }

  search(query: ArrayLike<number>, k: number, exclude?: ReadonlySet<string>): SearchHit[] {
    const q = Array.from(toFloat32Vector(query, this.dim, "query"));
    if (this.normBound !== null) q.push(0);
    validateK(k);
    validateExclude(exclude);
    const live = this.idToLabel.size;
    let excludedLive = 0;
    if (exclude !== undefined) for (const id of exclude) if (this.idToLabel.has(id)) excludedLive++;
    const want = Math.min(k, live - excludedLive);
    if (want <= 0) return [];

    let hits: SearchHit[];
    if (excludedLive <= k) {
      // Few exclusions: over-fetch by exactly their number, then drop them. Deleted labels are
      // skipped inside hnswlib, which keeps searching until it has enough live results.
      let fetch = Math.min(live, k + excludedLive);
      for (;;) {
        hits = this.collect(this.hnsw.searchKnn(q, fetch), exclude);
        // hnswlib can return fewer than asked only when the graph walk runs out of reachable
        // live nodes (heavy deletion); asking for more widens the walk.
        if (hits.length >= want || fetch >= live) break;
        fetch = Math.min(live, fetch * 2);
      }
    } else {
      // Many exclusions: let hnswlib skip them during the walk (one JS call per visited node).
      const labelToId = this.labelToId;
      const allowed = (label: number): boolean => {
        const id = labelToId[label];
        return id !== null && id !== undefined && !exclude!.has(id);
      };
      hits = this.collect(this.hnsw.searchKnn(q, want, allowed), exclude);
    }
    hits.sort(compareHits);
    if (hits.length > k) hits.length = k;
    return hits;
  }

  /** The point stored in hnswlib for item vector `v` (with the reduction's extra coordinate). */
  private itemPoint(v: Float32Array): number[] {
    const point = Array.from(v);
    if (this.normBound !== null) {
      let norm2 = 0;
      for (let i = 0; i < v.length; i++) norm2 += v[i]! * v[i]!;
      point.push(Math.sqrt(Math.max(0, this.normBound * this.normBound - norm2)));
    }
    return point;
  }

  private collect(result: { distances: number[]; neighbors: number[] }, exclude?: ReadonlySet<string>): SearchHit[] {
    const hits: SearchHit[] = [];
    const { distances, neighbors } = result;
    for (let i = 0; i < neighbors.length; i++) {
      const id = this.labelToId[neighbors[i]!];
      if (id === null || id === undefined) continue; // deleted: never returned
      if (exclude !== undefined && exclude.has(id)) continue;
      hits.push({ id, score: 1 - distances[i]! });
    }
    return hits;
  }

  async save(dir: string): Promise<void> {
    await saveIndexFiles(
      dir,
      "hnsw",
      (path) => this.hnsw.writeIndexSync(path),
      (file, fileBytes): IndexMetadata => ({
        format: INDEX_FORMAT,
        formatVersion: FORMAT_VERSION,
        kind: "hnsw",
        metric: "inner_product",
        dim: this.dim,
        modelVersion: this.modelVersion,
        annotations: this.annotations,
        savedAt: new Date().toISOString(),
        size: this.size(),
        file,
        fileBytes,
        labels: this.labelToId,
        options: {
          M: this.M,
          efConstruction: this.efConstruction,
          ef: this.efValue,
          seed: this.seed,
          maxElements: this.hnsw.getMaxElements(),
          normBound: this.normBound,
        },
      }),
    );
  }

  /**
   * Builds an index over row-major item vectors (row i belongs to ids[i]; a repeated id keeps its
   * last row), deriving Φ from the norms unless given. Capacity defaults to the item count.
   */
  static build(items: ItemVectors, options: HnswBuildOptions): HnswIndex {
    const { ids, vectors } = items;
    const dim = validateDim(items.dim);
    checkItemVectors(items);
    let normBound = options.normBound;
    if (normBound === undefined) {
      const quantile = options.normQuantile ?? HNSW_DEFAULTS.normQuantile;
      if (!(quantile > 0 && quantile <= 1)) throw new InvalidArgumentError(`normQuantile must be in (0, 1], got ${quantile}`);
      normBound = normQuantile(vectors, dim, quantile);
    }
    const { onProgress, normQuantile: _q, ...rest } = options;
    const index = new HnswIndex({ ...rest, dim, normBound, maxElements: options.maxElements ?? Math.max(1, ids.length) });
    const step = Math.max(1, Math.floor(ids.length / 100));
    for (let i = 0; i < ids.length; i++) {
      index.upsert(ids[i]!, vectors.subarray(i * dim, (i + 1) * dim));
      if (onProgress !== undefined && ((i + 1) % step === 0 || i + 1 === ids.length)) onProgress(i + 1, ids.length);
    }
    return index;
  }

  /** Loads an index saved by `save` (reading the hnswlib file on a worker thread). */
  static async load(dir: string, options: LoadOptions & { readonly ef?: number } = {}): Promise<HnswIndex> {
    const { meta, dataPath } = await readIndexMetadata(dir, options);
    if (meta.kind !== "hnsw") throw new IndexFormatError(`${dir} holds a ${meta.kind} index, not hnsw`);
    const opt = meta.options;
    let index: HnswIndex;
    try {
      index = new HnswIndex({
        dim: meta.dim,
        modelVersion: meta.modelVersion,
        annotations: meta.annotations,
        M: opt.M ?? NaN,
        efConstruction: opt.efConstruction ?? NaN,
        ef: options.ef ?? opt.ef ?? NaN,
        seed: opt.seed ?? NaN,
        normBound: opt.normBound === undefined ? NaN : opt.normBound,
        maxElements: 1,
      });
    } catch (err) {
      throw new IndexFormatError(`${dir}: bad options in index.json: ${(err as Error).message}`, { cause: err });
    }
    await index.hnsw.readIndex(dataPath).catch((err: unknown) => {
      throw new IndexFormatError(`cannot read hnswlib file ${dataPath}: ${(err as Error).message}`, { cause: err });
    });
    // hnswlib does not persist ef: restore it.
    index.hnsw.setEf(index.efValue);
    const count = index.hnsw.getCurrentCount();
    if (count !== meta.labels.length || index.hnsw.getNumDimensions() !== index.innerDim) {
      throw new IndexFormatError(
        `${dataPath} holds ${count} labels of dimension ${index.hnsw.getNumDimensions()}, index.json implies ${meta.labels.length} of dimension ${index.innerDim}`,
      );
    }
    for (let label = 0; label < meta.labels.length; label++) {
      const id = meta.labels[label]!;
      index.labelToId.push(id);
      if (id === null) continue;
      if (index.idToLabel.has(id)) throw new IndexFormatError(`${dir}: id ${JSON.stringify(id)} appears twice in labels`);
      index.idToLabel.set(id, label);
    }
    // Reuse the lowest free labels first (the stack pops from the end).
    for (let label = meta.labels.length - 1; label >= 0; label--) {
      if (meta.labels[label] === null) index.freeLabels.push(label);
    }
    return index;
  }
}

/**
 * The `quantile` quantile of the norms of the rows of `vectors` (nearest rank); a small positive
 * number when every norm is 0, since Φ must be positive.
 */
export function normQuantile(vectors: Float32Array, dim: number, quantile: number): number {
  const n = Math.floor(vectors.length / dim);
  const norms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = i * dim; j < (i + 1) * dim; j++) s += vectors[j]! * vectors[j]!;
    norms[i] = Math.sqrt(s);
  }
  norms.sort();
  const value = n === 0 ? 0 : norms[Math.min(n - 1, Math.max(0, Math.ceil(quantile * n) - 1))]!;
  return value > 0 ? value : 1e-6;
}

/** Loads an HNSW index directory written by `HnswIndex.save`. */
export function loadHnswIndex(dir: string, options: LoadOptions & { readonly ef?: number } = {}): Promise<HnswIndex> {
  return HnswIndex.load(dir, options);
}
