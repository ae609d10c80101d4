import { writeFileSync } from "node:fs";
import hnswlib from "hnswlib-node";
import { yieldToEventLoop } from "@recsys/data";
import { IndexFormatError, InvalidArgumentError } from "./errors.js";
import { LOAD_SLICE, readFloat32Rows } from "./persist.js";
import type { SearchHit } from "./vector-index.js";
import { compareHits } from "./vector-index.js";

const { BruteforceSearch } = hnswlib;
type NativeBruteforce = InstanceType<typeof BruteforceSearch>;

/** Largest capacity (labels are uint32; we keep to int32 like the graph). */
const MAX_ELEMENTS = 2 ** 31 - 1;
/** Smallest native capacity allocated. */
const MIN_CAPACITY = 16;
/**
 * Up to this many dead rows + excluded head items, a search over-fetches by their number without
 * a filter (each extra result costs about 0.5 µs of N-API conversion); above it, it passes a
 * filter to hnswlib (about 0.05 µs per candidate that reaches the heap, ~600 per query on 15k rows).
 */
const OVERFETCH_MAX = 64;

/**
 * The exact head of an `HnswIndex` (see its class comment): items kept out of the graph and
 * scanned exactly at every search, in hnswlib's native `BruteforceSearch` ("ip" space), with a JS
 * copy of the vectors (for `save` and for rebuilding the native index).
 *
 * Points are stored with the graph's inner dimension (dim + 1, extra coordinate 0) and searched
 * with the very query array the graph gets (query, 0), so an item's score is bit-identical
 * whichever part holds it: hnswlib's float32 inner product, 1 − distance.
 *
 * hnswlib's BruteforceSearch (as vendored by hnswlib-node 3.0.0) has traps this class keeps clear
 * of: `removePoint` reads the erased map node and, when it removes the last row, re-inserts the
 * removed label pointing past the end (a later addPoint with that label is then lost); `readIndex`
 * does not rebuild the label map (addPoint / removePoint after a load go wrong); `searchKnn` with
 * k above the current count reads rows past the end (stale rows of removed labels included);
 * there is no resize; and with a filter, rejected rows among the first k make it skip later rows
 * even though its heap is not full, so it can return fewer than k. Hence:
 * - labels are native rows: a new item takes label = current count (appended) or a free label
 *   (overwritten in place: addPoint of a known label); `removePoint` is never called. A removed
 *   item's row stays in the native index as a dead row (its label free for reuse); a search skips
 *   dead rows (over-fetch or filter). When dead rows exceed a quarter of the live ones (and 16),
 *   the native index is rebuilt from the JS copy without them; a full index is rebuilt at twice
 *   the capacity. Both cost one addPoint (~10 µs) per live item, amortized O(1) per mutation.
 * - searchKnn is never asked for more than the current count; a filtered search that comes back
 *   short is redone unfiltered with the over-fetch (exact); a full heap is exact (every skipped
 *   row was worse than all k kept).
 * - save writes the live rows (raw float32, label order) and load adds them one by one.
 *
 * Ties: a search fetches k + 1 so that a tie across the k-th place is seen, and then doubles the
 * fetch until the lowest fetched score is below the k-th, so the head's top k is exact under
 * `compareHits` (score, then id) like BruteForceIndex's (hnswlib alone keeps the smaller labels).
 */
export class ExactHead {
  readonly dim: number;
  /** Native dimension: dim + 1 (the graph's, extra coordinate 0). */
  private readonly innerDim: number;
  private native: NativeBruteforce;
  private capacityValue: number;
  /** JS copy of the vectors, row = label (dim values each). */
  private vectors: Float32Array;
  /** label (= native row) → id; null = dead row (free label). Its length is the native count. */
  private labelToId: (string | null)[] = [];
  private idToLabel = new Map<string, number>();
  /** Dead labels available for reuse (a stack). */
  private freeLabels: number[] = [];

  constructor(dim: number, capacity = MIN_CAPACITY) {
    this.dim = dim;
    this.innerDim = dim + 1;
    this.capacityValue = Math.min(MAX_ELEMENTS, Math.max(MIN_CAPACITY, capacity));
    this.native = this.newNative(this.capacityValue);
    this.vectors = new Float32Array(this.capacityValue * dim);
  }

  size(): number {
    return this.idToLabel.size;
  }

  has(id: string): boolean {
    return this.idToLabel.has(id);
  }

  /** Native capacity (grows by rebuilding at twice the size). */
  capacity(): number {
    return this.capacityValue;
  }

  /** Native rows, dead ones included. */
  rows(): number {
    return this.labelToId.length;
  }

  /** Makes room for `n` live items without further rebuilds (compacting dead rows). */
  reserve(n: number): void {
    if (n > this.capacityValue) this.rebuild(Math.min(MAX_ELEMENTS, n));
  }

  /** Inserts or replaces `id` (v: dim validated float32 values). */
  upsert(id: string, v: Float32Array): void {
    const existing = this.idToLabel.get(id);
    if (existing !== undefined) {
      this.write(existing, v);
      return;
    }
    const reused = this.freeLabels.pop();
    if (reused !== undefined) {
      try {
        this.write(reused, v);
      } catch (err) {
        this.freeLabels.push(reused);
        throw err;
      }
      this.labelToId[reused] = id;
      this.idToLabel.set(id, reused);
      return;
    }
    if (this.labelToId.length >= this.capacityValue) {
      if (this.capacityValue >= MAX_ELEMENTS) throw new InvalidArgumentError(`exact head is full (${MAX_ELEMENTS} items)`);
      this.rebuild(Math.min(MAX_ELEMENTS, this.capacityValue * 2));
    }
    const label = this.labelToId.length;
    this.write(label, v);
    this.labelToId.push(id);
    this.idToLabel.set(id, label);
  }

  remove(id: string): boolean {
    const label = this.idToLabel.get(id);
    if (label === undefined) return false;
    this.idToLabel.delete(id);
    this.labelToId[label] = null;
    this.freeLabels.push(label);
    const dead = this.freeLabels.length;
    if (dead > MIN_CAPACITY && dead > this.idToLabel.size / 4) this.rebuild(this.capacityValue);
    return true;
  }

  /**
   * The exact top k of the live items outside `exclude`, sorted by `compareHits`. `query` is the
   * native query: the dim values then 0.
   */
  search(query: number[], k: number, exclude?: ReadonlySet<string>): SearchHit[] {
    let excluded = 0;
    if (exclude !== undefined) for (const id of exclude) if (this.idToLabel.has(id)) excluded++;
    const allowed = this.idToLabel.size - excluded;
    if (allowed <= 0) return [];
    const rows = this.labelToId.length;
    const dead = this.freeLabels.length;
    // One more than k, to see a tie across the k-th place.
    const fetch = Math.min(k + 1, allowed);
    // Exact top n of the allowed rows (n ≤ allowed): over-fetch by every row that may be dropped.
    const topAllowed = (n: number): SearchHit[] => this.collect(this.native.searchKnn(query, Math.min(rows, n + dead + excluded)), exclude);
    let hits: SearchHit[];
    if (dead + excluded <= OVERFETCH_MAX) {
      hits = topAllowed(fetch);
    } else {
      const labelToId = this.labelToId;
      const isAllowed = (label: number): boolean => {
        const id = labelToId[label];
        return id !== null && id !== undefined && (exclude === undefined || !exclude.has(id));
      };
      hits = this.collect(this.native.searchKnn(query, fetch, isAllowed), exclude);
      // Short only if hnswlib skipped rows while its heap was not full (see the class comment).
      if (hits.length < fetch) hits = topAllowed(fetch);
    }
    hits.sort(compareHits);
    if (hits.length > k) {
      // While the lowest fetched score ties with the k-th, rows of that score may be missing:
      // fetch twice as many (rare: it takes exactly equal float32 scores across the k-th place).
      for (let n = fetch; n < allowed && hits[hits.length - 1]!.score === hits[k - 1]!.score; ) {
        n = Math.min(allowed, n * 2);
        hits = topAllowed(n);
        hits.sort(compareHits);
      }
      hits.length = k;
    }
    return hits;
  }

  /** The live ids in label order (the order `writeRows` writes their vectors in). */
  ids(): string[] {
    const ids: string[] = [];
    for (const id of this.labelToId) if (id !== null) ids.push(id);
    return ids;
  }

  /** Writes the live vectors synchronously to `path` as raw little-endian float32 rows, in `ids()` order. */
  writeRows(path: string): void {
    const dim = this.dim;
    const out = new Uint8Array(this.idToLabel.size * dim * 4);
    const view = new DataView(out.buffer);
    let offset = 0;
    for (let label = 0; label < this.labelToId.length; label++) {
      if (this.labelToId[label] === null) continue;
      for (let j = label * dim; j < (label + 1) * dim; j++, offset += 4) view.setFloat32(offset, this.vectors[j]!, true);
    }
    writeFileSync(path, out);
  }

  /**
   * A head over a file written by `writeRows`: row i belongs to `ids[i]`. Throws IndexFormatError
   * when the file does not hold exactly ids.length rows of finite values or an id repeats.
   */
  static async readRows(path: string, ids: readonly string[], dim: number): Promise<ExactHead> {
    const rows = ids.length;
    const data = await readFloat32Rows(path, rows, dim);
    const head = new ExactHead(dim, rows);
    for (let row = 0; row < rows; row++) {
      if (row > 0 && row % LOAD_SLICE === 0) await yieldToEventLoop(); // loaded while serving
      const id = ids[row]!;
      if (head.has(id)) throw new IndexFormatError(`${path}: id ${JSON.stringify(id)} appears twice`);
      head.upsert(id, data.subarray(row * dim, (row + 1) * dim));
    }
    return head;
  }

  private newNative(capacity: number): NativeBruteforce {
    const native = new BruteforceSearch("ip", this.innerDim);
    native.initIndex(capacity);
    return native;
  }

  /** Stores `v` under `label` in the JS copy and the native index (appending when label = count). */
  private write(label: number, v: Float32Array): void {
    this.addNative(this.native, label, v);
    this.vectors.set(v, label * this.dim);
  }

  private addNative(native: NativeBruteforce, label: number, v: ArrayLike<number>): void {
    const point = Array.from(v);
    point.push(0);
    native.addPoint(point, label);
  }

  /**
   * Replaces the native index by a fresh one of `capacity` holding the live items only, labels
   * renumbered in their current order (built aside first: a failure leaves the old one in place).
   */
  private rebuild(capacity: number): void {
    const dim = this.dim;
    const native = this.newNative(capacity);
    const vectors = new Float32Array(capacity * dim);
    const labelToId: string[] = [];
    const idToLabel = new Map<string, number>();
    for (let label = 0; label < this.labelToId.length; label++) {
      const id = this.labelToId[label];
      if (id === null || id === undefined) continue;
      const next = labelToId.length;
      const v = this.vectors.subarray(label * dim, (label + 1) * dim);
      this.addNative(native, next, v);
      vectors.set(v, next * dim);
      labelToId.push(id);
      idToLabel.set(id, next);
    }
    this.native = native;
    this.capacityValue = capacity;
    this.vectors = vectors;
    this.labelToId = labelToId;
    this.idToLabel = idToLabel;
    this.freeLabels = [];
  }

  private collect(result: { distances: number[]; neighbors: number[] }, exclude?: ReadonlySet<string>): SearchHit[] {
    const hits: SearchHit[] = [];
    const { distances, neighbors } = result;
    for (let i = 0; i < neighbors.length; i++) {
      const id = this.labelToId[neighbors[i]!];
      if (id === null || id === undefined) continue; // dead row
      if (exclude !== undefined && exclude.has(id)) continue;
      hits.push({ id, score: 1 - distances[i]! });
    }
    return hits;
  }
}
