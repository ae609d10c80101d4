export { evaluateLastout, historyRows, metricNames } from "./lastout.js";
export type { EvaluateOptions, LastoutResult, ScorerResult, Target } from "./lastout.js";
export { itemKnnScorer, mostPopularScorer } from "./baselines.js";
export type { ItemKnnOptions, ItemKnnScorer } from "./baselines.js";
