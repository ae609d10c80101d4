/**
 * Prebuilt shard indexes for a bundle: `recsys retrain` builds every retrieval shard's index
 * before it publishes, into `<bundle>/indexes/shard-<i>-of-<n>/`, so that at rollout each shard
 * copies its file instead of building (see shard-index.ts). The build runs on worker threads
 * (`parallel` at a time); the parameters must be those the shards run with (INDEX_KIND, HNSW_M,
 * HNSW_EF_CONSTRUCTION), or a shard finds the file does not match and builds anyway.
 */
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { HNSW_DEFAULTS, shardItems, type IndexKind } from "@recsys/ann";
import { bundleIndexPath, shardTag } from "./paths.js";
import { runBuildWorker } from "./shard-index.js";

export interface PrebuildSettings {
  readonly shardCount: number;
  readonly kind?: IndexKind;
  readonly M?: number;
  readonly efConstruction?: number;
  readonly ef?: number;
  /** Shards built at the same time (default 1). */
  readonly parallel?: number;
  readonly onShard?: (shard: number, items: number, seconds: number) => void;
}

/** The bundle's catalogue as the build needs it (a loaded CandidateGenBundle fits). */
export interface BundleItems {
  readonly modelVersion: string;
  readonly itemIds: readonly string[];
  readonly itemEmbeddings: Float32Array;
  readonly dim: number;
}

/** Builds and saves every shard's index into `bundleDir`; returns the items per shard. */
export async function prebuildShardIndexes(bundleDir: string, bundle: BundleItems, settings: PrebuildSettings): Promise<number[]> {
  const { shardCount } = settings;
  if (!Number.isInteger(shardCount) || shardCount < 1) throw new Error(`shardCount must be a positive integer, got ${shardCount}`);
  const parallel = Math.max(1, Math.min(settings.parallel ?? 1, shardCount));
  const sizes = new Array<number>(shardCount).fill(0);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < shardCount) {
      const shard = next++;
      const started = performance.now();
      const items = shardItems({ ids: bundle.itemIds, vectors: bundle.itemEmbeddings, dim: bundle.dim }, shard, shardCount);
      const dir = bundleIndexPath(bundleDir, shard, shardCount);
      await mkdir(dirname(dir), { recursive: true });
      const tmp = `${dir}.tmp-${process.pid}`;
      await rm(tmp, { recursive: true, force: true });
      sizes[shard] = await runBuildWorker({
        ids: items.ids,
        vectors: items.vectors,
        dim: items.dim,
        kind: settings.kind ?? "hnsw",
        modelVersion: bundle.modelVersion,
        annotations: { shard: shardTag(shard, shardCount), prebuilt: "recsys retrain" },
        M: settings.M ?? HNSW_DEFAULTS.M,
        efConstruction: settings.efConstruction ?? HNSW_DEFAULTS.efConstruction,
        ef: settings.ef ?? HNSW_DEFAULTS.ef,
        dir: tmp,
      });
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
      settings.onShard?.(shard, sizes[shard]!, (performance.now() - started) / 1000);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return sizes;
}
