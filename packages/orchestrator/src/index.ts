/**
 * @recsys/orchestrator: the public RecommenderService (Recommend, RecordEvents). The process is
 * `dist/main.js`; this module exports its parts for tests and tooling.
 */
export { STAGE, checkOrchestratorConfig, configSchema, type OrchestratorConfig } from "./config.js";
export { BUNDLE_FORMAT, Catalogue, loadBundleInfo, nearestHistoryItem, parseDeletedItems, type BundleInfo } from "./catalogue.js";
export { ServingClock, wallSeconds } from "./clock.js";
export { MAX_FILTER_VALUES, contextFromState, itemFilter, validateRecommendRequest, type ValidRecommendRequest } from "./context.js";
export { Exclusion } from "./exclusion.js";
export {
  METRIC_LABEL_KIND,
  METRIC_LABEL_MODEL_VERSION,
  METRIC_LABEL_SOURCE,
  METRIC_LABEL_STAGE,
  createOrchestratorMetrics,
  type OrchestratorMetrics,
} from "./metrics.js";
export { OnlineSources, type OnlineSourcesOptions } from "./online.js";
export {
  REASON_NEW_UPLOAD,
  REASON_POPULAR,
  REASON_RECOMMENDED,
  REASON_TRENDING_AREA,
  becauseYouWatched,
  newFrom,
  reasonsFor,
} from "./reasons.js";
export { OwnEvents, applyReplicatedEvents, recordEvents, toStoreEvent } from "./record-events.js";
export {
  Recommender,
  STAGE_CANDIDATE_GENERATION,
  STAGE_MERGE,
  STAGE_RANKING,
  STAGE_RETRIEVAL,
  STAGE_SOURCES,
  STAGE_TOTAL,
  STAGE_USER_STORE,
  STAGE_EARLIER_WATCHES,
  shardStage,
  type RecommendDeps,
} from "./recommend.js";
export { CLOCK_ORIGIN_META_KEY, MODEL_TIME_FILE, createOrchestrator, type Downstream, type Orchestrator } from "./service.js";
export { MODEL_TIME_OFFSET_META_KEY } from "./model-time.js";
export { SESSION_MODEL_DIR, ServingSessionModel, loadServingSessionModel } from "./session-model.js";
export { readRankerPipeline, resolveBudgets, type BudgetedSource, type PipelineBudgets } from "./budgets.js";
