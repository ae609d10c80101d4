/**
 * The orchestrator on real gRPC servers (port 0): the real candidate-generation service and two
 * real retrieval shards over a tiny trained bundle, a fake ranker that follows the contract, and
 * both user-store backends (Redis at 127.0.0.1:6379 with a unique key prefix).
 */
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BundleManifest } from "@recsys/candidate-gen";
import { MAX_EXCLUDED_ITEMS, type Device, type RecommendResponse, type RecommendedItem } from "@recsys/gen";
import { ConfigError, isServiceError, loadConfig, status } from "@recsys/runtime";
import { memoryLogger, metricValue, scrapeMetrics } from "@recsys/runtime/testing";
import { UserStoreUnavailableError, type RedisUserStore } from "@recsys/user-store";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STAGE, checkOrchestratorConfig, configSchema } from "./config.js";
import { becauseYouWatched } from "./reasons.js";
import { createOrchestrator } from "./service.js";
import {
  TEST_DATASET,
  TEST_REDIS_URL,
  closedAddress,
  removeDir,
  startCandidateGeneration,
  startFakeRanker,
  startOrchestrator,
  startRetrievalShard,
  tempDir,
  uniqueRedisPrefix,
  writeTinyBundle,
  type FakeRanker,
  type RunningOrchestrator,
  type Started,
} from "./test-helpers.js";

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "main.js");

let root: string;
let bundleA: string;
let bundleB: string;
let manifestA: BundleManifest;
let manifestB: BundleManifest;
let cg: Started;
let shardsA: Started[];
let shardsB: Started[];
let ranker: FakeRanker;
let closed: string;
const running: RunningOrchestrator[] = [];
let stores = 0;

beforeAll(async () => {
  root = await tempDir("main");
  bundleA = join(root, "bundle-a");
  bundleB = join(root, "bundle-b");
  manifestA = await writeTinyBundle(bundleA, 1);
  manifestB = await writeTinyBundle(bundleB, 2);
  expect(manifestB.modelVersion).not.toBe(manifestA.modelVersion);
  cg = await startCandidateGeneration(bundleA);
  shardsA = [
    await startRetrievalShard(bundleA, join(root, "index-a"), 0, 2),
    await startRetrievalShard(bundleA, join(root, "index-a"), 1, 2),
  ];
  shardsB = [
    await startRetrievalShard(bundleB, join(root, "index-b"), 0, 2),
    await startRetrievalShard(bundleB, join(root, "index-b"), 1, 2),
  ];
  ranker = await startFakeRanker();
  closed = await closedAddress();
});

afterAll(async () => {
  for (const o of running.splice(0)) await o.stop();
  for (const s of [ranker, ...(shardsB ?? []), ...(shardsA ?? []), cg]) await s?.stop();
  if (root !== undefined) await removeDir(root);
});

/** Environment of an orchestrator over the real stages (embedded store in a fresh directory). */
function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    MODEL_PATH: bundleA,
    CANDIDATE_GENERATION_ADDRESS: cg.address,
    RETRIEVAL_ADDRESSES: shardsA.map((s) => s.address).join(","),
    RANKING_ADDRESS: ranker.address,
    USER_STORE: "embedded",
    USER_STORE_PATH: join(root, `store-${++stores}`),
    ...extra,
  };
}

async function start(extra: Record<string, string> = {}): Promise<RunningOrchestrator> {
  const o = await startOrchestrator(env(extra));
  running.push(o);
  return o;
}

const sourcesOf = (item: RecommendedItem): string[] => item.provenance.map((p) => p.sourceName);

/** Every item: provenance, a reason, never watched or excluded. */
function expectWellFormed(response: RecommendResponse, forbidden: ReadonlySet<string>): void {
  for (const item of response.items) {
    expect(item.provenance.length, item.itemId).toBeGreaterThan(0);
    expect(item.reasons.length, item.itemId).toBeGreaterThan(0);
    expect(forbidden.has(item.itemId), `${item.itemId} is watched or excluded`).toBe(false);
  }
  expect(new Set(response.items.map((i) => i.itemId)).size).toBe(response.items.length);
  expect(response.requestId).not.toBe("");
}

async function watchedBy(o: RunningOrchestrator, userId: string): Promise<Set<string>> {
  const state = await o.orchestrator.store.get(userId);
  return new Set(state?.watches.map((w) => w.itemId) ?? []);
}

async function expectRpcError(promise: Promise<unknown>, code: status, message: string | RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isServiceError(error), `expected a gRPC error, got ${String(error)}`).toBe(true);
  if (!isServiceError(error)) return;
  expect(status[error.code]).toBe(status[code]);
  if (typeof message === "string") expect(error.details).toContain(message);
  else expect(error.details).toMatch(message);
}

async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.each(["embedded", "redis"] as const)("with the %s user store", (backend) => {
  let o: RunningOrchestrator;
  let prefix: string;

  beforeAll(async () => {
    prefix = uniqueRedisPrefix(backend);
    o = await start(backend === "redis" ? { USER_STORE: "redis", REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix } : {});
  });

  afterAll(async () => {
    if (backend === "redis" && o !== undefined) await (o.orchestrator.store as RedisUserStore).deleteAllKeys();
  });

  it("recommends to a known user from every stage, with provenance, reasons and versions, never a watched or excluded item", async () => {
    const userId = "7";
    const watched = await watchedBy(o, userId);
    expect(watched.size).toBeGreaterThan(0); // seeded from the dataset's training rows
    const first = await o.client.recommend({ userId, count: 500 });
    expect(first.degraded, JSON.stringify(first.failedStages)).toBe(false);
    expect(first.items.length).toBeGreaterThan(20);
    expectWellFormed(first, watched);
    const sources = new Set(first.items.flatMap(sourcesOf));
    for (const s of ["dnn", "co-watch", "popular", "trending", "trending-geo"]) expect(sources, s).toContain(s);
    const components = first.versions.map((v) => v.component);
    expect(components).toEqual(
      expect.arrayContaining(["candidate_generation", "retrieval/shard-0", "retrieval/shard-1", "ranking", "catalogue"]),
    );
    expect(first.versions.find((v) => v.component === "candidate_generation")?.modelVersion).toBe(manifestA.modelVersion);
    expect(first.versions.find((v) => v.component === "retrieval/shard-1")?.modelVersion).toBe(manifestA.modelVersion);
    // The ranker got the context and every candidate with provenance; its order is kept.
    const rankRequest = ranker.requests.at(-1)!;
    expect(rankRequest.context?.userId).toBe(userId);
    expect(rankRequest.context?.requestTime).toBeDefined();
    expect(rankRequest.candidates.every((c) => c.provenance.length > 0 && c.provenance.every((p) => p.rank >= 1))).toBe(true);
    // ...and each candidate's item statistics from the in-process sources.
    expect(rankRequest.candidates.every((c) => c.stats !== undefined && c.stats.watchCount >= 0 && c.stats.trending >= 0)).toBe(true);
    expect(rankRequest.candidates.some((c) => c.stats!.watchCount > 0 && c.stats!.trending > 0)).toBe(true);
    const scores = first.items.map((i) => i.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    expect(first.items[0]!.expectedWatchSeconds).toBe(60);

    // Excluding items: none of them comes back; count is honoured.
    const excluded = first.items.slice(0, 5).map((i) => i.itemId);
    const second = await o.client.recommend({ userId, count: 10, excludedItemIds: excluded });
    expect(second.items).toHaveLength(10);
    expectWellFormed(second, new Set([...watched, ...excluded]));

    // Reasons follow the sources.
    for (const item of first.items) {
      const s = sourcesOf(item);
      if (s.includes("co-watch")) expect(item.reasons[0]).toMatch(/^Because you watched /);
      if (s.includes("trending-geo")) expect(item.reasons).toContain("Trending in your area");
      if (s.includes("dnn") && !s.includes("co-watch")) expect(item.reasons[0]).toMatch(/^(Because you watched |Recommended for you$)/);
    }
    expect(first.items.some((i) => i.reasons.includes("Popular right now"))).toBe(true);
  });

  it("answers an unknown user from the non-personalised sources, and a recorded watch changes the next answer", async () => {
    const userId = `new-${backend}-1`;
    const cold = await o.client.recommend({ userId, count: 20 });
    expect(cold.degraded).toBe(false);
    expect(cold.items).toHaveLength(20);
    expectWellFormed(cold, new Set());
    const coldSources = new Set(cold.items.flatMap(sourcesOf));
    for (const s of coldSources) expect(["popular", "trending", "fresh"]).toContain(s);
    expect(cold.versions.map((v) => v.component)).not.toContain("candidate_generation");

    const watchedItem = cold.items[0]!.itemId;
    const title = o.orchestrator.catalogue.displayTitle(o.orchestrator.catalogue.indexOf(watchedItem)!);
    const recorded = await o.client.recordEvents({
      events: [{ userId, kind: { case: "watch", value: { itemId: watchedItem } } }],
    });
    expect(recorded.accepted).toBe(1);

    const warm = await o.client.recommend({ userId, count: 50 });
    expect(warm.degraded, JSON.stringify(warm.failedStages)).toBe(false);
    expectWellFormed(warm, new Set([watchedItem]));
    const neighbours = warm.items.filter((i) => sourcesOf(i).includes("co-watch"));
    expect(neighbours.length).toBeGreaterThan(0);
    for (const n of neighbours) expect(n.reasons[0]).toBe(becauseYouWatched(title));
    // The user now has a history: the DNN path is consulted.
    expect(warm.versions.map((v) => v.component)).toContain("candidate_generation");
  });

  it("moves trending with recorded watches", async () => {
    const cold = await o.client.recommend({ userId: `cold-${backend}`, count: 500 });
    const trendingTop = cold.items.filter((i) => i.provenance.some((p) => p.sourceName === "trending" && p.rank === 1));
    expect(trendingTop).toHaveLength(1);
    const catalogue = o.orchestrator.catalogue;
    // An item that is not trending first: 25 new users watch it now.
    const target = catalogue.dataset.items.ids.find((id) => id !== trendingTop[0]!.itemId && !catalogue.isDeletedId(id))!;
    await o.client.recordEvents({
      events: Array.from({ length: 25 }, (_, k) => ({
        userId: `fan-${backend}-${k}`,
        kind: { case: "watch" as const, value: { itemId: target } },
      })),
    });
    const after = await o.client.recommend({ userId: `cold-${backend}-2`, count: 500 });
    const item = after.items.find((i) => i.itemId === target);
    expect(item?.provenance.find((p) => p.sourceName === "trending")?.rank).toBe(1);
  });
});

describe.each(["embedded", "redis"] as const)("watches that left the stored list (%s user store)", (backend) => {
  it("are never recommended again; a failed check is reported as the user store's", async () => {
    const prefix = uniqueRedisPrefix(`earlier-${backend}`);
    const o = await start({
      USER_STORE_MAX_WATCHES: "2",
      ...(backend === "redis" ? { USER_STORE: "redis", REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix } : {}),
    });
    try {
      const userId = `heavy-${backend}`;
      // The user watches the 12 items of a cold answer (popular ones): 10 leave the 2-long list.
      const cold = await o.client.recommend({ userId, count: 12 });
      const watched = cold.items.map((i) => i.itemId);
      expect(watched).toHaveLength(12);
      await o.client.recordEvents({ events: watched.map((itemId) => ({ userId, kind: { case: "watch" as const, value: { itemId } } })) });
      const state = (await o.orchestrator.store.get(userId))!;
      expect(state.watches).toHaveLength(2);
      expect(state.hasEarlierWatches).toBe(true);

      const warm = await o.client.recommend({ userId, count: 500, debug: true });
      expect(warm.degraded, JSON.stringify(warm.failedStages)).toBe(false);
      expect(warm.items.length).toBeGreaterThan(12);
      expectWellFormed(warm, new Set(watched));
      const check = warm.stageTimings.find((t) => t.stage === "user_store/earlier_watches");
      expect(check?.itemCount).toBeGreaterThan(0); // it did drop some

      const store = o.orchestrator.store;
      const { watchedAmong } = store;
      try {
        store.watchedAmong = () => Promise.reject(new UserStoreUnavailableError("connection refused"));
        const down = await o.client.recommend({ userId, count: 20 });
        expect(down.failedStages.map((f) => [f.stage, f.code, f.message])).toEqual([["user_store", "UNAVAILABLE", "connection refused"]]);
        expect(down.items).toHaveLength(20);
        expectWellFormed(down, new Set(state.watches.map((w) => w.itemId)));
      } finally {
        store.watchedAmong = watchedAmong;
      }
    } finally {
      if (backend === "redis") await (o.orchestrator.store as RedisUserStore).deleteAllKeys();
    }
  });
});

describe("validation", () => {
  let o: RunningOrchestrator;
  beforeAll(async () => {
    o = await start({ GRPC_MAX_MESSAGE_BYTES: String(1024 * 1024) });
  });

  it("rejects malformed Recommend requests with INVALID_ARGUMENT naming the problem, and keeps serving", async () => {
    const c = o.client;
    await expectRpcError(c.recommend({ userId: "1", count: 0 }), status.INVALID_ARGUMENT, "count must be between 1 and 500, got 0");
    await expectRpcError(
      c.recommend({ userId: "1", count: 100_000 }),
      status.INVALID_ARGUMENT,
      "count must be between 1 and 500, got 100000",
    );
    await expectRpcError(c.recommend({}), status.INVALID_ARGUMENT, "user_id is required");
    await expectRpcError(
      c.recommend({ userId: "1", count: 5, context: { userId: "1", device: 99 as Device } }),
      status.INVALID_ARGUMENT,
      "context.device has unknown value 99",
    );
    await expectRpcError(
      c.recommend({ userId: "1", count: 5, excludedItemIds: Array.from({ length: MAX_EXCLUDED_ITEMS + 1 }, (_, k) => `x${k}`) }),
      status.INVALID_ARGUMENT,
      "excluded_item_ids has 10001 entries, at most 10000 allowed",
    );
    await expectRpcError(
      c.recommend({ userId: "1", count: 5, context: { watchHistory: Array.from({ length: 1001 }, (_, k) => ({ itemId: `${k}` })) } }),
      status.INVALID_ARGUMENT,
      "context.watch_history has 1001 entries, at most 1000 allowed",
    );
    await expectRpcError(
      c.recommend({ userId: "1", count: 5, context: { impressionHistory: Array.from({ length: 1001 }, (_, k) => ({ itemId: `${k}` })) } }),
      status.INVALID_ARGUMENT,
      "context.impression_history has 1001 entries, at most 1000 allowed",
    );
    await expectRpcError(
      c.recommend({ userId: "1", count: 5, context: { impressionHistory: [{ itemId: "" }] } }),
      status.INVALID_ARGUMENT,
      "context.impression_history[0].item_id is required",
    );
    await expectRpcError(
      c.recommend({ userId: "1", count: 5, context: { userId: "2" } }),
      status.INVALID_ARGUMENT,
      'context.user_id ("2") must be empty or equal to user_id ("1")',
    );
    await expectRpcError(
      c.recommend({ userId: "1", count: 5, excludedItemIds: [""] }),
      status.INVALID_ARGUMENT,
      "excluded_item_ids[0] is required",
    );
    // Larger than GRPC_MAX_MESSAGE_BYTES (1 MiB): refused before it is decoded.
    await expectRpcError(
      c.recommend({ userId: "1", count: 5, excludedItemIds: Array.from({ length: 9000 }, (_, k) => `${"x".repeat(200)}${k}`) }),
      status.RESOURCE_EXHAUSTED,
      /larger than max/i,
    );
    // RecordEvents.
    await expectRpcError(
      c.recordEvents({ events: [{ userId: "1" }] }),
      status.INVALID_ARGUMENT,
      "events[0] has no watch, search or impression",
    );
    await expectRpcError(
      c.recordEvents({ events: [{ userId: "1", kind: { case: "watch", value: { itemId: "" } } }] }),
      status.INVALID_ARGUMENT,
      "events[0].watch.item_id is required",
    );
    await expectRpcError(
      c.recordEvents({ events: [{ userId: "", kind: { case: "search", value: { query: "cats" } } }] }),
      status.INVALID_ARGUMENT,
      "events[0].user_id is required",
    );
    const future = BigInt(Math.floor(o.orchestrator.clock.now()) + 86_400);
    await expectRpcError(
      c.recordEvents({ events: [{ userId: "1", kind: { case: "watch", value: { itemId: "1", watchedAt: { seconds: future } } } }] }),
      status.INVALID_ARGUMENT,
      /^events\[0\]\.watch\.watched_at is 86[34]\d\d s after the server clock \(.+\); events may be at most 300 s ahead$/,
    );
    await expectRpcError(
      c.recordEvents({
        events: Array.from({ length: 1001 }, () => ({ userId: "1", kind: { case: "search" as const, value: { query: "q" } } })),
      }),
      status.INVALID_ARGUMENT,
      "events has 1001 entries, at most 1000 allowed",
    );
    // Nothing of the rejected calls was stored, and the server still answers.
    expect((await o.orchestrator.store.get("1"))!.searches).toHaveLength(0);
    const ok = await c.recommend({ userId: "1", count: 3 });
    expect(ok.items).toHaveLength(3);
  });

  it("serves a caller's context as given, applies filters and returns debug timings and ranker features", async () => {
    const catalogue = o.orchestrator.catalogue;
    const history = ["1", "2", "3"];
    const channel = catalogue.channel(catalogue.indexOf("10")!)!;
    const response = await o.client.recommend({
      userId: "ctx-user",
      count: 20,
      context: { watchHistory: history.map((itemId) => ({ itemId })) },
      filters: { channels: [channel] },
      debug: true,
    });
    expect(response.degraded, JSON.stringify(response.failedStages)).toBe(false);
    expect(response.items.length).toBeGreaterThan(0);
    expectWellFormed(response, new Set(history));
    for (const item of response.items) expect(catalogue.channel(catalogue.indexOf(item.itemId)!)).toBe(channel);
    const stages = response.stageTimings.map((t) => t.stage);
    expect(stages).toEqual(
      expect.arrayContaining([
        "candidate_generation",
        "retrieval/shard-0",
        "retrieval/shard-1",
        "retrieval",
        "sources/co-watch",
        "merge",
        "ranking",
        "total",
      ]),
    );
    expect(stages).not.toContain("user_store"); // the context was given: nothing looked up
    expect(response.items[0]!.features).toHaveProperty("position");
    const plain = await o.client.recommend({ userId: "1", count: 5 });
    expect(plain.stageTimings).toEqual([]);
    expect(plain.items[0]!.features).toEqual({});
  });

  it("never recommends a taken-down item (DELETED_ITEMS_FILE, re-read on change)", async () => {
    const file = join(root, "deleted.txt");
    await writeFile(file, "# taken down\n");
    const d = await start({ DELETED_ITEMS_FILE: file, DELETED_ITEMS_POLL_INTERVAL: "0" });
    const before = await d.client.recommend({ userId: "7", count: 500 });
    const victims = before.items.slice(0, 3).map((i) => i.itemId);
    await writeFile(file, `# taken down\n${victims.join("\n")}\n`);
    await d.orchestrator.reloadDeletedItems();
    for (const userId of ["7", "unknown-user"]) {
      const after = await d.client.recommend({ userId, count: 500 });
      expect(after.items.length).toBeGreaterThan(0);
      expectWellFormed(after, new Set(victims));
    }
  });
});

describe("degradation", () => {
  it("answers in merge order when the ranker fails, is late, or is down, and names ranking", async () => {
    const o = await start({ RANKING_TIMEOUT: "300ms" });
    const ok = await o.client.recommend({ userId: "7", count: 10 });
    expect(ok.degraded).toBe(false);
    try {
      ranker.mode = "fail";
      const failed = await o.client.recommend({ userId: "7", count: 10 });
      expect(failed.degraded).toBe(true);
      expect(failed.failedStages).toEqual([
        expect.objectContaining({ stage: "ranking", code: "UNAVAILABLE", message: "fake ranker is down" }),
      ]);
      expect(failed.items).toHaveLength(10);
      expect(failed.items.map((i) => i.score)).toEqual(failed.items.map((_, k) => Math.fround(1 / (1 + k))));
      expectWellFormed(failed, await watchedBy(o, "7"));

      ranker.mode = "slow";
      const startedAt = Date.now();
      const late = await o.client.recommend({ userId: "7", count: 10 });
      expect(Date.now() - startedAt).toBeLessThan(1800);
      expect(late.failedStages).toEqual([expect.objectContaining({ stage: "ranking", code: "DEADLINE_EXCEEDED" })]);
      expect(late.items).toHaveLength(10);
    } finally {
      ranker.mode = "ok";
    }
    const text = await scrapeMetrics(o.service.metricsPort);
    expect(metricValue(text, "recsys_orchestrator_degraded_responses_total", { stage: "ranking" })).toBe(2);
    expect(
      metricValue(text, "recsys_orchestrator_model_version_info", { stage: "candidate_generation", model_version: manifestA.modelVersion }),
    ).toBe(1);
    expect(
      metricValue(text, "recsys_orchestrator_model_version_info", { stage: "retrieval/shard-1", model_version: manifestA.modelVersion }),
    ).toBe(1);
    expect(metricValue(text, "recsys_orchestrator_model_version_info", { stage: "ranking", model_version: "rank-test-1" })).toBe(1);
    expect(metricValue(text, "recsys_orchestrator_stage_duration_seconds_count", { stage: "ranking" })).toBe(3);
    expect(metricValue(text, "recsys_orchestrator_candidates_count", { source: "dnn" })).toBe(3);
    expect(
      metricValue(text, "recsys_orchestrator_grpc_requests_total", { method: "recsys.v1.RecommenderService/Recommend", code: "OK" }),
    ).toBe(3);

    const down = await start({ RANKING_ADDRESS: closed });
    const r = await down.client.recommend({ userId: "7", count: 10 });
    expect(r.degraded).toBe(true);
    expect(r.failedStages.map((f) => [f.stage, f.code])).toEqual([["ranking", "UNAVAILABLE"]]);
    expect(r.items).toHaveLength(10);
  });

  it("derives downstream deadlines from the caller's", async () => {
    const o = await start({ RANKING_TIMEOUT: "10s", DEADLINE_MARGIN: "150ms" });
    try {
      ranker.mode = "slow";
      ranker.slowMs = 5000;
      const startedAt = Date.now();
      const response = await o.client.recommend({ userId: "7", count: 5 }, { deadline: Date.now() + 1200 });
      expect(Date.now() - startedAt).toBeLessThan(1200);
      // (Under heavy load an earlier stage may run out of the caller's time too.)
      expect(response.failedStages.map((f) => [f.stage, f.code])).toContainEqual(["ranking", "DEADLINE_EXCEEDED"]);
      expect(response.items).toHaveLength(5);
    } finally {
      ranker.mode = "ok";
      ranker.slowMs = 2000;
    }
  });

  it("answers from the other sources when candidate generation is down", async () => {
    const o = await start({ CANDIDATE_GENERATION_ADDRESS: closed });
    const r = await o.client.recommend({ userId: "7", count: 30 });
    expect(r.degraded).toBe(true);
    expect(r.failedStages.map((f) => [f.stage, f.code])).toEqual([["candidate_generation", "UNAVAILABLE"]]);
    expect(r.items).toHaveLength(30);
    expect(r.items.flatMap(sourcesOf)).not.toContain("dnn");
    expect(r.versions.map((v) => v.component)).toContain("ranking");
    expectWellFormed(r, await watchedBy(o, "7"));
    const text = await scrapeMetrics(o.service.metricsPort);
    expect(metricValue(text, "recsys_orchestrator_degraded_responses_total", { stage: "candidate_generation" })).toBe(1);
  });

  it("keeps the DNN candidates of the shards that answered", async () => {
    const o = await start({ RETRIEVAL_ADDRESSES: `${shardsA[0]!.address},${closed}` });
    const r = await o.client.recommend({ userId: "7", count: 100 });
    expect(r.failedStages.map((f) => [f.stage, f.code])).toEqual([["retrieval/shard-1", "UNAVAILABLE"]]);
    expect(r.items.flatMap(sourcesOf)).toContain("dnn");
    expect(r.versions.map((v) => v.component)).toContain("retrieval/shard-0");
  });

  it("skips the DNN source when the index is of another model version", async () => {
    const o = await start({ RETRIEVAL_ADDRESSES: shardsB.map((s) => s.address).join(",") });
    const r = await o.client.recommend({ userId: "7", count: 100 });
    expect(r.degraded).toBe(true);
    expect(r.failedStages.map((f) => [f.stage, f.code])).toEqual([
      ["retrieval/shard-0", "FAILED_PRECONDITION"],
      ["retrieval/shard-1", "FAILED_PRECONDITION"],
    ]);
    for (const f of r.failedStages) {
      expect(f.message).toContain("model version mismatch, DNN candidates of this shard skipped");
      expect(f.message).toContain(manifestB.modelVersion);
    }
    expect(r.items.length).toBeGreaterThan(0);
    expect(r.items.flatMap(sourcesOf)).not.toContain("dnn");
  });

  it("serves a cold-start answer when the user store is down or late, and RecordEvents says UNAVAILABLE", async () => {
    const o = await start({ USER_STORE_TIMEOUT: "200ms" });
    const store = o.orchestrator.store;
    const { get, append } = store;
    try {
      store.get = () => Promise.reject(new UserStoreUnavailableError("connection refused"));
      const down = await o.client.recommend({ userId: "7", count: 10 });
      expect(down.failedStages).toEqual([
        expect.objectContaining({ stage: "user_store", code: "UNAVAILABLE", message: "connection refused" }),
      ]);
      expect(down.items).toHaveLength(10);
      for (const s of new Set(down.items.flatMap(sourcesOf))) expect(["popular", "trending", "fresh"]).toContain(s);

      store.get = () => new Promise(() => {});
      const late = await o.client.recommend({ userId: "7", count: 10 });
      expect(late.failedStages.map((f) => [f.stage, f.code])).toEqual([["user_store", "DEADLINE_EXCEEDED"]]);

      store.append = () => Promise.reject(new UserStoreUnavailableError("disk full"));
      await expectRpcError(
        o.client.recordEvents({ events: [{ userId: "7", kind: { case: "watch", value: { itemId: "1" } } }] }),
        status.UNAVAILABLE,
        "user store unavailable: disk full",
      );
    } finally {
      store.get = get;
      store.append = append;
    }
    expect((await o.client.recommend({ userId: "7", count: 10 })).degraded).toBe(false);
  });

  it("fails with UNAVAILABLE only when no source can answer", async () => {
    const off = {
      CANDIDATES_CO_WATCH: "0",
      CANDIDATES_POPULAR: "0",
      CANDIDATES_TRENDING: "0",
      CANDIDATES_TRENDING_GEO: "0",
      CANDIDATES_FRESH: "0",
    };
    const o = await start({ ...off, CANDIDATE_GENERATION_ADDRESS: closed, RETRIEVAL_ADDRESSES: closed, RANKING_ADDRESS: closed });
    await expectRpcError(
      o.client.recommend({ userId: "7", count: 5 }),
      status.UNAVAILABLE,
      /no candidate source could answer: candidate_generation UNAVAILABLE/,
    );
    // With the in-process sources on, the same outage is a degraded answer.
    const p = await start({ CANDIDATE_GENERATION_ADDRESS: closed, RETRIEVAL_ADDRESSES: closed, RANKING_ADDRESS: closed });
    const r = await p.client.recommend({ userId: "7", count: 5 });
    expect(r.failedStages.map((f) => f.stage)).toEqual(["candidate_generation", "ranking"]);
    expect(r.items).toHaveLength(5);
  });
});

describe("replicas sharing a Redis user store", () => {
  it("learn each other's watches through the subscription without counting their own twice", async () => {
    const prefix = uniqueRedisPrefix("replicas");
    const redis = { USER_STORE: "redis", REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix };
    const a = await start(redis);
    const b = await start(redis);
    try {
      const userId = "replicated-user";
      const cold = await b.client.recommend({ userId, count: 5 });
      const item = cold.items[0]!.itemId;
      const countOn = (o: RunningOrchestrator): number => o.orchestrator.online.watchCount(item, o.orchestrator.clock.now())!;
      const beforeA = countOn(a);
      const beforeB = countOn(b);
      await a.client.recordEvents({ events: [{ userId, kind: { case: "watch", value: { itemId: item } } }] });
      expect(countOn(a)).toBe(beforeA + 1);
      await waitFor(() => countOn(b) === beforeB + 1, 5000, "replica B to learn the watch");
      const warm = await b.client.recommend({ userId, count: 30 });
      expectWellFormed(warm, new Set([item]));
      const title = b.orchestrator.catalogue.displayTitle(b.orchestrator.catalogue.indexOf(item)!);
      expect(warm.items.some((i) => i.reasons[0] === becauseYouWatched(title))).toBe(true);
      // A's own echo arrived by now (B got the same stream entry): still counted once.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(countOn(a)).toBe(beforeA + 1);
      expect(countOn(b)).toBe(beforeB + 1);
      const textA = await scrapeMetrics(a.service.metricsPort);
      const textB = await scrapeMetrics(b.service.metricsPort);
      expect(metricValue(textA, "recsys_orchestrator_replicated_events_total")).toBe(0);
      expect(metricValue(textB, "recsys_orchestrator_replicated_events_total")).toBe(1);
    } finally {
      await (a.orchestrator.store as RedisUserStore).deleteAllKeys();
    }
  });
});

describe("configuration", () => {
  it("names the missing or malformed variable", async () => {
    const base = env();
    const without = (name: string): Record<string, string> => Object.fromEntries(Object.entries(base).filter(([k]) => k !== name));
    expect(() => loadConfig(configSchema, without("MODEL_PATH"))).toThrow(/MODEL_PATH is required but not set/);
    expect(() => loadConfig(configSchema, { ...base, RANKING_TIMEOUT: "soon" })).toThrow(/RANKING_TIMEOUT is invalid/);
    expect(() => loadConfig(configSchema, { ...base, USER_STORE: "memcached" })).toThrow(
      /USER_STORE is invalid: expected one of embedded, redis/,
    );
    expect(() => checkOrchestratorConfig(loadConfig(configSchema, without("USER_STORE_PATH")))).toThrow(ConfigError);
    // A dataset that is not the bundle's.
    const config = loadConfig(configSchema, { ...base, DATASET: "synthetic:users=10,items=10,seed=9", GRPC_PORT: "0", METRICS_PORT: "0" });
    const error = await createOrchestrator({ config, logger: memoryLogger(STAGE).logger, registry: new Registry() }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe("DATASET");
    expect((error as ConfigError).message).toContain(`is not the dataset the bundle at MODEL_PATH was trained on ("${TEST_DATASET}"`);
  });

  it("the process exits 1 with the variable's name when it is missing", async () => {
    const environment = { ...env(), PATH: process.env.PATH ?? "" };
    delete (environment as Record<string, string | undefined>).RANKING_ADDRESS;
    const child = spawn(process.execPath, [MAIN], { env: environment, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(1);
    expect(stderr).toContain("orchestrator: configuration error: RANKING_ADDRESS is required but not set");
  });
});
