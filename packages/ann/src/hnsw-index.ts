import hnswlib from "hnswlib-node";
import { yieldToEventLoop } from "@recsys/data";
import { ExactHead } from "./exact-head.js";
import { InvalidArgumentError, IndexFormatError } from "./errors.js";
import type { DataFileWriter, IndexMetadata, LoadOptions } from "./persist.js";
import { FORMAT_VERSION, INDEX_FORMAT, LOAD_SLICE, readIndexMetadata, saveIndexFiles } from "./persist.js";
import type { ItemVectors } from "./shard.js";
import { checkItemVectors } from "./shard.js";
import type { SearchHit, VectorIndex } from "./vector-index.js";
import { compareHits, toFloat32Vector, validateDim, validateExclude, validateId, validateK, validateModelVersion } from "./vector-index.js";
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
  /** Candidate list size while searching (hnswlib uses max(ef, k)). Default 150; settable later. */
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
  /**
   * Keep every item whose norm exceeds `normBound` out of the graph, in an exact "head" scanned
   * at every search (the norm split, see the class comment). Needs a numeric normBound. Default
   * false here (items above Φ go into the graph with 0 as extra coordinate); `HnswIndex.build`
   * turns it on by default.
   */
  readonly exactHead?: boolean;
}

export interface HnswBuildOptions extends HnswParams {
  readonly modelVersion: string;
  readonly annotations?: Readonly<Record<string, string>>;
  /**
   * Fraction of the items, those of largest norm, kept out of the graph and searched exactly
   * (the norm split, see the class comment): the items whose norm is above the
   * (1 − headFraction) quantile of the norms form the head, and Φ is that quantile (the largest
   * norm in the graph). In [0, 1). Default 0.03 unless `normBound` or `normQuantile` is given;
   * 0 = one graph for all items, with Φ from `normBound` / `normQuantile` (the pre-split
   * behaviour). Cannot be combined with a nonzero headFraction: give one or the other.
   */
  readonly headFraction?: number;
  /**
   * Single graph only (headFraction 0, implied when this is given): explicit Φ, or null for a
   * plain inner-product graph; by default the `normQuantile` quantile of the item norms.
   */
  readonly normBound?: number | null;
  /** Single graph only (headFraction 0, implied when this is given): quantile of item norms used as Φ when normBound is not given. Default 0.99. */
  readonly normQuantile?: number;
  /** Called after every 1% of the items (and at the end) while inserting. */
  readonly onProgress?: (inserted: number, total: number) => void;
}

export const HNSW_DEFAULTS = {
  M: 16,
  efConstruction: 200,
  // 1M items (npm run bench -- serve): recall@100 0.9943 → 0.9976 on the served catalogue and
  // 0.9218 → 0.9601 on clustered vectors going from ef 100 to 150, at the same queries/s.
  ef: 150,
  maxElements: 1024,
  seed: 100,
  headFraction: 0.03,
  normQuantile: 0.99,
} as const;

function intIn(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}, got ${String(value)}`);
  }
  return value;
}

/**
 * HNSW (hnswlib, inner-product space) keyed by external string ids, plus an exact "head" of the
 * items of largest norm.
 *
 * Inner product is not a metric, and an hnswlib graph built directly on item vectors of varying
 * norms links low-norm items poorly: on clustered synthetic data with a lognormal norm spread,
 * recall@100 stayed at 0.5–0.7 at ef 100–200. So the graph uses the reduction of Bachrach et al.
 * (2014, "Speeding up the Xbox recommender system using a Euclidean transformation for
 * inner-product spaces"): each item x is stored as (x, sqrt(Φ² − |x|²)) and each query q as
 * (q, 0). The stored dot product is still exactly x·q, but all items whose norm is at most Φ now
 * have norm Φ, so the graph links items by (Euclidean) closeness.
 *
 * Norm split (the default of `build`, `exactHead`): the reduction needs every graph item to have
 * norm ≤ Φ, and a Φ set by the largest norms pushes the bulk of the items towards the pole of
 * the sphere. Yet on trained YouTube-DNN embeddings the true top-100 of a user is dominated by
 * the highest-norm (popular) items. So the items of largest norm — by default the top 3% — are
 * kept OUT of the graph in a small exact index (`ExactHead`: hnswlib's native
 * `BruteforceSearch`, same "ip" space and float32 kernel as the graph) scanned at every search,
 * and the graph holds the rest with Φ = the largest norm among them (every graph item lies
 * exactly on the sphere); a search merges the graph's top k with the head's top k. Measured on 64,065 trained
 * item embeddings (200 real user vectors, recall@100 against brute force, ef 100 / 200 / 400):
 * norm split with a 3% head 0.960 / 0.981 / 0.993 (1% head: 0.924 / 0.963 / 0.985); one graph
 * with Φ = the 99th-percentile norm and the items above it inside with 0 as extra coordinate (the
 * previous default, `headFraction: 0`) 0.716 / 0.797 / 0.850, because 30% of the true top-100
 * lay above that quantile and such outliers are linked badly; the head also kept in the graph
 * and scanned on top 0.891 / 0.935 / 0.963 (it must be out of the graph); plain inner product
 * 0.507 / 0.583 / 0.640. This is norm-range partitioning (cf. Yan et al. 2018, "Norm-Ranging
 * LSH"; Morozov & Babenko 2018 on ip-NSW) with two ranges, the upper one searched exactly.
 * An upsert routes by norm: above Φ to the head (leaving the graph if it was there), otherwise
 * to the graph (leaving the head). Φ is fixed at construction, so items whose norms grow later
 * make the head (and its scan) grow; rebuild when it is far above the intended fraction
 * (`headSize()`).
 *
 * Without the split (`exactHead` false) items with a norm above Φ are stored in the graph with 0
 * as extra coordinate: their scores are still exact, only their links are built as in a plain
 * inner-product graph. `normBound: null` switches the reduction (and the head) off.
 *
 * Labels: each graph id is given a uint32 hnswlib label. Removing an id marks its label deleted
 * in hnswlib (it is never returned again and search still fills k from the remaining items) and
 * frees the label; the next new id reuses a freed label, which hnswlib then un-deletes and
 * overwrites in place, so churn does not grow the index. Results are also filtered against the
 * id mapping, so a deleted label can never surface even if hnswlib returned it. Head items are
 * removed from the head at once (the native row stays behind as a dead row, skipped by searches
 * and reused by the next new head item; see `ExactHead` for how it keeps clear of the bugs of
 * hnswlib's BruteforceSearch in removePoint, readIndex and filtered search). The saved head is
 * still the raw float32 rows of its live items (format unchanged); load adds them one by one.
 *
 * Scores from both parts are hnswlib's float32 inner products (1 - distance), so they can differ
 * from `BruteForceIndex`'s float64 sums in the 7th significant digit. The head stores its points
 * with the graph's dimension (extra coordinate 0, which is also what the reduction gives a point
 * of norm ≥ Φ) and is searched with the same query array, so an item scores bit-identically in
 * either part and the merge compares like with like. The head scan costs about 3–4× less than the
 * JS `BruteForceIndex` scan it replaced (15,000 × 64 head: ~0.25 ms vs ~1 ms per query).
 *
 * Not thread-safe in any sense beyond Node's single thread; `save` writes the hnswlib file (and
 * the head's rows) synchronously (blocking the event loop for the duration of the write) so that
 * no mutation can interleave with it.
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
  /** True when items of norm > Φ are kept out of the graph in an exact head (the norm split). */
  readonly exactHead: boolean;
  private efValue: number;
  /** Dimension stored in hnswlib: dim + 1 with the reduction. */
  private readonly innerDim: number;
  private readonly hnsw: Hnsw;
  /** See VectorIndex.savedAt. */
  private savedAtValue: string | undefined;
  /** label → id; null = deleted (free) label. Its length is the number of labels ever used. */
  private readonly labelToId: (string | null)[];
  private readonly idToLabel = new Map<string, number>();
  /** Deleted labels available for reuse (a stack). */
  private readonly freeLabels: number[] = [];
  /** The exact head (items of norm > Φ) when exactHead, else null. Replaced once by `load`. */
  private head: ExactHead | null;

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
    const exactHead: unknown = options.exactHead ?? false;
    if (typeof exactHead !== "boolean") throw new InvalidArgumentError(`exactHead must be a boolean, got ${String(exactHead)}`);
    if (exactHead && normBound === null) {
      throw new InvalidArgumentError("exactHead needs a numeric normBound (the head holds the items of norm > normBound)");
    }
    this.normBound = normBound;
    this.exactHead = exactHead;
    this.head = exactHead ? new ExactHead(this.dim) : null;
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

  /** Query-time candidate list size of the graph (hnswlib uses max(ef, number of results fetched)). */
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
    return this.idToLabel.size + (this.head?.size() ?? 0);
  }

  /** Live items in the exact head (0 without the norm split). */
  headSize(): number {
    return this.head?.size() ?? 0;
  }

  has(id: string): boolean {
    return this.idToLabel.has(id) || (this.head?.has(id) ?? false);
  }

  upsert(id: string, vector: ArrayLike<number>): void {
    validateId(id);
    const v = toFloat32Vector(vector, this.dim, "vector");
    const norm2 = squaredNorm(v);
    const head = this.head;
    if (head !== null && Math.sqrt(norm2) > this.normBound!) {
      head.upsert(id, v);
      this.removeFromGraph(id);
      return;
    }
    this.upsertInGraph(id, this.itemPoint(v, norm2));
    head?.remove(id);
  }

  private upsertInGraph(id: string, point: number[]): void {
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
    return this.removeFromGraph(id) || (this.head?.remove(id) ?? false);
  }

  private removeFromGraph(id: string): boolean {
    const label = this.idToLabel.get(id);
    if (label === undefined) return false;
    this.hnsw.markDelete(label);
    this.idToLabel.delete(id);
    this.labelToId[label] = null;
    this.freeLabels.push(label);
    return true;
  }

  search(query: ArrayLike<number>, k: number, exclude?: ReadonlySet<string>): SearchHit[] {
    const q = toFloat32Vector(query, this.dim, "query");
    validateK(k);
    validateExclude(exclude);
    // The point hnswlib searches with: (q, 0) with the reduction. The head gets the same array,
    // so an item scores the same (bit for bit) in either part.
    const point = Array.from(q);
    if (this.normBound !== null) point.push(0);
    const hits = this.searchGraph(point, k, exclude);
    const head = this.head;
    // Exact top k of the head: with the graph's (up to) k, the merge holds k whenever the index
    // holds k live items outside `exclude` (each part returns min(k, its live non-excluded)).
    if (head !== null && head.size() > 0) for (const hit of head.search(point, k, exclude)) hits.push(hit);
    hits.sort(compareHits);
    if (hits.length > k) hits.length = k;
    return hits;
  }

  /** Up to k hits of the graph part (unsorted; fewer only when it holds fewer live non-excluded items). */
  private searchGraph(q: number[], k: number, exclude?: ReadonlySet<string>): SearchHit[] {
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
    return hits;
  }

  /** The point stored in hnswlib for item vector `v` of squared norm `norm2` (with the reduction's extra coordinate). */
  private itemPoint(v: Float32Array, norm2: number): number[] {
    const point = Array.from(v);
    if (this.normBound !== null) point.push(Math.sqrt(Math.max(0, this.normBound * this.normBound - norm2)));
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

  get savedAt(): string | undefined {
    return this.savedAtValue;
  }

  async save(dir: string): Promise<void> {
    const savedAt = new Date().toISOString();
    const head = this.head;
    const writers: DataFileWriter[] = [{ prefix: "hnsw", write: (path) => this.hnsw.writeIndexSync(path) }];
    if (head !== null) writers.push({ prefix: "head", write: (path) => head.writeRows(path) });
    await saveIndexFiles(
      dir,
      writers,
      ([graph, headFile]): IndexMetadata => ({
        format: INDEX_FORMAT,
        formatVersion: FORMAT_VERSION,
        kind: "hnsw",
        metric: "inner_product",
        dim: this.dim,
        modelVersion: this.modelVersion,
        annotations: this.annotations,
        savedAt,
        size: this.size(),
        file: graph!.file,
        fileBytes: graph!.fileBytes,
        labels: this.labelToId,
        options: {
          M: this.M,
          efConstruction: this.efConstruction,
          ef: this.efValue,
          seed: this.seed,
          maxElements: this.hnsw.getMaxElements(),
          normBound: this.normBound,
        },
        ...(head === null ? {} : { head: { file: headFile!.file, fileBytes: headFile!.fileBytes, labels: head.ids() } }),
      }),
    );
    this.savedAtValue = savedAt;
  }

  /**
   * Builds an index over row-major item vectors (row i belongs to ids[i]; a repeated id keeps its
   * last row), deriving Φ (and by default the exact head, see `headFraction`) from the norms.
   * Graph capacity defaults to the number of items it will hold.
   */
  static build(items: ItemVectors, options: HnswBuildOptions): HnswIndex {
    const { ids, vectors } = items;
    const dim = validateDim(items.dim);
    checkItemVectors(items);
    const singleGraphOption = options.normBound !== undefined || options.normQuantile !== undefined;
    const headFraction = options.headFraction ?? (singleGraphOption ? 0 : HNSW_DEFAULTS.headFraction);
    if (!(typeof headFraction === "number" && headFraction >= 0 && headFraction < 1)) {
      throw new InvalidArgumentError(`headFraction must be in [0, 1), got ${String(headFraction)}`);
    }
    const exactHead = headFraction > 0;
    if (exactHead && singleGraphOption) {
      throw new InvalidArgumentError(
        "normBound / normQuantile apply to a single graph: give them with headFraction 0, or give only headFraction",
      );
    }
    let normBound = options.normBound;
    if (exactHead) {
      // The (1 − headFraction) quantile (nearest rank) is the largest norm of the items at or
      // below it: the graph's items, with Φ exactly their maximum norm.
      normBound = normQuantile(vectors, dim, 1 - headFraction);
    } else if (normBound === undefined) {
      const quantile = options.normQuantile ?? HNSW_DEFAULTS.normQuantile;
      if (!(quantile > 0 && quantile <= 1)) throw new InvalidArgumentError(`normQuantile must be in (0, 1], got ${quantile}`);
      normBound = normQuantile(vectors, dim, quantile);
    }
    const { onProgress, normQuantile: _q, headFraction: _h, ...rest } = options;
    const graphItems = exactHead ? Math.ceil((1 - headFraction) * ids.length) : ids.length;
    const index = new HnswIndex({
      ...rest,
      dim,
      normBound,
      exactHead,
      maxElements: options.maxElements ?? Math.max(1, graphItems),
    });
    // At most ids.length − graphItems items lie above the quantile: no native rebuilds while filling.
    index.head?.reserve(ids.length - graphItems);
    const step = Math.max(1, Math.floor(ids.length / 100));
    for (let i = 0; i < ids.length; i++) {
      index.upsert(ids[i]!, vectors.subarray(i * dim, (i + 1) * dim));
      if (onProgress !== undefined && ((i + 1) % step === 0 || i + 1 === ids.length)) onProgress(i + 1, ids.length);
    }
    return index;
  }

  /** Loads an index saved by `save` (reading the hnswlib file on a worker thread). */
  static async load(dir: string, options: LoadOptions & { readonly ef?: number } = {}): Promise<HnswIndex> {
    const { meta, dataPath, headPath } = await readIndexMetadata(dir, options);
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
        exactHead: meta.head !== undefined,
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
    index.savedAtValue = meta.savedAt;
    const count = index.hnsw.getCurrentCount();
    if (count !== meta.labels.length || index.hnsw.getNumDimensions() !== index.innerDim) {
      throw new IndexFormatError(
        `${dataPath} holds ${count} labels of dimension ${index.hnsw.getNumDimensions()}, index.json implies ${meta.labels.length} of dimension ${index.innerDim}`,
      );
    }
    // In slices: a serving process loads a new index while it serves (1M labels blocked its
    // event loop for ~0.3 s in one piece).
    for (let label = 0; label < meta.labels.length; label++) {
      if (label > 0 && label % LOAD_SLICE === 0) await yieldToEventLoop();
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
    if (meta.head !== undefined && headPath !== undefined) {
      const head = await ExactHead.readRows(headPath, meta.head.labels, meta.dim);
      for (const id of meta.head.labels) {
        if (index.idToLabel.has(id)) throw new IndexFormatError(`${dir}: id ${JSON.stringify(id)} is both in the graph and in the head`);
      }
      index.head = head;
    }
    return index;
  }
}

function squaredNorm(v: Float32Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return s;
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
