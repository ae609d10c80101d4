export type {
  AppendOptions,
  EmbeddedConfig,
  EventListener,
  ImpressionEvent,
  RedisConfig,
  ScanEventsOptions,
  SearchEvent,
  ServedEvent,
  ServedItem,
  ServedProvenance,
  StoredEvent,
  SubscribeOptions,
  Subscription,
  UserEvent,
  UserEventKind,
  UserProfile,
  UserSnapshot,
  UserState,
  UserStore,
  UserStoreConfig,
  UserStoreLimits,
  UserStoreLogger,
  WatchEvent,
} from "./types.js";
export { DEFAULT_LIMITS, MAX_WATCHED_AMONG_IDS } from "./types.js";
export {
  UserStoreError,
  UserStoreUnavailableError,
  UserStoreValidationError,
  isUserStoreUnavailable,
  isUserStoreValidationError,
} from "./errors.js";
export type { UserStoreErrorCode } from "./errors.js";
export { openUserStore } from "./open.js";
export { EmbeddedUserStore, DEFAULT_COMPACT_BYTES } from "./embedded.js";
export { EVENTS_LOG_FILE, DEFAULT_SCAN_BATCH } from "./events-log.js";
export {
  RedisUserStore,
  DEFAULT_COMMAND_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_STREAM_MAX_LEN,
} from "./redis.js";
export { seedFromEvents, datasetUserEvents, datasetUserProfiles, SEED_META_KEY, SEED_LOG_META_KEY } from "./seed.js";
export type { SeedOptions, SeedResult, DatasetEventsOptions } from "./seed.js";
export { resolveLimits } from "./validate.js";
export { benchUserStore, formatBenchResult } from "./bench.js";
export type { AppendFigures, LatencyFigures, UserStoreBenchOptions, UserStoreBenchResult } from "./bench.js";
export {
  openCatalogueStore,
  checkCatalogueItem,
  EmbeddedCatalogueStore,
  RedisCatalogueStore,
  MAX_CATALOGUE_ITEMS_PER_CALL,
  MAX_TAGS,
  MAX_TAG_LENGTH,
  MAX_TITLE_LENGTH,
} from "./catalogue.js";
export type {
  CatalogueChange,
  CatalogueItem,
  CatalogueItemInput,
  CatalogueStore,
  CatalogueStoreConfig,
  EmbeddedCatalogueConfig,
  RedisCatalogueConfig,
} from "./catalogue.js";
