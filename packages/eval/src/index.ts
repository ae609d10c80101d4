export { evaluateLastout, historyRows, metricNames, requestTime } from "./lastout.js";
export type { EvaluateOptions, LastoutResult, ScorerResult, Target } from "./lastout.js";
export { itemKnnScorer, mostPopularScorer, nextIdScorer } from "./baselines.js";
export type { ItemKnnOptions, ItemKnnScorer } from "./baselines.js";
export {
  DEFAULT_TIE_SEED,
  describeTieOrder,
  idTieOrder,
  parseProtocol,
  PROTOCOLS,
  shuffledTieOrder,
  tiedEvents,
  tieOrderFor,
  withTieOrder,
} from "./tie-order.js";
export type { Protocol, TieOrder } from "./tie-order.js";
export { curves, pairedInterval, perUserValues, popularityDeciles } from "./stats.js";
export type { Curves, PairedInterval } from "./stats.js";
