/**
 * Bulk loading: a dataset's histories into a store at startup.
 *
 * Seeding replaces each seeded user's profile and histories (`putUsers`), so it is idempotent:
 * a seeding interrupted half way, or run by several replicas at once on the same Redis prefix,
 * converges to the same state. With a `seedId` (e.g. the dataset fingerprint) it runs once: the
 * id is recorded in the store's metadata when seeding completes and a later call with the same
 * id does nothing. Seeded events are not delivered to subscribers.
 *
 * A slow or briefly unreachable backend is not fatal: users go in batches (`usersPerCall`, a few
 * in flight), and a batch that fails with UNAVAILABLE (Redis's command timeout, a reconnect) is
 * retried with exponential backoff, split in halves so that a batch too big for the command
 * timeout gets through, for up to `retryForMs`. Since `putUsers` replaces users, a retried batch
 * that had in fact been applied is applied again to the same result.
 */
import type { Dataset } from "@recsys/data";
import { isUserStoreUnavailable } from "./errors.js";
import type { ImpressionEvent, SearchEvent, UserEvent, UserProfile, UserSnapshot, UserStore, WatchEvent } from "./types.js";

/** Metadata key holding the id of the last completed seeding. */
export const SEED_META_KEY = "seeded";

export interface SeedOptions {
  /** Skip seeding if a seeding with this id already completed on this store. */
  readonly seedId?: string;
  /** Users per `putUsers` call (default 500). */
  readonly usersPerCall?: number;
  /** `putUsers` calls in flight at once (default 4): group commit / pipelining. */
  readonly concurrency?: number;
  /**
   * Also record the events in the store's events log (`logEvents`, oldest first) so that
   * `scanEvents` (rebuilding counts, training from the store) sees the seeded history. Default
   * true. Done once per store (meta key `seeded-log`); a seeding interrupted while logging logs
   * again from the start (the events log may then hold part of the history twice).
   */
  readonly logEvents?: boolean;
  /**
   * How long a failing call (UNAVAILABLE) is retried before seeding fails, ms (default 300 000).
   * Other errors (INVALID_ARGUMENT, INTERNAL) fail at once.
   */
  readonly retryForMs?: number;
  /** First backoff delay, ms (default 200; doubles up to 5000). */
  readonly retryDelayMs?: number;
  /** Told about each retry (the orchestrator logs it). */
  readonly onRetry?: (retry: SeedRetry) => void;
}

export interface SeedRetry {
  /** The call that failed: "putUsers", "logEvents", "getMeta" or "setMeta". */
  readonly what: string;
  /** Users in the failed call (0 for metadata). */
  readonly users: number;
  readonly attempt: number;
  readonly delayMs: number;
  readonly error: string;
}

/** Retries `run` on UNAVAILABLE with backoff until `until`; other errors and the last one are thrown. */
class Retrier {
  constructor(
    private readonly until: number,
    private readonly firstDelayMs: number,
    private readonly onRetry: ((retry: SeedRetry) => void) | undefined,
  ) {}

  async run<T>(what: string, users: number, call: () => Promise<T>): Promise<T> {
    let delayMs = this.firstDelayMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        if (!isUserStoreUnavailable(error) || Date.now() + delayMs > this.until) throw error;
        this.onRetry?.({ what, users, attempt, delayMs, error: error.message });
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        delayMs = Math.min(5000, delayMs * 2);
      }
    }
  }

  /** `putUsers(users)`; after a failure the batch is split in halves, each retried on its own. */
  async putUsers(store: UserStore, users: UserSnapshot[]): Promise<void> {
    let delayMs = this.firstDelayMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await store.putUsers(users);
        return;
      } catch (error) {
        if (!isUserStoreUnavailable(error) || Date.now() + delayMs > this.until) throw error;
        this.onRetry?.({ what: "putUsers", users: users.length, attempt, delayMs, error: error.message });
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        delayMs = Math.min(5000, delayMs * 2);
        if (users.length > 1) {
          const half = Math.ceil(users.length / 2);
          await this.putUsers(store, users.slice(0, half));
          await this.putUsers(store, users.slice(half));
          return;
        }
      }
    }
  }
}

/** Metadata key holding the seed id whose events were recorded in the events log. */
export const SEED_LOG_META_KEY = "seeded-log";

export interface SeedResult {
  /** True when `seedId` had already been seeded (nothing written). */
  readonly skipped: boolean;
  readonly users: number;
  /** Events stored (after the per-user bounds). */
  readonly watches: number;
  readonly searches: number;
  readonly impressions: number;
  readonly seconds: number;
}

interface Pending {
  profile: UserProfile | undefined;
  watches: WatchEvent[];
  /** Item ids of watches trimmed off `watches` while reading, oldest first. */
  earlier: string[];
  searches: SearchEvent[];
  impressions: ImpressionEvent[];
}

/** Oldest first (stable), then the last `max`; trims in place once the list doubles `max`. */
function keepRecent<T extends { readonly timestamp: number }>(list: T[], max: number): T[] {
  list.sort((a, b) => a.timestamp - b.timestamp);
  return list.length > max ? list.slice(list.length - max) : list;
}

/** `events` into the events log, oldest first, then the `seeded-log` mark. */
async function logHistory(store: UserStore, events: Iterable<UserEvent>, seedId: string, retrier: Retrier): Promise<void> {
  const list = [...events].sort((a, b) => a.timestamp - b.timestamp);
  for (let i = 0; i < list.length; i += store.limits.maxEventsPerAppend) {
    const batch = list.slice(i, i + store.limits.maxEventsPerAppend);
    await retrier.run("logEvents", 0, () => store.logEvents(batch));
  }
  await retrier.run("setMeta", 0, () => store.setMeta(SEED_LOG_META_KEY, seedId));
}

/**
 * Load `events` (any order; each user's lists are sorted by timestamp and bounded by the store's
 * limits) and `profiles` into `store`, replacing the users they name.
 */
export async function seedFromEvents(
  store: UserStore,
  events: Iterable<UserEvent>,
  profiles: Iterable<readonly [string, UserProfile]> = [],
  options: SeedOptions = {},
): Promise<SeedResult> {
  const started = performance.now();
  const retrier = new Retrier(Date.now() + (options.retryForMs ?? 300_000), options.retryDelayMs ?? 200, options.onRetry);
  const logging =
    options.logEvents !== false && (await retrier.run("getMeta", 0, () => store.getMeta(SEED_LOG_META_KEY))) !== (options.seedId ?? "");
  if (options.seedId !== undefined && (await retrier.run("getMeta", 0, () => store.getMeta(SEED_META_KEY))) === options.seedId) {
    // Seeded by a version that did not log the history: log it now (users stay as they are).
    if (logging) await logHistory(store, events, options.seedId, retrier);
    return { skipped: true, users: 0, watches: 0, searches: 0, impressions: 0, seconds: (performance.now() - started) / 1000 };
  }
  const { maxWatches, maxSearches, maxImpressions } = store.limits;
  const users = new Map<string, Pending>();
  const pendingOf = (userId: string): Pending => {
    let p = users.get(userId);
    if (p === undefined) {
      p = { profile: undefined, watches: [], earlier: [], searches: [], impressions: [] };
      users.set(userId, p);
    }
    return p;
  };
  const toLog: UserEvent[] = [];
  for (const event of events) {
    const p = pendingOf(event.userId);
    if (logging) toLog.push(event);
    switch (event.kind) {
      case "watch": {
        const { kind: _kind, ...watch } = event;
        p.watches.push(watch);
        if (p.watches.length >= 2 * maxWatches) {
          const kept = keepRecent(p.watches, maxWatches);
          for (const w of p.watches.slice(0, p.watches.length - kept.length)) p.earlier.push(w.itemId);
          p.watches = kept;
          if (p.earlier.length >= 2 * store.limits.maxEarlierWatches) p.earlier = p.earlier.slice(-store.limits.maxEarlierWatches);
        }
        break;
      }
      case "search": {
        const { kind: _kind, ...search } = event;
        p.searches.push(search);
        if (p.searches.length >= 2 * maxSearches) p.searches = keepRecent(p.searches, maxSearches);
        break;
      }
      case "impression": {
        const { kind: _kind, ...impression } = event;
        p.impressions.push(impression);
        if (p.impressions.length >= 2 * maxImpressions) p.impressions = keepRecent(p.impressions, maxImpressions);
        break;
      }
      default:
        throw new TypeError(`seedFromEvents: unknown event kind ${JSON.stringify((event as { kind?: unknown }).kind)}`);
    }
  }
  for (const [userId, profile] of profiles) pendingOf(userId).profile = profile;
  if (logging) await logHistory(store, toLog, options.seedId ?? "", retrier);

  const usersPerCall = Math.max(1, Math.min(options.usersPerCall ?? 500, store.limits.maxUsersPerCall));
  const concurrency = Math.max(1, options.concurrency ?? 4);
  let watches = 0;
  let searches = 0;
  let impressions = 0;
  let chunk: UserSnapshot[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  const send = async (users: UserSnapshot[]): Promise<void> => {
    while (inFlight.size >= concurrency) await Promise.race(inFlight);
    if (failure !== undefined) throw failure.error;
    const call: Promise<void> = retrier.putUsers(store, users).then(
      () => void inFlight.delete(call),
      (error: unknown) => {
        inFlight.delete(call);
        failure ??= { error };
      },
    );
    inFlight.add(call);
  };
  for (const [userId, p] of users) {
    // Every watch read, oldest first: putUsers keeps the last maxWatches and remembers the
    // others' ids as earlier watches, after the ones trimmed while reading (p.earlier).
    const w = keepRecent(p.watches, Infinity);
    const s = keepRecent(p.searches, maxSearches);
    const i = keepRecent(p.impressions, maxImpressions);
    watches += Math.min(w.length, maxWatches);
    searches += s.length;
    impressions += i.length;
    const snapshot: UserSnapshot = {
      userId,
      watches: w,
      searches: s,
      impressions: i,
      ...(p.earlier.length === 0 ? {} : { earlierWatchedIds: p.earlier }),
    };
    chunk.push(p.profile === undefined ? snapshot : { ...snapshot, profile: p.profile });
    if (chunk.length >= usersPerCall) {
      await send(chunk);
      chunk = [];
    }
  }
  if (chunk.length > 0) await send(chunk);
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure.error;
  const seedId = options.seedId;
  if (seedId !== undefined) await retrier.run("setMeta", 0, () => store.setMeta(SEED_META_KEY, seedId));
  return { skipped: false, users: users.size, watches, searches, impressions, seconds: (performance.now() - started) / 1000 };
}

export interface DatasetEventsOptions {
  /**
   * Event-log rows to load as watches (e.g. `trainingRows(split, "test")` so held-out events are
   * not in the store); default every row. When given, a user's searches and impressions are
   * loaded only up to the timestamp of that user's last loaded watch, so nothing after a
   * held-out event leaks in.
   */
  readonly watchRows?: Int32Array;
  /**
   * Store the event weight as `watchSeconds`. Only right for sources whose weight is watch time
   * (the synthetic generator, events:DIR with watch_seconds); ml-100k's weight is a rating.
   * Default false.
   */
  readonly weightIsWatchSeconds?: boolean;
}

/** A dataset's events as user events, user by user (watches, then searches, then impressions). */
export function* datasetUserEvents(dataset: Dataset, options: DatasetEventsOptions = {}): Generator<UserEvent> {
  const { users, items, events, searches, impressions } = dataset;
  const numUsers = users.ids.length;
  // Per-user cutoff for searches and impressions: +Infinity when every event is loaded.
  let cutoff: Float64Array | undefined;
  let rowsByUser: Int32Array[] | undefined;
  if (options.watchRows !== undefined) {
    cutoff = new Float64Array(numUsers).fill(-Infinity);
    const lists: number[][] = Array.from({ length: numUsers }, () => []);
    for (const row of options.watchRows) {
      const u = events.user[row]!;
      lists[u]!.push(row);
      cutoff[u] = Math.max(cutoff[u]!, events.timestamp[row]!);
    }
    rowsByUser = lists.map((rows) => Int32Array.from(rows));
  }
  for (let u = 0; u < numUsers; u++) {
    const userId = users.ids[u]!;
    const limit = cutoff === undefined ? Infinity : cutoff[u]!;
    const rows = rowsByUser?.[u];
    const watchRow = (r: number): UserEvent => {
      const weight = events.weight[r]!;
      return options.weightIsWatchSeconds === true && Number.isFinite(weight) && weight >= 0
        ? { kind: "watch", userId, itemId: items.ids[events.item[r]!]!, timestamp: events.timestamp[r]!, watchSeconds: weight }
        : { kind: "watch", userId, itemId: items.ids[events.item[r]!]!, timestamp: events.timestamp[r]! };
    };
    if (rows === undefined) {
      for (let r = events.userOffsets[u]!; r < events.userOffsets[u + 1]!; r++) yield watchRow(r);
    } else {
      for (const r of rows) yield watchRow(r);
    }
    for (let r = searches.userOffsets[u] ?? 0; r < (searches.userOffsets[u + 1] ?? 0); r++) {
      if (searches.timestamp[r]! > limit) continue;
      const query = searches.query[r]!;
      if (query.trim() === "") continue;
      yield { kind: "search", userId, query, timestamp: searches.timestamp[r]! };
    }
    for (let r = impressions.userOffsets[u] ?? 0; r < (impressions.userOffsets[u + 1] ?? 0); r++) {
      if (impressions.timestamp[r]! > limit) continue;
      yield { kind: "impression", userId, itemId: items.ids[impressions.item[r]!]!, timestamp: impressions.timestamp[r]! };
    }
  }
}

/** Each user's profile from the dataset's user table (unknown fields left out). */
export function datasetUserProfiles(dataset: Dataset): Map<string, UserProfile> {
  const { ids, age, gender, occupation, geo } = dataset.users;
  const out = new Map<string, UserProfile>();
  const value = (column: { codes: Int32Array; values: readonly string[] }, u: number): string | undefined => {
    const code = column.codes[u]!;
    return code < 0 ? undefined : column.values[code];
  };
  for (let u = 0; u < ids.length; u++) {
    const profile: { age?: number; gender?: string; occupation?: string; geo?: string } = {};
    if (Number.isFinite(age[u]!)) profile.age = age[u]!;
    const g = value(gender, u);
    if (g !== undefined && g !== "") profile.gender = g;
    const o = value(occupation, u);
    if (o !== undefined && o !== "") profile.occupation = o;
    const z = value(geo, u);
    if (z !== undefined && z !== "") profile.geo = z;
    out.set(ids[u]!, profile);
  }
  return out;
}
