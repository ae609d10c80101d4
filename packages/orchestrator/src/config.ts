/**
 * Every environment variable the orchestrator reads (exported: the Kubernetes manifests test
 * compares its keys with the Deployment's env). README.md explains each one.
 */
import { MAX_RANK_CANDIDATES, MAX_SEARCH_K, MAX_WATCH_HISTORY } from "@recsys/gen";
import { ConfigError, env, runtimeConfigSchema, type ConfigOf } from "@recsys/runtime";
import { DEFAULT_LIMITS } from "@recsys/user-store";

export const STAGE = "orchestrator";

/**
 * Budget of one candidate source: 0 leaves the source out; unset, the per-source budget the
 * ranker was trained behind (its manifest's pipeline, else 100; see budgets.ts).
 */
function budget(what: string, max = MAX_RANK_CANDIDATES) {
  return env.int({ min: 0, max, description: `${what} candidates per request (0 = source off; default: the ranker's training budget)` });
}

export const configSchema = {
  ...runtimeConfigSchema,

  // Downstream stages.
  CANDIDATE_GENERATION_ADDRESS: env.string({
    required: true,
    description: "candidate-generation service (EmbedUser), host:port or dns:///name:port",
  }),
  RETRIEVAL_ADDRESSES: env.list({
    required: true,
    description: "retrieval services, comma-separated, one per shard in shard order (shard 0 first)",
  }),
  RANKING_ADDRESS: env.string({ required: true, description: "ranking service (Rank), host:port or dns:///name:port" }),

  // Per-stage budgets; each downstream deadline is also capped by the caller's deadline.
  USER_STORE_TIMEOUT: env.duration({ default: 100, description: "longest wait for the user's stored history in Recommend" }),
  CANDIDATE_GENERATION_TIMEOUT: env.duration({ default: 100, description: "budget of the EmbedUser call" }),
  RETRIEVAL_TIMEOUT: env.duration({ default: 100, description: "budget of the Search fan-out (all shards in parallel)" }),
  RANKING_TIMEOUT: env.duration({ default: 150, description: "budget of the Rank call" }),
  DEADLINE_MARGIN: env.duration({
    default: 20,
    description: "time kept back from the caller's deadline for the orchestrator's own work after each stage",
  }),

  // Overload and readiness (load-shed.ts, readiness.ts).
  MAX_IN_FLIGHT: env.int({
    default: 32,
    min: 0,
    max: 100_000,
    description:
      "Recommend calls handled at once; beyond it a call is answered RESOURCE_EXHAUSTED with a retry hint at once (0 = no bound)",
  }),
  SHED_RETRY_AFTER: env.duration({ default: 200, description: "retry hint (grpc-retry-pushback-ms) of a call shed by MAX_IN_FLIGHT" }),
  STAGE_HEALTH_INTERVAL: env.duration({
    default: 2000,
    description: "how often the downstream stages' gRPC health is checked (readiness)",
  }),
  STAGE_DOWN_NOT_READY_AFTER: env.duration({
    default: 30_000,
    description:
      "readiness (health of recsys.v1.RecommenderService) turns NOT_SERVING once a downstream stage has been down this long (0 = never); liveness does not",
  }),

  DOWNSTREAM_TRANSPORT: env.enum(["http2", "grpc-js"], {
    default: "http2",
    description: "client of the downstream stages: http2 (the runtime's lean unary client on node:http2) or grpc-js",
  }),

  // User store.
  USER_STORE: env.enum(["embedded", "redis"], {
    default: "embedded",
    description: "embedded (one replica, log files under USER_STORE_PATH) or redis (replicas share users)",
  }),
  USER_STORE_PATH: env.string({ description: "directory of the embedded user store (required with USER_STORE=embedded)" }),
  REDIS_URL: env.url({ default: "redis://127.0.0.1:6379", description: "Redis of the user store (USER_STORE=redis)" }),
  REDIS_KEY_PREFIX: env.string({ default: "recsys:", description: "key prefix of the user store; replicas share it" }),
  USER_STORE_MAX_WATCHES: env.int({
    default: DEFAULT_LIMITS.maxWatches,
    min: 1,
    max: MAX_WATCH_HISTORY,
    description: "recent watches kept per user: the context of candidate generation and ranking",
  }),
  USER_STORE_MAX_EARLIER_WATCHES: env.int({
    default: DEFAULT_LIMITS.maxEarlierWatches,
    min: 1,
    max: 10_000_000,
    description: "distinct older watched items remembered per user (ids only) so they are never recommended again",
  }),
  SEED_USER_STORE: env.bool({
    default: true,
    description: "load the dataset's training histories and profiles into the user store once (per dataset and holdout)",
  }),

  // Catalogue and source state.
  MODEL_PATH: env.string({
    required: true,
    description: "candidate-generation bundle: catalogue ids, the dataset and holdout it was trained on, item embeddings for reasons",
  }),
  MODEL_POLL_INTERVAL: env.duration({
    default: 30_000,
    description: "how often the bundle's manifest.json is checked for a new modelVersion (item embeddings for reasons; 0 = never)",
  }),
  DATASET: env.string({
    description: "dataset spec seeding catalogue metadata, source state and the user store (default: the bundle's datasetSpec)",
  }),
  SERVING_CLOCK: env.enum(["dataset", "wall"], {
    default: "wall",
    description:
      "wall: the system clock; a historical bootstrap dataset is stored shifted into real time and the models get times on their own time line. dataset: the stores keep the dataset's time line, which continues from its last training event",
  }),
  MAX_EVENT_CLOCK_SKEW: env.duration({
    default: 300_000,
    description: "RecordEvents rejects events timestamped more than this after the serving clock",
  }),
  DELETED_ITEMS_FILE: env.string({
    description: "taken-down item ids, one per line (# comments); never recommended; re-read when it changes",
  }),
  DELETED_ITEMS_POLL_INTERVAL: env.duration({ default: 30_000, description: "how often DELETED_ITEMS_FILE is checked (0 = never)" }),

  // Candidates.
  RANKER_SUBDIR: env.string({
    default: "ranker",
    description:
      "subdirectory of MODEL_PATH with the ranker's manifest.json, whose training budgets are the defaults of CANDIDATES_* and MERGED_CANDIDATES",
  }),
  CANDIDATES_DNN: budget("DNN (retrieval)", MAX_SEARCH_K),
  CANDIDATES_CO_WATCH: budget("co-watch"),
  CANDIDATES_POPULAR: budget("popular"),
  CANDIDATES_TRENDING: budget("trending"),
  CANDIDATES_TRENDING_GEO: budget("trending in the user's area"),
  CANDIDATES_FRESH: budget("fresh upload"),
  MERGED_CANDIDATES: env.int({
    min: 1,
    max: MAX_RANK_CANDIDATES,
    description: "candidates sent to the ranker after the merge (default: the merged size the ranker was trained behind, else 300)",
  }),
  TRENDING_HALF_LIFE: env.duration({ default: 7 * 24 * 3_600_000, description: "half-life of the trending counts" }),
  FRESH_WINDOW: env.duration({ default: 30 * 24 * 3_600_000, description: "an item is fresh this long after its upload" }),
  PER_USER_ITEM_CAP: env.int({
    default: 1,
    min: 0,
    max: 1_000_000,
    description: "watches of one item by one user counted at most this often in the co-watch, popular and trending counts (0 = no cap)",
  }),
  PER_CLIENT_ITEM_CAP: env.int({
    default: 3,
    min: 0,
    max: 1_000_000,
    description:
      "watches of one item from one client (UserEvent.client_id), whatever their user ids, counted at most this often in the co-watch, popular and trending counts (0 = no cap)",
  }),
  SESSION_MIN_ITEM_COUNT: env.int({
    default: 1,
    min: 0,
    max: 4_294_967_295,
    description:
      "the session source nominates only items its model was trained on as a target at least this often (its saved item counts; 0 = every item, also every item of a model saved without counts)",
  }),
  SERVED_LOG: env.bool({
    default: true,
    description: "log every Recommend answer (request id, items, positions, provenance, model versions) in the user store's events log",
  }),
};

export type OrchestratorConfig = ConfigOf<typeof configSchema>;

/** Checks between variables (the schema checks each one alone). Throws ConfigError. */
export function checkOrchestratorConfig(config: OrchestratorConfig): void {
  if (config.USER_STORE === "embedded" && (config.USER_STORE_PATH === undefined || config.USER_STORE_PATH === "")) {
    throw new ConfigError("USER_STORE_PATH", "USER_STORE_PATH is required when USER_STORE=embedded (directory of the user store)");
  }
  if (config.RETRIEVAL_ADDRESSES.length === 0) {
    throw new ConfigError("RETRIEVAL_ADDRESSES", "RETRIEVAL_ADDRESSES must list at least one retrieval shard address");
  }
}
