/**
 * Catalogue freshness at catalogue scale: how long after UpsertItems returns a new item is
 * returned by GetItems and nominated by the serving replica (fresh source under a channel filter)
 * and by a second replica sharing the Redis stores; and whether a taken-down item is ever
 * nominated or passes the per-answer takedown check after DeleteItems returns.
 *
 *   node packages/orchestrator/dist/catalogue-bench.js [--items 1000000] [--uploads 200] [--dim 64] [--real-shard]
 *
 * What is real: the catalogue stores (embedded log with fdatasync; Redis), the orchestrator's
 * Catalogue and in-process sources over a synthetic catalogue of --items items, the
 * CatalogueService handlers, the content embedding (its table built over the whole catalogue).
 * What is not: the bundle's embeddings are random (latency, not quality: see cold-start-bench)
 * and the retrieval shards are in-process recorders (their UpsertItems is an index insert and a
 * journal append, measured by the retrieval service's own tests), so UpsertItems' figure here
 * excludes the network hop to the shards.
 *
 * With --real-shard the two shards are the real retrieval service (createRetrievalService, served
 * over gRPC on loopback in this process, MODEL_POLL_INTERVAL 0) with an HNSW index (the default
 * HNSW parameters) over the random embeddings, prebuilt into a bundle directory as `recsys
 * retrain` prebuilds it (building takes minutes of a core per shard at 1M items). The DNN path is
 * then measured: from UpsertItems returning until a Search of both shards (k = 10, the bundle's
 * version) with the item's content embedding (the vector the orchestrator sent to the shards) as
 * the user vector returns the item; UpsertItems' figure then includes the gRPC calls to the shards
 * (the index insert and the journal append).
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  CatalogueServiceDeleteItemsRequestSchema,
  CatalogueServiceGetItemsRequestSchema,
  CatalogueServiceUpsertItemsRequestSchema,
  type DeleteItemsRequest,
  RecommendFiltersSchema,
  RetrievalService,
  type UpsertItemsRequest,
} from "@recsys/gen";
import { generateSynthetic, indexInSlices, parseSyntheticSpec } from "@recsys/data";
import { type CallOptions, type Client, connect, createLogger, loadConfig, startService } from "@recsys/runtime";
import { openCatalogueStore, type CatalogueStore } from "@recsys/user-store";
import { CatalogueApi } from "./catalogue-api.js";
import { Catalogue, type BundleInfo } from "./catalogue.js";
import { ServingClock } from "./clock.js";
import { itemFilter } from "./context.js";
import { Exclusion } from "./exclusion.js";
import { OnlineSources } from "./online.js";

function arg(argv: string[], name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
}

const REDIS_URL = process.env.RECSYS_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

function quantiles(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number): string => s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(2);
  return `p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${s[s.length - 1]!.toFixed(2)} ms (n=${s.length})`;
}

async function main(argv: string[]): Promise<void> {
  const itemsN = Number(arg(argv, "items", "1000000"));
  const uploads = Number(arg(argv, "uploads", "200"));
  const dim = Number(arg(argv, "dim", "64"));
  const realShard = argv.includes("--real-shard");
  const logger = createLogger({ service: "catalogue-bench", level: "warn" });
  const t0 = performance.now();
  const spec = `users=1000,items=${itemsN},events=5,seed=3`;
  const dataset = generateSynthetic(`synthetic:${spec}`, parseSyntheticSpec(spec));
  process.stdout.write(
    `catalogue: ${dataset.items.ids.length} items, ${dataset.events.user.length} events (${((performance.now() - t0) / 1000).toFixed(1)} s to generate)\n`,
  );
  const embeddings = new Float32Array(dataset.items.ids.length * dim);
  let s = 7;
  for (let k = 0; k < embeddings.length; k++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0; // Math.imul: a float product loses the low bits (533 distinct rows in 1M)
    embeddings[k] = s / 4294967296 - 0.5;
  }
  const bundle: BundleInfo = {
    modelVersion: "bench-1",
    datasetSpec: dataset.spec,
    datasetFingerprint: dataset.fingerprint,
    holdout: "none",
    dim,
    itemIds: dataset.items.ids,
    embeddings,
    rowOf: await indexInSlices(dataset.items.ids),
  };
  const recorded = { upserts: 0, deletes: 0 };
  const recorder = {
    upsertItems: async (request: { items: unknown[] }) => {
      recorded.upserts += request.items.length;
      return {};
    },
    deleteItems: async (request: { itemIds: unknown[] }) => {
      recorded.deletes += request.itemIds.length;
      return {};
    },
  } as unknown as Client<typeof RetrievalService.method>;

  const dir = await mkdtemp(join(tmpdir(), "catalogue-bench-"));
  // --real-shard: the real retrieval shards; the vector each upserted item was sent with.
  const sentVectors = new Map<string, number[]>();
  let real: RealShards | undefined;
  if (realShard) {
    const t = performance.now();
    real = await startRealShards(join(dir, "shards"), bundle, logger);
    process.stdout.write(
      `real retrieval shards: 2 HNSW indexes over ${itemsN} items built in ${((performance.now() - t) / 1000).toFixed(1)} s\n`,
    );
  }
  const shards: Client<typeof RetrievalService.method>[] =
    real === undefined
      ? [recorder, recorder]
      : real.clients.map(
          (client) =>
            ({
              upsertItems: (request: UpsertItemsRequest, options?: CallOptions) => {
                for (const item of request.items) sentVectors.set(item.itemId, item.vector);
                recorded.upserts += request.items.length;
                return client.upsertItems(request, options);
              },
              deleteItems: (request: DeleteItemsRequest, options?: CallOptions) => {
                recorded.deletes += request.itemIds.length;
                return client.deleteItems(request, options);
              },
            }) as unknown as Client<typeof RetrievalService.method>,
        );
  /** Whether a Search of every shard with `vector` as the user vector returns `id` (rank < 10). */
  const searchFinds = async (id: string, vector: number[]): Promise<boolean> => {
    for (const client of real!.clients) {
      const response = await client.search({ userVector: vector, k: 10, modelVersion: bundle.modelVersion });
      if (response.items.some((item) => item.itemId === id)) return true;
    }
    return false;
  };
  const prefix = `bench:catalogue:${process.pid}:`;
  const stores: CatalogueStore[] = [];
  try {
    for (const backend of ["embedded", "redis"] as const) {
      const open = (): Promise<CatalogueStore> =>
        backend === "embedded"
          ? openCatalogueStore({ backend: "embedded", path: join(dir, "catalogue"), logger })
          : openCatalogueStore({ backend: "redis", url: REDIS_URL, keyPrefix: prefix, pollMs: 50, logger });
      const replica = (store: CatalogueStore) => {
        const catalogue = new Catalogue(dataset);
        const clock = new ServingClock("wall");
        const online = new OnlineSources(catalogue, {
          budgets: { fresh: 50 },
          trendingHalfLifeSeconds: 7 * 86400,
          freshWindowSeconds: 30 * 86400,
        });
        const api = new CatalogueApi({
          store,
          catalogue,
          online,
          clock,
          retrieval: shards,
          bundle: () => bundle,
          logger,
          retrievalTimeoutMs: 5000,
        });
        return { catalogue, online, clock, api };
      };
      const storeA = await open();
      stores.push(storeA);
      const a = replica(storeA);
      let b: ReturnType<typeof replica> | undefined;
      let storeB: CatalogueStore | undefined;
      if (backend === "redis") {
        storeB = await open();
        stores.push(storeB);
        b = replica(storeB);
        const bApi = b.api;
        storeB.subscribe((change) => bApi.apply(change));
      }
      const nominated = (r: ReturnType<typeof replica>, id: string, channel: string): boolean => {
        const keep = itemFilter(r.catalogue, create(RecommendFiltersSchema, { channels: [channel], maxDurationSeconds: 600 }))!;
        const exclusion = new Exclusion([r.catalogue.deleted, r.catalogue.uncatalogued], (i) => !keep(i), r.catalogue.size);
        const run = r.online.run({ history: [], asOf: r.clock.now(), budget: 0, exclude: exclusion });
        const i = r.catalogue.indexOf(id);
        return run.results.some((res) => res.candidates.some((c) => c.item === i));
      };
      // The content-embedding table over the whole catalogue (built in the background at start).
      const warm = performance.now();
      await a.api.prepare();
      const tableMs = performance.now() - warm;
      await a.api.upsertItems(
        create(CatalogueServiceUpsertItemsRequestSchema, {
          items: [{ itemId: `warm-${backend}`, tags: ["music"], channel: "channel1", title: "warm up" }],
        }),
      );
      const upsertMs: number[] = [];
      const getMs: number[] = [];
      const visibleMs: number[] = [];
      const replicaMs: number[] = [];
      const deleteMs: number[] = [];
      const searchMs: number[] = [];
      let searchMissed = 0;
      let outranked = 0;
      let servedAfterDelete = 0;
      let replicaCheckMissed = 0;
      for (let n = 0; n < uploads; n++) {
        const id = `upload-${backend}-${n}`;
        // Content that varies between uploads as a real catalogue's does (two of the catalogue's
        // tags, one of its channels, an existing title's words): identical content vectors, each
        // deleted before the next is upserted, are a degenerate case for the HNSW graph (see
        // docs/live-loop.md).
        const items = dataset.items;
        const channel = items.channel.values[(n * 13) % items.channel.values.length]!;
        const tags = [items.tagValues[n % items.tagValues.length]!, items.tagValues[(n * 7 + 3) % items.tagValues.length]!];
        const title = items.titles[(n * 4999) % items.ids.length] || `fresh video ${n}`;
        const request = create(CatalogueServiceUpsertItemsRequestSchema, {
          items: [
            {
              itemId: id,
              title,
              tags,
              channel,
              durationSeconds: 300,
              uploadedAt: timestampFromMs(Date.now() - 1000),
            },
          ],
        });
        const u0 = performance.now();
        await a.api.upsertItems(request);
        const returned = performance.now();
        upsertMs.push(returned - u0);
        const got = await a.api.getItems(create(CatalogueServiceGetItemsRequestSchema, { itemIds: [id] }));
        if (got.items.length !== 1) throw new Error(`${id} not returned by GetItems`);
        getMs.push(performance.now() - returned);
        while (!nominated(a, id, channel)) await new Promise((r) => setImmediate(r));
        visibleMs.push(performance.now() - returned);
        if (real !== undefined) {
          const vector = sentVectors.get(id);
          if (vector === undefined) throw new Error(`${id}: no content embedding was sent to the shards`);
          // Inner-product retrieval: with this query, the items scoring above the item itself
          // (exact, over the bundle's embeddings) come first whatever the index; an item ranked
          // 10th or lower cannot be in a k = 10 answer, so only the others test the index.
          if (exactRank(bundle.embeddings, bundle.dim, vector) >= 10) outranked++;
          else {
            const deadline = performance.now() + 5000;
            let found = await searchFinds(id, vector);
            while (!found && performance.now() < deadline) found = await searchFinds(id, vector);
            if (found) searchMs.push(performance.now() - returned);
            else searchMissed++;
          }
        }
        if (b !== undefined) {
          const deadline = performance.now() + 5000;
          while (!nominated(b, id, channel) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1));
          replicaMs.push(performance.now() - returned);
        }
        const d0 = performance.now();
        await a.api.deleteItems(create(CatalogueServiceDeleteItemsRequestSchema, { itemIds: [id] }));
        deleteMs.push(performance.now() - d0);
        if (nominated(a, id, channel)) servedAfterDelete++;
        if (storeB !== undefined && !(await storeB.deletedAmong([id])).has(id)) replicaCheckMissed++;
      }
      process.stdout.write(
        [
          `== ${backend} catalogue store, ${dataset.items.ids.length} items, ${uploads} uploads one at a time`,
          `content-embedding table (built once per bundle, in slices, whole catalogue): ${(tableMs / 1000).toFixed(2)} s`,
          real === undefined
            ? `UpsertItems (store + apply + content embedding, shard call in process): ${quantiles(upsertMs)}`
            : `UpsertItems (store + apply + content embedding + UpsertItems of both real shards over loopback gRPC): ${quantiles(upsertMs)}`,
          `UpsertItems returned -> GetItems has it: ${quantiles(getMs)}`,
          `UpsertItems returned -> nominated by this replica (fresh, channel filter): ${quantiles(visibleMs)}`,
          ...(replicaMs.length > 0
            ? [`UpsertItems returned -> nominated by a second replica (change stream, poll 50 ms): ${quantiles(replicaMs)}`]
            : []),
          ...(real === undefined
            ? []
            : [
                `UpsertItems returned -> Search (both shards, k 10, HNSW) near its content embedding returns it: ${searchMs.length > 0 ? quantiles(searchMs) : "never"}; not found within 5 s: ${searchMissed}; not tried (exact inner-product rank of the item for its own vector ≥ 10: ${outranked})`,
              ]),
          `DeleteItems: ${quantiles(deleteMs)}`,
          `taken-down items nominated by this replica after DeleteItems returned: ${servedAfterDelete}`,
          ...(storeB !== undefined
            ? [`taken-down items passing the second replica's per-answer check after DeleteItems returned: ${replicaCheckMissed}`]
            : []),
          `shard calls recorded: ${recorded.upserts} vectors, ${recorded.deletes} deletes`,
        ].join("\n") + "\n",
      );
    }
  } finally {
    await real?.stop();
    for (const store of stores) {
      if ("deleteAllKeys" in store) await (store as { deleteAllKeys(): Promise<void> }).deleteAllKeys();
      await store.close();
    }
    await rm(dir, { recursive: true, force: true });
  }
}

interface RealShards {
  readonly clients: readonly Client<typeof RetrievalService.method>[];
  stop(): Promise<void>;
}

/** How many of the `dim`-wide rows of `embeddings` score above `vector`'s own score with it (inner product). */
function exactRank(embeddings: Float32Array, dim: number, vector: readonly number[]): number {
  let self = 0;
  for (let k = 0; k < dim; k++) self += vector[k]! * vector[k]!;
  let above = 0;
  for (let row = 0; row + dim <= embeddings.length; row += dim) {
    let dot = 0;
    for (let k = 0; k < dim; k++) dot += embeddings[row + k]! * vector[k]!;
    if (dot > self) above++;
  }
  return above;
}

/**
 * Two real retrieval shards over `bundle`'s embeddings: a bundle directory holding only what a
 * shard reads of it (manifest.json with the version and dimension, and the prebuilt HNSW index of
 * each shard), each shard's service started on a loopback port, with a client.
 */
async function startRealShards(dir: string, bundle: BundleInfo, logger: ReturnType<typeof createLogger>): Promise<RealShards> {
  const [{ configSchema, createRetrievalService, prebuildShardIndexes, STAGE }, { Registry }] = await Promise.all([
    import("@recsys/retrieval-service"),
    import("prom-client"),
  ]);
  const bundleDir = join(dir, "bundle");
  await mkdir(bundleDir, { recursive: true });
  await writeFile(join(bundleDir, "manifest.json"), `${JSON.stringify({ modelVersion: bundle.modelVersion, dim: bundle.dim })}\n`);
  await prebuildShardIndexes(
    bundleDir,
    { modelVersion: bundle.modelVersion, itemIds: bundle.itemIds, itemEmbeddings: bundle.embeddings, dim: bundle.dim },
    { shardCount: 2, kind: "hnsw", parallel: 2 },
  );
  const stops: (() => Promise<void>)[] = [];
  const clients: Client<typeof RetrievalService.method>[] = [];
  const stop = async (): Promise<void> => {
    for (const step of stops.splice(0).reverse()) await step();
  };
  try {
    for (let shard = 0; shard < 2; shard++) {
      const config = loadConfig(configSchema, {
        GRPC_HOST: "127.0.0.1",
        GRPC_PORT: "0",
        METRICS_PORT: "0",
        LOG_LEVEL: "warn",
        MODEL_PATH: bundleDir,
        MODEL_POLL_INTERVAL: "0",
        INDEX_DIR: join(dir, "index"),
        INDEX_KIND: "hnsw",
        SHARD_INDEX: String(shard),
        SHARD_COUNT: "2",
      });
      const registry = new Registry();
      const stage = await createRetrievalService({ config, logger, registry });
      stops.push(() => stage.close());
      const service = await startService({ stage: STAGE, config, services: stage.services, logger, registry });
      stops.push(async () => {
        await service.stop();
      });
      const client = connect(RetrievalService, service.address);
      stops.push(async () => client.$close());
      clients.push(client);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { clients, stop };
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`catalogue-bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
