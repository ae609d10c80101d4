/**
 * The user store contract: what the orchestrator reads to build a user's context for `Recommend`
 * and what `RecordEvents` appends to. Two backends implement it (embedded log file, Redis).
 *
 * Times are unix seconds (fractions allowed). Events are kept per user in bounded lists; a list
 * keeps the most recently *appended* entries and `get` returns them sorted by timestamp (stable,
 * so equal timestamps stay in append order): oldest first, most recent last.
 */

export interface WatchEvent {
  readonly userId: string;
  readonly itemId: string;
  /** Unix seconds. */
  readonly timestamp: number;
  /** Seconds actually watched, when known. */
  readonly watchSeconds?: number;
  /**
   * The end client (app installation, device) the watch came from, when the caller said: the
   * orchestrator caps the watches of one item per client in its counts. Kept in the events log,
   * not in the user's history.
   */
  readonly clientId?: string;
}

export interface SearchEvent {
  readonly userId: string;
  readonly query: string;
  /** Unix seconds. */
  readonly timestamp: number;
}

export interface ImpressionEvent {
  readonly userId: string;
  readonly itemId: string;
  /** Unix seconds. */
  readonly timestamp: number;
  /** 1-based position in the list shown, when known. */
  readonly position?: number;
  /** RecommendResponse.request_id of the list it was shown in, when known. */
  readonly requestId?: string;
}

/** Where one served item came from: a candidate source, its rank in that source, its score. */
export interface ServedProvenance {
  readonly source: string;
  /** 1-based rank of the item in that source's list. */
  readonly rank: number;
  readonly score: number;
}

export interface ServedItem {
  readonly itemId: string;
  /** 1-based position in the list answered. */
  readonly position: number;
  readonly provenance: readonly ServedProvenance[];
}

/**
 * One `Recommend` answer as served (the impressions the system really showed): logged by the
 * orchestrator for every answer. Kept in the events log only (`scanEvents`): it is not part of a
 * user's state, not delivered to subscribers, and never counts as a watch or an impression.
 */
export interface ServedEvent {
  readonly userId: string;
  /** Unix seconds. */
  readonly timestamp: number;
  /** RecommendResponse.request_id. */
  readonly requestId: string;
  readonly items: readonly ServedItem[];
  /** Model versions that produced the answer, by stage (e.g. { ranker: "v3", retrieval: "v3" }). */
  readonly modelVersions: Readonly<Record<string, string>>;
}

export type UserEvent =
  | ({ readonly kind: "watch" } & WatchEvent)
  | ({ readonly kind: "search" } & SearchEvent)
  | ({ readonly kind: "impression" } & ImpressionEvent)
  | ({ readonly kind: "served" } & ServedEvent);

/** An event as the durable events log holds it: `seq` is its 1-based place in append order. */
export type StoredEvent = UserEvent & { readonly seq: number };

export interface ScanEventsOptions {
  /** Only events with a larger seq (default 0: from the first event). */
  readonly afterSeq?: number;
  /** Most events per yielded batch (default 10_000). */
  readonly batchSize?: number;
}

export type UserEventKind = UserEvent["kind"];

/** Every field may be unknown (absent). */
export interface UserProfile {
  readonly age?: number;
  readonly gender?: string;
  readonly occupation?: string;
  /** Region code from the dataset's vocabulary (ml-100k: leading digits of the zip code). */
  readonly geo?: string;
  readonly device?: string;
}

export interface UserState {
  readonly userId: string;
  /** `{}` when no profile was set. */
  readonly profile: UserProfile;
  /** Oldest first, most recent last; at most `limits.maxWatches`. */
  readonly watches: readonly WatchEvent[];
  /** Oldest first; at most `limits.maxSearches`. */
  readonly searches: readonly SearchEvent[];
  /** Oldest first; at most `limits.maxImpressions`. */
  readonly impressions: readonly ImpressionEvent[];
  /** How often each item appears in `impressions` (the recent, bounded ones). */
  readonly impressionCounts: ReadonlyMap<string, number>;
  /**
   * Items watched earlier have left the bounded `watches` list: `watchedAmong` tells which of a
   * set of items the user watched, those included. False when every watch is still in `watches`.
   */
  readonly hasEarlierWatches: boolean;
}

/**
 * A whole user as bulk loading writes it (see `putUsers`, `seedFromEvents`): replaces the user's
 * profile and histories. Lists are in append order; longer lists keep their last entries.
 */
export interface UserSnapshot {
  readonly userId: string;
  readonly profile?: UserProfile;
  readonly watches?: readonly WatchEvent[];
  readonly searches?: readonly SearchEvent[];
  readonly impressions?: readonly ImpressionEvent[];
  /**
   * Items watched before `watches` (oldest first), remembered for `watchedAmong`. Watches beyond
   * `limits.maxWatches` join them.
   */
  readonly earlierWatchedIds?: readonly string[];
}

/** Bounds on what is stored and accepted. */
export interface UserStoreLimits {
  /** Watches kept per user (the most recently appended). */
  readonly maxWatches: number;
  /**
   * Distinct items remembered per user from watches that left the watch list, so that they are
   * never recommended again (`watchedAmong`). Beyond it the least recently watched are forgotten
   * (Redis counts the recent watches in the same bound: maxWatches + maxEarlierWatches ids).
   */
  readonly maxEarlierWatches: number;
  readonly maxSearches: number;
  readonly maxImpressions: number;
  /** Longest user / item / request id, in UTF-16 code units. */
  readonly maxIdLength: number;
  /** Longest search query, in UTF-16 code units. */
  readonly maxQueryLength: number;
  /** Longest profile string field. */
  readonly maxProfileFieldLength: number;
  /** Most events in one `append` call. */
  readonly maxEventsPerAppend: number;
  /** Most users in one `putUsers` / `getMany` call. */
  readonly maxUsersPerCall: number;
}

/** Most item ids in one `watchedAmong` call. */
export const MAX_WATCHED_AMONG_IDS = 10_000;

/** Defaults; the id and query lengths match the gRPC contract (MAX_ID_LENGTH, MAX_QUERY_LENGTH). */
export const DEFAULT_LIMITS: UserStoreLimits = Object.freeze({
  // The recent watches are the user's context (1000 covers every MovieLens-100K history, at most
  // 737); older watched items are remembered as ids only, up to maxEarlierWatches, and filtered.
  maxWatches: 1000,
  maxEarlierWatches: 10_000,
  maxSearches: 200,
  maxImpressions: 1000,
  maxIdLength: 256,
  maxQueryLength: 512,
  maxProfileFieldLength: 256,
  maxEventsPerAppend: 10_000,
  maxUsersPerCall: 10_000,
});

/**
 * Called with the events of one `append` call, once they are stored. Keep it quick and do not
 * throw (a throw is logged and ignored): embedded stores call it from their writer, Redis stores
 * from the stream reader.
 */
export type EventListener = (events: readonly UserEvent[]) => void;

export interface SubscribeOptions {
  /** Called when tailing fails (e.g. Redis went away); tailing retries on its own. */
  readonly onError?: (error: Error) => void;
}

export interface Subscription {
  /**
   * Resolves once the subscription is in place: every event appended (by anyone) after this
   * resolves reaches the listener. Never rejects; errors go to `onError` and are retried.
   */
  readonly ready: Promise<void>;
  /** Stop delivering events to this listener. Idempotent. */
  unsubscribe(): void;
}

export interface AppendOptions {
  /**
   * Deliver the events to subscribers (default true). Bulk loading passes false so that replicas
   * do not count a dataset's history as fresh activity.
   */
  readonly publish?: boolean;
}

export interface UserStore {
  readonly backend: "embedded" | "redis";
  readonly limits: UserStoreLimits;
  /**
   * Validate then store `events` (any mix of users and kinds), in order. Resolves only once they
   * are durable (embedded: written and fdatasync'ed) or acknowledged by Redis (MULTI/EXEC);
   * a subsequent `get` sees them. Throws `UserStoreValidationError` (nothing stored) for bad
   * input, `UserStoreUnavailableError` when the backend cannot take writes.
   */
  append(events: readonly UserEvent[], options?: AppendOptions): Promise<void>;
  /** The user's state, or undefined when nothing is stored for `userId`. */
  get(userId: string): Promise<UserState | undefined>;
  /**
   * Which of `itemIds` (at most MAX_WATCHED_AMONG_IDS) the user has watched: in the watch list or
   * earlier (up to `limits.maxEarlierWatches` remembered). One round trip for Redis (ZMSCORE).
   */
  watchedAmong(userId: string, itemIds: readonly string[]): Promise<ReadonlySet<string>>;
  /** `get` for several users at once (one round trip for Redis); results in input order. */
  getMany(userIds: readonly string[]): Promise<(UserState | undefined)[]>;
  /** Replace the user's profile (fields absent from `profile` become unknown). */
  setProfile(userId: string, profile: UserProfile): Promise<void>;
  /**
   * Replace whole users (profile and all three histories), not notifying subscribers: bulk
   * loading. Idempotent, so an interrupted or repeated seeding converges to the same state.
   */
  putUsers(users: readonly UserSnapshot[]): Promise<void>;
  /**
   * Every event ever appended (all users and kinds, served answers included; also the events a
   * seeding logged with `logEvents`), in append order, in batches, from a durable log that
   * compaction does not truncate. Reads what was appended before each batch is read: events
   * appended during the scan may be included. Embedded: the `events.log` file; Redis: the
   * untrimmed list `P events:log` (one entry per event; seq = its index + 1).
   */
  scanEvents(options?: ScanEventsOptions): AsyncIterable<readonly StoredEvent[]>;
  /** The seq of the last event appended (0 when none). */
  lastSeq(): Promise<number>;
  /**
   * Add events to the events log only (no user state, no subscribers): a bulk load that wrote
   * users with `putUsers` records the same history here so `scanEvents` sees it.
   */
  logEvents(events: readonly UserEvent[]): Promise<void>;
  /** Small string metadata (e.g. which dataset was seeded). */
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;
  /**
   * Receive events appended from now on, by this instance or (Redis) any other instance on the
   * same key prefix, one call per `append` call, in append order.
   */
  subscribe(listener: EventListener, options?: SubscribeOptions): Subscription;
  /** Flush, stop tailing, release files / connections. Further calls reject. */
  close(): Promise<void>;
}

/** Where warnings go (a pino logger fits). */
export interface UserStoreLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface EmbeddedConfig {
  readonly backend: "embedded";
  /** Directory holding the log and snapshot files (created if missing). */
  readonly path: string;
  readonly limits?: Partial<UserStoreLimits>;
  /**
   * Compact (write a snapshot, start a new log) once the log exceeds this many bytes and is at
   * least as large as the last snapshot. Default 64 MiB.
   */
  readonly compactBytes?: number;
  readonly logger?: UserStoreLogger;
}

export interface RedisConfig {
  readonly backend: "redis";
  /** e.g. "redis://127.0.0.1:6379" (redis://[user:password@]host:port[/db], rediss:// for TLS). */
  readonly url: string;
  /** Prepended to every key, e.g. "recsys:"; replicas sharing users use the same prefix. */
  readonly keyPrefix: string;
  readonly limits?: Partial<UserStoreLimits>;
  /** Give up connecting after this long (ms, default 2000). */
  readonly connectTimeoutMs?: number;
  /** Fail a command not answered within this long (ms, default 2000). */
  readonly commandTimeoutMs?: number;
  /**
   * A Redis that accepts the connection but answers its first commands late (busy loading, far
   * away) is tried again with backoff for this long before `open` fails (ms, default 60 000).
   * A refused connection (nothing listening) fails at once.
   */
  readonly openRetryForMs?: number;
  /** Approximate cap on the event stream's entries (one per append call; default 100_000). */
  readonly streamMaxLen?: number;
  /** Expire a user's keys this long after their last write (default: never). */
  readonly userTtlSeconds?: number;
  readonly logger?: UserStoreLogger;
}

export type UserStoreConfig = EmbeddedConfig | RedisConfig;
