/**
 * @recsys/ranking: the ranking stage of the YouTube-DNN system (Covington et al. 2016, section 4):
 * ranking features with one code path for training and serving (`encodeCandidates`), the ranking
 * network trained by weighted logistic regression (exp(logit) ≈ expected watch time), training
 * data by replaying the candidate sources, the ranker bundle, and the offline two-stage pipeline.
 */
export type { Impression, ItemStats, RankingCandidate, RankingContext } from "./types.js";
export { Catalog } from "./catalog.js";
export type { CatalogJson } from "./catalog.js";
export {
  BASE_FEATURES,
  DEFAULT_RANKING_FEATURE_CONFIG,
  NULLABLE_FEATURES,
  RankingSpace,
  fitNormalizers,
} from "./space.js";
export type { BaseFeature, RankingFeatureConfig, RankingNormalizers, RankingSpaceJson } from "./space.js";
export {
  RankingBatch,
  encodeCandidates,
  encodedRow,
  knownItem,
  normalizeRaw,
  rawCandidateFeatures,
  rawCandidates,
  resolveRankingUser,
} from "./encode.js";
export type { EncodedCandidate, ResolvedRankingUser } from "./encode.js";
export {
  DEFAULT_RANKER_MODEL_CONFIG,
  RANKER_MODEL_KINDS,
  RankerModel,
  RankerTrainStep,
  validateRankerModelConfig,
  weightedLogisticLoss,
} from "./model.js";
export type { RankerLayer, RankerModelConfig, RankerModelKind, RankerStepConfig, RankerWeights } from "./model.js";
export {
  dnnFromBundle,
  provenanceOf,
  rankingCandidates,
  rankingContextFromDataset,
  sourceItemStats,
} from "./dataset-inputs.js";
export type { ItemStatsAt } from "./dataset-inputs.js";
export { WIDE_CROSSES, WIDE_MAX_SOURCES, WIDE_MAX_TAGS, WIDE_SLOTS, hashCross, log2Bucket, wideCrosses } from "./wide.js";
export type { WideCandidate, WideUser } from "./wide.js";
export { buildRankingExamples, exampleCandidates, exampleContext, exampleCount } from "./examples.js";
export type { ExampleOptions, RankingExamples } from "./examples.js";
export { buildServedExamples, DEFAULT_WATCH_WINDOW_SECONDS } from "./served-examples.js";
export type { ServedExampleOptions, ServedExampleStats } from "./served-examples.js";
export { DEFAULT_RANKER_TRAIN_CONFIG, fitRankingSpace, trainRanker, validateRankerTrainConfig } from "./trainer.js";
export type { RankerTrainConfig, RankerTrainOptions, RankerTrainProgress, RankerTrainResult, RankerTrainStats } from "./trainer.js";
export { RANKER_FORMAT, Ranker, loadRanker, rankerFromTraining, rankerManifest, saveRanker } from "./bundle.js";
export type { PipelineSettings, RankerManifest, RankerProvenance, SessionModelRef } from "./bundle.js";
export { MERGED_ORDER, buckets, listScorer, offlineRequestTime, runPipeline } from "./pipeline.js";
export type { CalibrationBucket, PipelineOptions, PipelineRun } from "./pipeline.js";
