/**
 * The serving pipeline in one process without gRPC, for comparison with the split stack: the
 * real stage handlers (candidate generation, every retrieval shard, ranking: the registrations
 * their `create…Service` functions return) called directly through in-process "clients" (no
 * serialization, no sockets, no deadlines enforced by a transport), behind the orchestrator
 * `createOrchestrator` assembles with those clients injected (same catalogue, sources, user
 * store and clock as the served orchestrator).
 */
import { create, type DescMessage } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import * as grpc from "@grpc/grpc-js";
import { configSchema as cgConfigSchema, createCandidateGenService } from "@recsys/candidate-gen-service";
import {
  CandidateGenerationService,
  RankingService,
  RetrievalService,
  RecommendRequestSchema,
  RecommendResponseSchema,
  type RecommendResponse,
} from "@recsys/gen";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { configSchema as orchestratorConfigSchema, createOrchestrator } from "@recsys/orchestrator";
import { configSchema as rankingConfigSchema, createRankingService } from "@recsys/ranking-service";
import { configSchema as retrievalConfigSchema, createRetrievalService } from "@recsys/retrieval-service";
import {
  createLogger,
  deadlineMs,
  loadConfig,
  type CallContext,
  type CallOptions,
  type Client,
  type Logger,
  type ServiceRegistration,
} from "@recsys/runtime";
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
  const call = { getDeadline: () => (Number.isFinite(deadline) ? new Date(deadline) : Infinity) } as unknown as grpc.ServerUnaryCall<
    unknown,
    unknown
  >;
  return { call, method, logger, deadline, signal: signal ?? new AbortController().signal, metadata: new grpc.Metadata() };
}

/** The registration of `service` among a stage's registrations. */
function registrationOf(registrations: readonly ServiceRegistration[], service: { readonly typeName: string }): ServiceRegistration {
  const found = registrations.find((r) => r.service.typeName === service.typeName);
  if (found === undefined) throw new Error(`no ${service.typeName} among the stage's services`);
  return found;
}

/** A `Client` whose methods call the registration's handlers directly (messages built, never serialized). */
export function inProcessClient<S extends GenServiceMethods>(
  service: GenService<S>,
  registration: ServiceRegistration,
  logger: Logger,
): Client<S> {
  const client: Record<string, unknown> = { $close: () => undefined, $transport: undefined };
  for (const [name, method] of Object.entries(
    service.method as Record<string, { input: DescMessage; output: DescMessage; name: string }>,
  )) {
    const handler = registration.implementation[name];
    if (handler === undefined) throw new Error(`${service.typeName}: no handler ${name}`);
    client[name] = async (init: unknown, options?: CallOptions) => {
      const d = options?.deadline;
      const deadline = d === undefined ? Infinity : deadlineMs(d);
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

    // The orchestrator itself, with in-process clients instead of gRPC connections.
    const config = loadConfig(orchestratorConfigSchema, {
      ...QUIET,
      CANDIDATE_GENERATION_ADDRESS: "in-process",
      RETRIEVAL_ADDRESSES: "in-process",
      RANKING_ADDRESS: "in-process",
      MODEL_PATH: options.modelDir,
      DATASET: options.dataset,
      USER_STORE_PATH: options.usersDir,
      ...(options.deletedItemsFile === undefined ? {} : { DELETED_ITEMS_FILE: options.deletedItemsFile, DELETED_ITEMS_POLL_INTERVAL: "0" }),
      ...options.orchestratorEnv,
    });
    const orchestrator = await createOrchestrator(
      { config, logger, registry: new Registry() },
      {
        candidateGeneration: inProcessClient(CandidateGenerationService, registrationOf(cg.services, CandidateGenerationService), logger),
        retrieval: shards.map((s) => inProcessClient(RetrievalService, registrationOf(s.services, RetrievalService), logger)),
        ranking: inProcessClient(RankingService, registrationOf(ranking.services, RankingService), logger),
      },
    );
    closers.push(() => orchestrator.close());
    const recommender = orchestrator.recommender;
    return {
      async recommend(init) {
        const request = create(RecommendRequestSchema, init);
        const deadline = Date.now() + 5000;
        const response = await recommender.recommend(
          request,
          callContext("/recsys.v1.RecommenderService/Recommend", logger, deadline, undefined),
        );
        return create(RecommendResponseSchema, response);
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
