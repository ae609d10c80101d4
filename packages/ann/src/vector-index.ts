import { compareIds } from "@recsys/data";
import { InvalidArgumentError } from "./errors.js";

/** Largest k a search may ask for. */
export const MAX_K = 1000;
/** Largest accepted vector dimension. */
export const MAX_DIM = 4096;
/** Longest accepted external id, in UTF-16 code units. */
export const MAX_ID_LENGTH = 1024;

export type IndexKind = "hnsw" | "brute-force";

/** One search result: an external item id and its dot product with the query. */
export interface SearchHit {
  readonly id: string;
  readonly score: number;
}

/**
 * Top-k maximum-inner-product search over item vectors keyed by external id.
 *
 * Every implementation:
 * - scores by dot product and returns hits sorted by score descending, ties by id ascending
 *   under `compareIds`;
 * - never returns a removed id (removal is effective for the very next search);
 * - returns min(k, size() - |exclude ∩ ids|) hits whenever it can (HNSW is approximate in
 *   *which* items it returns, not in how many);
 * - throws `InvalidArgumentError` for a malformed id, vector, k or exclude set.
 */
export interface VectorIndex {
  readonly kind: IndexKind;
  /** Vector dimension, fixed at construction. */
  readonly dim: number;
  /** Version of the model the item vectors came from (see `ModelVersionMismatchError`). */
  readonly modelVersion: string;
  /** Inserts `id` or replaces its vector. The vector is copied. */
  upsert(id: string, vector: ArrayLike<number>): void;
  /** Removes `id`; returns false when it was not present. Effective immediately. */
  remove(id: string): boolean;
  has(id: string): boolean;
  /** The top `k` (1..MAX_K) items by dot product with `query`, skipping ids in `exclude`. */
  search(query: ArrayLike<number>, k: number, exclude?: ReadonlySet<string>): SearchHit[];
  /** Number of live (not removed) items. */
  size(): number;
  /** Writes the index into `dir` (created if missing); the previous save there is replaced atomically. */
  save(dir: string): Promise<void>;
  /**
   * index.json's savedAt of the last `save`, or of the save this index was loaded from;
   * undefined for an index never saved.
   */
  readonly savedAt: string | undefined;
}

/** Sort order of search results: score descending, then id ascending under `compareIds`. */
export function compareHits(a: SearchHit, b: SearchHit): number {
  if (a.score !== b.score) return b.score - a.score;
  return compareIds(a.id, b.id);
}

export function validateDim(dim: number): number {
  if (!Number.isInteger(dim) || dim < 1 || dim > MAX_DIM) {
    throw new InvalidArgumentError(`dimension must be an integer in 1..${MAX_DIM}, got ${String(dim)}`);
  }
  return dim;
}

export function validateId(id: string): string {
  if (typeof id !== "string" || id.length === 0 || id.length > MAX_ID_LENGTH) {
    const shown = typeof id === "string" ? `a string of length ${id.length}` : typeof id;
    throw new InvalidArgumentError(`id must be a non-empty string of at most ${MAX_ID_LENGTH} characters, got ${shown}`);
  }
  return id;
}

/**
 * Checks length and finiteness and returns the vector as float32 (copied). A value that is
 * finite as a double but overflows float32 (|x| > 3.4e38) is rejected too.
 */
export function toFloat32Vector(vector: ArrayLike<number>, dim: number, what: string): Float32Array {
  if (vector === null || typeof vector !== "object" || typeof vector.length !== "number") {
    throw new InvalidArgumentError(`${what} must be an array of ${dim} numbers`);
  }
  if (vector.length !== dim) {
    throw new InvalidArgumentError(`${what} has dimension ${vector.length}, expected ${dim}`);
  }
  const out = new Float32Array(dim);
  for (let i = 0; i < dim; i++) {
    const v = vector[i];
    const f = typeof v === "number" ? Math.fround(v) : NaN;
    if (!Number.isFinite(f)) {
      throw new InvalidArgumentError(`${what}[${i}] is ${String(v)}, values must be finite float32 numbers`);
    }
    out[i] = f;
  }
  return out;
}

export function validateK(k: number): number {
  if (!Number.isInteger(k) || k < 1 || k > MAX_K) {
    throw new InvalidArgumentError(`k must be an integer in 1..${MAX_K}, got ${String(k)}`);
  }
  return k;
}

export function validateExclude(exclude: ReadonlySet<string> | undefined): void {
  if (exclude !== undefined && !(exclude instanceof Set)) {
    throw new InvalidArgumentError("exclude must be a Set of ids");
  }
}

export function validateModelVersion(modelVersion: string): string {
  if (typeof modelVersion !== "string" || modelVersion.length === 0 || modelVersion.length > 256) {
    throw new InvalidArgumentError("modelVersion must be a non-empty string of at most 256 characters");
  }
  return modelVersion;
}
