/**
 * Real time in the stores, the bundle's own time line for the models: with the default wall
 * clock, a bundle trained on a historical dataset (the tiny synthetic one ends in the past) is
 * stored shifted into real time, RecordEvents takes real timestamps, and the ranker receives the
 * request time and the history on the bundle's time line (just after its last training event).
 */
import { join } from "node:path";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { generateSynthetic, lastoutSplit, parseSyntheticSpec, trainingRows } from "@recsys/data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toModelTime } from "./model-time.js";
import {
  TEST_DATASET,
  TEST_SPEC,
  removeDir,
  startCandidateGeneration,
  startFakeRanker,
  startOrchestrator,
  startRetrievalShard,
  tempDir,
  writeTinyBundle,
  type FakeRanker,
  type RunningOrchestrator,
  type Started,
} from "./test-helpers.js";

let root: string;
let stages: Started[] = [];
let ranker: FakeRanker;
let o: RunningOrchestrator;
let trainingEnd = -Infinity;

beforeAll(async () => {
  root = await tempDir("model-time");
  const bundle = join(root, "bundle");
  await writeTinyBundle(bundle, 1);
  const dataset = generateSynthetic(TEST_DATASET, parseSyntheticSpec(TEST_SPEC));
  for (const row of trainingRows(lastoutSplit(dataset.events, dataset.users.ids.length), "test")) {
    trainingEnd = Math.max(trainingEnd, dataset.events.timestamp[row]!);
  }
  const cg = await startCandidateGeneration(bundle);
  const shard = await startRetrievalShard(bundle, join(root, "index"), 0, 1);
  ranker = await startFakeRanker();
  stages = [ranker, shard, cg];
  o = await startOrchestrator({
    MODEL_PATH: bundle,
    CANDIDATE_GENERATION_ADDRESS: cg.address,
    RETRIEVAL_ADDRESSES: shard.address,
    RANKING_ADDRESS: ranker.address,
    USER_STORE: "embedded",
    USER_STORE_PATH: join(root, "store"),
  });
});

afterAll(async () => {
  await o?.stop();
  for (const s of stages) await s.stop();
  if (root !== undefined) await removeDir(root);
});

describe("model time", () => {
  it("shifts every time of a context", () => {
    const ts = (s: number) => timestampFromMs(s * 1000);
    const context = {
      $typeName: "recsys.v1.UserContext",
      userId: "u",
      requestTime: ts(1000),
      watchHistory: [{ $typeName: "recsys.v1.WatchedItem", itemId: "a", watchedAt: ts(900) }],
      searchHistory: [{ $typeName: "recsys.v1.SearchQuery", query: "q", searchedAt: ts(800) }],
      impressionHistory: [{ $typeName: "recsys.v1.ShownItem", itemId: "b", shownAt: ts(700) }],
      geo: "",
      device: 0,
    } as unknown as Parameters<typeof toModelTime>[0];
    const shifted = toModelTime(context, 100);
    expect(timestampMs(shifted.requestTime!)).toBe(900_000);
    expect(timestampMs(shifted.watchHistory[0]!.watchedAt!)).toBe(800_000);
    expect(timestampMs(shifted.searchHistory[0]!.searchedAt!)).toBe(700_000);
    expect(timestampMs(shifted.impressionHistory[0]!.shownAt!)).toBe(600_000);
    expect(toModelTime(context, 0)).toBe(context);
  });

  it("serves on the wall clock, stores real time, and gives the models the bundle's time line", async () => {
    const now = Date.now() / 1000;
    expect(o.orchestrator.clock.mode).toBe("wall");
    // A watch stamped with the real time is accepted.
    const userId = o.orchestrator.catalogue.dataset.users.ids[0]!;
    const item = o.orchestrator.catalogue.dataset.items.ids[0]!;
    const accepted = await o.client.recordEvents({
      events: [{ userId, kind: { case: "watch", value: { itemId: item, watchedAt: timestampFromMs(Date.now() - 60_000) } } }],
    });
    expect(accepted.accepted).toBe(1);
    const stored = (await o.orchestrator.store.get(userId))!;
    // Seeded history moved into real time (before now), the new watch last at its real time.
    expect(stored.watches.at(-1)!.itemId).toBe(item);
    expect(stored.watches.at(-1)!.timestamp).toBeCloseTo(now - 60, 0);
    expect(stored.watches[0]!.timestamp).toBeLessThan(now);
    expect(stored.watches[0]!.timestamp).toBeGreaterThan(now - 400 * 86400);

    ranker.requests.length = 0;
    await o.client.recommend({ userId, count: 5 });
    const context = ranker.requests.at(-1)!.context!;
    const requestTime = timestampMs(context.requestTime!) / 1000;
    // Just after the bundle's last training event (the stage clocks started a moment ago)...
    expect(requestTime).toBeGreaterThan(trainingEnd);
    expect(requestTime).toBeLessThan(trainingEnd + 600);
    // ...and the user's history on the same time line: the new watch 60 s before the request.
    const last = context.watchHistory.at(-1)!;
    expect(last.itemId).toBe(item);
    expect(requestTime - timestampMs(last.watchedAt!) / 1000).toBeCloseTo(60, -1);
  });
});
