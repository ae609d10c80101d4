/**
 * @recsys/candidate-gen: the YouTube-DNN candidate generation model (Covington et al. 2016):
 * features → ReLU tower → user vector; sampled softmax with logQ correction over output item
 * embeddings; sparse embedding updates in JS, the tower in tfjs; the bundle format.
 */
export { DEFAULT_MODEL_CONFIG, DEFAULT_TRAIN_CONFIG, HISTORY_POOLINGS, validateModelConfig, validateTrainConfig } from "./config.js";
export type { HistoryPooling, ModelConfig, TrainConfig, TrainOptions, TrainProgress } from "./config.js";
export { CandidateGenModel } from "./model.js";
export type { DenseLayer, ModelWeights } from "./model.js";
export { SparseTable } from "./sparse.js";
export type { SparseOptimizer, SparseOptimizerConfig } from "./sparse.js";
export { AliasSampler } from "./sampler.js";
export { TrainStep } from "./train-step.js";
export type { StepConfig } from "./train-step.js";
export { buildExamples, trainCandidateGen } from "./trainer.js";
export type { TrainingExamples, TrainResult, TrainStats } from "./trainer.js";
export {
  BUNDLE_FORMAT,
  UNKNOWN_ITEM_SCORE,
  bundleFromTraining,
  createDatasetScorer,
  loadBundle,
  loadUserTower,
  manifestFor,
  saveBundle,
} from "./bundle.js";
export type { BundleFile, BundleManifest, CandidateGenBundle, DatasetScorerOptions, UserTower } from "./bundle.js";
