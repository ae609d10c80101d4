/**
 * Layout of INDEX_DIR:
 *
 *   <INDEX_DIR>/
 *     deleted-items.shard-<i>-of-<n>.jsonl     ids taken down (all model versions), see deny-list.ts
 *     <modelVersion>/
 *       shard-<i>-of-<n>/                      the saved index (@recsys/ann format: index.json + data)
 *       shard-<i>-of-<n>.upserts.jsonl         upserts since that index was saved
 *
 * A bundle may carry prebuilt indexes (`recsys retrain` publishes them), copied into INDEX_DIR at
 * load instead of building:
 *
 *   <bundle>/indexes/shard-<i>-of-<n>/          @recsys/ann format, annotated with the model version
 */
import { join } from "node:path";

const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function shardTag(shard: number, shardCount: number): string {
  return `shard-${shard}-of-${shardCount}`;
}

/** A model version usable as a directory name (the bundle's modelVersion, e.g. cg-20240101120000-1a2b3c4d). */
export function checkVersionForPath(modelVersion: string): string {
  if (!VERSION_PATTERN.test(modelVersion) || modelVersion.length > 200) {
    throw new Error(`model version ${JSON.stringify(modelVersion)} cannot be used as a directory name (letters, digits, . _ - only)`);
  }
  return modelVersion;
}

export function indexPath(indexDir: string, modelVersion: string, shard: number, shardCount: number): string {
  return join(indexDir, checkVersionForPath(modelVersion), shardTag(shard, shardCount));
}

export function journalPath(indexDir: string, modelVersion: string, shard: number, shardCount: number): string {
  return `${indexPath(indexDir, modelVersion, shard, shardCount)}.upserts.jsonl`;
}

/** The prebuilt index of a shard inside a bundle directory. */
export function bundleIndexPath(bundleDir: string, shard: number, shardCount: number): string {
  return join(bundleDir, BUNDLE_INDEX_DIR, shardTag(shard, shardCount));
}

/** The bundle subdirectory holding prebuilt shard indexes. */
export const BUNDLE_INDEX_DIR = "indexes";
