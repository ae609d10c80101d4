/**
 * The catalogue API (CatalogueService, served beside RecommenderService): UpsertItems,
 * DeleteItems, GetItems over the catalogue store (@recsys/user-store `openCatalogueStore`), and
 * what makes a write effective in this replica, the others and the retrieval shards.
 *
 * UpsertItems: stored durably -> the catalogue's metadata (filters, "New from <channel>") and the
 * fresh source (from its upload time) -> an embedding in the retrieval shard that owns the id:
 * the trained one for an item the bundle knows (nothing to send), else one computed from its
 * content (cold-embedding.ts), sent to every shard (each keeps the ids it owns) under the bundle's
 * model version. When it returns, the item is recommendable by every path of this replica.
 *
 * DeleteItems: stored durably -> taken down in this replica -> removed from every shard. Other
 * replicas (Redis backend) learn it from the change stream within a poll, and in the meantime
 * check every answer against the stored takedowns (`takedownCheck`, one SMISMEMBER): no replica
 * returns the item once the call has returned.
 *
 * At start (`load`) the catalogue's items and takedowns are read back from the store; on a new
 * bundle version, items it has no trained embedding for get their content embedding again in the
 * new index (`reembed`).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  MAX_CATALOGUE_ITEMS,
  MAX_UPSERT_ITEMS,
  type CatalogueItemSchema,
  type CatalogueServiceDeleteItemsRequest,
  type CatalogueServiceGetItemsRequest,
  type CatalogueServiceUpsertItemsRequest,
  type RetrievalService,
} from "@recsys/gen";
import {
  RpcError,
  invalidArgument,
  requireMaxItems,
  requireNonEmpty,
  requireValidTimestamp,
  status,
  unavailable,
  type Client,
  type Logger,
} from "@recsys/runtime";
import {
  isUserStoreUnavailable,
  isUserStoreValidationError,
  type CatalogueChange,
  type CatalogueItem,
  type CatalogueItemInput,
  type CatalogueStore,
} from "@recsys/user-store";
import type { BundleInfo, Catalogue } from "./catalogue.js";
import type { ServingClock } from "./clock.js";
import { ColdEmbedder } from "./cold-embedding.js";
import type { OnlineSources } from "./online.js";

export interface CatalogueApiDeps {
  readonly store: CatalogueStore;
  readonly catalogue: Catalogue;
  readonly online: OnlineSources;
  readonly clock: ServingClock;
  /** One client per shard, in shard order. */
  readonly retrieval: readonly Client<typeof RetrievalService.method>[];
  readonly bundle: () => BundleInfo;
  readonly logger: Logger;
  /** Budget of each call to a retrieval shard (ms). */
  readonly retrievalTimeoutMs: number;
}

function storeError(error: unknown, what: string): Error {
  if (isUserStoreValidationError(error)) return invalidArgument(error.message, { cause: error });
  if (isUserStoreUnavailable(error)) return unavailable(`catalogue store unavailable: ${error.message}`, { cause: error });
  return new RpcError(status.INTERNAL, `catalogue store failed (${what})`, { cause: error });
}

function toTimestamp(seconds: number): Timestamp {
  return timestampFromMs(Math.round(seconds * 1000));
}

type ProtoItemInit = MessageInitShape<typeof CatalogueItemSchema>;

export function toProtoItem(item: CatalogueItem): ProtoItemInit {
  return {
    itemId: item.itemId,
    title: item.title ?? "",
    tags: [...(item.tags ?? [])],
    channel: item.channel ?? "",
    ...(item.uploadTimestamp === undefined ? {} : { uploadedAt: toTimestamp(item.uploadTimestamp) }),
    ...(item.durationSeconds === undefined ? {} : { durationSeconds: item.durationSeconds }),
    updatedAt: toTimestamp(item.updatedAt),
  };
}

export class CatalogueApi {
  private embedder: { readonly modelVersion: string; readonly ready: Promise<ColdEmbedder> } | undefined;

  private closed = false;

  constructor(private readonly deps: CatalogueApiDeps) {}

  /** Stops background work (`reembed` retries). */
  close(): void {
    this.closed = true;
  }

  /** Reads every stored item and takedown into the catalogue and the fresh source. */
  async load(): Promise<{ items: number; deleted: number }> {
    let items = 0;
    for await (const batch of this.deps.store.scan()) {
      this.apply({ kind: "upsert", items: batch });
      items += batch.length;
    }
    const deleted = [...(await this.deps.store.deletedIds())];
    if (deleted.length > 0) this.apply({ kind: "delete", ids: deleted });
    return { items, deleted: deleted.length };
  }

  /** A change (this replica's, or another's from the store's change stream) applied locally. */
  apply(change: CatalogueChange): void {
    const { catalogue, online } = this.deps;
    if (change.kind === "upsert") {
      const indices = catalogue.upsert(change.items);
      change.items.forEach((item, k) => online.addItem(indices[k]!, item.uploadTimestamp));
    } else {
      catalogue.deleteIds(change.ids);
    }
  }

  async upsertItems(request: CatalogueServiceUpsertItemsRequest): Promise<{ upserted: number; embedded: number; notEmbedded: number }> {
    requireMaxItems(request.items, MAX_CATALOGUE_ITEMS, "items");
    if (request.items.length === 0) throw invalidArgument("items is empty");
    const now = this.deps.clock.now();
    const inputs: CatalogueItemInput[] = request.items.map((item, i) => {
      const field = `items[${i}]`;
      const input: {
        itemId: string;
        title?: string;
        tags?: string[];
        channel?: string;
        uploadTimestamp: number;
        durationSeconds?: number;
      } = {
        itemId: requireNonEmpty(item.itemId, `${field}.item_id`),
        uploadTimestamp: item.uploadedAt === undefined ? now : requireValidTimestamp(item.uploadedAt, `${field}.uploaded_at`),
      };
      if (item.title !== "") input.title = item.title;
      if (item.tags.length > 0) input.tags = item.tags;
      if (item.channel !== "") input.channel = item.channel;
      if (item.durationSeconds !== undefined) {
        if (!(Number.isFinite(item.durationSeconds) && item.durationSeconds >= 0)) {
          throw invalidArgument(`${field}.duration_seconds must be a finite number >= 0, got ${item.durationSeconds}`);
        }
        input.durationSeconds = item.durationSeconds;
      }
      return input;
    });
    let stored: readonly CatalogueItem[];
    try {
      stored = await this.deps.store.upsert(inputs);
    } catch (error) {
      throw storeError(error, "upsert");
    }
    this.apply({ kind: "upsert", items: stored });
    const { embedded, notEmbedded } = await this.embed(stored);
    return { upserted: stored.length, embedded, notEmbedded };
  }

  async deleteItems(request: CatalogueServiceDeleteItemsRequest): Promise<{ deleted: number }> {
    requireMaxItems(request.itemIds, MAX_CATALOGUE_ITEMS, "item_ids");
    if (request.itemIds.length === 0) throw invalidArgument("item_ids is empty");
    const ids = [...new Set(request.itemIds.map((id, i) => requireNonEmpty(id, `item_ids[${i}]`)))];
    try {
      await this.deps.store.delete(ids);
    } catch (error) {
      throw storeError(error, "delete");
    }
    this.apply({ kind: "delete", ids });
    const failures = await this.toShards((client, options) => client.deleteItems({ itemIds: ids }, options), 1);
    if (failures.length > 0) {
      throw unavailable(
        `the takedown is stored and every orchestrator replica enforces it, but retrieval could not drop the items: ${failures.join("; ")} (retry: DeleteItems is idempotent)`,
      );
    }
    return { deleted: ids.length };
  }

  async getItems(request: CatalogueServiceGetItemsRequest): Promise<{ items: ProtoItemInit[]; deletedItemIds: string[] }> {
    requireMaxItems(request.itemIds, MAX_CATALOGUE_ITEMS, "item_ids");
    const ids = request.itemIds.map((id, i) => requireNonEmpty(id, `item_ids[${i}]`));
    try {
      const [items, deleted] = await Promise.all([this.deps.store.get(ids), this.deps.store.deletedAmong(ids)]);
      return {
        items: items.filter((item): item is CatalogueItem => item !== undefined).map(toProtoItem),
        deletedItemIds: ids.filter((id) => deleted.has(id)),
      };
    } catch (error) {
      throw storeError(error, "get");
    }
  }

  /**
   * Content embeddings of the items the bundle has no trained vector for, sent to every shard.
   * Trained items count as embedded (their trained vector stays).
   */
  private async embed(items: readonly CatalogueItem[]): Promise<{ embedded: number; notEmbedded: number }> {
    const bundle = this.deps.bundle();
    const embedder = await this.embedderFor(bundle);
    let embedded = 0;
    const vectors: { itemId: string; vector: number[] }[] = [];
    for (const item of items) {
      if (bundle.rowOf.has(item.itemId)) {
        embedded++;
        continue;
      }
      const vector = embedder.embed(item);
      if (vector !== undefined) vectors.push({ itemId: item.itemId, vector });
    }
    if (vectors.length > 0) {
      for (let i = 0; i < vectors.length; i += MAX_UPSERT_ITEMS) {
        const chunk = vectors.slice(i, i + MAX_UPSERT_ITEMS);
        const failures = await this.toShards(
          (client, options) => client.upsertItems({ items: chunk, modelVersion: bundle.modelVersion }, options),
          Math.ceil(chunk.length / 1000),
        );
        if (failures.length > 0) {
          throw unavailable(
            `the items are stored and recommendable through the fresh source, but their content embeddings did not reach retrieval: ${failures.join("; ")} (retry: UpsertItems is idempotent)`,
          );
        }
      }
      embedded += vectors.length;
    }
    return { embedded, notEmbedded: items.length - embedded };
  }

  /**
   * Builds the content-embedding table of the current bundle in the background (in slices: the
   * event loop keeps serving), so the first UpsertItems after a start or a swap does not wait.
   */
  prepare(): Promise<void> {
    return this.embedderFor(this.deps.bundle()).then(() => undefined);
  }

  private embedderFor(bundle: BundleInfo): Promise<ColdEmbedder> {
    if (this.embedder?.modelVersion === bundle.modelVersion) return this.embedder.ready;
    const started = performance.now();
    const ready = ColdEmbedder.buildAsync(bundle, this.deps.catalogue).then((embedder) => {
      this.deps.logger.info(
        {
          modelVersion: bundle.modelVersion,
          tokens: embedder.tokenCount,
          seconds: Number(((performance.now() - started) / 1000).toFixed(2)),
        },
        "content-embedding table built",
      );
      return embedder;
    });
    this.embedder = { modelVersion: bundle.modelVersion, ready };
    return ready;
  }

  /** Runs `call` on every shard in parallel; the failures, as "shard-i CODE: message". */
  private async toShards(
    call: (client: Client<typeof RetrievalService.method>, options: { deadline: number }) => Promise<unknown>,
    budgetFactor: number,
  ): Promise<string[]> {
    const timeoutMs = this.deps.retrievalTimeoutMs * Math.max(1, budgetFactor);
    const deadline = Date.now() + timeoutMs;
    const outcomes = await Promise.allSettled(this.deps.retrieval.map((client) => call(client, { deadline })));
    const failures: string[] = [];
    outcomes.forEach((outcome, shard) => {
      if (outcome.status === "rejected") {
        const error = outcome.reason as { code?: number; details?: string; message?: string };
        failures.push(`shard-${shard} ${error.details ?? error.message ?? String(outcome.reason)}`);
      }
    });
    return failures;
  }

  /**
   * At start and after a bundle swap: the content embeddings of every item written through the
   * API (`updatedAt` > 0; a bootstrap's items have 0 and, as before, only their trained vectors)
   * that the bundle has no trained vector for, into the current indexes (idempotent upserts).
   * Retries while shards still serve another version (FAILED_PRECONDITION) or are down, for up
   * to `attempts` × `delayMs`.
   */
  async reembed(attempts = 60, delayMs = 5000): Promise<void> {
    const items: CatalogueItem[] = [];
    for await (const batch of this.deps.store.scan()) for (const item of batch) if (item.updatedAt > 0) items.push(item);
    if (items.length === 0) return;
    for (let attempt = 1; attempt <= attempts && !this.closed; attempt++) {
      try {
        const result = await this.embed(items);
        this.deps.logger.info(
          { ...result, modelVersion: this.deps.bundle().modelVersion },
          "catalogue items re-embedded for the new bundle",
        );
        return;
      } catch (error) {
        if (attempt === attempts || this.closed) {
          this.deps.logger.warn({ err: error }, "catalogue items not re-embedded for the new bundle");
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, delayMs).unref());
      }
    }
  }
}
