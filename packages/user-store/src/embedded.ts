/**
 * The embedded backend: for a single orchestrator process, state in memory, durability from an
 * append-only log in a directory of its own.
 *
 * Files in the directory:
 * - `wal-<gen>.log`: the log; records (see record-file.ts) of appends, profile / user / meta
 *   writes. Only the highest generation is written to.
 * - `snapshot-<gen>.snap`: every user and meta entry as of the end of `wal-<gen>.log`; written
 *   as `.tmp`, fsync'ed, then renamed, so a `.snap` is always complete.
 * - `LOCK`: the pid of the process that has the store open.
 *
 * Writes: every call encodes its records and queues them; one writer at a time takes everything
 * queued, writes it with one `write` and one `fdatasync` (group commit), then applies it to
 * memory, resolves the callers and notifies subscribers. Nothing is visible or acknowledged before
 * it is on disk. After a failed write or fdatasync the store refuses further writes (the file's
 * tail is unknown): reopening it recovers what was acknowledged.
 *
 * Compaction: once the log exceeds `compactBytes` (and the last snapshot's size), the writer
 * starts `wal-<gen+1>.log`, takes a copy of the user map (records are immutable, so this is a
 * shallow copy) and writes `snapshot-<gen>.snap` from it in the background; then the older files
 * are deleted. Appends go on meanwhile.
 *
 * Recovery at open: load the newest snapshot, replay the logs after it in order; a record cut
 * short, failing its CRC or undecodable ends the valid prefix, and the file is truncated there
 * with a warning (a torn tail after a crash; nothing acknowledged is lost since acknowledged
 * records were fsync'ed whole before it).
 */
import { mkdir, open, readdir, readFile, rename, stat, unlink, writeFile, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { UserStoreError, UserStoreUnavailableError } from "./errors.js";
import { DEFAULT_SCAN_BATCH, EventsLog, type EventsLogRecord } from "./events-log.js";
import { encodeRecord, repairTail, scanRecordFile, syncDirectory, writeFully } from "./record-file.js";
import {
  appendBounded,
  appendWatches,
  groupByUser,
  rememberEarlier,
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
  EmbeddedConfig,
  EventListener,
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

const LOG_MAGIC = Buffer.from("RSUSLOG1", "ascii");
const SNAPSHOT_MAGIC = Buffer.from("RSUSNAP1", "ascii");
const LOCK_FILE = "LOCK";
export const DEFAULT_COMPACT_BYTES = 64 * 1024 * 1024;
/** Bytes of snapshot buffered before each write. */
const SNAPSHOT_WRITE_BYTES = 4 * 1024 * 1024;

/** One user's stored state; never mutated (writes replace it), so a map copy is a snapshot. */
interface UserRecord {
  readonly profile: UserProfile;
  readonly watches: readonly StoredWatch[];
  readonly searches: readonly StoredSearch[];
  readonly impressions: readonly StoredImpression[];
  /** Item ids of watches that left `watches`, oldest first (at most limits.maxEarlierWatches). */
  readonly earlier: ReadonlySet<string>;
}

/** A user as a log or snapshot record holds it (`x`: the earlier watched ids, absent when none). */
interface StoredUserRecord extends Omit<UserRecord, "earlier"> {
  readonly x?: readonly string[];
}

/** What a log or snapshot record holds. */
type LogRecord =
  | { readonly t: "e"; readonly e: readonly UserEvent[] }
  /** Events logged only (`logEvents`): they move the seq, not the state. */
  | { readonly t: "l"; readonly e: readonly UserEvent[] }
  /** Snapshots: the seq of the last event the snapshot covers. */
  | { readonly t: "n"; readonly n: number }
  | { readonly t: "p"; readonly u: string; readonly p: UserProfile }
  | { readonly t: "u"; readonly u: string; readonly r: StoredUserRecord }
  | { readonly t: "m"; readonly k: string; readonly v: string };

interface PendingWrite {
  readonly bytes: Buffer;
  readonly records: readonly LogRecord[];
  /** Events to deliver to subscribers once durable (undefined: none). */
  readonly publish: readonly UserEvent[] | undefined;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

interface OpenLog {
  readonly handle: FileHandle;
  readonly generation: number;
  size: number;
}

const EMPTY_RECORD: UserRecord = Object.freeze({ profile: {}, watches: [], searches: [], impressions: [], earlier: new Set<string>() });

function storedRecord(record: UserRecord): StoredUserRecord {
  const { earlier, ...rest } = record;
  return earlier.size === 0 ? rest : { ...rest, x: [...earlier] };
}

const consoleLogger: UserStoreLogger = {
  warn: (fields, message) => console.warn(`user-store: ${message}`, fields),
  error: (fields, message) => console.error(`user-store: ${message}`, fields),
};

function walName(generation: number): string {
  return `wal-${String(generation).padStart(12, "0")}.log`;
}

function snapshotName(generation: number): string {
  return `snapshot-${String(generation).padStart(12, "0")}.snap`;
}

function parseGeneration(name: string, prefix: string, suffix: string): number | undefined {
  if (!name.startsWith(prefix) || !name.endsWith(suffix)) return undefined;
  const digits = name.slice(prefix.length, name.length - suffix.length);
  return /^[0-9]{1,15}$/.test(digits) ? Number(digits) : undefined;
}

function isLogRecord(value: unknown): value is LogRecord {
  if (typeof value !== "object" || value === null) return false;
  const t = (value as { t?: unknown }).t;
  switch (t) {
    case "e":
    case "l":
      return Array.isArray((value as { e?: unknown }).e);
    case "n":
      return Number.isSafeInteger((value as { n?: unknown }).n);
    case "p":
      return typeof (value as { u?: unknown }).u === "string" && typeof (value as { p?: unknown }).p === "object";
    case "u":
      return typeof (value as { u?: unknown }).u === "string" && typeof (value as { r?: unknown }).r === "object";
    case "m":
      return typeof (value as { k?: unknown }).k === "string" && typeof (value as { v?: unknown }).v === "string";
    default:
      return false;
  }
}

async function acquireLock(directory: string): Promise<string> {
  const path = join(directory, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: "wx" });
      return path;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const owner = Number.parseInt((await readFile(path, "utf8").catch(() => "")).trim(), 10);
    if (Number.isInteger(owner) && owner > 0 && processIsAlive(owner)) {
      throw new UserStoreUnavailableError(
        `user store ${directory} is already open in process ${owner}${owner === process.pid ? " (this process)" : ""}`,
      );
    }
    // Left by a process that died (e.g. kill -9): take it over.
    await unlink(path).catch(() => undefined);
  }
  throw new UserStoreUnavailableError(`user store ${directory}: could not take ${path}`);
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export class EmbeddedUserStore implements UserStore {
  readonly backend = "embedded" as const;
  readonly limits: UserStoreLimits;
  private readonly users = new Map<string, UserRecord>();
  private readonly meta = new Map<string, string>();
  private readonly listeners = new Set<EventListener>();
  private pending: PendingWrite[] = [];
  private writing = false;
  private writer: Promise<void> = Promise.resolve();
  private compaction: Promise<void> | undefined;
  private rotateRequested = false;
  private log!: OpenLog;
  private snapshotBytes = 0;
  private failure: Error | undefined;
  private closed = false;
  private lockPath = "";
  private events!: EventsLog;
  /** Seq of the last event applied (appended or logged). */
  private seq = 0;
  /** While recovering: events of the logs beyond the events log's end (to re-log). */
  private recovering: { readonly logSeq: number; readonly missing: EventsLogRecord[] } | undefined;
  /** Counters for tests and metrics: group commits (write + fdatasync), records, snapshots. */
  readonly stats = { commits: 0, records: 0, snapshots: 0 };

  private constructor(
    readonly directory: string,
    limits: UserStoreLimits,
    private readonly compactBytes: number,
    private readonly logger: UserStoreLogger,
  ) {
    this.limits = limits;
  }

  static async open(config: EmbeddedConfig): Promise<EmbeddedUserStore> {
    const limits = resolveLimits(config.limits);
    const compactBytes = config.compactBytes ?? DEFAULT_COMPACT_BYTES;
    if (!Number.isSafeInteger(compactBytes) || compactBytes < 1) {
      throw new UserStoreError("INVALID_ARGUMENT", `compactBytes must be a positive integer, got ${compactBytes}`);
    }
    if (typeof config.path !== "string" || config.path === "") {
      throw new UserStoreError("INVALID_ARGUMENT", "embedded user store: path (a directory) is required");
    }
    await mkdir(config.path, { recursive: true });
    const store = new EmbeddedUserStore(config.path, limits, compactBytes, config.logger ?? consoleLogger);
    store.lockPath = await acquireLock(config.path);
    try {
      await store.recover();
    } catch (error) {
      await unlink(store.lockPath).catch(() => undefined);
      throw error;
    }
    return store;
  }

  // ---- recovery -------------------------------------------------------------------------------

  private async recover(): Promise<void> {
    this.events = await EventsLog.open(this.directory, this.logger);
    try {
      await this.recoverState();
    } catch (error) {
      await this.events.close();
      throw error;
    }
  }

  /**
   * Snapshot + logs, then the events log reconciled with them by seq: both are written by each
   * commit, so a crash may leave either one ahead. Events the logs hold beyond the events log are
   * re-logged; events the events log holds beyond the logs are applied and written to the log.
   */
  private async recoverState(): Promise<void> {
    this.recovering = { logSeq: this.events.lastSeq, missing: [] };
    await this.recoverFiles();
    const { missing } = this.recovering;
    this.recovering = undefined;
    if (missing.length > 0) {
      this.logger.warn({ directory: this.directory, records: missing.length }, "events log behind the user log: re-logging its tail");
      const bytes = Buffer.concat(missing.map((r) => EventsLog.encode(r.s, r.e, r.l === 1)));
      await this.events.write(
        bytes,
        missing.map((r) => r.e.length),
      );
    }
    if (this.events.lastSeq > this.seq) {
      this.logger.warn(
        { directory: this.directory, events: this.events.lastSeq - this.seq },
        "user log behind the events log: applying its tail",
      );
      const records: LogRecord[] = [];
      for await (const batch of this.events.scan(this.seq, this.limits.maxEventsPerAppend)) {
        records.push({ t: "e", e: batch.map(({ seq: _seq, ...event }) => event as UserEvent) });
      }
      const bytes = Buffer.concat(records.map(encodeRecord));
      await writeFully(this.log.handle, bytes, this.log.size);
      await this.log.handle.datasync();
      this.log.size += bytes.length;
      for (const record of records) this.apply(record);
    }
  }

  private async recoverFiles(): Promise<void> {
    const names = await readdir(this.directory);
    const snapshots: number[] = [];
    const wals: number[] = [];
    for (const name of names) {
      const snap = parseGeneration(name, "snapshot-", ".snap");
      if (snap !== undefined) snapshots.push(snap);
      const wal = parseGeneration(name, "wal-", ".log");
      if (wal !== undefined) wals.push(wal);
    }
    const base = snapshots.length === 0 ? -1 : Math.max(...snapshots);
    if (base >= 0) {
      const path = join(this.directory, snapshotName(base));
      const scan = await scanRecordFile(path, SNAPSHOT_MAGIC, (value) => this.replay(value));
      if (scan.problem !== undefined) {
        // Snapshots are renamed into place only once complete and fsync'ed: this is real damage.
        throw new UserStoreError("INTERNAL", `user store snapshot ${path} is corrupt: ${scan.problem}`);
      }
      this.snapshotBytes = scan.size;
    }
    const replay = wals.filter((g) => g > base).sort((a, b) => a - b);
    for (let i = 1; i < replay.length; i++) {
      if (replay[i] !== replay[i - 1]! + 1) {
        this.logger.warn({ directory: this.directory, generations: replay }, "log generations are not contiguous");
      }
    }
    let current: OpenLog | undefined;
    for (const [i, generation] of replay.entries()) {
      const path = join(this.directory, walName(generation));
      const scan = await scanRecordFile(path, LOG_MAGIC, (value) => this.replay(value));
      const last = i === replay.length - 1;
      if (scan.problem !== undefined) {
        const dropped = scan.size - scan.validEnd;
        this.logger.warn(
          { file: path, validBytes: scan.validEnd, droppedBytes: dropped, recordsKept: scan.records, lastLog: last },
          `truncating a torn log tail: ${scan.problem}`,
        );
      }
      const handle = await open(path, "r+");
      let size: number;
      try {
        size = await repairTail(handle, LOG_MAGIC, scan);
      } catch (error) {
        await handle.close();
        throw error;
      }
      if (last) {
        current = { handle, generation, size };
      } else {
        await handle.close();
      }
    }
    this.log = current ?? (await this.createLog(base + 1));
    await this.removeObsolete(base);
  }

  /** Apply a record read back from a log or snapshot (trusted: it was checked when written). */
  private replay(value: unknown): void {
    if (!isLogRecord(value)) throw new Error("unknown record type");
    this.apply(value);
  }

  private apply(record: LogRecord): void {
    if (record.t === "e" || record.t === "l") {
      const first = this.seq + 1;
      this.seq += record.e.length;
      const recovering = this.recovering;
      if (recovering !== undefined && this.seq > recovering.logSeq) {
        const from = Math.max(first, recovering.logSeq + 1);
        recovering.missing.push({ s: from, e: record.e.slice(from - first), ...(record.t === "l" ? { l: 1 as const } : {}) });
      }
    }
    switch (record.t) {
      case "l":
        break;
      case "n":
        this.seq = record.n;
        break;
      case "e":
        for (const [userId, batch] of groupByUser(record.e)) {
          const old = this.users.get(userId) ?? EMPTY_RECORD;
          const watches = appendWatches(old.watches, batch.watches, this.limits.maxWatches);
          this.users.set(userId, {
            profile: old.profile,
            watches: watches.kept,
            searches: appendBounded(old.searches, batch.searches, this.limits.maxSearches),
            impressions: appendBounded(old.impressions, batch.impressions, this.limits.maxImpressions),
            earlier: rememberEarlier(
              old.earlier,
              watches.dropped.map((w) => w.itemId),
              this.limits.maxEarlierWatches,
            ),
          });
        }
        break;
      case "p": {
        const old = this.users.get(record.u) ?? EMPTY_RECORD;
        this.users.set(record.u, { ...old, profile: record.p });
        break;
      }
      case "u": {
        // Watches beyond maxWatches (a store reopened with a smaller limit) join the earlier ones.
        const watches = appendWatches(EMPTY_RECORD.watches, record.r.watches, this.limits.maxWatches);
        const earlier = [...(record.r.x ?? []), ...watches.dropped.map((w) => w.itemId)];
        this.users.set(record.u, {
          profile: record.r.profile,
          watches: watches.kept,
          searches: record.r.searches.slice(-this.limits.maxSearches),
          impressions: record.r.impressions.slice(-this.limits.maxImpressions),
          earlier: rememberEarlier(EMPTY_RECORD.earlier, earlier, this.limits.maxEarlierWatches),
        });
        break;
      }
      case "m":
        this.meta.set(record.k, record.v);
        break;
    }
  }

  private async createLog(generation: number): Promise<OpenLog> {
    const handle = await open(join(this.directory, walName(generation)), "wx+");
    try {
      await writeFully(handle, LOG_MAGIC, 0);
      await handle.datasync();
      await syncDirectory(this.directory);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return { handle, generation, size: LOG_MAGIC.length };
  }

  /** Delete logs covered by snapshot `base`, older snapshots and unfinished snapshot files. */
  private async removeObsolete(base: number): Promise<void> {
    let removed = false;
    for (const name of await readdir(this.directory)) {
      const wal = parseGeneration(name, "wal-", ".log");
      const snap = parseGeneration(name, "snapshot-", ".snap");
      const stale =
        (wal !== undefined && wal <= base) ||
        (snap !== undefined && snap < base) ||
        (name.startsWith("snapshot-") && name.endsWith(".tmp"));
      if (stale) {
        await unlink(join(this.directory, name));
        removed = true;
      }
    }
    if (removed) await syncDirectory(this.directory);
  }

  // ---- writes ---------------------------------------------------------------------------------

  async append(events: readonly UserEvent[], options: AppendOptions = {}): Promise<void> {
    const checked = checkEvents(events, this.limits);
    // Served answers are logged, never delivered as activity.
    const publish = options.publish === false ? [] : checked.filter((e) => e.kind !== "served");
    await this.write([{ t: "e", e: checked }], publish.length === 0 ? undefined : publish);
  }

  async logEvents(events: readonly UserEvent[]): Promise<void> {
    const checked = checkEvents(events, this.limits);
    await this.write([{ t: "l", e: checked }], undefined);
  }

  async lastSeq(): Promise<number> {
    this.assertOpen();
    return this.seq;
  }

  async *scanEvents(options: ScanEventsOptions = {}): AsyncGenerator<readonly StoredEvent[]> {
    this.assertOpen();
    const afterSeq = options.afterSeq ?? 0;
    const batchSize = options.batchSize ?? DEFAULT_SCAN_BATCH;
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) {
      throw new UserStoreError("INVALID_ARGUMENT", `afterSeq must be an integer >= 0, got ${afterSeq}`);
    }
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
      throw new UserStoreError("INVALID_ARGUMENT", `batchSize must be a positive integer, got ${batchSize}`);
    }
    yield* this.events.scan(afterSeq, batchSize);
  }

  async setProfile(userId: string, profile: UserProfile): Promise<void> {
    const id = checkId(userId, "userId", this.limits);
    await this.write([{ t: "p", u: id, p: checkProfile(profile, "profile", this.limits) }], undefined);
  }

  async putUsers(users: readonly UserSnapshot[]): Promise<void> {
    const checked = checkSnapshots(users, this.limits);
    if (checked.length === 0) return;
    const records: LogRecord[] = checked.map((user) => ({
      t: "u",
      u: user.userId,
      r: {
        profile: user.profile,
        watches: user.watches.map(stripWatch),
        searches: user.searches.map(stripSearch),
        impressions: user.impressions.map(stripImpression),
        ...(user.earlierWatchedIds.length === 0 ? {} : { x: user.earlierWatchedIds }),
      },
    }));
    await this.write(records, undefined);
  }

  async setMeta(key: string, value: string): Promise<void> {
    await this.write([{ t: "m", k: checkMetaKey(key), v: checkMetaValue(value) }], undefined);
  }

  private write(records: readonly LogRecord[], publish: readonly UserEvent[] | undefined): Promise<void> {
    if (this.closed) return Promise.reject(new UserStoreUnavailableError("user store is closed"));
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const bytes = records.length === 1 ? encodeRecord(records[0]) : Buffer.concat(records.map(encodeRecord));
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ bytes, records, publish, resolve, reject });
      this.startWriter();
    });
  }

  private startWriter(): void {
    if (this.writing) return;
    this.writing = true;
    this.writer = this.writeLoop();
  }

  /**
   * The single writer: group commit of everything queued, until the queue is empty; log
   * rotation for compaction happens here too, between commits, so no write is ever in flight
   * while the log changes.
   */
  private async writeLoop(): Promise<void> {
    try {
      while (this.pending.length > 0 || this.rotateRequested) {
        if (this.pending.length > 0) await this.commitPending();
        const due = this.log.size > this.compactBytes && this.log.size >= this.snapshotBytes;
        if ((due || this.rotateRequested) && this.failure === undefined) {
          // An explicit request waits for a running compaction; an automatic one skips.
          if (this.compaction !== undefined && this.rotateRequested) await this.compaction;
          if (this.compaction === undefined) {
            this.rotateRequested = false;
            await this.startCompaction();
          }
        }
        if (this.failure !== undefined) this.rotateRequested = false;
      }
    } finally {
      // Runs in the same tick as the last emptiness check: a write queued after it starts a new
      // loop, one queued before it is taken by this one.
      this.writing = false;
    }
  }

  private async commitPending(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    if (this.failure !== undefined) {
      for (const write of batch) write.reject(this.failure);
      return;
    }
    const bytes = batch.length === 1 ? batch[0]!.bytes : Buffer.concat(batch.map((w) => w.bytes));
    // The same events, with their seqs, for the events log (written beside the user log).
    const eventChunks: Buffer[] = [];
    const eventCounts: number[] = [];
    let next = this.seq + 1;
    for (const write of batch) {
      for (const record of write.records) {
        if (record.t !== "e" && record.t !== "l") continue;
        eventChunks.push(EventsLog.encode(next, record.e, record.t === "l"));
        eventCounts.push(record.e.length);
        next += record.e.length;
      }
    }
    try {
      await Promise.all([
        (async () => {
          await writeFully(this.log.handle, bytes, this.log.size);
          await this.log.handle.datasync();
        })(),
        this.events.write(Buffer.concat(eventChunks), eventCounts),
      ]);
    } catch (error) {
      this.failure = new UserStoreUnavailableError(
        `user store log write failed, refusing further writes until reopened: ${(error as Error).message}`,
        { cause: error },
      );
      this.logger.error({ directory: this.directory, err: error }, "log write failed");
      for (const write of batch) write.reject(this.failure);
      return;
    }
    this.log.size += bytes.length;
    this.stats.commits++;
    for (const write of batch) {
      this.stats.records += write.records.length;
      for (const record of write.records) this.apply(record);
    }
    for (const write of batch) write.resolve();
    for (const write of batch) {
      if (write.publish !== undefined) this.notify(write.publish);
    }
  }

  private notify(events: readonly UserEvent[]): void {
    for (const listener of this.listeners) {
      try {
        listener(events);
      } catch (error) {
        this.logger.error({ err: error }, "a user-store subscriber threw");
      }
    }
  }

  // ---- compaction -----------------------------------------------------------------------------

  /**
   * Write a snapshot now and drop the logs it covers. Resolves when done (appends may go on
   * meanwhile). Runs automatically as the log grows; exposed for tests and operations.
   */
  async compact(): Promise<void> {
    this.assertOpen();
    if (this.failure !== undefined) throw this.failure;
    if (this.compaction !== undefined) await this.compaction;
    this.rotateRequested = true;
    this.startWriter();
    await this.writer;
    await this.compaction;
  }

  /** Switch to a new log (called with no write in flight) and snapshot in the background. */
  private async startCompaction(): Promise<void> {
    const old = this.log;
    let next: OpenLog;
    try {
      next = await this.createLog(old.generation + 1);
    } catch (error) {
      this.logger.error({ directory: this.directory, err: error }, "compaction: could not start a new log");
      return;
    }
    this.log = next;
    await old.handle.close().catch(() => undefined);
    const users = new Map(this.users);
    const meta = new Map(this.meta);
    const seq = this.seq;
    this.compaction = this.writeSnapshot(old.generation, users, meta, seq)
      .catch((error: unknown) => {
        this.logger.error({ directory: this.directory, err: error }, "compaction failed; the logs are kept");
      })
      .finally(() => {
        this.compaction = undefined;
      });
  }

  private async writeSnapshot(
    generation: number,
    users: ReadonlyMap<string, UserRecord>,
    meta: ReadonlyMap<string, string>,
    seq: number,
  ): Promise<void> {
    const finalPath = join(this.directory, snapshotName(generation));
    const tmpPath = `${finalPath}.tmp`;
    const handle = await open(tmpPath, "w");
    let size = 0;
    try {
      const seqRecord = encodeRecord({ t: "n", n: seq } satisfies LogRecord);
      let chunks: Buffer[] = [SNAPSHOT_MAGIC, seqRecord];
      let chunkBytes = SNAPSHOT_MAGIC.length + seqRecord.length;
      const flush = async (): Promise<void> => {
        const data = Buffer.concat(chunks, chunkBytes);
        await writeFully(handle, data, size);
        size += data.length;
        chunks = [];
        chunkBytes = 0;
      };
      for (const [k, v] of meta) {
        const bytes = encodeRecord({ t: "m", k, v } satisfies LogRecord);
        chunks.push(bytes);
        chunkBytes += bytes.length;
      }
      for (const [u, r] of users) {
        const bytes = encodeRecord({ t: "u", u, r: storedRecord(r) } satisfies LogRecord);
        chunks.push(bytes);
        chunkBytes += bytes.length;
        if (chunkBytes >= SNAPSHOT_WRITE_BYTES) await flush();
      }
      await flush();
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await rename(tmpPath, finalPath);
    await syncDirectory(this.directory);
    this.snapshotBytes = size;
    this.stats.snapshots++;
    await this.removeObsolete(generation);
  }

  // ---- reads ----------------------------------------------------------------------------------

  async get(userId: string): Promise<UserState | undefined> {
    const id = checkId(userId, "userId", this.limits);
    this.assertOpen();
    return this.stateOf(id);
  }

  async getMany(userIds: readonly string[]): Promise<(UserState | undefined)[]> {
    const ids = checkUserIds(userIds, this.limits);
    this.assertOpen();
    return ids.map((id) => this.stateOf(id));
  }

  async watchedAmong(userId: string, itemIds: readonly string[]): Promise<ReadonlySet<string>> {
    const id = checkId(userId, "userId", this.limits);
    const ids = checkItemIds(itemIds, this.limits);
    this.assertOpen();
    const record = this.users.get(id);
    const watched = new Set<string>();
    if (record === undefined) return watched;
    const recent = new Set(record.watches.map((w) => w.itemId));
    for (const item of ids) {
      if (recent.has(item) || record.earlier.has(item)) watched.add(item);
    }
    return watched;
  }

  async getMeta(key: string): Promise<string | undefined> {
    const k = checkMetaKey(key);
    this.assertOpen();
    return this.meta.get(k);
  }

  private stateOf(userId: string): UserState | undefined {
    const record = this.users.get(userId);
    if (record === undefined) return undefined;
    return toUserState(userId, record.profile, record.watches, record.searches, record.impressions, record.earlier.size > 0);
  }

  private assertOpen(): void {
    if (this.closed) throw new UserStoreUnavailableError("user store is closed");
  }

  /** Number of users held (for tests and metrics). */
  get userCount(): number {
    return this.users.size;
  }

  // ---- subscription and lifecycle -------------------------------------------------------------

  subscribe(listener: EventListener, _options?: SubscribeOptions): Subscription {
    this.assertOpen();
    // A distinct wrapper per call, so subscribing the same function twice gives two deliveries
    // and unsubscribing one leaves the other.
    const entry: EventListener = (events) => listener(events);
    this.listeners.add(entry);
    return {
      ready: Promise.resolve(),
      unsubscribe: () => {
        this.listeners.delete(entry);
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.writing) await this.writer;
    while (this.compaction !== undefined) await this.compaction;
    this.listeners.clear();
    await this.log.handle.close().catch(() => undefined);
    await this.events.close();
    await unlink(this.lockPath).catch(() => undefined);
  }

  /** Sizes of the current log and last snapshot (for tests and metrics). */
  async fileSizes(): Promise<{ log: number; logGeneration: number; snapshot: number }> {
    const logSize = (await stat(join(this.directory, walName(this.log.generation)))).size;
    return { log: logSize, logGeneration: this.log.generation, snapshot: this.snapshotBytes };
  }
}
