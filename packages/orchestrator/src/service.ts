/**
 * Assembles the orchestrator: bundle (MODEL_PATH) -> dataset (DATASET or the bundle's) ->
 * catalogue and in-process sources from the training rows the bundle's holdout allows -> user
 * store (seeded once) -> serving clock -> clients of the downstream stages -> the
 * RecommenderService handlers.
 */
import { readFile, rename, stat, writeFile } from "node:fs/promises";
import { CandidateGenerationService, CatalogueService, RankingService, RecommenderService, RetrievalService } from "@recsys/gen";
import { lastoutSplit, loadDataset, trainingRows, type Dataset } from "@recsys/data";
import {
  ConfigError,
  connect,
  implement,
  watchModel,
  type Client,
  type ModelWatcher,
  type ServiceRegistration,
  type ServiceSetup,
} from "@recsys/runtime";
import {
  datasetUserEvents,
  datasetUserProfiles,
  openCatalogueStore,
  openUserStore,
  SEED_LOG_META_KEY,
  type CatalogueStore,
  seedFromEvents,
  type Subscription,
  type UserStore,
} from "@recsys/user-store";
import { resolveBudgets, type PipelineBudgets } from "./budgets.js";
import { Catalogue, parseDeletedItems, type BundleInfo } from "./catalogue.js";
import { ServingClock, wallSeconds } from "./clock.js";
import { STAGE, checkOrchestratorConfig, type OrchestratorConfig } from "./config.js";
import { createOrchestratorMetrics, type OrchestratorMetrics } from "./metrics.js";
import { CatalogueApi } from "./catalogue-api.js";
import { OnlineSources } from "./online.js";
import { isAnonymousSession } from "./anonymous.js";
import { ServedLog } from "./served-log.js";
import { loadServingBundle, type ServingBundle } from "./session-model.js";
import {
  CATALOGUE_SEED_META_KEY,
  datasetFromCatalogueStore,
  learnGeographies,
  replayLoggedWatches,
  seedCatalogueStore,
  shiftedEvents,
  shiftedUploads,
} from "./store-state.js";
import { MODEL_TIME_OFFSET_META_KEY } from "./model-time.js";
import { Counter } from "prom-client";
import { join } from "node:path";
import { OwnEvents, applyReplicatedEvents, recordEvents } from "./record-events.js";
import { Recommender } from "./recommend.js";
import { LoadShedder } from "./load-shed.js";
import { StageReadiness } from "./readiness.js";

/** User-store metadata key of the wall time the dataset clock started at (per dataset). */
export const CLOCK_ORIGIN_META_KEY = "orchestrator.clock_origin";

export interface Orchestrator {
  readonly services: readonly ServiceRegistration[];
  readonly catalogue: Catalogue;
  readonly online: OnlineSources;
  readonly clock: ServingClock;
  readonly store: UserStore;
  readonly catalogueStore: CatalogueStore;
  readonly catalogueApi: CatalogueApi;
  /** Undefined when SERVED_LOG=false. */
  readonly servedLog: ServedLog | undefined;
  readonly bundle: ModelWatcher<ServingBundle>;
  readonly metrics: OrchestratorMetrics;
  readonly recommender: Recommender;
  /** The candidate budgets in force (variables, else the ranker's training budgets). */
  readonly budgets: PipelineBudgets;
  /** MAX_IN_FLIGHT bound of Recommend. */
  readonly shedder: LoadShedder;
  /** Readiness from the downstream stages' health (not started: main.ts starts it once serving). */
  readonly readiness: StageReadiness;
  /** Re-reads DELETED_ITEMS_FILE now (what the poller does). */
  reloadDeletedItems(): Promise<void>;
  /** Stops polling and the subscription, closes the clients and the user store. */
  close(): Promise<void>;
}

async function readDeletedItems(path: string): Promise<{ ids: Set<string>; mtimeMs: number }> {
  const info = await stat(path);
  return { ids: parseDeletedItems(await readFile(path, "utf8")), mtimeMs: info.mtimeMs };
}

async function loadSeedDataset(config: OrchestratorConfig, bundle: BundleInfo): Promise<Dataset> {
  const spec = config.DATASET ?? bundle.datasetSpec;
  const from = config.DATASET === undefined ? `the bundle's datasetSpec (MODEL_PATH=${config.MODEL_PATH})` : "DATASET";
  let dataset: Dataset;
  try {
    dataset = await loadDataset(spec);
  } catch (error) {
    throw new ConfigError("DATASET", `DATASET: cannot load "${spec}" (from ${from}): ${(error as Error).message}`);
  }
  if (dataset.fingerprint !== bundle.datasetFingerprint) {
    throw new ConfigError(
      "DATASET",
      `DATASET "${spec}" (fingerprint ${dataset.fingerprint.slice(0, 16)}) is not the dataset the bundle at MODEL_PATH ` +
        `was trained on ("${bundle.datasetSpec}", fingerprint ${bundle.datasetFingerprint.slice(0, 16)})`,
    );
  }
  return dataset;
}

/**
 * Clients of the downstream stages. Without them `createOrchestrator` connects to the configured
 * addresses; the serving benchmark passes in-process clients to measure the pipeline without gRPC.
 */
export interface Downstream {
  readonly candidateGeneration: Client<typeof CandidateGenerationService.method>;
  readonly retrieval: readonly Client<typeof RetrievalService.method>[];
  readonly ranking: Client<typeof RankingService.method>;
}

export async function createOrchestrator(setup: ServiceSetup<OrchestratorConfig>, downstream?: Downstream): Promise<Orchestrator> {
  const { config, logger, registry } = setup;
  checkOrchestratorConfig(config);
  const metrics = createOrchestratorMetrics(registry);
  const closers: (() => unknown)[] = [];
  const close = async (): Promise<void> => {
    for (const step of closers.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        logger.warn({ err: error }, "error while closing");
      }
    }
  };
  try {
    // Set once the catalogue API exists: a new bundle re-embeds the items it was not trained on.
    let onBundleSwap: (() => void) | undefined;
    // The bundle: catalogue ids, dataset and holdout; item embeddings (hot-reloaded) for reasons.
    const bundle = await watchModel<ServingBundle>({
      path: config.MODEL_PATH,
      load: (dir) => loadServingBundle(dir, { minItemCount: config.SESSION_MIN_ITEM_COUNT, logger }),
      retire: (old) => old.session?.dispose(),
      versionOf: (b) => b.modelVersion,
      pollMs: config.MODEL_POLL_INTERVAL,
      logger,
      stage: STAGE,
      registry,
      onSwap: (next) => {
        metrics.setModelVersion("catalogue", next.modelVersion);
        onBundleSwap?.();
      },
    });
    closers.push(() => bundle.close());
    const first = bundle.current();
    metrics.setModelVersion("catalogue", first.modelVersion);

    const loadStarted = performance.now();
    // The stores: the user store (histories, and the events log every source is rebuilt from)
    // and the catalogue store beside it (USER_STORE_PATH/catalogue, or the same Redis prefix).
    const limits = { maxWatches: config.USER_STORE_MAX_WATCHES, maxEarlierWatches: config.USER_STORE_MAX_EARLIER_WATCHES };
    const store = await openUserStore(
      config.USER_STORE === "redis"
        ? { backend: "redis", url: config.REDIS_URL, keyPrefix: config.REDIS_KEY_PREFIX, limits, logger }
        : { backend: "embedded", path: config.USER_STORE_PATH!, limits, logger },
    );
    closers.push(() => store.close());
    const catalogueStore = await openCatalogueStore(
      config.USER_STORE === "redis"
        ? { backend: "redis", url: config.REDIS_URL, keyPrefix: config.REDIS_KEY_PREFIX, logger }
        : { backend: "embedded", path: join(config.USER_STORE_PATH!, "catalogue"), logger },
    );
    closers.push(() => catalogueStore.close());

    // DATASET (or, on stores never seeded, the bundle's datasetSpec) bootstraps the stores once.
    // Without it, the catalogue and the sources come from the stores alone.
    // Seeded: the events log holds a bootstrap history and the catalogue store its items. Stores
    // of an earlier version (seeded users, no history in the log) are bootstrapped again: the
    // seeding then only writes what is missing.
    const historyLogged = (await store.getMeta(SEED_LOG_META_KEY)) !== undefined;
    const catalogueSeeded = (await store.getMeta(CATALOGUE_SEED_META_KEY)) !== undefined;
    const storesSeeded = historyLogged && catalogueSeeded;
    let bootstrap: { dataset: Dataset; rows: Int32Array } | undefined;
    // A bundle trained on the store (`recsys retrain`, `recsys train --dataset store:...`) after
    // DATASET seeded it: DATASET has done its work and is not this bundle's dataset; the stores
    // are the state. (Stores not seeded yet still need a bootstrap and refuse such a bundle.)
    const trainedOnStore = first.datasetSpec.startsWith("store:");
    if (config.DATASET !== undefined && storesSeeded && trainedOnStore) {
      logger.info(
        { dataset: config.DATASET, bundleDataset: first.datasetSpec },
        "DATASET not loaded: the stores are seeded already and the bundle was trained on the store; serving from the stores",
      );
    } else if (config.DATASET !== undefined || !storesSeeded) {
      const dataset = await loadSeedDataset(config, first);
      const split = lastoutSplit(dataset.events, dataset.users.ids.length);
      const rows = trainingRows(split, first.holdout);
      bootstrap = { dataset, rows };
    }
    // Model time (model-time.ts): with the wall clock, a historical bootstrap is stored shifted
    // into real time and the model stages get contexts shifted back onto the bundle's time line.
    let modelTimeOffset = 0;
    if (config.SERVING_CLOCK === "wall") {
      const key = `${MODEL_TIME_OFFSET_META_KEY}/${first.datasetFingerprint}`;
      const stored = Number((await store.getMeta(key)) ?? Number.NaN);
      if (Number.isFinite(stored)) modelTimeOffset = stored;
      else if (bootstrap !== undefined && bootstrap.dataset.fingerprint === first.datasetFingerprint) {
        let end = -Infinity;
        for (const row of bootstrap.rows) end = Math.max(end, bootstrap.dataset.events.timestamp[row]!);
        if (Number.isFinite(end)) modelTimeOffset = Math.round(wallSeconds() - end - 1);
        await store.setMeta(key, String(modelTimeOffset));
      }
      logger.info({ modelTimeOffsetSeconds: modelTimeOffset }, "model time offset");
      // Beside an embedded store, for `recsys retrain`, which reads the store's files while this
      // process holds it: the serving bundle's training window in store time is windowEnd + offset.
      if (modelTimeOffset !== 0 && config.USER_STORE === "embedded" && config.USER_STORE_PATH !== undefined) {
        await writeModelTimeFile(config.USER_STORE_PATH, first.datasetFingerprint, modelTimeOffset);
      }
    }
    if (bootstrap !== undefined) {
      const { dataset, rows } = bootstrap;
      const seedId = `${dataset.fingerprint}/${first.holdout}`;
      if (config.SEED_USER_STORE) {
        const seeded = await seedFromEvents(
          store,
          shiftedEvents(datasetUserEvents(dataset, { watchRows: rows }), modelTimeOffset),
          datasetUserProfiles(dataset),
          {
            seedId,
            onRetry: (retry) => logger.warn({ ...retry }, "user store slow while seeding; retrying"),
          },
        );
        logger.info({ ...seeded }, seeded.skipped ? "user store already seeded" : "user store seeded");
      }
      const items = await seedCatalogueStore(store, catalogueStore, dataset, seedId, modelTimeOffset);
      logger.info(items, items.skipped ? "catalogue store already seeded" : "catalogue store seeded");
    }
    const catalogue = new Catalogue(
      bootstrap === undefined ? await datasetFromCatalogueStore(catalogueStore) : shiftedUploads(bootstrap.dataset, modelTimeOffset),
    );
    const missing = first.itemIds.filter((id) => catalogue.indexOf(id) === undefined).length;
    if (missing > 0) logger.warn({ missing }, "bundle items missing from the catalogue: served without metadata");

    if (config.DELETED_ITEMS_FILE !== undefined) {
      try {
        catalogue.setDeleted((await readDeletedItems(config.DELETED_ITEMS_FILE)).ids);
      } catch (error) {
        throw new ConfigError(
          "DELETED_ITEMS_FILE",
          `DELETED_ITEMS_FILE: cannot read ${config.DELETED_ITEMS_FILE}: ${(error as Error).message}`,
        );
      }
    }

    const budgets = await resolveBudgets(config);
    logger.info({ budgets: budgets.sources, merged: budgets.merged, from: budgets.from }, "candidate budgets");
    const { dnn: _dnn, ...sourceBudgets } = budgets.sources;
    const online = new OnlineSources(catalogue, {
      budgets: sourceBudgets,
      trendingHalfLifeSeconds: config.TRENDING_HALF_LIFE / 1000,
      freshWindowSeconds: config.FRESH_WINDOW / 1000,
      perUserItemCap: config.PER_USER_ITEM_CAP,
      perClientItemCap: config.PER_CLIENT_ITEM_CAP,
    });
    new Counter({
      name: `recsys_${STAGE}_capped_watches_total`,
      help: "Watches left out of the co-watch, popular and trending counts by a cap (cap=user: PER_USER_ITEM_CAP, cap=client: PER_CLIENT_ITEM_CAP), since start",
      labelNames: ["cap"] as const,
      registers: [registry],
      collect() {
        this.reset();
        this.inc({ cap: "user" }, online.capped);
        this.inc({ cap: "client" }, online.clientCapped);
      },
    });
    // Source state: every watch of the events log (the seeded history and every recorded watch);
    // a bootstrap dataset's rows only when the log is empty (SEED_USER_STORE=false).
    let datasetEnd = -Infinity;
    let replayedSeq = 0;
    let sourceEvents = 0;
    if ((await store.getMeta(SEED_LOG_META_KEY)) === undefined && bootstrap !== undefined) {
      // No history in the log (SEED_USER_STORE=false): the dataset's rows, then the log's watches.
      online.seed(bootstrap.dataset, bootstrap.rows, modelTimeOffset);
      for (const row of bootstrap.rows) datasetEnd = Math.max(datasetEnd, bootstrap.dataset.events.timestamp[row]! + modelTimeOffset);
      sourceEvents = bootstrap.rows.length;
    }
    if ((await store.lastSeq()) > 0) {
      const replay = await replayLoggedWatches(store, (watch) => online.observeWatch(watch));
      datasetEnd = Math.max(datasetEnd, replay.latest);
      replayedSeq = replay.lastSeq;
      sourceEvents += replay.watches;
    }
    if (!Number.isFinite(datasetEnd)) datasetEnd = wallSeconds();
    logger.info(
      {
        dataset: bootstrap?.dataset.spec ?? "(stores only)",
        holdout: first.holdout,
        items: catalogue.size,
        users: catalogue.dataset.users.ids.length,
        sourceEvents,
        from: replayedSeq > 0 ? "events log" : "dataset rows",
        sources: online.names,
        seconds: Number(((performance.now() - loadStarted) / 1000).toFixed(2)),
      },
      "catalogue and candidate sources ready",
    );

    // The serving clock; in dataset mode its start and origin are kept in the store (per bundle
    // dataset), so replicas agree on the time and a restart continues it.
    let clock: ServingClock;
    if (config.SERVING_CLOCK === "wall") {
      clock = new ServingClock("wall");
    } else {
      const key = `${CLOCK_ORIGIN_META_KEY}/${first.datasetFingerprint}`;
      let origin = Number(await store.getMeta(key));
      let start = Number(await store.getMeta(`${key}/start`));
      if (!Number.isFinite(origin) || origin <= 0 || !Number.isFinite(start)) {
        origin = wallSeconds();
        start = datasetEnd + 1;
        await store.setMeta(`${key}/start`, String(start));
        await store.setMeta(key, String(origin));
      }
      clock = new ServingClock("dataset", start, origin);
      logger.info({ servingTime: new Date(clock.now() * 1000).toISOString() }, "dataset clock");
    }

    // Users known only from the log: their geography from their profiles, before warm-up.
    const geos = await learnGeographies(store, online, (value) => catalogue.geoCode(value));
    if (geos > 0) logger.info({ users: geos }, "geographies learnt from stored profiles");

    const warmStarted = performance.now();
    online.warmUp(clock.now());
    logger.info({ seconds: Number(((performance.now() - warmStarted) / 1000).toFixed(2)) }, "source state applied");

    // Other replicas' watches (Redis); our own are skipped when they come back.
    let own: OwnEvents | undefined;
    let subscription: Subscription | undefined;
    if (store.backend === "redis") {
      own = new OwnEvents();
      const ownEvents = own;
      subscription = store.subscribe((events) => applyReplicatedEvents(events, ownEvents, online, metrics), {
        onError: (error) => logger.warn({ err: error }, "user store subscription failed (retrying)"),
      });
      closers.push(() => subscription?.unsubscribe());
      await subscription.ready;
      // Watches other replicas logged between the replay and the subscription. One delivered by
      // both is counted once where PER_USER_ITEM_CAP is 1 (the default), else possibly twice.
      if (replayedSeq > 0) {
        for await (const batch of store.scanEvents({ afterSeq: replayedSeq })) {
          for (const event of batch) if (event.kind === "watch") online.observeWatch(event);
        }
      }
    }

    // Taken-down items, re-read when the file changes.
    let deletedMtime = -1;
    const reloadDeletedItems = async (): Promise<void> => {
      if (config.DELETED_ITEMS_FILE === undefined) return;
      try {
        const info = await stat(config.DELETED_ITEMS_FILE);
        if (info.mtimeMs === deletedMtime) return;
        const next = await readDeletedItems(config.DELETED_ITEMS_FILE);
        catalogue.setDeleted(next.ids);
        deletedMtime = next.mtimeMs;
        logger.info({ deleted: next.ids.size }, "taken-down items loaded");
      } catch (error) {
        logger.warn({ err: error, file: config.DELETED_ITEMS_FILE }, "cannot re-read DELETED_ITEMS_FILE: keeping the previous list");
      }
    };
    if (config.DELETED_ITEMS_FILE !== undefined) {
      deletedMtime = (await stat(config.DELETED_ITEMS_FILE)).mtimeMs;
      if (config.DELETED_ITEMS_POLL_INTERVAL > 0) {
        const timer = setInterval(() => void reloadDeletedItems(), config.DELETED_ITEMS_POLL_INTERVAL);
        timer.unref();
        closers.push(() => clearInterval(timer));
      }
    }

    // Downstream stages.
    const { candidateGeneration, retrieval, ranking } = downstream ?? connectDownstream(config);
    if (downstream === undefined) {
      for (const client of [candidateGeneration, ...retrieval, ranking]) closers.push(() => client.$close());
    }

    const catalogueApi = new CatalogueApi({
      store: catalogueStore,
      catalogue,
      online,
      clock,
      retrieval,
      bundle: () => bundle.current(),
      logger,
      retrievalTimeoutMs: Math.max(config.RETRIEVAL_TIMEOUT, 5000),
    });
    closers.push(() => catalogueApi.close());
    const loaded = await catalogueApi.load();
    logger.info(loaded, "catalogue store loaded");
    if (catalogueStore.backend === "redis") {
      const sub = catalogueStore.subscribe((change) => catalogueApi.apply(change));
      closers.push(() => sub.unsubscribe());
    }
    onBundleSwap = () => void catalogueApi.prepare().then(() => catalogueApi.reembed());
    // The content-embedding table, built while the orchestrator starts serving.
    // Then the API's items into the shards' current indexes (a new bundle at start, a shard that
    // lost its journal), in the background.
    catalogueApi
      .prepare()
      .then(() => catalogueApi.reembed())
      .catch((error: unknown) => logger.warn({ err: error }, "content-embedding table not built"));

    let servedLog: ServedLog | undefined;
    if (config.SERVED_LOG) {
      const failures = new Counter({
        name: `recsys_${STAGE}_served_log_failures_total`,
        help: "Recommend answers not written to the served-impressions log, by reason (store, queue_full)",
        labelNames: ["reason"] as const,
        registers: [registry],
      });
      servedLog = new ServedLog(store, logger, failures);
      const log = servedLog;
      // Before the store closes (closers run in reverse).
      closers.push(() => log.close());
    }

    const recommender = new Recommender({
      catalogue,
      online,
      clock,
      store,
      candidateGeneration,
      retrieval,
      ranking,
      metrics,
      bundle: () => bundle.current(),
      session: () => bundle.current().session,
      logger,
      modelTimeOffset,
      ...(catalogueStore.backend === "redis" ? { takedownCheck: (ids: readonly string[]) => catalogueStore.deletedAmong(ids) } : {}),
      budgets: {
        userStoreMs: config.USER_STORE_TIMEOUT,
        candidateGenerationMs: config.CANDIDATE_GENERATION_TIMEOUT,
        retrievalMs: config.RETRIEVAL_TIMEOUT,
        rankingMs: config.RANKING_TIMEOUT,
        marginMs: config.DEADLINE_MARGIN,
        dnn: budgets.sources.dnn,
        merged: budgets.merged,
      },
    });
    const recordDeps = { store, online, clock, metrics, own, maxClockSkewSeconds: config.MAX_EVENT_CLOCK_SKEW / 1000 };
    const shedder = new LoadShedder({ maxInFlight: config.MAX_IN_FLIGHT, retryAfterMs: config.SHED_RETRY_AFTER, registry });
    const readiness = new StageReadiness({
      stages: [
        { name: "candidate_generation", address: config.CANDIDATE_GENERATION_ADDRESS },
        ...config.RETRIEVAL_ADDRESSES.map((address, shard) => ({ name: `retrieval/shard-${shard}`, address })),
        { name: "ranking", address: config.RANKING_ADDRESS },
      ],
      intervalMs: config.STAGE_HEALTH_INTERVAL,
      downAfterMs: config.STAGE_DOWN_NOT_READY_AFTER,
      registry,
    });
    closers.push(() => readiness.stop());
    /** Recommend, then the answer into the served log (the ranker's training data). */
    const recommendAndLog: typeof recommender.recommend = async (request, ctx) => {
      const response = await recommender.recommend(request, ctx);
      // An anonymous session is not logged: the served log lives in the user store (anonymous.ts).
      if (isAnonymousSession(request)) return response;
      servedLog?.log({
        userId: request.userId,
        requestId: response.requestId ?? "",
        timestamp: clock.now(),
        items: (response.items ?? []).map((item) => ({
          itemId: item.itemId ?? "",
          provenance: (item.provenance ?? []).map((p) => ({
            sourceName: p.sourceName ?? "",
            source: Number(p.source ?? 0),
            rank: p.rank ?? 0,
            score: p.score ?? 0,
          })),
        })),
        versions: (response.versions ?? []).map((v) => ({ component: v.component ?? "", modelVersion: v.modelVersion ?? "" })),
      });
      return response;
    };
    const service = implement(RecommenderService, {
      recommend: (request, ctx) => shedder.run("Recommend", () => recommendAndLog(request, ctx)),
      recordEvents: (request) => recordEvents(recordDeps, request),
    });
    const catalogueService = implement(CatalogueService, {
      upsertItems: (request) => catalogueApi.upsertItems(request),
      deleteItems: (request) => catalogueApi.deleteItems(request),
      getItems: (request) => catalogueApi.getItems(request),
    });
    return {
      services: [service, catalogueService],
      catalogue,
      online,
      clock,
      store,
      catalogueStore,
      catalogueApi,
      servedLog,
      bundle,
      metrics,
      recommender,
      budgets,
      shedder,
      readiness,
      reloadDeletedItems,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

function connectDownstream(config: OrchestratorConfig): Downstream {
  const options = { maxMessageBytes: config.GRPC_MAX_MESSAGE_BYTES, transport: config.DOWNSTREAM_TRANSPORT };
  return {
    candidateGeneration: connect(CandidateGenerationService, config.CANDIDATE_GENERATION_ADDRESS, options),
    retrieval: config.RETRIEVAL_ADDRESSES.map((address) => connect(RetrievalService, address, options)),
    ranking: connect(RankingService, config.RANKING_ADDRESS, options),
  };
}

/** File beside an embedded user store: dataset fingerprint -> model time offset (seconds). */
export const MODEL_TIME_FILE = "model-time.json";

async function writeModelTimeFile(dir: string, fingerprint: string, offsetSeconds: number): Promise<void> {
  const path = join(dir, MODEL_TIME_FILE);
  let offsets: Record<string, number> = {};
  try {
    offsets = JSON.parse(await readFile(path, "utf8")) as Record<string, number>;
  } catch {
    // first entry
  }
  if (offsets[fingerprint] === offsetSeconds) return;
  offsets[fingerprint] = offsetSeconds;
  await writeFile(`${path}.tmp`, `${JSON.stringify(offsets)}\n`);
  await rename(`${path}.tmp`, path);
}
