/**
 * The Redis backend: for several orchestrator replicas sharing users.
 *
 * Keys (P = keyPrefix; `{userId}` is a hash tag, so one user's keys share a cluster slot):
 * - `P user:{userId}:w`, `:s`, `:i`: lists of recent watches / searches / impressions, oldest
 *   first, entries as compact JSON arrays; each append is RPUSH + LTRIM in one MULTI/EXEC.
 * - `P user:{userId}:p`: the profile as a hash (age, gender, occupation, geo, device).
 * - `P user:{userId}:x`: every watched item id, scored by its latest watch time (ZADD GT), kept
 *   to the newest maxWatches + maxEarlierWatches (ZREMRANGEBYRANK): `watchedAmong` (ZMSCORE)
 *   finds watches that left the `:w` list.
 * - `P events`: a stream with one entry per append call (field `e`: JSON array of events), capped
 *   with XADD MAXLEN ~; every replica tails it with XREAD BLOCK to update its own counts.
 * - `P events:log`: a list of every event ever appended (one JSON entry per event, in append
 *   order; seq = index + 1), never trimmed: what `scanEvents` reads. Retention is the operator's
 *   (LTRIM from the left would renumber seqs: archive and rename instead).
 * - `P meta`: a hash of small metadata (e.g. which dataset was seeded).
 *
 * Failures: commands fail fast (no offline queue, no resend after a reconnect, command timeout)
 * with `UserStoreUnavailableError`, while the client reconnects in the background.
 */
import { DEFAULT_SCAN_BATCH } from "./events-log.js";
import { Redis, ReplyError, type ChainableCommander, type RedisOptions } from "ioredis";
import { UserStoreError, UserStoreUnavailableError } from "./errors.js";
import {
  groupByUser,
  stripImpression,
  stripSearch,
  stripWatch,
  toUserState,
  type StoredImpression,
  type StoredSearch,
  type StoredWatch,
} from "./state.js";
import type {
  AppendOptions,
  EventListener,
  RedisConfig,
  ScanEventsOptions,
  StoredEvent,
  SubscribeOptions,
  Subscription,
  UserEvent,
  UserProfile,
  UserSnapshot,
  UserState,
  UserStore,
  UserStoreLimits,
  UserStoreLogger,
} from "./types.js";
import {
  checkEvent,
  checkEvents,
  checkId,
  checkItemIds,
  checkMetaKey,
  checkMetaValue,
  checkProfile,
  checkSnapshots,
  checkUserIds,
  resolveLimits,
} from "./validate.js";

export const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
export const DEFAULT_COMMAND_TIMEOUT_MS = 2000;
export const DEFAULT_STREAM_MAX_LEN = 100_000;
/** XREAD BLOCK time; a stopped tail notices within this long at worst (it is also disconnected). */
const TAIL_BLOCK_MS = 2000;
const TAIL_BATCH = 1000;
const TAIL_MAX_BACKOFF_MS = 2000;
const PROFILE_FIELDS = ["gender", "occupation", "geo", "device"] as const;

const consoleLogger: UserStoreLogger = {
  warn: (fields, message) => console.warn(`user-store: ${message}`, fields),
  error: (fields, message) => console.error(`user-store: ${message}`, fields),
};

// ---- entry encoding (compact JSON arrays) -------------------------------------------------------

function encodeWatch(w: StoredWatch): string {
  return JSON.stringify(w.watchSeconds === undefined ? [w.itemId, w.timestamp] : [w.itemId, w.timestamp, w.watchSeconds]);
}

function encodeSearch(s: StoredSearch): string {
  return JSON.stringify([s.query, s.timestamp]);
}

function encodeImpression(i: StoredImpression): string {
  if (i.requestId !== undefined) return JSON.stringify([i.itemId, i.timestamp, i.position ?? null, i.requestId]);
  if (i.position !== undefined) return JSON.stringify([i.itemId, i.timestamp, i.position]);
  return JSON.stringify([i.itemId, i.timestamp]);
}

function parseEntry(text: string): unknown[] | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) && typeof value[0] === "string" && typeof value[1] === "number" ? value : undefined;
  } catch {
    return undefined;
  }
}

function decodeWatch(text: string): StoredWatch | undefined {
  const a = parseEntry(text);
  if (a === undefined) return undefined;
  const w: { itemId: string; timestamp: number; watchSeconds?: number } = { itemId: a[0] as string, timestamp: a[1] as number };
  if (typeof a[2] === "number") w.watchSeconds = a[2];
  return w;
}

function decodeSearch(text: string): StoredSearch | undefined {
  const a = parseEntry(text);
  return a === undefined ? undefined : { query: a[0] as string, timestamp: a[1] as number };
}

function decodeImpression(text: string): StoredImpression | undefined {
  const a = parseEntry(text);
  if (a === undefined) return undefined;
  const i: { itemId: string; timestamp: number; position?: number; requestId?: string } = {
    itemId: a[0] as string,
    timestamp: a[1] as number,
  };
  if (typeof a[2] === "number") i.position = a[2];
  if (typeof a[3] === "string") i.requestId = a[3];
  return i;
}

function profileFields(profile: UserProfile): string[] {
  const fields: string[] = [];
  if (profile.age !== undefined) fields.push("age", String(profile.age));
  for (const key of PROFILE_FIELDS) {
    const value = profile[key];
    if (value !== undefined) fields.push(key, value);
  }
  return fields;
}

function decodeProfile(hash: Record<string, string>): UserProfile {
  const profile: { age?: number; gender?: string; occupation?: string; geo?: string; device?: string } = {};
  if (hash.age !== undefined) {
    const age = Number(hash.age);
    if (Number.isFinite(age)) profile.age = age;
  }
  for (const key of PROFILE_FIELDS) {
    if (hash[key] !== undefined) profile[key] = hash[key];
  }
  return profile;
}

function decodeList<T>(entries: readonly string[], decode: (text: string) => T | undefined, bad: { count: number }): T[] {
  const out: T[] = [];
  for (const entry of entries) {
    const value = decode(entry);
    if (value === undefined) bad.count++;
    else out.push(value);
  }
  return out;
}

/** Host:port of a redis URL, for messages (never the password). */
function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname === "/" ? "" : parsed.pathname}`;
  } catch {
    return "(unparseable URL)";
  }
}

interface Tail {
  readonly client: Redis;
  stopped: boolean;
  lastId: string;
  readonly ready: Promise<void>;
}

interface Subscriber {
  readonly listener: EventListener;
  readonly onError: ((error: Error) => void) | undefined;
}

export class RedisUserStore implements UserStore {
  readonly backend = "redis" as const;
  readonly limits: UserStoreLimits;
  private readonly streamKey: string;
  private readonly metaKey: string;
  private readonly logKey: string;
  private readonly streamMaxLen: number;
  private readonly userTtlSeconds: number | undefined;
  private readonly logger: UserStoreLogger;
  private readonly where: string;
  private readonly subscribers = new Set<Subscriber>();
  private tail: Tail | undefined;
  private closed = false;
  private lastErrorLogged = 0;

  private constructor(
    private readonly client: Redis,
    private readonly config: RedisConfig,
    limits: UserStoreLimits,
  ) {
    this.limits = limits;
    this.streamKey = `${config.keyPrefix}events`;
    this.metaKey = `${config.keyPrefix}meta`;
    this.logKey = `${config.keyPrefix}events:log`;
    this.streamMaxLen = config.streamMaxLen ?? DEFAULT_STREAM_MAX_LEN;
    this.userTtlSeconds = config.userTtlSeconds;
    this.logger = config.logger ?? consoleLogger;
    this.where = describeUrl(config.url);
  }

  /** Connect (bounded by connectTimeoutMs); throws UserStoreUnavailableError if Redis is down. */
  static async open(config: RedisConfig): Promise<RedisUserStore> {
    const limits = resolveLimits(config.limits);
    if (typeof config.url !== "string" || config.url === "") {
      throw new UserStoreError("INVALID_ARGUMENT", "redis user store: url is required (e.g. redis://127.0.0.1:6379)");
    }
    if (typeof config.keyPrefix !== "string") {
      throw new UserStoreError("INVALID_ARGUMENT", 'redis user store: keyPrefix is required (e.g. "recsys:")');
    }
    for (const [name, value] of [
      ["streamMaxLen", config.streamMaxLen],
      ["userTtlSeconds", config.userTtlSeconds],
      ["connectTimeoutMs", config.connectTimeoutMs],
      ["commandTimeoutMs", config.commandTimeoutMs],
      ["openRetryForMs", config.openRetryForMs],
    ] as const) {
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
        throw new UserStoreError("INVALID_ARGUMENT", `redis user store: ${name} must be a positive integer, got ${value}`);
      }
    }
    const retryUntil = Date.now() + (config.openRetryForMs ?? 60_000);
    let delayMs = 200;
    let client: Redis;
    for (;;) {
      client = connectClient(config, false);
      let lastError: Error | undefined;
      const onError = (error: Error): void => {
        lastError = error;
      };
      client.on("error", onError);
      try {
        await client.connect();
        client.off("error", onError);
        break;
      } catch (error) {
        client.disconnect();
        const reason = lastError?.message ?? (error as Error).message;
        // Slow (a command or the connect timed out) is retried; refused or unknown host is not.
        if (/timed? ?out/i.test(reason) && Date.now() + delayMs < retryUntil) {
          (config.logger ?? consoleLogger).warn(
            { redis: describeUrl(config.url), err: reason, retryInMs: delayMs },
            "Redis slow to answer at start; retrying",
          );
          await sleep(delayMs);
          delayMs = Math.min(5000, delayMs * 2);
          continue;
        }
        throw new UserStoreUnavailableError(`user store: Redis at ${describeUrl(config.url)} is unreachable: ${reason}`, {
          cause: lastError ?? error,
        });
      }
    }
    const store = new RedisUserStore(client, config, limits);
    client.on("error", (error: Error) => store.logClientError(error));
    return store;
  }

  private logClientError(error: Error): void {
    const now = Date.now();
    if (now - this.lastErrorLogged < 10_000) return;
    this.lastErrorLogged = now;
    this.logger.warn({ redis: this.where, err: error.message }, "Redis connection error (reconnecting)");
  }

  private userKey(userId: string, suffix: "w" | "s" | "i" | "p" | "x"): string {
    return `${this.config.keyPrefix}user:{${userId}}:${suffix}`;
  }

  /** Run a MULTI/pipeline and return its replies, mapping failures to typed errors. */
  private async exec(what: string, commands: ChainableCommander): Promise<unknown[]> {
    this.assertOpen();
    let results: [Error | null, unknown][] | null;
    try {
      results = await commands.exec();
    } catch (error) {
      throw this.mapError(what, error);
    }
    if (results === null) throw new UserStoreError("INTERNAL", `user store: Redis ${what}: transaction aborted`);
    return results.map(([error, reply]) => {
      if (error !== null) throw this.mapError(what, error);
      return reply;
    });
  }

  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    this.assertOpen();
    try {
      return await run();
    } catch (error) {
      throw this.mapError(what, error);
    }
  }

  private mapError(what: string, error: unknown): Error {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof ReplyError) {
      return new UserStoreError("INTERNAL", `user store: Redis ${what} failed: ${message}`, { cause: error });
    }
    return new UserStoreUnavailableError(`user store: Redis at ${this.where} unavailable (${what}): ${message}`, {
      cause: error,
    });
  }

  private assertOpen(): void {
    if (this.closed) throw new UserStoreUnavailableError("user store is closed");
  }

  /** ZADD GT of `scored` (score, id, score, id, ...) to the user's watched set, then its bound. */
  private rememberWatched(multi: ChainableCommander, userId: string, scored: (number | string)[]): void {
    const key = this.userKey(userId, "x");
    multi.zadd(key, "GT", ...scored).zremrangebyrank(key, 0, -(this.limits.maxWatches + this.limits.maxEarlierWatches) - 1);
  }

  private expireUser(multi: ChainableCommander, userId: string): void {
    if (this.userTtlSeconds === undefined) return;
    for (const suffix of ["w", "s", "i", "p", "x"] as const) multi.expire(this.userKey(userId, suffix), this.userTtlSeconds);
  }

  // ---- writes ---------------------------------------------------------------------------------

  async append(events: readonly UserEvent[], options: AppendOptions = {}): Promise<void> {
    const checked = checkEvents(events, this.limits);
    const multi = this.client.multi();
    for (const [userId, batch] of groupByUser(checked)) {
      if (batch.watches.length > 0) {
        const key = this.userKey(userId, "w");
        multi.rpush(key, ...batch.watches.map(encodeWatch)).ltrim(key, -this.limits.maxWatches, -1);
        this.rememberWatched(
          multi,
          userId,
          batch.watches.flatMap((w) => [w.timestamp, w.itemId]),
        );
      }
      if (batch.searches.length > 0) {
        const key = this.userKey(userId, "s");
        multi.rpush(key, ...batch.searches.map(encodeSearch)).ltrim(key, -this.limits.maxSearches, -1);
      }
      if (batch.impressions.length > 0) {
        const key = this.userKey(userId, "i");
        multi.rpush(key, ...batch.impressions.map(encodeImpression)).ltrim(key, -this.limits.maxImpressions, -1);
      }
      this.expireUser(multi, userId);
    }
    multi.rpush(this.logKey, ...checked.map((event) => JSON.stringify(event)));
    // Served answers are logged, never delivered as activity.
    const publish = options.publish === false ? [] : checked.filter((e) => e.kind !== "served");
    if (publish.length > 0) {
      multi.xadd(this.streamKey, "MAXLEN", "~", String(this.streamMaxLen), "*", "e", JSON.stringify(publish));
    }
    await this.exec("append", multi);
  }

  async logEvents(events: readonly UserEvent[]): Promise<void> {
    const checked = checkEvents(events, this.limits);
    await this.call("logEvents", () => this.client.rpush(this.logKey, ...checked.map((event) => JSON.stringify(event))));
  }

  async lastSeq(): Promise<number> {
    return this.call("lastSeq", () => this.client.llen(this.logKey));
  }

  async *scanEvents(options: ScanEventsOptions = {}): AsyncGenerator<readonly StoredEvent[]> {
    const afterSeq = options.afterSeq ?? 0;
    const batchSize = options.batchSize ?? DEFAULT_SCAN_BATCH;
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) {
      throw new UserStoreError("INVALID_ARGUMENT", `afterSeq must be an integer >= 0, got ${afterSeq}`);
    }
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
      throw new UserStoreError("INVALID_ARGUMENT", `batchSize must be a positive integer, got ${batchSize}`);
    }
    let next = afterSeq; // list index of seq next + 1
    for (;;) {
      const entries = await this.call("scanEvents", () => this.client.lrange(this.logKey, next, next + batchSize - 1));
      if (entries.length === 0) return;
      const batch: StoredEvent[] = [];
      for (const [i, entry] of entries.entries()) {
        let event: unknown;
        try {
          event = JSON.parse(entry);
        } catch {
          throw new UserStoreError("INTERNAL", `user store: events log entry ${next + i + 1} is not JSON`);
        }
        batch.push({ ...(event as UserEvent), seq: next + i + 1 } as StoredEvent);
      }
      next += entries.length;
      yield batch;
      if (entries.length < batchSize) return;
    }
  }

  async setProfile(userId: string, profile: UserProfile): Promise<void> {
    const id = checkId(userId, "userId", this.limits);
    const fields = profileFields(checkProfile(profile, "profile", this.limits));
    const key = this.userKey(id, "p");
    const multi = this.client.multi().del(key);
    if (fields.length > 0) multi.hset(key, ...fields);
    this.expireUser(multi, id);
    await this.exec("setProfile", multi);
  }

  async putUsers(users: readonly UserSnapshot[]): Promise<void> {
    const checked = checkSnapshots(users, this.limits);
    if (checked.length === 0) return;
    const multi = this.client.multi();
    for (const user of checked) {
      const keys = {
        w: this.userKey(user.userId, "w"),
        s: this.userKey(user.userId, "s"),
        i: this.userKey(user.userId, "i"),
        p: this.userKey(user.userId, "p"),
      };
      multi.del(keys.w, keys.s, keys.i, keys.p, this.userKey(user.userId, "x"));
      if (user.watches.length > 0) multi.rpush(keys.w, ...user.watches.map((w) => encodeWatch(stripWatch(w))));
      // Earlier ids have no time: scored below every watch (timestamps are >= 0), oldest lowest.
      const n = user.earlierWatchedIds.length;
      const scored = [...user.earlierWatchedIds.flatMap((id, i) => [i - n, id]), ...user.watches.flatMap((w) => [w.timestamp, w.itemId])];
      if (scored.length > 0) this.rememberWatched(multi, user.userId, scored);
      if (user.searches.length > 0) multi.rpush(keys.s, ...user.searches.map((s) => encodeSearch(stripSearch(s))));
      if (user.impressions.length > 0) {
        multi.rpush(keys.i, ...user.impressions.map((i) => encodeImpression(stripImpression(i))));
      }
      const fields = profileFields(user.profile);
      if (fields.length > 0) multi.hset(keys.p, ...fields);
      this.expireUser(multi, user.userId);
    }
    await this.exec("putUsers", multi);
  }

  async setMeta(key: string, value: string): Promise<void> {
    const k = checkMetaKey(key);
    const v = checkMetaValue(value);
    await this.call("setMeta", () => this.client.hset(this.metaKey, k, v));
  }

  // ---- reads ----------------------------------------------------------------------------------

  private queueRead(multi: ChainableCommander, userId: string): void {
    multi
      .lrange(this.userKey(userId, "w"), 0, -1)
      .lrange(this.userKey(userId, "s"), 0, -1)
      .lrange(this.userKey(userId, "i"), 0, -1)
      .hgetall(this.userKey(userId, "p"))
      .zcard(this.userKey(userId, "x"));
  }

  /** Replies per user read by `queueRead`. */
  private static readonly READ_REPLIES = 5;

  private decodeState(userId: string, replies: readonly unknown[], at: number): UserState | undefined {
    const watches = replies[at] as string[];
    const searches = replies[at + 1] as string[];
    const impressions = replies[at + 2] as string[];
    const profile = replies[at + 3] as Record<string, string>;
    const watchedCount = replies[at + 4] as number;
    if (watches.length === 0 && searches.length === 0 && impressions.length === 0 && Object.keys(profile).length === 0) {
      return undefined;
    }
    const bad = { count: 0 };
    const recentWatches = decodeList(watches, decodeWatch, bad);
    const state = toUserState(
      userId,
      decodeProfile(profile),
      recentWatches,
      decodeList(searches, decodeSearch, bad),
      decodeList(impressions, decodeImpression, bad),
      watchedCount > new Set(recentWatches.map((w) => w.itemId)).size,
    );
    if (bad.count > 0) this.logger.warn({ userId, entries: bad.count }, "skipped undecodable history entries");
    return state;
  }

  async get(userId: string): Promise<UserState | undefined> {
    const id = checkId(userId, "userId", this.limits);
    const multi = this.client.multi();
    this.queueRead(multi, id);
    const replies = await this.exec("get", multi);
    return this.decodeState(id, replies, 0);
  }

  async getMany(userIds: readonly string[]): Promise<(UserState | undefined)[]> {
    const ids = checkUserIds(userIds, this.limits);
    if (ids.length === 0) return [];
    const multi = this.client.multi();
    for (const id of ids) this.queueRead(multi, id);
    const replies = await this.exec("getMany", multi);
    return ids.map((id, n) => this.decodeState(id, replies, RedisUserStore.READ_REPLIES * n));
  }

  async watchedAmong(userId: string, itemIds: readonly string[]): Promise<ReadonlySet<string>> {
    const id = checkId(userId, "userId", this.limits);
    const ids = checkItemIds(itemIds, this.limits);
    const watched = new Set<string>();
    if (ids.length === 0) return watched;
    const scores = await this.call("watchedAmong", () => this.client.zmscore(this.userKey(id, "x"), ...ids));
    for (const [i, score] of scores.entries()) {
      if (score !== null) watched.add(ids[i]!);
    }
    return watched;
  }

  async getMeta(key: string): Promise<string | undefined> {
    const k = checkMetaKey(key);
    const value = await this.call("getMeta", () => this.client.hget(this.metaKey, k));
    return value ?? undefined;
  }

  // ---- subscription ---------------------------------------------------------------------------

  subscribe(listener: EventListener, options: SubscribeOptions = {}): Subscription {
    this.assertOpen();
    const subscriber: Subscriber = { listener, onError: options.onError };
    this.subscribers.add(subscriber);
    const tail = this.tail ?? this.startTail();
    return {
      ready: tail.ready,
      unsubscribe: () => {
        this.subscribers.delete(subscriber);
        if (this.subscribers.size === 0 && this.tail !== undefined) this.stopTail(this.tail);
      },
    };
  }

  private startTail(): Tail {
    const client = connectClient(this.config, true);
    client.on("error", (error: Error) => this.logClientError(error));
    let markReady!: () => void;
    const tail: Tail = {
      client,
      stopped: false,
      lastId: "",
      ready: new Promise<void>((resolve) => {
        markReady = resolve;
      }),
    };
    this.tail = tail;
    void this.runTail(tail, markReady);
    return tail;
  }

  private stopTail(tail: Tail): void {
    tail.stopped = true;
    if (this.tail === tail) this.tail = undefined;
    tail.client.disconnect();
  }

  private reportTailError(error: unknown): void {
    const wrapped = this.mapError("tail events", error);
    this.logClientError(wrapped);
    for (const subscriber of this.subscribers) {
      try {
        subscriber.onError?.(wrapped);
      } catch (callbackError) {
        this.logger.error({ err: callbackError }, "a user-store onError callback threw");
      }
    }
  }

  /** Find where "now" is in the stream, then XREAD BLOCK from there until stopped. */
  private async runTail(tail: Tail, markReady: () => void): Promise<void> {
    // On failure the client keeps reconnecting in the background; XREAD fails fast until then.
    await tail.client.connect().catch((error: unknown) => {
      if (!tail.stopped) this.reportTailError(error);
    });
    let backoff = 100;
    while (!tail.stopped && tail.lastId === "") {
      try {
        // The main client: fails fast, so a Redis outage is reported instead of waited out.
        const last = (await this.client.xrevrange(this.streamKey, "+", "-", "COUNT", 1)) as [string, string[]][];
        tail.lastId = last.length === 0 ? "0-0" : last[0]![0];
      } catch (error) {
        if (tail.stopped) break;
        this.reportTailError(error);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, TAIL_MAX_BACKOFF_MS);
      }
    }
    markReady();
    backoff = 100;
    while (!tail.stopped) {
      let reply: [string, [string, string[]][]][] | null;
      try {
        reply = (await tail.client.xread("COUNT", TAIL_BATCH, "BLOCK", TAIL_BLOCK_MS, "STREAMS", this.streamKey, tail.lastId)) as
          | [string, [string, string[]][]][]
          | null;
        backoff = 100;
      } catch (error) {
        if (tail.stopped) break;
        this.reportTailError(error);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, TAIL_MAX_BACKOFF_MS);
        continue;
      }
      if (reply === null || tail.stopped) continue;
      for (const [, entries] of reply) {
        for (const [id, fields] of entries) {
          tail.lastId = id;
          const events = this.decodeStreamEntry(id, fields);
          if (events.length > 0) this.deliver(events);
        }
      }
    }
  }

  private decodeStreamEntry(id: string, fields: readonly string[]): UserEvent[] {
    const at = fields.indexOf("e");
    let raw: unknown;
    try {
      raw = at >= 0 && at % 2 === 0 ? JSON.parse(fields[at + 1] ?? "") : undefined;
    } catch {
      raw = undefined;
    }
    if (!Array.isArray(raw)) {
      this.logger.warn({ stream: this.streamKey, id }, "skipped an undecodable stream entry");
      return [];
    }
    const events: UserEvent[] = [];
    for (const [n, value] of raw.entries()) {
      try {
        events.push(checkEvent(value, `entry ${id} event ${n}`, this.limits));
      } catch (error) {
        this.logger.warn({ stream: this.streamKey, id, err: (error as Error).message }, "skipped an invalid streamed event");
      }
    }
    return events;
  }

  private deliver(events: readonly UserEvent[]): void {
    for (const subscriber of this.subscribers) {
      try {
        subscriber.listener(events);
      } catch (error) {
        this.logger.error({ err: error }, "a user-store subscriber threw");
      }
    }
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.subscribers.clear();
    if (this.tail !== undefined) this.stopTail(this.tail);
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  /** Delete every key under this store's prefix (tests and tooling; SCAN-based, not atomic). */
  async deleteAllKeys(): Promise<number> {
    let cursor = "0";
    let deleted = 0;
    do {
      const [next, keys] = await this.call("deleteAllKeys", () =>
        this.client.scan(cursor, "MATCH", `${escapeGlob(this.config.keyPrefix)}*`, "COUNT", 1000),
      );
      cursor = next;
      if (keys.length > 0) deleted += await this.call("deleteAllKeys", () => this.client.unlink(...keys));
    } while (cursor !== "0");
    return deleted;
  }
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A client that fails fast: bounded connect and command time, no offline queue and no resend of
 * unanswered commands after a reconnect (so an append is never applied twice behind our back);
 * it reconnects in the background. The tail's client has no command timeout (XREAD BLOCK waits)
 * but a blocking-command timeout as a safety net against a silently dead connection.
 */
function connectClient(config: RedisConfig, forTail: boolean): Redis {
  const options: RedisOptions = {
    lazyConnect: true,
    connectTimeout: config.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    enableOfflineQueue: false,
    retryStrategy: (attempt: number) => Math.min(attempt * 100, 2000),
  };
  if (forTail) options.blockingTimeout = TAIL_BLOCK_MS + 3000;
  else options.commandTimeout = config.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  return new Redis(config.url, options);
}
