/**
 * The retrieval stage: Search / UpsertItems / DeleteItems / DescribeIndex over this shard's index
 * of the bundle at MODEL_PATH, hot-swapped when a new bundle is published there.
 *
 * Writes (upserts, deletes) are serialized and write-ahead: persisted (fsync) first, then applied
 * to the index in one synchronous step, so a call that returned is both visible and durable.
 * Deletes go to the deleted-items list, shared by every model version; upserts to the journal of
 * the model version they were made against (vectors live in one embedding space).
 */
import { mkdir } from "node:fs/promises";
import { AnnError, shardOf, type SearchHit } from "@recsys/ann";
import { MAX_DELETE_ITEMS, MAX_EXCLUDED_ITEMS, MAX_SEARCH_K, MAX_UPSERT_ITEMS, RetrievalService } from "@recsys/gen";
import {
  RpcError,
  failedPrecondition,
  implement,
  invalidArgument,
  requireFinite,
  requireInRange,
  requireMaxItems,
  requireNonEmpty,
  requireUniqueIds,
  status,
  watchModel,
  type ModelWatcher,
  type ServiceRegistration,
  type ServiceSetup,
} from "@recsys/runtime";
import { Counter, Gauge } from "prom-client";
import { STAGE, checkRetrievalConfig, type RetrievalConfig } from "./config.js";
import { DenyList } from "./deny-list.js";
import { appendJsonLines } from "./journal.js";
import { compactShardIndex, openShardIndex, type ShardIndex, type ShardIndexSettings } from "./shard-index.js";
import { VersionWindow } from "./version-window.js";
import { registerRetrainStatusGauges, retrainStatusPath } from "./retrain-status.js";

export interface RetrievalStage {
  readonly services: readonly ServiceRegistration[];
  readonly model: ModelWatcher<ShardIndex>;
  readonly denied: DenyList;
  /** The preloaded next index and the previous one in its grace period (version-window.ts). */
  readonly versions: VersionWindow;
  /** Stops watching the bundle; waits for pending writes. */
  close(): Promise<void>;
}

/** Runs the functions one after another (the write lock). */
class Serializer {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }

  idle(): Promise<void> {
    return this.tail.then(() => undefined);
  }
}

/** An ann error as the gRPC status it names; anything else unchanged. */
function mapAnnError(error: unknown): unknown {
  if (error instanceof AnnError) {
    return new RpcError(error.code === "INVALID_ARGUMENT" ? status.INVALID_ARGUMENT : status.FAILED_PRECONDITION, error.message, {
      cause: error,
    });
  }
  return error;
}

function checkModelVersion(requested: string, shardIndex: ShardIndex, what: string): void {
  if (requested !== "" && requested !== shardIndex.modelVersion) {
    throw failedPrecondition(`${what} from model ${requested}, index from model ${shardIndex.modelVersion}`);
  }
}

function checkVector(vector: readonly number[], dim: number, field: string, modelVersion: string): void {
  if (vector.length !== dim) {
    throw invalidArgument(`${field} has dimension ${vector.length}, expected ${dim} (the index of model ${modelVersion})`);
  }
  for (let i = 0; i < vector.length; i++) requireFinite(vector[i]!, `${field}[${i}]`);
}

/** Opens the deleted-items list and the index (startup fails if it cannot), builds the handlers. */
export async function createRetrievalService(setup: ServiceSetup<RetrievalConfig>): Promise<RetrievalStage> {
  const { config, logger, registry } = setup;
  checkRetrievalConfig(config);
  const shard = config.SHARD_INDEX;
  const shardCount = config.SHARD_COUNT;
  const component = `${STAGE}/shard-${shard}`;
  await mkdir(config.INDEX_DIR, { recursive: true });
  const denied = await DenyList.open(config.INDEX_DIR, shard, shardCount, logger);
  const settings: ShardIndexSettings = {
    indexDir: config.INDEX_DIR,
    shard,
    shardCount,
    kind: config.INDEX_KIND,
    M: config.HNSW_M,
    efConstruction: config.HNSW_EF_CONSTRUCTION,
    ef: config.HNSW_EF,
    tfBackend: config.RECSYS_TF_BACKEND,
    logger,
  };
  const loadedFromFile = new Gauge({
    name: `recsys_${STAGE}_index_loaded_from_file`,
    help: "1 when the served index was loaded from its saved file, 0 when it was built from the bundle at load",
    registers: [registry],
  });
  const builds = new Counter({
    name: `recsys_${STAGE}_index_builds_total`,
    help: "Indexes this shard built from a bundle's item embeddings at load (0 when every load found a saved or prebuilt index)",
    labelNames: ["source"],
    registers: [registry],
  });
  const countLoad = (shardIndex: ShardIndex): void => {
    if (shardIndex.source === "built") builds.inc({ source: "built" });
  };
  builds.inc({ source: "built" }, 0);
  registerRetrainStatusGauges(registry, retrainStatusPath(config.MODEL_PATH));
  // Preloads the next bundle and keeps the previous index answering its version for a while
  // (version-window.ts), so that a rollout has no version-mismatch window.
  let window: VersionWindow | undefined;
  const model = await watchModel<ShardIndex>({
    path: config.MODEL_PATH,
    load: async (dir) => {
      const shardIndex = window === undefined ? await openShardIndex(dir, settings, denied) : await window.load(dir);
      countLoad(shardIndex);
      return shardIndex;
    },
    versionOf: (shardIndex) => shardIndex.modelVersion,
    pollMs: config.MODEL_POLL_INTERVAL,
    retryFailedMs: config.MODEL_RELOAD_RETRY,
    // Deletes made while the new index was loading: apply them before it serves.
    onSwap: (next, previous) => {
      for (const id of denied.values()) next.index.remove(id);
      window?.swapped(previous);
      loadedFromFile.set(next.loadedFromFile ? 1 : 0);
    },
    logger,
    stage: STAGE,
    registry,
  });

  loadedFromFile.set(model.current().loadedFromFile ? 1 : 0);
  window = new VersionWindow({
    modelPath: config.MODEL_PATH,
    open: (dir) => openShardIndex(dir, settings, denied),
    pollMs: config.MODEL_POLL_INTERVAL,
    graceMs: Math.max(60_000, 2 * config.MODEL_POLL_INTERVAL),
    logger,
    current: () => model.current(),
  });
  new Gauge({
    name: `recsys_${STAGE}_index_items`,
    help: "Live items in the served index of this shard",
    registers: [registry],
    collect() {
      this.set(model.current().index.size());
    },
  });
  new Gauge({
    name: `recsys_${STAGE}_deleted_items`,
    help: "Ids on this shard's deleted-items list",
    registers: [registry],
    collect() {
      this.set(denied.size);
    },
  });

  const writes = new Serializer();
  const shardInfo = (shardIndex: ShardIndex) => ({ shardIndex: shard, shardCount, itemCount: shardIndex.index.size() });
  const versionInfo = (shardIndex: ShardIndex) => ({
    component,
    modelVersion: shardIndex.modelVersion,
    // When the index file was written (index.json's savedAt); changes on compaction.
    indexVersion: shardIndex.index.savedAt ?? "",
  });

  const service = implement(RetrievalService, {
    async search(request) {
      // Once: a swap during this call does not affect it. The index of the version the user
      // vector names: the current one, or the preloaded next / the previous one (version-window.ts).
      const picked = window?.pick(request.modelVersion);
      const shardIndex = picked?.index ?? model.current();
      requireInRange(request.k, 1, MAX_SEARCH_K, "k");
      requireMaxItems(request.excludedItemIds, MAX_EXCLUDED_ITEMS, "excluded_item_ids");
      request.excludedItemIds.forEach((id, i) => requireNonEmpty(id, `excluded_item_ids[${i}]`));
      checkModelVersion(request.modelVersion, shardIndex, "user vector");
      checkVector(request.userVector, shardIndex.dim, "user_vector", shardIndex.modelVersion);
      let hits: SearchHit[];
      try {
        const exclude = request.excludedItemIds.length > 0 ? new Set(request.excludedItemIds) : undefined;
        if (picked === undefined || picked.current) hits = shardIndex.index.search(request.userVector, request.k, exclude);
        else {
          // Not the current index: deletes made since it was loaded are filtered here.
          const all = new Set<string>([...(exclude ?? []), ...denied.values()]);
          hits = shardIndex.index.search(request.userVector, request.k, all.size > 0 ? all : undefined);
        }
      } catch (error) {
        throw mapAnnError(error);
      }
      return {
        items: hits.map((hit) => ({ itemId: hit.id, score: hit.score })),
        shard: shardInfo(shardIndex),
        version: versionInfo(shardIndex),
      };
    },

    async upsertItems(request) {
      requireMaxItems(request.items, MAX_UPSERT_ITEMS, "items");
      requireUniqueIds(
        request.items.map((item) => item.itemId),
        "items.item_id",
      );
      return writes.run(async () => {
        const shardIndex = model.current();
        checkModelVersion(request.modelVersion, shardIndex, "item vectors");
        request.items.forEach((item, i) => checkVector(item.vector, shardIndex.dim, `items[${i}].vector`, shardIndex.modelVersion));
        const mine = request.items.filter((item) => shardOf(item.itemId, shardCount) === shard);
        const restored = mine.filter((item) => denied.has(item.itemId)).map((item) => item.itemId);
        // Write-ahead: journal (and lifted deletes) on disk before the index changes.
        await appendJsonLines(
          shardIndex.journalFile,
          mine.map((item) => ({ id: item.itemId, vector: item.vector })),
        );
        await denied.persist([], restored);
        try {
          for (const item of mine) shardIndex.index.upsert(item.itemId, item.vector);
        } catch (error) {
          throw mapAnnError(error);
        }
        denied.apply([], restored);
        shardIndex.journaled += mine.length;
        if (shardIndex.journaled >= config.INDEX_COMPACT_AFTER && shardIndex === model.current()) {
          await compactShardIndex(shardIndex, logger);
        }
        return {
          upserted: mine.length,
          skippedOtherShard: request.items.length - mine.length,
          shard: shardInfo(shardIndex),
          version: versionInfo(shardIndex),
        };
      });
    },

    async deleteItems(request) {
      requireMaxItems(request.itemIds, MAX_DELETE_ITEMS, "item_ids");
      request.itemIds.forEach((id, i) => requireNonEmpty(id, `item_ids[${i}]`));
      return writes.run(async () => {
        const ids = [...new Set(request.itemIds)];
        const mine = ids.filter((id) => shardOf(id, shardCount) === shard);
        const newlyDenied = mine.filter((id) => !denied.has(id));
        await denied.persist(newlyDenied, []);
        // Synchronous from here: the list and the served index change together.
        denied.apply(newlyDenied, []);
        const shardIndex = model.current();
        let deleted = 0;
        for (const id of mine) if (shardIndex.index.remove(id)) deleted++;
        return {
          deleted,
          notFound: ids.length - deleted,
          shard: shardInfo(shardIndex),
          version: versionInfo(shardIndex),
        };
      });
    },

    async describeIndex() {
      const shardIndex = model.current();
      return { shard: shardInfo(shardIndex), version: versionInfo(shardIndex), dimension: shardIndex.dim };
    },
  });

  return {
    services: [service],
    model,
    denied,
    versions: window,
    async close() {
      window?.close();
      await writes.idle();
      await model.close();
    },
  };
}
