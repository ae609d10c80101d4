import { BruteForceIndex } from "./brute-force-index.js";
import { HnswIndex } from "./hnsw-index.js";
import type { LoadOptions } from "./persist.js";
import { readIndexMetadata } from "./persist.js";
import type { VectorIndex } from "./vector-index.js";

/** Loads whichever kind of index `dir` holds (see `HnswIndex.load`, `BruteForceIndex.load`). */
export async function loadIndex(dir: string, options: LoadOptions = {}): Promise<VectorIndex> {
  const { meta } = await readIndexMetadata(dir, options);
  return meta.kind === "hnsw" ? HnswIndex.load(dir, options) : BruteForceIndex.load(dir, options);
}
