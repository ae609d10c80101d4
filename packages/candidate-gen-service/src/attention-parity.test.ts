/**
 * A bundle trained with attention pooling of the watch history, served through gRPC: the served
 * user vector is exactly the one the trained model computes offline (one pooling code path).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundleFromTraining, CandidateGenModel, saveBundle, trainCandidateGen, type TrainResult } from "@recsys/candidate-gen";
import { generateSynthetic, parseSyntheticSpec } from "@recsys/data";
import type { UserContext as FeatureContext } from "@recsys/features";
import { CandidateGenerationService } from "@recsys/gen";
import { connect, loadConfig, startService, type Client, type RunningService } from "@recsys/runtime";
import { memoryLogger } from "@recsys/runtime/testing";
import { initBackend } from "@recsys/tf";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STAGE, configSchema } from "./config.js";
import { createCandidateGenService, type CandidateGenService } from "./service.js";
import { TINY_SPEC } from "./test-helpers.js";

const T0 = 1_607_000_000;
let root: string;
let result: TrainResult;
let stage: CandidateGenService;
let service: RunningService;
let client: Client<typeof CandidateGenerationService.method>;

beforeAll(async () => {
  await initBackend({ log: null });
  root = await mkdtemp(join(tmpdir(), "cg-attn-service-"));
  const dataset = generateSynthetic(`synthetic:${TINY_SPEC}`, parseSyntheticSpec(TINY_SPEC));
  result = await trainCandidateGen(dataset, {
    holdout: "none",
    epochs: 2,
    batchSize: 64,
    negatives: 20,
    seed: 1,
    model: { embeddingDim: 8, searchDim: 4, categoricalDim: 4, tower: [16, 8], finalActivation: "linear", historyPooling: "attention" },
  });
  await saveBundle(join(root, "bundle"), result);
  const config = loadConfig(configSchema, {
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    METRICS_PORT: "0",
    LOG_LEVEL: "silent",
    DRAIN_TIMEOUT: "2s",
    SHUTDOWN_TIMEOUT: "1s",
    MODEL_PATH: join(root, "bundle"),
    MODEL_POLL_INTERVAL: "0",
  });
  const logs = memoryLogger(STAGE);
  const registry = new Registry();
  stage = await createCandidateGenService({ config, logger: logs.logger, registry });
  service = await startService({ stage: STAGE, config, services: stage.services, logger: logs.logger, registry });
  client = connect(CandidateGenerationService, service.address);
});

afterAll(async () => {
  client?.$close();
  await service?.stop();
  await stage?.close();
  result?.model.dispose();
  await rm(root, { recursive: true, force: true });
});

describe("attention-pooling bundle", () => {
  it("serves exactly the user vector the trained model computes offline", async () => {
    const items = result.space.items.tokens;
    const watched = [items[3]!, items[10]!, "never-seen-item", items[20]!, items[5]!, items[31]!];
    const features: FeatureContext = {
      watches: watched.map((itemId, i) => ({ itemId, timestamp: T0 + 100 * i })),
      searches: [{ query: "cooking gaming", timestamp: T0 + 50 }],
      age: 31,
      gender: "F",
      occupation: "engineer",
      geo: "r03",
      requestTime: T0 + 1000,
    };
    const ts = (s: number) => ({ seconds: BigInt(s), nanos: 0 });
    const context = (order: readonly string[]) => ({
      userId: "u1",
      watchHistory: order.map((itemId, i) => ({ itemId, watchedAt: ts(T0 + 100 * i) })),
      searchHistory: [{ query: "cooking gaming", searchedAt: ts(T0 + 50) }],
      demographics: { age: 31, gender: "F", occupation: "engineer" },
      geo: "r03",
      requestTime: ts(T0 + 1000),
    });
    const response = await client.embedUser({ context: context(watched) });
    const offline = Array.from(bundleFromTraining(result).userVector(features));
    expect(response.userVector).toEqual(offline);

    // Not vacuous: the trained attention weights are not uniform, so the same weights with mean
    // pooling give another vector, and reordering the history changes the served vector.
    expect(Array.from(result.model.attnRecency!.data).some((v) => v !== 0)).toBe(true);
    const { attention: _a, ...meanWeights } = result.model.weights();
    const mean = CandidateGenModel.fromWeights(result.space, { ...result.modelConfig, historyPooling: "mean" }, meanWeights);
    const meanVector = Array.from(
      bundleFromTraining({ ...result, model: mean, modelConfig: { ...result.modelConfig, historyPooling: "mean" } }).userVector(features),
    );
    expect(meanVector).not.toEqual(offline);
    mean.dispose();
    // The same watches in another order (a mean would not see the difference).
    const reordered = await client.embedUser({ context: context([...watched].reverse()) });
    expect(reordered.userVector).not.toEqual(response.userVector);
  });
});
