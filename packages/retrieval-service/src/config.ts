/**
 * Every environment variable the retrieval service reads (exported: the Kubernetes manifests
 * test compares its keys with the Deployment's env).
 */
import { HNSW_DEFAULTS, MAX_SHARDS } from "@recsys/ann";
import { ConfigError, env, runtimeConfigSchema, type ConfigOf } from "@recsys/runtime";
import type { BackendChoice } from "@recsys/tf";

/** @recsys/tf's backends (listed here: importing @recsys/tf loads tfjs, needed only to build an index). */
const TF_BACKENDS = ["node-gpu", "node", "wasm", "cpu"] as const satisfies readonly BackendChoice[];

export const STAGE = "retrieval";

export const configSchema = {
  ...runtimeConfigSchema,
  MODEL_PATH: env.string({
    required: true,
    description: "candidate-generation bundle whose item embeddings are indexed (usually a symlink deploys flip)",
  }),
  MODEL_POLL_INTERVAL: env.duration({
    default: 30_000,
    description: "how often the bundle's manifest.json is checked for a new modelVersion (0 = never)",
  }),
  MODEL_RELOAD_RETRY: env.duration({
    default: 60_000,
    description: "a bundle whose index failed to build or load is retried at most this often",
  }),
  INDEX_DIR: env.string({
    required: true,
    description: "where indexes, upsert journals and the deleted-items list are kept (persistent, one writer)",
  }),
  SHARD_INDEX: env.int({ default: 0, min: 0, max: MAX_SHARDS - 1, description: "0-based shard this server holds" }),
  SHARD_COUNT: env.int({ default: 1, min: 1, max: MAX_SHARDS, description: "number of shards of the catalogue" }),
  INDEX_KIND: env.enum(["hnsw", "brute-force"], { default: "hnsw", description: "approximate (HNSW) or exact search" }),
  HNSW_M: env.int({ default: HNSW_DEFAULTS.M, min: 2, max: 256, description: "HNSW graph degree (build time)" }),
  HNSW_EF_CONSTRUCTION: env.int({
    default: HNSW_DEFAULTS.efConstruction,
    min: 1,
    max: 100_000,
    description: "HNSW candidate list size while building",
  }),
  HNSW_EF: env.int({
    default: HNSW_DEFAULTS.ef,
    min: 1,
    max: 100_000,
    description: "HNSW candidate list size while searching (max(ef, k) is used)",
  }),
  INDEX_COMPACT_AFTER: env.int({
    default: 10_000,
    min: 1,
    max: 100_000_000,
    description: "journaled upserts after which the index file is re-saved and the journal emptied",
  }),
  RECSYS_TF_BACKEND: env.enum(TF_BACKENDS, {
    description: "tfjs backend used to load the bundle when an index is built (default: the fastest available)",
  }),
};

export type RetrievalConfig = ConfigOf<typeof configSchema>;

/** Checks between variables (the schema checks each one alone). */
export function checkRetrievalConfig(config: RetrievalConfig): void {
  if (config.SHARD_INDEX >= config.SHARD_COUNT) {
    throw new ConfigError(
      "SHARD_INDEX",
      `SHARD_INDEX=${config.SHARD_INDEX} must be less than SHARD_COUNT=${config.SHARD_COUNT} (shards are numbered from 0)`,
    );
  }
}
