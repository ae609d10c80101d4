/**
 * Test fixtures: a tiny candidate-generation bundle trained on a small synthetic dataset, the real
 * candidate-generation and retrieval services over it (in-process, port 0), a tiny ranker trained
 * behind them and the real ranking service, a fake ranker that follows the RankingService
 * contract and can be made to fail or stall, and the orchestrator.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadBundle, saveBundle, trainCandidateGen, type BundleManifest } from "@recsys/candidate-gen";
import { STAGE as CG_STAGE, configSchema as cgConfigSchema, createCandidateGenService } from "@recsys/candidate-gen-service";
import { generateSynthetic, lastoutSplit, parseSyntheticSpec, trainingRows } from "@recsys/data";
import { RankingService, RecommenderService, type RankRequest } from "@recsys/gen";
import { dnnFromBundle, saveRanker, trainRanker, type RankerManifest } from "@recsys/ranking";
import { STAGE as RANKING_STAGE, configSchema as rankingConfigSchema, createRankingService } from "@recsys/ranking-service";
import { STAGE as RETRIEVAL_STAGE, configSchema as retrievalConfigSchema, createRetrievalService } from "@recsys/retrieval-service";
import { connect, implement, loadConfig, startService, unavailable, type Client, type RunningService } from "@recsys/runtime";
import { memoryLogger, testConfig } from "@recsys/runtime/testing";
import { createStandardSources } from "@recsys/sources";
import { initBackend } from "@recsys/tf";
import { Registry } from "prom-client";
import { STAGE, configSchema } from "./config.js";
import { createOrchestrator, type Orchestrator } from "./service.js";

export const TEST_SPEC = "users=80,items=120,events=15,seed=5";
export const TEST_DATASET = `synthetic:${TEST_SPEC}`;
export const TEST_REDIS_URL = process.env.RECSYS_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** Trains a tiny model (dimension 8, holdout "test") and saves its bundle in `dir`. */
export async function writeTinyBundle(dir: string, seed: number): Promise<BundleManifest> {
  await initBackend({ log: null });
  const dataset = generateSynthetic(TEST_DATASET, parseSyntheticSpec(TEST_SPEC));
  const result = await trainCandidateGen(dataset, {
    holdout: "test",
    epochs: 1,
    batchSize: 64,
    negatives: 20,
    seed,
    model: { embeddingDim: 8, searchDim: 4, categoricalDim: 4, tower: [16, 8], finalActivation: "linear" },
  });
  const manifest = await saveBundle(dir, result);
  result.model.dispose();
  return manifest;
}

/**
 * Trains a tiny ranker behind the standard sources plus the "dnn" source of the candidate-gen
 * bundle at `bundleDir` (on the same dataset and training rows, holdout "test") and saves it as
 * `<bundleDir>/ranker/`, the layout `recsys train-ranker` writes and the ranking service reads.
 */
export async function writeTinyRanker(bundleDir: string, seed: number): Promise<RankerManifest> {
  await initBackend({ log: null });
  const dataset = generateSynthetic(TEST_DATASET, parseSyntheticSpec(TEST_SPEC));
  const bundle = await loadBundle(bundleDir);
  try {
    const split = lastoutSplit(dataset.events, dataset.users.ids.length);
    const pipeline = { budget: 30, mergedSize: 120 };
    const result = await trainRanker(dataset, {
      rows: trainingRows(split, "test"),
      sources: createStandardSources(dataset, { mergedSize: pipeline.mergedSize, dnn: dnnFromBundle(bundle, dataset) }),
      budget: pipeline.budget,
      train: { epochs: 2, maxExamplesPerUser: 6, negatives: 8, seed },
      model: { itemDim: 8, categoricalDim: 4, tower: [16, 8] },
      features: { quantiles: 50 },
    });
    const manifest = await saveRanker(join(bundleDir, "ranker"), result, {
      datasetSpec: dataset.spec,
      datasetFingerprint: dataset.fingerprint,
      holdout: "test",
      candidateGenVersion: bundle.manifest.modelVersion,
      pipeline,
    });
    result.model.dispose();
    return manifest;
  } finally {
    bundle.dispose();
  }
}

export async function tempDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `orchestrator-${label}-`));
}

export async function removeDir(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/** A started in-process service and how to stop it. */
export interface Started {
  readonly address: string;
  readonly service: RunningService;
  stop(): Promise<void>;
}

const quiet = {
  GRPC_HOST: "127.0.0.1",
  GRPC_PORT: "0",
  METRICS_PORT: "0",
  LOG_LEVEL: "silent",
  DRAIN_TIMEOUT: "1s",
  SHUTDOWN_TIMEOUT: "1s",
};

export async function startCandidateGeneration(modelPath: string): Promise<Started> {
  const config = loadConfig(cgConfigSchema, { ...quiet, MODEL_PATH: modelPath, MODEL_POLL_INTERVAL: "0" });
  const registry = new Registry();
  const logger = memoryLogger(CG_STAGE).logger;
  const stage = await createCandidateGenService({ config, logger, registry });
  const service = await startService({ stage: CG_STAGE, config, services: stage.services, logger, registry });
  return {
    address: service.address,
    service,
    async stop() {
      await service.stop();
      await stage.close();
    },
  };
}

export async function startRetrievalShard(modelPath: string, indexDir: string, shard: number, shards: number): Promise<Started> {
  const config = loadConfig(retrievalConfigSchema, {
    ...quiet,
    MODEL_PATH: modelPath,
    MODEL_POLL_INTERVAL: "0",
    INDEX_DIR: indexDir,
    INDEX_KIND: "brute-force",
    SHARD_INDEX: String(shard),
    SHARD_COUNT: String(shards),
  });
  const registry = new Registry();
  const logger = memoryLogger(RETRIEVAL_STAGE).logger;
  const stage = await createRetrievalService({ config, logger, registry });
  const service = await startService({ stage: RETRIEVAL_STAGE, config, services: stage.services, logger, registry });
  return {
    address: service.address,
    service,
    async stop() {
      await service.stop();
      await stage.close();
    },
  };
}

/** The real ranking service over the ranker in `<modelPath>/ranker/`. */
export async function startRankingService(modelPath: string): Promise<Started> {
  const config = loadConfig(rankingConfigSchema, { ...quiet, MODEL_PATH: modelPath, MODEL_POLL_INTERVAL: "0" });
  const registry = new Registry();
  const logger = memoryLogger(RANKING_STAGE).logger;
  const stage = await createRankingService({ config, logger, registry });
  const service = await startService({ stage: RANKING_STAGE, config, services: stage.services, logger, registry });
  return {
    address: service.address,
    service,
    async stop() {
      await service.stop();
      await stage.close();
    },
  };
}

export type RankerMode = "ok" | "fail" | "slow";

/**
 * A ranker following the contract: one item per candidate, by score descending. Score = the
 * candidate's position from the end (so it keeps the merge order), expected watch time 60 s,
 * features (position, number of sources) when debug is asked. `mode` makes it fail
 * (UNAVAILABLE) or stall for `slowMs`.
 */
export interface FakeRanker extends Started {
  mode: RankerMode;
  slowMs: number;
  readonly requests: RankRequest[];
}

export async function startFakeRanker(modelVersion = "rank-test-1"): Promise<FakeRanker> {
  const requests: RankRequest[] = [];
  const ranker = {
    mode: "ok" as RankerMode,
    slowMs: 2000,
    requests,
  };
  const service = await startService({
    stage: "fake_ranking",
    config: testConfig({ DRAIN_TIMEOUT: 100, SHUTDOWN_TIMEOUT: 100 }),
    services: [
      implement(RankingService, {
        async rank(request, ctx) {
          requests.push(request);
          if (ranker.mode === "fail") throw unavailable("fake ranker is down");
          if (ranker.mode === "slow") {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, ranker.slowMs);
              ctx.signal.addEventListener("abort", () => {
                clearTimeout(timer);
                resolve();
              });
            });
          }
          const n = request.candidates.length;
          return {
            items: request.candidates.map((c, i) => ({
              itemId: c.itemId,
              score: n - i,
              expectedWatchSeconds: 60,
              features: request.debug ? { position: i, sources: c.provenance.length } : ({} as Record<string, number>),
            })),
            version: { component: "ranking", modelVersion },
          };
        },
      }),
    ],
  });
  return Object.assign(ranker, {
    address: service.address,
    service,
    async stop() {
      await service.stop();
    },
  });
}

/** An address nobody listens on (a port just bound and released). */
export async function closedAddress(): Promise<string> {
  const service = await startService({ stage: "closed_port", config: testConfig(), services: [] });
  const address = service.address;
  await service.stop();
  return address;
}

export function uniqueRedisPrefix(label: string): string {
  return `test:orchestrator:${label}:${process.pid}:${randomUUID().slice(0, 8)}:`;
}

export interface RunningOrchestrator {
  readonly orchestrator: Orchestrator;
  readonly service: RunningService;
  readonly client: Client<typeof RecommenderService.method>;
  readonly registry: Registry;
  readonly logs: ReturnType<typeof memoryLogger>;
  stop(): Promise<void>;
}

/** Starts an orchestrator with `env` (over test defaults: port 0, silent logs). */
export async function startOrchestrator(env: Record<string, string>): Promise<RunningOrchestrator> {
  const config = loadConfig(configSchema, {
    ...quiet,
    MODEL_POLL_INTERVAL: "0",
    // Generous budgets: two shared cores make in-process calls slow now and then.
    CANDIDATE_GENERATION_TIMEOUT: "2s",
    RETRIEVAL_TIMEOUT: "2s",
    RANKING_TIMEOUT: "2s",
    USER_STORE_TIMEOUT: "2s",
    ...env,
  });
  const registry = new Registry();
  const logs = memoryLogger(STAGE, "info");
  const orchestrator = await createOrchestrator({ config, logger: logs.logger, registry });
  const service = await startService({ stage: STAGE, config, services: orchestrator.services, logger: logs.logger, registry });
  const client = connect(RecommenderService, service.address);
  let stopped: Promise<void> | undefined;
  return {
    orchestrator,
    service,
    client,
    registry,
    logs,
    stop() {
      stopped ??= (async () => {
        client.$close();
        await service.stop();
        await orchestrator.close();
      })();
      return stopped;
    },
  };
}
