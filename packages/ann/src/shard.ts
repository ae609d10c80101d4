import { InvalidArgumentError } from "./errors.js";
import type { SearchHit, VectorIndex } from "./vector-index.js";
import { compareHits, validateId, validateK } from "./vector-index.js";

export const MAX_SHARDS = 65_536;

/**
 * Stable 32-bit hash of an external id, the basis of shard assignment:
 * FNV-1a (32-bit: offset basis 0x811c9dc5, prime 0x01000193) over the id's UTF-8 bytes, then
 * MurmurHash3's fmix32 finalizer (x ^= x>>>16; x *= 0x85ebca6b; x ^= x>>>13; x *= 0xc2b2ae35;
 * x ^= x>>>16) so that the low bits are well mixed. Unsigned; independent of platform and of
 * the process, so any language can reproduce it.
 */
export function shardHash(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    let c = id.codePointAt(i)!;
    if (c > 0xffff) i++; // astral code point: skip the low surrogate
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; // lone surrogate: encoded as U+FFFD, like TextEncoder
    if (c < 0x80) {
      h = Math.imul(h ^ c, 0x01000193);
    } else if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), 0x01000193);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), 0x01000193);
    } else if (c < 0x10000) {
      h = Math.imul(h ^ (0xe0 | (c >> 12)), 0x01000193);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), 0x01000193);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), 0x01000193);
    } else {
      h = Math.imul(h ^ (0xf0 | (c >> 18)), 0x01000193);
      h = Math.imul(h ^ (0x80 | ((c >> 12) & 0x3f)), 0x01000193);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), 0x01000193);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), 0x01000193);
    }
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function validateShards(numShards: number): void {
  if (!Number.isInteger(numShards) || numShards < 1 || numShards > MAX_SHARDS) {
    throw new InvalidArgumentError(`numShards must be an integer in 1..${MAX_SHARDS}, got ${String(numShards)}`);
  }
}

/**
 * The shard (0..numShards-1) that serves item `id`: `shardHash(id) mod numShards`.
 * Deterministic across processes and restarts. Changing numShards moves most items, so all
 * shards must be rebuilt together when the shard count changes.
 */
export function shardOf(id: string, numShards: number): number {
  validateId(id);
  validateShards(numShards);
  return shardHash(id) % numShards;
}

/** Row-major item vectors: `vectors` holds ids.length × dim values, row i belonging to ids[i]. */
export interface ItemVectors {
  readonly ids: readonly string[];
  readonly vectors: Float32Array;
  readonly dim: number;
}

/** Throws InvalidArgumentError unless `vectors` has exactly ids.length × dim values. */
export function checkItemVectors(items: ItemVectors): void {
  if (!Array.isArray(items.ids) || !(items.vectors instanceof Float32Array)) {
    throw new InvalidArgumentError("items must have ids (an array of strings) and vectors (a Float32Array)");
  }
  if (items.vectors.length !== items.ids.length * items.dim) {
    throw new InvalidArgumentError(`vectors hold ${items.vectors.length} values, expected ${items.ids.length} ids × dim ${items.dim}`);
  }
}

/** The rows of `items` whose id belongs to shard `shard` of `numShards` (in their original order). */
export function shardItems(items: ItemVectors, shard: number, numShards: number): ItemVectors {
  validateShards(numShards);
  if (!Number.isInteger(shard) || shard < 0 || shard >= numShards) {
    throw new InvalidArgumentError(`shard must be an integer in 0..${numShards - 1}, got ${String(shard)}`);
  }
  checkItemVectors(items);
  const { ids, vectors, dim } = items;
  const rows: number[] = [];
  for (let i = 0; i < ids.length; i++) if (shardOf(ids[i]!, numShards) === shard) rows.push(i);
  const out = new Float32Array(rows.length * dim);
  rows.forEach((row, j) => out.set(vectors.subarray(row * dim, (row + 1) * dim), j * dim));
  return { ids: rows.map((row) => ids[row]!), vectors: out, dim };
}

/**
 * Builds the index serving shard `shard` of `numShards` from the full item list, e.g.
 * `buildShard(all, 2, 4, (items) => HnswIndex.build(items, { modelVersion }))`.
 */
export function buildShard<T extends VectorIndex>(
  items: ItemVectors,
  shard: number,
  numShards: number,
  build: (shardItems: ItemVectors) => T,
): T {
  return build(shardItems(items, shard, numShards));
}
/**
 * Merges per-shard results into one top-k list (score descending, ties by id); an id appearing
 * in several lists (only during a re-shard) keeps its best score.
 */
export function mergeShardHits(perShard: readonly (readonly SearchHit[])[], k: number): SearchHit[] {
  validateK(k);
  const best = new Map<string, SearchHit>();
  for (const hits of perShard) {
    for (const hit of hits) {
      const seen = best.get(hit.id);
      if (seen === undefined || hit.score > seen.score) best.set(hit.id, hit);
    }
  }
  const merged = [...best.values()].sort(compareHits);
  if (merged.length > k) merged.length = k;
  return merged;
}
