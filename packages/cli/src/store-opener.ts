/**
 * How the CLI opens `store:` datasets (registered with @recsys/data's `registerStoreOpener`):
 *
 * - `store:redis://host:port[/db]?prefix=P`: the user store's `scanEvents` and the catalogue
 *   store under the same prefix (@recsys/user-store), read while the orchestrators write.
 * - `store:DIR`: the embedded stores belong to one orchestrator process, which holds them open
 *   (and locked) while it serves. Training must not wait for it to stop, so the files are read
 *   here without opening the stores: `DIR/events.log` (every event ever appended, never compacted)
 *   and the catalogue log `catalogue.log` found in DIR, DIR/catalogue or DIR/../catalogue. Both
 *   are append-only record files (an 8-byte magic, then [u32 length][u32 CRC-32][JSON] records);
 *   reading stops at a record cut short by a concurrent append, so a read sees a prefix of what
 *   was acknowledged.
 */
import { existsSync } from "node:fs";
import { open, readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { crc32 } from "node:zlib";
import type { StoreCatalogueItem, StoreContents, StoreEvent, StoreLocation, StoreProfile } from "@recsys/data";

const HEADER = 8;
const MAGIC_BYTES = 8;
const EVENTS_MAGIC = "RSUSEVT1";
const CATALOGUE_MAGIC = "RSCATLG1";
export const EVENTS_LOG_NAME = "events.log";
export const CATALOGUE_LOG_NAME = "catalogue.log";

/** Every intact record of a record file, in order (an absent file has none). */
export async function* readRecordFile(path: string, magic: string): AsyncGenerator<unknown> {
  let handle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  try {
    const size = (await handle.stat()).size;
    if (size < MAGIC_BYTES) return;
    const head = Buffer.alloc(MAGIC_BYTES);
    await handle.read(head, 0, MAGIC_BYTES, 0);
    if (head.toString("latin1") !== magic) throw new Error(`${path} is not a ${magic} record file (bad header)`);
    let offset = MAGIC_BYTES;
    const header = Buffer.alloc(HEADER);
    while (offset + HEADER <= size) {
      await handle.read(header, 0, HEADER, offset);
      const length = header.readUInt32LE(0);
      if (offset + HEADER + length > size) return; // cut short: a concurrent append
      const payload = Buffer.alloc(length);
      await handle.read(payload, 0, length, offset + HEADER);
      if (crc32(payload) !== header.readUInt32LE(4)) return;
      yield JSON.parse(payload.toString("utf8")) as unknown;
      offset += HEADER + length;
    }
  } finally {
    await handle.close();
  }
}

function catalogueDir(dir: string): string | undefined {
  for (const candidate of [dir, join(dir, "catalogue"), join(dirname(dir), "catalogue")]) {
    if (existsSync(join(candidate, CATALOGUE_LOG_NAME))) return candidate;
  }
  return undefined;
}

const BATCH = 10_000;
const LOG_MAGIC = "RSUSLOG1";
const SNAPSHOT_MAGIC = "RSUSNAP1";

/**
 * The users' profiles of the embedded user store in `dir`, read in place as its recovery does: the
 * newest `snapshot-<gen>.snap`, then the `wal-<gen>.log` files after it in order (records
 * `{ t: "p", u, p }` set a profile, `{ t: "u", u, r }` replace a whole user). A file compacted away
 * while it is read makes the read start over (at most 3 times).
 */
export async function readEmbeddedProfiles(dir: string): Promise<Map<string, StoreProfile>> {
  for (let attempt = 0; ; attempt++) {
    try {
      const names = await readdir(dir);
      const generation = (name: string, prefix: string, suffix: string): number | undefined => {
        if (!name.startsWith(prefix) || !name.endsWith(suffix)) return undefined;
        const n = Number(name.slice(prefix.length, -suffix.length));
        return Number.isSafeInteger(n) ? n : undefined;
      };
      const snapshots = names.map((n) => generation(n, "snapshot-", ".snap")).filter((g): g is number => g !== undefined);
      const base = snapshots.length === 0 ? -1 : Math.max(...snapshots);
      const wals = names
        .map((n) => generation(n, "wal-", ".log"))
        .filter((g): g is number => g !== undefined && g > base)
        .sort((a, b) => a - b);
      const profiles = new Map<string, StoreProfile>();
      const apply = (value: unknown): void => {
        const record = value as { t?: string; u?: string; p?: StoreProfile; r?: { profile?: StoreProfile } };
        if (record.t === "p" && typeof record.u === "string" && record.p !== undefined) profiles.set(record.u, record.p);
        else if (record.t === "u" && typeof record.u === "string") profiles.set(record.u, record.r?.profile ?? {});
      };
      const pad = (g: number): string => String(g).padStart(12, "0");
      if (base >= 0) for await (const value of readRecordFile(join(dir, `snapshot-${pad(base)}.snap`), SNAPSHOT_MAGIC)) apply(value);
      for (const g of wals) for await (const value of readRecordFile(join(dir, `wal-${pad(g)}.log`), LOG_MAGIC)) apply(value);
      return profiles;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT" || attempt >= 2) throw error;
    }
  }
}

/** Read-only contents of the embedded stores in `dir` (see the module comment). */
export function embeddedStoreContents(dir: string): StoreContents {
  const catDir = catalogueDir(dir);
  let catalogue: { items: Map<string, StoreCatalogueItem>; deleted: Set<string> } | undefined;
  const readCatalogue = async () => {
    if (catalogue !== undefined) return catalogue;
    const items = new Map<string, StoreCatalogueItem>();
    const deleted = new Set<string>();
    if (catDir !== undefined) {
      for await (const value of readRecordFile(join(catDir, CATALOGUE_LOG_NAME), CATALOGUE_MAGIC)) {
        const record = value as { t: "u"; i: StoreCatalogueItem[] } | { t: "d"; d: string[] };
        if (record.t === "u") {
          for (const item of record.i) {
            items.set(item.itemId, item);
            deleted.delete(item.itemId);
          }
        } else if (record.t === "d") {
          for (const id of record.d) {
            items.delete(id);
            deleted.add(id);
          }
        }
      }
    }
    return (catalogue = { items, deleted });
  };
  return {
    async *scanEvents(options = {}) {
      const after = options.afterSeq ?? 0;
      let batch: StoreEvent[] = [];
      for await (const value of readRecordFile(join(dir, EVENTS_LOG_NAME), EVENTS_MAGIC)) {
        const record = value as { s: number; e: Omit<StoreEvent, "seq">[] };
        record.e.forEach((event, i) => {
          if (record.s + i > after) batch.push({ ...event, seq: record.s + i } as StoreEvent);
        });
        if (batch.length >= BATCH) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length > 0) yield batch;
    },
    catalogue: {
      async *scan() {
        const { items } = await readCatalogue();
        const all = [...items.values()];
        for (let i = 0; i < all.length; i += BATCH) yield all.slice(i, i + BATCH);
      },
      deletedIds: async () => (await readCatalogue()).deleted,
    },
    profiles: () => readEmbeddedProfiles(dir),
    close: async () => undefined,
  };
}

/** The opener the CLI registers: embedded files read in place, Redis through the stores. */
export async function openStoreContents(location: StoreLocation): Promise<StoreContents> {
  if (location.backend === "embedded") {
    if (!existsSync(join(location.path, EVENTS_LOG_NAME))) {
      throw new Error(
        `store:${location.path}: no ${EVENTS_LOG_NAME} there (the embedded user store's directory, USER_STORE_PATH, holds it)`,
      );
    }
    return embeddedStoreContents(location.path);
  }
  const { openCatalogueStore, openUserStore } = await import("@recsys/user-store");
  const users = await openUserStore({ backend: "redis", url: location.url, keyPrefix: location.keyPrefix });
  let catalogue;
  try {
    catalogue = await openCatalogueStore({ backend: "redis", url: location.url, keyPrefix: location.keyPrefix });
  } catch (error) {
    await users.close();
    throw error;
  }
  return {
    scanEvents: (options) => users.scanEvents(options) as AsyncIterable<readonly StoreEvent[]>,
    catalogue: { scan: () => catalogue.scan(), deletedIds: () => catalogue.deletedIds() },
    profiles: async (userIds) => {
      const out = new Map<string, StoreProfile>();
      for (let i = 0; i < userIds.length; i += 1000) {
        const batch = userIds.slice(i, i + 1000);
        const states = await users.getMany(batch);
        states.forEach((state, k) => {
          if (state !== undefined) out.set(batch[k]!, state.profile);
        });
      }
      return out;
    },
    close: async () => {
      await Promise.all([users.close(), catalogue.close()]);
    },
  };
}

/**
 * The model time offset (seconds, serving time − model time) the orchestrator recorded in this
 * store for a bundle's dataset (its fingerprint): a historical bootstrap is stored shifted by it
 * under the wall clock (packages/orchestrator/src/model-time.ts). Embedded: `model-time.json`
 * beside the store (the orchestrator holds the store itself open); Redis: the user store's
 * metadata, `orchestrator.model_time_offset/<fingerprint>`. Undefined when none is recorded (a
 * bundle trained on the live log, or a store served under the dataset clock).
 */
export async function readStoreModelTimeOffset(location: StoreLocation, fingerprint: string): Promise<number | undefined> {
  const { MODEL_TIME_FILE, MODEL_TIME_OFFSET_META_KEY } = await import("@recsys/orchestrator");
  let value: unknown;
  if (location.backend === "embedded") {
    try {
      value = (JSON.parse(await readFile(join(location.path, MODEL_TIME_FILE), "utf8")) as Record<string, unknown>)[fingerprint];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  } else {
    const { openUserStore } = await import("@recsys/user-store");
    const users = await openUserStore({ backend: "redis", url: location.url, keyPrefix: location.keyPrefix });
    try {
      const text = await users.getMeta(`${MODEL_TIME_OFFSET_META_KEY}/${fingerprint}`);
      value = text === undefined ? undefined : Number(text);
    } finally {
      await users.close();
    }
  }
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}
