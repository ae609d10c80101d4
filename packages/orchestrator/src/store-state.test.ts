/**
 * A restart from the stores alone (no DATASET, the stores seeded by an earlier start): the
 * catalogue, every count and the users' geographies come back from the stores.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  removeDir,
  startCandidateGeneration,
  startFakeRanker,
  startOrchestrator,
  startRetrievalShard,
  tempDir,
  writeTinyBundle,
  type Started,
} from "./test-helpers.js";

let root: string;
let stages: Started[] = [];
let env: Record<string, string>;

beforeAll(async () => {
  root = await tempDir("store-state");
  const bundle = join(root, "bundle");
  await writeTinyBundle(bundle, 1);
  const cg = await startCandidateGeneration(bundle);
  const shard = await startRetrievalShard(bundle, join(root, "index"), 0, 1);
  const ranker = await startFakeRanker();
  stages = [ranker, shard, cg];
  env = {
    MODEL_PATH: bundle,
    CANDIDATE_GENERATION_ADDRESS: cg.address,
    RETRIEVAL_ADDRESSES: shard.address,
    RANKING_ADDRESS: ranker.address,
    USER_STORE: "embedded",
    USER_STORE_PATH: join(root, "store"),
  };
});

afterAll(async () => {
  for (const s of stages) await s.stop();
  if (root !== undefined) await removeDir(root);
});

describe("a start from the stores alone", () => {
  it("has the same catalogue, counts and area trends as the start that seeded them", async () => {
    const first = await startOrchestrator(env);
    const o1 = first.orchestrator;
    const users = o1.catalogue.dataset.users;
    const u = users.geo.codes.findIndex((c) => c >= 0);
    const userId = users.ids[u]!;
    const geo = users.geo.values[users.geo.codes[u]!]!;
    const probe = (o: typeof o1) => {
      const asOf = o.clock.now();
      const run = o.online.run({ history: [], asOf, budget: 0, geo: o.catalogue.geoCode(geo)! });
      const byName = new Map(run.results.map((r) => [r.source, r.candidates.map((c) => o.catalogue.id(c.item))]));
      return { popular: byName.get("popular") ?? [], area: byName.get("trending-geo") ?? [] };
    };
    const before = probe(o1);
    expect(before.popular.length).toBeGreaterThan(0);
    expect(before.area.length).toBeGreaterThan(0);
    const someItem = o1.catalogue.dataset.items.ids[3]!;
    const title = o1.catalogue.displayTitle(o1.catalogue.indexOf(someItem)!);
    await first.stop();

    const second = await startOrchestrator({ ...env, DATASET: "" });
    try {
      const o2 = second.orchestrator;
      expect(second.logs.lines.some((l) => l.dataset === "(stores only)")).toBe(true);
      expect(o2.catalogue.displayTitle(o2.catalogue.indexOf(someItem)!)).toBe(title);
      const after = probe(o2);
      expect(after.popular).toEqual(before.popular);
      expect(after.area).toEqual(before.area);
      expect(o2.online.usersWithoutGeo().some(([id]) => id === userId)).toBe(false);
    } finally {
      await second.stop();
    }
  });
});
