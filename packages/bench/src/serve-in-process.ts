/**
 * The serving pipeline in one process without gRPC, for comparison with the split stack: the
 * real stage handlers (candidate generation, every retrieval shard, ranking: the registrations
 * their `create…Service` functions return) called directly through in-process "clients" (no
 * serialization, no sockets, no deadlines enforced by a transport), behind the orchestrator's own
 * `Recommender`, assembled as `createOrchestrator` assembles it (catalogue, in-process sources
 * seeded from the bundle's training rows, user store, dataset clock). The orchestrator package
 * has no hook to inject clients, so the assembly below mirrors its `service.ts`.
 */
import { stat, readFile } from "node:fs/promises";
import { create, type DescMessage } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";
import { configSchema as cgConfigSchema, createCandidateGenService } from "@recsys/candidate-gen-service";
import { lastoutSplit, loadDataset, trainingRows } from "@recsys/data";
import {
  CandidateGenerationService,
  RankingService,
  RetrievalService,
  RecommendRequestSchema,
  RecommendResponseSchema,
  type RecommendResponse,
} from "@recsys/gen";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  CLOCK_ORIGIN_META_KEY,
  Catalogue,
  OnlineSources,
  Recommender,
  ServingClock,
  configSchema as orchestratorConfigSchema,
  createOrchestratorMetrics,
  loadBundleInfo,
  parseDeletedItems,
  wallSeconds,
} from "@recsys/orchestrator";
import { configSchema as rankingConfigSchema, createRankingService } from "@recsys/ranking-service";
import { configSchema as retrievalConfigSchema, createRetrievalService } from "@recsys/retrieval-service";
import { createLogger, loadConfig, type CallContext, type CallOptions, type Client, type Logger, type ServiceRegistration } from "@recsys/runtime";
import { datasetUserEvents, datasetUserProfiles, openUserStore, seedFromEvents } from "@recsys/user-store";
import { Registry } from "prom-client";

export interface InProcessOptions {
  readonly modelDir: string;
  readonly dataset: string;
  /** The retrieval shards' INDEX_DIR (indexes already built there are loaded, not rebuilt). */
  readonly indexDir: string;
  readonly shards: number;
  /** The embedded user store directory (seeded once, as the orchestrator does). */
  readonly usersDir: string;
  readonly deletedItemsFile?: string;
  /** The orchestrator's environment (candidate budgets etc.), as the stack got it. */
  readonly orchestratorEnv?: Readonly<Record<string, string>>;
}

export interface InProcessPipeline {
  recommend(request: MessageInitShape<typeof RecommendRequestSchema>): Promise<RecommendResponse>;
  close(): Promise<void>;
}

/** What a handler needs of the grpc-js call: its deadline (the deadline helpers read it). */
function callContext(method: string, logger: Logger, deadline: number, signal: AbortSignal | undefined): CallContext {
  const call = { getDeadline: () => (Number.isFinite(deadline) ? new Date(deadline) : Infinity) } as unknown as grpc.ServerUnaryCall<unknown, unknown>;
  return { call, method, logger, deadline, signal: signal ?? new AbortController().signal, metadata: new grpc.Metadata() };
}

/** The registration of `service` among a stage's registrations. */
function registrationOf(registrations: readonly ServiceRegistration[], service: { readonly typeName: string }): ServiceRegistration {
  const found = registrations.find((r) => r.service.typeName === service.typeName);
  if (found === undefined) throw new Error(`no ${service.typeName} among the stage's services`);
  return found;
}

/** A `Client` whose methods call the registration's handlers directly (messages built, never serialized). */
export function inProcessClient<S extends GenServiceMethods>(service: GenService<S>, registration: ServiceRegistration, logger: Logger): Client<S> {
  const client: Record<string, unknown> = { $close: () => undefined, $grpc: undefined };
  for (const [name, method] of Object.entries(service.method as Record<string, { input: DescMessage; output: DescMessage; name: string }>)) {
    const handler = registration.implementation[name];
    if (handler === undefined) throw new Error(`${service.typeName}: no handler ${name}`);
    client[name] = async (init: unknown, options?: CallOptions) => {
      const d = options?.deadline;
      const deadline = d === undefined ? Infinity : d instanceof Date ? d.getTime() : d;
      const request = create(method.input, init as never);
      const response = await handler(request, callContext(`/${service.typeName}/${method.name}`, logger, deadline, options?.signal));
      return create(method.output, response as never);
    };
  }
  return client as unknown as Client<S>;
}

const QUIET = { GRPC_HOST: "127.0.0.1", GRPC_PORT: "0", METRICS_PORT: "0", LOG_LEVEL: "silent", MODEL_POLL_INTERVAL: "0" };

export async function startInProcessPipeline(options: InProcessOptions): Promise<InProcessPipeline> {
  const logger = createLogger({ service: "bench_in_process", level: "silent" });
  const closers: (() => Promise<unknown> | unknown)[] = [];
  const close = async (): Promise<void> => {
    for (const step of closers.splice(0).reverse()) await step();
  };
  try {
    const cg = await createCandidateGenService({
      config: loadConfig(cgConfigSchema, { ...QUIET, MODEL_PATH: options.modelDir }),
      logger,
      registry: new Registry(),
    });
    closers.push(() => cg.close());
    const shards = [];
    for (let shard = 0; shard < options.shards; shard++) {
      const stage = await createRetrievalService({
        config: loadConfig(retrievalConfigSchema, {
          ...QUIET,
          MODEL_PATH: options.modelDir,
          INDEX_DIR: options.indexDir,
          SHARD_INDEX: String(shard),
          SHARD_COUNT: String(options.shards),
        }),
        logger,
        registry: new Registry(),
      });
      closers.push(() => stage.close());
      shards.push(stage);
    }
    const ranking = await createRankingService({
      config: loadConfig(rankingConfigSchema, { ...QUIET, MODEL_PATH: options.modelDir }),
      logger,
      registry: new Registry(),
    });
    closers.push(() => ranking.close());

    // The orchestrator's assembly (see packages/orchestrator/src/service.ts).
    const config = loadConfig(orchestratorConfigSchema, {
      ...QUIET,
      CANDIDATE_GENERATION_ADDRESS: "in-process",
      RETRIEVAL_ADDRESSES: "in-process",
      RANKING_ADDRESS: "in-process",
      MODEL_PATH: options.modelDir,
      DATASET: options.dataset,
      USER_STORE_PATH: options.usersDir,
      ...options.orchestratorEnv,
    });
    const bundle = await loadBundleInfo(options.modelDir);
    const dataset = await loadDataset(options.dataset);
    if (dataset.fingerprint !== bundle.datasetFingerprint) throw new Error(`${options.dataset} is not the dataset the bundle was trained on`);
    const rows = trainingRows(lastoutSplit(dataset.events, dataset.users.ids.length), bundle.holdout);
    const catalogue = new Catalogue(dataset);
    if (options.deletedItemsFile !== undefined) {
      await stat(options.deletedItemsFile);
      catalogue.setDeleted(parseDeletedItems(await readFile(options.deletedItemsFile, "utf8")));
    }
    const online = new OnlineSources(catalogue, {
      budgets: {
        "co-watch": config.CANDIDATES_CO_WATCH,
        popular: config.CANDIDATES_POPULAR,
        trending: config.CANDIDATES_TRENDING,
        "trending-geo": config.CANDIDATES_TRENDING_GEO,
        fresh: config.CANDIDATES_FRESH,
      },
      trendingHalfLifeSeconds: config.TRENDING_HALF_LIFE / 1000,
      freshWindowSeconds: config.FRESH_WINDOW / 1000,
    });
    online.seed(dataset, rows);
    let datasetEnd = -Infinity;
    for (const row of rows) datasetEnd = Math.max(datasetEnd, dataset.events.timestamp[row]!);
    const store = await openUserStore({ backend: "embedded", path: options.usersDir, logger });
    closers.push(() => store.close());
    await seedFromEvents(store, datasetUserEvents(dataset, { watchRows: rows }), datasetUserProfiles(dataset), {
      seedId: `${dataset.fingerprint}/${bundle.holdout}`,
    });
    const key = `${CLOCK_ORIGIN_META_KEY}/${dataset.fingerprint}`;
    let origin = Number(await store.getMeta(key));
    if (!Number.isFinite(origin) || origin <= 0) {
      origin = wallSeconds();
      await store.setMeta(key, String(origin));
    }
    const clock = new ServingClock("dataset", datasetEnd + 1, origin);
    online.warmUp(clock.now());

    const recommender = new Recommender({
      catalogue,
      online,
      clock,
      store,
      candidateGeneration: inProcessClient(CandidateGenerationService, registrationOf(cg.services, CandidateGenerationService), logger),
      retrieval: shards.map((s) => inProcessClient(RetrievalService, registrationOf(s.services, RetrievalService), logger)),
      ranking: inProcessClient(RankingService, registrationOf(ranking.services, RankingService), logger),
      metrics: createOrchestratorMetrics(new Registry()),
      bundle: () => bundle,
      logger,
      budgets: {
        userStoreMs: config.USER_STORE_TIMEOUT,
        candidateGenerationMs: config.CANDIDATE_GENERATION_TIMEOUT,
        retrievalMs: config.RETRIEVAL_TIMEOUT,
        rankingMs: config.RANKING_TIMEOUT,
        marginMs: config.DEADLINE_MARGIN,
        dnn: config.CANDIDATES_DNN,
        merged: config.MERGED_CANDIDATES,
      },
    });
    return {
      async recommend(init) {
        const request = create(RecommendRequestSchema, init);
        const deadline = Date.now() + 5000;
        const response = await recommender.recommend(request, callContext("/recsys.v1.RecommenderService/Recommend", logger, deadline, undefined));
        return create(RecommendResponseSchema, response);
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
