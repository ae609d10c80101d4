/**
 * @recsys/ranking-service: the ranking gRPC stage (Rank). The process is `dist/main.js`; this
 * module exports its parts for tests and tooling.
 */
export { STAGE, configSchema, type RankingConfig } from "./config.js";
export { provenanceSourceName, rankInputs, validateRankingContext, type RankInputs } from "./context.js";
export { createRankingService, debugFeatures, rankedOrder, rankerPath, type RankingStage } from "./service.js";
