/**
 * The orchestrator in front of the REAL ranking service (port 0): the real candidate-generation
 * service and two retrieval shards over a tiny bundle, and a tiny ranker trained behind the same
 * sources (with the bundle's "dnn" source) in `<bundle>/ranker/`. Answers are ranked by the model,
 * not degraded, and the ranker sees the item statistics and impressions exactly as its training
 * data defined them.
 */
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { ShownItemSchema, type RecommendResponse } from "@recsys/gen";
import { sourceItemStats, type RankerManifest } from "@recsys/ranking";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contextFromState } from "./context.js";
import {
  removeDir,
  startCandidateGeneration,
  startOrchestrator,
  startRankingService,
  startRetrievalShard,
  tempDir,
  writeTinyBundle,
  writeTinyRanker,
  type RunningOrchestrator,
  type Started,
} from "./test-helpers.js";

let root: string;
let rankerManifest: RankerManifest;
let stages: Started[] = [];
let o: RunningOrchestrator;

beforeAll(async () => {
  root = await tempDir("ranked");
  const bundle = join(root, "bundle");
  await writeTinyBundle(bundle, 1);
  rankerManifest = await writeTinyRanker(bundle, 1);
  const cg = await startCandidateGeneration(bundle);
  const shards = [
    await startRetrievalShard(bundle, join(root, "index"), 0, 2),
    await startRetrievalShard(bundle, join(root, "index"), 1, 2),
  ];
  const ranking = await startRankingService(bundle);
  stages = [ranking, ...shards, cg];
  o = await startOrchestrator({
    MODEL_PATH: bundle,
    CANDIDATE_GENERATION_ADDRESS: cg.address,
    RETRIEVAL_ADDRESSES: shards.map((s) => s.address).join(","),
    RANKING_ADDRESS: ranking.address,
    USER_STORE: "embedded",
    USER_STORE_PATH: join(root, "store"),
  });
});

afterAll(async () => {
  await o?.stop();
  for (const s of stages) await s.stop();
  if (root !== undefined) await removeDir(root);
});

function feature(response: RecommendResponse, itemId: string, name: string): number | undefined {
  return response.items.find((i) => i.itemId === itemId)?.features[name];
}

describe("with the real ranking service", () => {
  it("answers in the ranker's order with its logits and exp(logit) watch times, not degraded", async () => {
    const response = await o.client.recommend({ userId: "7", count: 500, debug: true });
    expect(response.degraded, JSON.stringify(response.failedStages)).toBe(false);
    expect(response.failedStages).toEqual([]);
    expect(response.versions.find((v) => v.component === "ranking")).toMatchObject({ modelVersion: rankerManifest.modelVersion });
    expect(response.items.length).toBeGreaterThan(50);
    const scores = response.items.map((i) => i.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    for (const item of response.items) expect(item.expectedWatchSeconds).toBe(Math.fround(Math.exp(item.score)));
    // Logits, not the fallback's 1 / (1 + position).
    expect(scores.some((s, k) => s !== Math.fround(1 / (1 + k)))).toBe(true);
    // The ranker reordered the merged list: the merged-position input (1 - normalised position,
    // decreasing along the merge order) is not monotone along the answer.
    const position = response.items.map((i) => i.features["position"]!);
    expect(position.every((p) => Number.isFinite(p))).toBe(true);
    expect(position.some((p, k) => k > 0 && p > position[k - 1]!)).toBe(true);
    // Every source the ranker knows reached it (dnn included: it was trained with the bundle's).
    const columns = Object.keys(response.items[0]!.features);
    for (const s of ["dnn", "co-watch", "popular", "trending", "trending-geo"]) expect(columns, s).toContain(`src_${s}`);
    expect(response.items.some((i) => i.features["src_dnn"] === 1)).toBe(true);
  });

  it("sends each candidate's watch count and trending score as the ranker's training data defines them", async () => {
    const response = await o.client.recommend({ userId: "12", count: 500, debug: true });
    expect(response.degraded, JSON.stringify(response.failedStages)).toBe(false);
    const { catalogue, online, clock } = o.orchestrator;
    // @recsys/ranking's own definition, read from the orchestrator's live source set.
    const stats = sourceItemStats(online.set);
    const t = clock.now();
    let nonZero = 0;
    for (const item of response.items) {
      const expected = stats(catalogue.indexOf(item.itemId)!, t);
      expect(item.features["raw_item_watch_count"], item.itemId).toBe(expected.watchCount);
      // Trending decays between the request and now (seconds against a 7-day half-life).
      expect(item.features["raw_item_trending"]!, item.itemId).toBeCloseTo(expected.trending, 4);
      if (expected.watchCount > 0) nonZero++;
    }
    expect(nonZero).toBeGreaterThan(10);
  });

  it("passes the user's recorded impressions (and a caller's impression_history) to the ranker", async () => {
    const userId = "21";
    const before = await o.client.recommend({ userId, count: 500, debug: true });
    const target = before.items[3]!.itemId;
    expect(feature(before, target, "raw_previous_impressions")).toBe(0);

    await o.client.recordEvents({
      events: Array.from({ length: 3 }, (_, k) => ({
        userId,
        kind: { case: "impression" as const, value: { itemId: target, position: k + 1 } },
      })),
    });
    const after = await o.client.recommend({ userId, count: 500, debug: true });
    expect(after.degraded, JSON.stringify(after.failedStages)).toBe(false);
    expect(feature(after, target, "raw_previous_impressions")).toBe(3);
    expect(feature(after, before.items[4]!.itemId, "raw_previous_impressions")).toBe(0);
    expect(feature(after, target, "previous_impressions")).not.toBe(feature(before, target, "previous_impressions"));

    // A caller's context is used as given, impression_history included (here: the stored
    // context with two impressions instead of the three recorded).
    const t = o.orchestrator.clock.now();
    const context = contextFromState(userId, await o.orchestrator.store.get(userId), t);
    expect(context.impressionHistory.filter((i) => i.itemId === target)).toHaveLength(3);
    const shownAt = { seconds: BigInt(Math.floor(t) - 60), nanos: 0 };
    context.impressionHistory = [
      create(ShownItemSchema, { itemId: target, shownAt }),
      create(ShownItemSchema, { itemId: target, shownAt }),
    ];
    const given = await o.client.recommend({ userId, count: 500, debug: true, context });
    expect(given.degraded, JSON.stringify(given.failedStages)).toBe(false);
    expect(feature(given, target, "raw_previous_impressions")).toBe(2);
  });
});
