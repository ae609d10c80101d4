/**
 * Test fixtures: a tiny candidate-generation bundle trained in about a second on a small
 * synthetic dataset, and the atomic symlink flip a deploy does.
 */
import { rename, symlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { saveBundle, trainCandidateGen, type BundleManifest } from "@recsys/candidate-gen";
import { generateSynthetic, parseSyntheticSpec } from "@recsys/data";
import { initBackend } from "@recsys/tf";

export const TINY_SPEC = "users=60,items=50,events=12,seed=3";

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

/** Points the symlink `link` at `target` atomically (a new link renamed over the old one). */
export async function publishBundle(link: string, target: string): Promise<void> {
  const tmp = join(dirname(link), `.publish-${process.pid}-${Math.random().toString(36).slice(2)}`);
  await symlink(target, tmp);
  await rename(tmp, link);
}
