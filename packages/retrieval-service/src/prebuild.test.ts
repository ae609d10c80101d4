/**
 * Prebuilt indexes in a bundle (what `recsys retrain` publishes): a shard starting on, or
 * hot-swapping to, such a bundle copies its file and builds nothing; a prebuilt index that does
 * not match the shard's settings is rebuilt. Also the retrain status gauges.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { shardOf } from "@recsys/ann";
import { RetrievalService } from "@recsys/gen";
import { connect, loadConfig, startService } from "@recsys/runtime";
import { memoryLogger, metricValue, scrapeMetrics } from "@recsys/runtime/testing";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STAGE, configSchema } from "./config.js";
import { prebuildShardIndexes } from "./prebuild.js";
import { retrainStatusPath, writeRetrainStatus } from "./retrain-status.js";
import { createRetrievalService } from "./service.js";
import { bruteForceTopK, publishBundle, randomVector, readCatalogue, writeTinyBundle, type Catalogue } from "./test-helpers.js";

let root: string;
let link: string;
let catA: Catalogue;
let catB: Catalogue;
const stops: (() => Promise<void>)[] = [];

async function start(env: Record<string, string>) {
  const config = loadConfig(configSchema, {
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    METRICS_PORT: "0",
    LOG_LEVEL: "silent",
    DRAIN_TIMEOUT: "2s",
    SHUTDOWN_TIMEOUT: "1s",
    MODEL_PATH: link,
    MODEL_POLL_INTERVAL: "0",
    ...env,
  });
  const registry = new Registry();
  const logs = memoryLogger(STAGE);
  const stage = await createRetrievalService({ config, logger: logs.logger, registry });
  const service = await startService({ stage: STAGE, config, services: stage.services, logger: logs.logger, registry });
  const client = connect(RetrievalService, service.address);
  stops.push(async () => {
    client.$close();
    await service.stop();
    await stage.close();
  });
  const logged = (msg: string): number => logs.lines.filter((line) => line.msg === msg).length;
  return { stage, service, client, logged };
}

const asBundle = (c: Catalogue) => ({ modelVersion: c.modelVersion, itemIds: c.ids, itemEmbeddings: c.vectors, dim: c.dim });

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "retrieval-prebuilt-"));
  await writeTinyBundle(join(root, "a"), 1);
  await writeTinyBundle(join(root, "b"), 2);
  catA = await readCatalogue(join(root, "a"));
  catB = await readCatalogue(join(root, "b"));
  await prebuildShardIndexes(join(root, "a"), asBundle(catA), { shardCount: 2, parallel: 2 });
  await prebuildShardIndexes(join(root, "b"), asBundle(catB), { shardCount: 2 });
  link = join(root, "current");
  await publishBundle(link, join(root, "a"));
});

afterAll(async () => {
  for (const stop of stops) await stop();
  await rm(root, { recursive: true, force: true });
});

describe("a bundle with prebuilt shard indexes", () => {
  it("is served by each shard without building, at start and across a hot swap", async () => {
    const shard = await start({ INDEX_DIR: join(root, "index-1"), SHARD_INDEX: "1", SHARD_COUNT: "2" });
    expect(shard.logged("prebuilt index copied from the bundle")).toBe(1);
    expect(shard.logged("index built from the bundle and saved")).toBe(0);
    const q = randomVector(8, 3);
    const owned = (id: string) => shardOf(id, 2) === 1;
    const first = await shard.client.search({ userVector: q, k: 10 });
    expect(first.items.map((i) => i.itemId)).toEqual(bruteForceTopK(catA, q, 10, new Set(), owned).map((h) => h.id));

    await publishBundle(link, join(root, "b"));
    expect(await shard.stage.model.checkNow()).toBe("swapped");
    expect(shard.logged("prebuilt index copied from the bundle")).toBe(2);
    expect(shard.logged("index built from the bundle and saved")).toBe(0);
    const second = await shard.client.search({ userVector: q, k: 10 });
    expect(second.version!.modelVersion).toBe(catB.modelVersion);
    expect(second.items.map((i) => i.itemId)).toEqual(bruteForceTopK(catB, q, 10, new Set(), owned).map((h) => h.id));
    const text = await scrapeMetrics(shard.service.metricsPort);
    expect(metricValue(text, "recsys_retrieval_index_builds_total", { source: "built" })).toBe(0);
  });

  it("is rebuilt when the prebuilt file does not match the shard's settings (another HNSW M)", async () => {
    await publishBundle(link, join(root, "a"));
    const shard = await start({ INDEX_DIR: join(root, "index-m"), SHARD_INDEX: "0", SHARD_COUNT: "2", HNSW_M: "8" });
    expect(shard.logged("prebuilt index copied from the bundle")).toBe(1);
    expect(shard.logged("index built from the bundle and saved")).toBe(1);
    const text = await scrapeMetrics(shard.service.metricsPort);
    expect(metricValue(text, "recsys_retrieval_index_builds_total", { source: "built" })).toBe(1);
  });
});

describe("retrain status gauges", () => {
  it("export the status file beside the bundles", async () => {
    await publishBundle(link, join(root, "a"));
    const shard = await start({ INDEX_DIR: join(root, "index-s"), SHARD_INDEX: "0", SHARD_COUNT: "2" });
    let text = await scrapeMetrics(shard.service.metricsPort);
    expect(metricValue(text, "recsys_retrieval_retrain_status_readable")).toBe(1);
    expect(text).not.toMatch(/^recsys_retrieval_retrain_last_outcome\{/m);
    await writeRetrainStatus(retrainStatusPath(link), {
      outcome: "refused",
      finishedAt: "2026-12-07T06:00:00.000Z",
      publishedAt: "2026-12-06T06:00:00.000Z",
      message: "candidate worse",
    });
    await new Promise((r) => setTimeout(r, 1100));
    text = await scrapeMetrics(shard.service.metricsPort);
    expect(metricValue(text, "recsys_retrieval_retrain_last_outcome", { outcome: "refused" })).toBe(1);
    expect(metricValue(text, "recsys_retrieval_retrain_last_outcome", { outcome: "published" })).toBe(0);
    expect(metricValue(text, "recsys_retrieval_retrain_last_run_timestamp_seconds")).toBe(Date.parse("2026-12-07T06:00:00.000Z") / 1000);
    expect(metricValue(text, "recsys_retrieval_retrain_last_published_timestamp_seconds")).toBe(
      Date.parse("2026-12-06T06:00:00.000Z") / 1000,
    );
  });
});

describe("a rollout without a version-mismatch window", () => {
  it("answers the next version from the preloaded index before the swap, and the previous one after it", async () => {
    await publishBundle(link, join(root, "a"));
    const shard = await start({ INDEX_DIR: join(root, "index-w"), SHARD_INDEX: "0", SHARD_COUNT: "2" });
    const q = randomVector(8, 5);
    const owned = (id: string) => shardOf(id, 2) === 0;
    // A user vector of model B before anything points at it: refused.
    await expect(shard.client.search({ userVector: q, k: 5, modelVersion: catB.modelVersion })).rejects.toThrow(
      /FAILED_PRECONDITION|index from model/,
    );
    // The publisher points `next` at B: the shard preloads it and answers B's vectors from it.
    await publishBundle(join(root, "next"), join(root, "b"));
    await shard.stage.versions.checkNext();
    expect(shard.logged("next bundle's index preloaded")).toBe(1);
    const early = await shard.client.search({ userVector: q, k: 5, modelVersion: catB.modelVersion });
    expect(early.version!.modelVersion).toBe(catB.modelVersion);
    expect(early.items.map((i) => i.itemId)).toEqual(bruteForceTopK(catB, q, 5, new Set(), owned).map((h) => h.id));
    // A deleted id is left out of the preloaded index's answers too.
    const victim = early.items[0]!.itemId;
    await shard.client.deleteItems({ itemIds: [victim] });
    expect((await shard.client.search({ userVector: q, k: 5, modelVersion: catB.modelVersion })).items.map((i) => i.itemId)).not.toContain(
      victim,
    );
    // The flip: the swap takes the preloaded index (no second load), and A's vectors still get answers.
    await publishBundle(link, join(root, "b"));
    expect(await shard.stage.model.checkNow()).toBe("swapped");
    expect(shard.logged("swapping to the preloaded index")).toBe(1);
    expect(shard.logged("index built from the bundle and saved")).toBe(0);
    const late = await shard.client.search({ userVector: q, k: 5, modelVersion: catA.modelVersion });
    expect(late.version!.modelVersion).toBe(catA.modelVersion);
    expect(late.items.map((i) => i.itemId)).toEqual(bruteForceTopK(catA, q, 5, new Set([victim]), owned).map((h) => h.id));
    expect((await shard.client.search({ userVector: q, k: 5 })).version!.modelVersion).toBe(catB.modelVersion);
    await rm(join(root, "next"));
  });
});
