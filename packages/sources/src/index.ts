export {
  SOURCE_ORDER,
  checkRequest,
  compareSources,
  isStateful,
  watchedSet,
} from "./types.js";
export type {
  Candidate,
  CandidateSource,
  MergedCandidate,
  Provenance,
  SourceName,
  SourceRequest,
  SourceResult,
  StatefulSource,
  WatchEvent,
} from "./types.js";
export { TimeGate } from "./time-gate.js";
export { TopK, compareCandidates } from "./top-k.js";
export { CoWatchSource } from "./co-watch.js";
export type { CoWatchOptions } from "./co-watch.js";
export { PopularSource } from "./popular.js";
export type { PopularOptions } from "./popular.js";
export { TrendingSource } from "./trending.js";
export type { TrendingOptions } from "./trending.js";
export { FreshSource } from "./fresh.js";
export type { FreshOptions, PopularityAt } from "./fresh.js";
export { BruteForceIndex, BruteForceSubsetIndex } from "./item-index.js";
export type { ItemIndex } from "./item-index.js";
export { DnnSource } from "./dnn.js";
export { SessionSource, sessionReason } from "./session.js";
export type { SessionEncoder, SessionOptions } from "./session.js";
export type { DnnOptions, UserVectorProvider } from "./dnn.js";
export { mergeCandidates } from "./merge.js";
export type { MergeOptions } from "./merge.js";
export { SourceSet } from "./source-set.js";
export type { SourceRun, SourceSetOptions, SourceSpec, SourceTiming } from "./source-set.js";
export {
  DEFAULT_MERGED_SIZE,
  DEFAULT_SOURCE_BUDGET,
  buildStandardSources,
  createStandardSources,
  datasetRequest,
  eventAt,
  observeRows,
  timeOrder,
} from "./dataset-sources.js";
export type { StandardSourcesOptions } from "./dataset-sources.js";
export { replayExamples } from "./replay.js";
export type { ReplayExample, ReplayOptions } from "./replay.js";
export { candidateRecall } from "./recall.js";
export type { MergedRecall, RecallOptions, RecallReport, SourceRecall } from "./recall.js";
