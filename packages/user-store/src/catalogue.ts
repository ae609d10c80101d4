/**
 * The catalogue store: the items the system may recommend (title, tags, channel, upload time,
 * duration) and the ids taken down, written through the orchestrator's catalogue API
 * (UpsertItems / DeleteItems) and read back by every replica. Two backends, as the user store:
 * - embedded: one process; a durable log file `catalogue.log` in a directory of its own
 *   (record-file framing; each write fdatasync'ed before it is acknowledged), rewritten
 *   (compacted) when it grows to several times the live catalogue.
 * - redis: replicas sharing a key prefix. `P catalogue:items` (hash id -> JSON item),
 *   `P catalogue:deleted` (set of ids taken down), `P catalogue:changes` (a capped stream of
 *   changes that replicas poll to update their in-memory views).
 *
 * Semantics: `upsert` replaces an item whole (idempotent: the same call twice leaves the same
 * state); upserting a deleted id brings it back (a deliberate re-publication). `delete` removes
 * the item and remembers its id as taken down (`deletedIds`, `deletedAmong`) until it is upserted
 * again. Both resolve once durable (fdatasync'ed / acknowledged by Redis in one MULTI/EXEC), so a
 * `deletedAmong` on any instance sees a delete once its call returned.
 */
import { mkdir, open, rename, stat, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { Redis, type RedisOptions } from "ioredis";
import { UserStoreError, UserStoreUnavailableError, UserStoreValidationError } from "./errors.js";
import { encodeRecord, repairTail, scanRecordFile, syncDirectory, writeFully } from "./record-file.js";
import type { UserStoreLogger } from "./types.js";

export interface CatalogueItem {
  readonly itemId: string;
  readonly title?: string;
  readonly tags?: readonly string[];
  readonly channel?: string;
  /** Unix seconds. */
  readonly uploadTimestamp?: number;
  readonly durationSeconds?: number;
  /** Unix seconds of the write that stored this version (set by `upsert` when absent). */
  readonly updatedAt: number;
}

/** What `upsert` takes: `updatedAt` defaults to the wall clock. */
export type CatalogueItemInput = Omit<CatalogueItem, "updatedAt"> & { readonly updatedAt?: number };

export type CatalogueChange =
  | { readonly kind: "upsert"; readonly items: readonly CatalogueItem[] }
  | { readonly kind: "delete"; readonly ids: readonly string[] };

export interface CatalogueStore {
  readonly backend: "embedded" | "redis";
  /** Store (replace) items; resolves once durable. */
  upsert(items: readonly CatalogueItemInput[]): Promise<readonly CatalogueItem[]>;
  /** Take items down (ids unknown to the catalogue are remembered as taken down too). */
  delete(ids: readonly string[]): Promise<void>;
  /** The live items, in input order (undefined: unknown or taken down). */
  get(ids: readonly string[]): Promise<(CatalogueItem | undefined)[]>;
  /** Every live item, in batches. */
  scan(): AsyncIterable<readonly CatalogueItem[]>;
  /** Every id taken down (and not upserted since). */
  deletedIds(): Promise<ReadonlySet<string>>;
  /** Which of `ids` are taken down now (one round trip for Redis). */
  deletedAmong(ids: readonly string[]): Promise<ReadonlySet<string>>;
  /**
   * Changes made by any instance sharing the store (Redis: every change after open, polled
   * every `pollMs`); embedded: this instance's own, delivered once durable.
   */
  subscribe(listener: (change: CatalogueChange) => void): { unsubscribe(): void };
  close(): Promise<void>;
}

export interface EmbeddedCatalogueConfig {
  readonly backend: "embedded";
  /** Directory of the catalogue log (created if missing). */
  readonly path: string;
  readonly logger?: UserStoreLogger;
}

export interface RedisCatalogueConfig {
  readonly backend: "redis";
  readonly url: string;
  readonly keyPrefix: string;
  readonly connectTimeoutMs?: number;
  readonly commandTimeoutMs?: number;
  /** How often replicas poll the change stream (ms, default 200). */
  readonly pollMs?: number;
  readonly logger?: UserStoreLogger;
}

export type CatalogueStoreConfig = EmbeddedCatalogueConfig | RedisCatalogueConfig;

export const MAX_CATALOGUE_ITEMS_PER_CALL = 10_000;
export const MAX_TITLE_LENGTH = 1024;
export const MAX_TAGS = 64;
export const MAX_TAG_LENGTH = 128;
const MAX_ID_LENGTH = 256;
const MAX_TIMESTAMP = 1e11;
const MAX_DURATION_SECONDS = 1e7;
const SCAN_BATCH = 10_000;
const CHANGES_MAX_LEN = 100_000;

function fail(field: string, message: string): never {
  throw new UserStoreValidationError(field, `${field} ${message}`);
}

function checkItemId(value: unknown, field: string): string {
  if (typeof value !== "string" || value === "") fail(field, "must be a non-empty string");
  if (value.length > MAX_ID_LENGTH) fail(field, `is too long: ${value.length} characters, at most ${MAX_ID_LENGTH}`);
  return value;
}

function checkOptionalText(value: unknown, field: string, max: number): string | undefined {
  if (value === undefined || value === "") return undefined;
  if (typeof value !== "string") fail(field, "must be a string");
  if (value.length > max) fail(field, `is too long: ${value.length} characters, at most ${max}`);
  return value;
}

function checkOptionalNumber(value: unknown, field: string, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > max) {
    fail(field, `must be a finite number in 0..${max}, got ${String(value)}`);
  }
  return value;
}

function checkCount(list: unknown, field: string): unknown[] {
  if (!Array.isArray(list)) fail(field, "must be an array");
  if (list.length === 0) fail(field, "is empty");
  if (list.length > MAX_CATALOGUE_ITEMS_PER_CALL) fail(field, `has ${list.length} entries, at most ${MAX_CATALOGUE_ITEMS_PER_CALL}`);
  return list;
}

/** A normalized copy holding only the known fields; throws UserStoreValidationError. */
export function checkCatalogueItem(value: unknown, field: string, now: number): CatalogueItem {
  if (typeof value !== "object" || value === null) fail(field, "must be an object");
  const v = value as Record<string, unknown>;
  const item: {
    itemId: string;
    title?: string;
    tags?: string[];
    channel?: string;
    uploadTimestamp?: number;
    durationSeconds?: number;
    updatedAt: number;
  } = {
    itemId: checkItemId(v.itemId, `${field}.itemId`),
    updatedAt: checkOptionalNumber(v.updatedAt, `${field}.updatedAt`, MAX_TIMESTAMP) ?? now,
  };
  const title = checkOptionalText(v.title, `${field}.title`, MAX_TITLE_LENGTH);
  if (title !== undefined) item.title = title;
  if (v.tags !== undefined) {
    if (!Array.isArray(v.tags)) fail(`${field}.tags`, "must be an array of strings");
    if (v.tags.length > MAX_TAGS) fail(`${field}.tags`, `has ${v.tags.length} entries, at most ${MAX_TAGS}`);
    const tags = [
      ...new Set(
        v.tags.map((t, i) => checkOptionalText(t, `${field}.tags[${i}]`, MAX_TAG_LENGTH)).filter((t): t is string => t !== undefined),
      ),
    ];
    if (tags.length > 0) item.tags = tags;
  }
  const channel = checkOptionalText(v.channel, `${field}.channel`, MAX_ID_LENGTH);
  if (channel !== undefined) item.channel = channel;
  const upload = checkOptionalNumber(v.uploadTimestamp, `${field}.uploadTimestamp`, MAX_TIMESTAMP);
  if (upload !== undefined) item.uploadTimestamp = upload;
  const duration = checkOptionalNumber(v.durationSeconds, `${field}.durationSeconds`, MAX_DURATION_SECONDS);
  if (duration !== undefined) item.durationSeconds = duration;
  return item;
}

function checkItems(items: unknown): CatalogueItem[] {
  const now = Date.now() / 1000;
  const list = checkCount(items, "items").map((item, i) => checkCatalogueItem(item, `items[${i}]`, now));
  // Within one call the last version of an id wins.
  return [...new Map(list.map((item) => [item.itemId, item])).values()];
}

function checkIds(ids: unknown): string[] {
  return [...new Set(checkCount(ids, "ids").map((id, i) => checkItemId(id, `ids[${i}]`)))];
}

function checkLookupIds(ids: unknown): string[] {
  if (!Array.isArray(ids)) fail("ids", "must be an array");
  if (ids.length > MAX_CATALOGUE_ITEMS_PER_CALL) fail("ids", `has ${ids.length} entries, at most ${MAX_CATALOGUE_ITEMS_PER_CALL}`);
  return ids.map((id, i) => checkItemId(id, `ids[${i}]`));
}

const consoleLogger: UserStoreLogger = {
  warn: (fields, message) => console.warn(`catalogue-store: ${message}`, fields),
  error: (fields, message) => console.error(`catalogue-store: ${message}`, fields),
};

export async function openCatalogueStore(config: CatalogueStoreConfig): Promise<CatalogueStore> {
  switch (config.backend) {
    case "embedded":
      return EmbeddedCatalogueStore.open(config);
    case "redis":
      return RedisCatalogueStore.open(config);
    default:
      throw new UserStoreError(
        "INVALID_ARGUMENT",
        `unknown catalogue store backend ${JSON.stringify((config as { backend?: unknown }).backend)} (expected "embedded" or "redis")`,
      );
  }
}

// ---- embedded -------------------------------------------------------------------------------

const CATALOGUE_MAGIC = Buffer.from("RSCATLG1", "ascii");
const CATALOGUE_FILE = "catalogue.log";
/** Rewrite the log once it exceeds this and three times the bytes of the live state. */
const COMPACT_MIN_BYTES = 64 * 1024 * 1024;

type CatalogueRecord = { readonly t: "u"; readonly i: readonly CatalogueItem[] } | { readonly t: "d"; readonly d: readonly string[] };

export class EmbeddedCatalogueStore implements CatalogueStore {
  readonly backend = "embedded" as const;
  private readonly items = new Map<string, CatalogueItem>();
  private readonly deleted = new Set<string>();
  private readonly listeners = new Set<(change: CatalogueChange) => void>();
  private queue: Promise<void> = Promise.resolve();
  private size = 0;
  private closed = false;
  private failure: Error | undefined;

  private constructor(
    readonly directory: string,
    private handle: FileHandle,
    private readonly logger: UserStoreLogger,
  ) {}

  static async open(config: EmbeddedCatalogueConfig): Promise<EmbeddedCatalogueStore> {
    if (typeof config.path !== "string" || config.path === "") {
      throw new UserStoreError("INVALID_ARGUMENT", "embedded catalogue store: path (a directory) is required");
    }
    await mkdir(config.path, { recursive: true });
    const path = join(config.path, CATALOGUE_FILE);
    const logger = config.logger ?? consoleLogger;
    let handle: FileHandle;
    try {
      handle = await open(path, "r+");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      handle = await open(path, "wx+");
      await writeFully(handle, CATALOGUE_MAGIC, 0);
      await handle.datasync();
      await syncDirectory(config.path);
    }
    const store = new EmbeddedCatalogueStore(config.path, handle, logger);
    try {
      const scan = await scanRecordFile(path, CATALOGUE_MAGIC, (value) => store.apply(value as CatalogueRecord));
      if (scan.problem !== undefined) {
        logger.warn({ file: path, droppedBytes: scan.size - scan.validEnd }, `truncating a torn catalogue log tail: ${scan.problem}`);
      }
      store.size = await repairTail(handle, CATALOGUE_MAGIC, scan);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return store;
  }

  private apply(record: CatalogueRecord): void {
    if (record.t === "u") {
      for (const item of record.i) {
        this.items.set(item.itemId, item);
        this.deleted.delete(item.itemId);
      }
    } else if (record.t === "d") {
      for (const id of record.d) {
        this.items.delete(id);
        this.deleted.add(id);
      }
    } else {
      throw new Error("unknown catalogue record");
    }
  }

  private write(record: CatalogueRecord, change: CatalogueChange): Promise<void> {
    if (this.closed) return Promise.reject(new UserStoreUnavailableError("catalogue store is closed"));
    const bytes = encodeRecord(record);
    const run = async (): Promise<void> => {
      if (this.failure !== undefined) throw this.failure;
      try {
        await writeFully(this.handle, bytes, this.size);
        await this.handle.datasync();
      } catch (error) {
        this.failure = new UserStoreUnavailableError(
          `catalogue log write failed, refusing further writes until reopened: ${(error as Error).message}`,
          { cause: error },
        );
        throw this.failure;
      }
      this.size += bytes.length;
      this.apply(record);
      for (const listener of this.listeners) {
        try {
          listener(change);
        } catch (error) {
          this.logger.error({ err: error }, "a catalogue subscriber threw");
        }
      }
      await this.maybeCompact();
    };
    const result = this.queue.then(run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Rewrite the log with the live state (tmp file, fsync, rename) once it is mostly dead. */
  private async maybeCompact(): Promise<void> {
    if (this.size < COMPACT_MIN_BYTES) return;
    const records: Buffer[] = [CATALOGUE_MAGIC];
    const items = [...this.items.values()];
    for (let i = 0; i < items.length; i += SCAN_BATCH) records.push(encodeRecord({ t: "u", i: items.slice(i, i + SCAN_BATCH) }));
    const deleted = [...this.deleted];
    for (let i = 0; i < deleted.length; i += SCAN_BATCH) records.push(encodeRecord({ t: "d", d: deleted.slice(i, i + SCAN_BATCH) }));
    const bytes = Buffer.concat(records);
    if (this.size < 3 * bytes.length) return;
    const path = join(this.directory, CATALOGUE_FILE);
    const tmp = `${path}.tmp`;
    const out = await open(tmp, "w+");
    try {
      await writeFully(out, bytes, 0);
      await out.datasync();
    } catch (error) {
      await out.close();
      throw error;
    }
    await rename(tmp, path);
    await syncDirectory(this.directory);
    await this.handle.close().catch(() => undefined);
    this.handle = out;
    this.size = bytes.length;
  }

  async upsert(items: readonly CatalogueItemInput[]): Promise<readonly CatalogueItem[]> {
    const checked = checkItems(items);
    await this.write({ t: "u", i: checked }, { kind: "upsert", items: checked });
    return checked;
  }

  async delete(ids: readonly string[]): Promise<void> {
    const checked = checkIds(ids);
    await this.write({ t: "d", d: checked }, { kind: "delete", ids: checked });
  }

  async get(ids: readonly string[]): Promise<(CatalogueItem | undefined)[]> {
    this.assertOpen();
    return checkLookupIds(ids).map((id) => this.items.get(id));
  }

  async *scan(): AsyncGenerator<readonly CatalogueItem[]> {
    this.assertOpen();
    let batch: CatalogueItem[] = [];
    for (const item of [...this.items.values()]) {
      batch.push(item);
      if (batch.length >= SCAN_BATCH) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }

  async deletedIds(): Promise<ReadonlySet<string>> {
    this.assertOpen();
    return new Set(this.deleted);
  }

  async deletedAmong(ids: readonly string[]): Promise<ReadonlySet<string>> {
    this.assertOpen();
    return new Set(ids.filter((id) => this.deleted.has(id)));
  }

  /** Live items held (tests, metrics). */
  get itemCount(): number {
    return this.items.size;
  }

  subscribe(listener: (change: CatalogueChange) => void): { unsubscribe(): void } {
    const entry = (change: CatalogueChange): void => listener(change);
    this.listeners.add(entry);
    return { unsubscribe: () => void this.listeners.delete(entry) };
  }

  private assertOpen(): void {
    if (this.closed) throw new UserStoreUnavailableError("catalogue store is closed");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    this.listeners.clear();
    await this.handle.close().catch(() => undefined);
  }

  async fileSize(): Promise<number> {
    return (await stat(join(this.directory, CATALOGUE_FILE))).size;
  }
}

// ---- redis ----------------------------------------------------------------------------------

export class RedisCatalogueStore implements CatalogueStore {
  readonly backend = "redis" as const;
  private readonly itemsKey: string;
  private readonly deletedKey: string;
  private readonly changesKey: string;
  private readonly listeners = new Set<(change: CatalogueChange) => void>();
  private poller: NodeJS.Timeout | undefined;
  private lastId = "0-0";
  private polling = false;
  private closed = false;
  private lastErrorLogged = 0;

  private constructor(
    private readonly client: Redis,
    private readonly config: RedisCatalogueConfig,
    private readonly logger: UserStoreLogger,
  ) {
    this.itemsKey = `${config.keyPrefix}catalogue:items`;
    this.deletedKey = `${config.keyPrefix}catalogue:deleted`;
    this.changesKey = `${config.keyPrefix}catalogue:changes`;
  }

  static async open(config: RedisCatalogueConfig): Promise<RedisCatalogueStore> {
    if (typeof config.url !== "string" || config.url === "") {
      throw new UserStoreError("INVALID_ARGUMENT", "redis catalogue store: url is required (e.g. redis://127.0.0.1:6379)");
    }
    const options: RedisOptions = {
      lazyConnect: true,
      connectTimeout: config.connectTimeoutMs ?? 2000,
      commandTimeout: config.commandTimeoutMs ?? 2000,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      enableOfflineQueue: false,
      retryStrategy: (attempt: number) => Math.min(attempt * 100, 2000),
    };
    const client = new Redis(config.url, options);
    let lastError: Error | undefined;
    const onError = (error: Error): void => {
      lastError = error;
    };
    client.on("error", onError);
    try {
      await client.connect();
    } catch (error) {
      client.disconnect();
      throw new UserStoreUnavailableError(`catalogue store: Redis is unreachable: ${lastError?.message ?? (error as Error).message}`, {
        cause: error,
      });
    }
    client.off("error", onError);
    const store = new RedisCatalogueStore(client, config, config.logger ?? consoleLogger);
    client.on("error", (error: Error) => store.logError(error));
    // Subscribers get every change made after open (a scan after open may see some twice:
    // upserts and deletes are idempotent and replayed in order).
    const last = await store.run("open", () => client.xrevrange(store.changesKey, "+", "-", "COUNT", 1));
    store.lastId = last[0]?.[0] ?? "0-0";
    return store;
  }

  private logError(error: Error): void {
    const now = Date.now();
    if (now - this.lastErrorLogged < 10_000) return;
    this.lastErrorLogged = now;
    this.logger.warn({ err: error.message }, "catalogue store: Redis error");
  }

  private async run<T>(what: string, f: () => Promise<T>): Promise<T> {
    if (this.closed) throw new UserStoreUnavailableError("catalogue store is closed");
    try {
      return await f();
    } catch (error) {
      throw new UserStoreUnavailableError(`catalogue store: Redis ${what} failed: ${(error as Error).message}`, { cause: error });
    }
  }

  async upsert(items: readonly CatalogueItemInput[]): Promise<readonly CatalogueItem[]> {
    const checked = checkItems(items);
    const fields = checked.flatMap((item) => [item.itemId, JSON.stringify(item)]);
    await this.run("upsert", async () => {
      const results = await this.client
        .multi()
        .hset(this.itemsKey, ...fields)
        .srem(this.deletedKey, ...checked.map((i) => i.itemId))
        .xadd(this.changesKey, "MAXLEN", "~", String(CHANGES_MAX_LEN), "*", "u", JSON.stringify(checked))
        .exec();
      for (const [error] of results ?? []) if (error !== null) throw error;
    });
    return checked;
  }

  async delete(ids: readonly string[]): Promise<void> {
    const checked = checkIds(ids);
    await this.run("delete", async () => {
      const results = await this.client
        .multi()
        .hdel(this.itemsKey, ...checked)
        .sadd(this.deletedKey, ...checked)
        .xadd(this.changesKey, "MAXLEN", "~", String(CHANGES_MAX_LEN), "*", "d", JSON.stringify(checked))
        .exec();
      for (const [error] of results ?? []) if (error !== null) throw error;
    });
  }

  async get(ids: readonly string[]): Promise<(CatalogueItem | undefined)[]> {
    const checked = checkLookupIds(ids);
    if (checked.length === 0) return [];
    const values = await this.run("get", () => this.client.hmget(this.itemsKey, ...checked));
    return values.map((v) => (v === null ? undefined : (JSON.parse(v) as CatalogueItem)));
  }

  async *scan(): AsyncGenerator<readonly CatalogueItem[]> {
    let cursor = "0";
    do {
      const [next, flat] = await this.run("scan", () => this.client.hscan(this.itemsKey, cursor, "COUNT", SCAN_BATCH));
      cursor = next;
      const batch: CatalogueItem[] = [];
      for (let i = 1; i < flat.length; i += 2) batch.push(JSON.parse(flat[i]!) as CatalogueItem);
      if (batch.length > 0) yield batch;
    } while (cursor !== "0");
  }

  async deletedIds(): Promise<ReadonlySet<string>> {
    return new Set(await this.run("deletedIds", () => this.client.smembers(this.deletedKey)));
  }

  async deletedAmong(ids: readonly string[]): Promise<ReadonlySet<string>> {
    if (ids.length === 0) return new Set();
    const flags = await this.run("deletedAmong", () => this.client.smismember(this.deletedKey, ...ids));
    return new Set(ids.filter((_, i) => flags[i] === 1));
  }

  subscribe(listener: (change: CatalogueChange) => void): { unsubscribe(): void } {
    const entry = (change: CatalogueChange): void => listener(change);
    this.listeners.add(entry);
    if (this.poller === undefined) {
      this.poller = setInterval(() => void this.poll(), this.config.pollMs ?? 200);
      this.poller.unref();
    }
    return { unsubscribe: () => void this.listeners.delete(entry) };
  }

  /** Read the change stream from where the last poll stopped ("$": start from now). */
  private async poll(): Promise<void> {
    if (this.polling || this.closed) return;
    this.polling = true;
    try {
      const entries = await this.client.xrange(this.changesKey, `(${this.lastId}`, "+", "COUNT", 1000);
      for (const [id, fields] of entries) {
        this.lastId = id;
        const change: CatalogueChange =
          fields[0] === "u"
            ? { kind: "upsert", items: JSON.parse(fields[1]!) as CatalogueItem[] }
            : { kind: "delete", ids: JSON.parse(fields[1]!) as string[] };
        for (const listener of this.listeners) {
          try {
            listener(change);
          } catch (error) {
            this.logger.error({ err: error }, "a catalogue subscriber threw");
          }
        }
      }
    } catch (error) {
      this.logError(error as Error);
    } finally {
      this.polling = false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.poller !== undefined) clearInterval(this.poller);
    this.listeners.clear();
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  /** Delete this store's keys (tests). */
  async deleteAllKeys(): Promise<void> {
    await this.client.del(this.itemsKey, this.deletedKey, this.changesKey);
  }
}
