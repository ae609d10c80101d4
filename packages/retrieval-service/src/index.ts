/**
 * @recsys/retrieval-service: the retrieval gRPC stage (Search, UpsertItems, DeleteItems,
 * DescribeIndex over one shard). The process is `dist/main.js`; this module exports its parts.
 */
export { STAGE, checkRetrievalConfig, configSchema, type RetrievalConfig } from "./config.js";
export { DenyList } from "./deny-list.js";
export { indexPath, journalPath, shardTag } from "./paths.js";
export { compactShardIndex, openShardIndex, type ShardIndex, type ShardIndexSettings } from "./shard-index.js";
export { createRetrievalService, type RetrievalStage } from "./service.js";
export { BUNDLE_INDEX_DIR, bundleIndexPath } from "./paths.js";
export {
  RETRAIN_OUTCOMES,
  RETRAIN_STATUS_FILE,
  readRetrainStatus,
  registerRetrainStatusGauges,
  retrainStatusPath,
  writeRetrainStatus,
  type RetrainOutcome,
  type RetrainStatus,
} from "./retrain-status.js";
export { prebuildShardIndexes, type BundleItems, type PrebuildSettings } from "./prebuild.js";
