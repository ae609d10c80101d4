/**
 * @recsys/candidate-gen: the YouTube-DNN candidate generation model (Covington et al. 2016):
 * features → ReLU tower → user vector; sampled softmax with logQ correction over output item
 * embeddings (or, as an option, a two-level hierarchical softmax over a co-watch item tree); sparse embedding updates in JS, the tower in tfjs; the bundle format.
 */
export {
  DEFAULT_MODEL_CONFIG,
  DEFAULT_TRAIN_CONFIG,
  HISTORY_POOLINGS,
  OUTPUT_LAYERS,
  validateModelConfig,
  validateTrainConfig,
} from "./config.js";
export type { HistoryPooling, ModelConfig, OutputLayer, TrainConfig, TrainOptions, TrainProgress } from "./config.js";
export { HierarchicalSoftmax } from "./hierarchical-softmax.js";
export { buildItemTree, defaultClusterCount, treeFromAssignment } from "./item-tree.js";
export type { ItemTree } from "./item-tree.js";
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
