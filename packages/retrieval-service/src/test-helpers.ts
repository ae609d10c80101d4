/**
 * Test fixtures: a tiny candidate-generation bundle trained in about a second on a small
 * synthetic dataset, its item embeddings read straight from the bundle files, an exact
 * brute-force top-k to compare the service with, and the atomic symlink flip a deploy does.
 */
import { readFile, rename, symlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { saveBundle, trainCandidateGen, type BundleManifest } from "@recsys/candidate-gen";
import { compareIds, generateSynthetic, parseSyntheticSpec } from "@recsys/data";
import { initBackend } from "@recsys/tf";

export const TINY_SPEC = "users=80,items=120,events=15,seed=5";

/** Trains a tiny model (dimension 8) and saves its bundle in `dir`; `seed` changes the weights. */
export async function writeTinyBundle(dir: string, seed: number): Promise<BundleManifest> {
  await initBackend({ log: null });
  const dataset = generateSynthetic(`synthetic:${TINY_SPEC}`, parseSyntheticSpec(TINY_SPEC));
  const result = await trainCandidateGen(dataset, {
    holdout: "none",
    epochs: 1,
    batchSize: 64,
    negatives: 20,
    seed,
    model: { embeddingDim: 8, searchDim: 4, categoricalDim: 4, tower: [16, 8], finalActivation: "linear" },
  });
  const manifest = await saveBundle(dir, result);
  result.model.dispose();
  return manifest;
}

/** The bundle's item ids and embeddings as written (independent of the loader). */
export interface Catalogue {
  readonly modelVersion: string;
  readonly dim: number;
  readonly ids: readonly string[];
  readonly vectors: Float32Array;
}

export async function readCatalogue(dir: string): Promise<Catalogue> {
  const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as BundleManifest;
  const bytes = await readFile(join(dir, manifest.files.itemEmbeddings.file));
  const vectors = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(vectors.buffer).set(bytes);
  if (vectors.length !== manifest.itemIds.length * manifest.dim) throw new Error("fixture: embedding file size mismatch");
  return { modelVersion: manifest.modelVersion, dim: manifest.dim, ids: manifest.itemIds, vectors };
}

export interface Hit {
  readonly id: string;
  readonly score: number;
}

/** Exact top-k by dot product (float64), score descending then id ascending, skipping `exclude`. */
export function bruteForceTopK(
  catalogue: Catalogue,
  query: readonly number[],
  k: number,
  exclude: ReadonlySet<string> = new Set(),
  keep: (id: string) => boolean = () => true,
): Hit[] {
  const { ids, vectors, dim } = catalogue;
  const hits: Hit[] = [];
  ids.forEach((id, row) => {
    if (exclude.has(id) || !keep(id)) return;
    let score = 0;
    for (let j = 0; j < dim; j++) score += Math.fround(query[j]!) * vectors[row * dim + j]!;
    hits.push({ id, score });
  });
  hits.sort((a, b) => (a.score !== b.score ? b.score - a.score : compareIds(a.id, b.id)));
  return hits.slice(0, k);
}

/** Points the symlink `link` at `target` atomically (a new link renamed over the old one). */
export async function publishBundle(link: string, target: string): Promise<void> {
  const tmp = join(dirname(link), `.publish-${process.pid}-${Math.random().toString(36).slice(2)}`);
  await symlink(target, tmp);
  await rename(tmp, link);
}

/** A deterministic pseudo-random vector in [-1, 1)^dim. */
export function randomVector(dim: number, seed: number): number[] {
  let state = seed >>> 0 || 1;
  return Array.from({ length: dim }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return Math.fround((state / 2 ** 32) * 2 - 1);
  });
}
