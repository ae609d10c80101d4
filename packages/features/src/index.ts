/**
 * @recsys/features: the one feature code path shared by training and serving (no skew).
 *
 * A {@link UserContext} (external ids) → {@link resolveUser} (vocabulary ids) →
 * {@link encodeResolved} (history window, search tokens, categorical ids, normalised continuous
 * values) into an {@link EncodedBatch}. {@link encodeUser} chains them for one context.
 */
export { Vocabulary, countTokens } from "./vocabulary.js";
export type { VocabularyJson } from "./vocabulary.js";
export { QuantileNormalizer } from "./quantile.js";
export type { QuantileNormalizerJson } from "./quantile.js";
export { queryTokens } from "./tokens.js";
export { contextFromDataset } from "./context.js";
export type { Search, UserContext, Watch } from "./context.js";
export {
  CATEGORICAL_FEATURES,
  CONTINUOUS_FEATURES,
  DEFAULT_FEATURE_CONFIG,
  EncodedBatch,
  FeatureSpace,
  NUM_CATEGORICAL,
  NUM_CONTINUOUS,
  encodeResolved,
  encodeUser,
  encodedRow,
  fitFeatureSpace,
  resolveDatasetUser,
  resolveUser,
  visibleWatches,
} from "./space.js";
export type { CategoricalFeature, EncodedUser, FeatureConfig, FeatureSpaceJson, ResolvedUser } from "./space.js";
