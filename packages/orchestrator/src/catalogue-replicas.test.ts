/**
 * The catalogue API across replicas sharing Redis stores: an item upserted through one replica is
 * nominated by the other (change stream), and an item taken down through one is never returned
 * by the other from the moment DeleteItems returned (per-answer check against the stored
 * takedowns), also on a replica started afterwards.
 */
import { join } from "node:path";
import { CatalogueService } from "@recsys/gen";
import { connect } from "@recsys/runtime";
import type { RedisUserStore } from "@recsys/user-store";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  TEST_REDIS_URL,
  removeDir,
  startCandidateGeneration,
  startFakeRanker,
  startOrchestrator,
  startRetrievalShard,
  tempDir,
  uniqueRedisPrefix,
  writeTinyBundle,
  type RunningOrchestrator,
  type Started,
} from "./test-helpers.js";

let root: string;
let bundle: string;
let stages: Started[] = [];
let shardAddresses: string;
let cgAddress: string;
let rankerAddress: string;

beforeAll(async () => {
  root = await tempDir("catalogue-replicas");
  bundle = join(root, "bundle");
  await writeTinyBundle(bundle, 1);
  const cg = await startCandidateGeneration(bundle);
  const shards = [
    await startRetrievalShard(bundle, join(root, "index"), 0, 2),
    await startRetrievalShard(bundle, join(root, "index"), 1, 2),
  ];
  const ranker = await startFakeRanker();
  stages = [ranker, ...shards, cg];
  shardAddresses = shards.map((s) => s.address).join(",");
  cgAddress = cg.address;
  rankerAddress = ranker.address;
});

afterAll(async () => {
  for (const s of stages) await s.stop();
  if (root !== undefined) await removeDir(root);
});

async function waitFor(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("catalogue API on replicas sharing Redis", () => {
  it("an upsert reaches the other replica; a takedown is never served by any replica once DeleteItems returned", async () => {
    const prefix = uniqueRedisPrefix("catalogue");
    const env = {
      MODEL_PATH: bundle,
      CANDIDATE_GENERATION_ADDRESS: cgAddress,
      RETRIEVAL_ADDRESSES: shardAddresses,
      RANKING_ADDRESS: rankerAddress,
      USER_STORE: "redis",
      REDIS_URL: TEST_REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
    };
    const running: RunningOrchestrator[] = [];
    try {
      const a = await startOrchestrator(env);
      running.push(a);
      const b = await startOrchestrator(env);
      running.push(b);
      const catalogueA = connect(CatalogueService, a.service.address);
      const catalogue = a.orchestrator.catalogue;
      const channel = catalogue.channel(0)!;
      const upserted = await catalogueA.upsertItems({ items: [{ itemId: "fresh-on-a", channel, tags: catalogue.tags(0), title: "new" }] });
      expect(upserted.upserted).toBe(1);
      const filters = { channels: [channel] };
      await waitFor(
        async () => (await b.client.recommend({ userId: "someone", count: 20, filters })).items.some((i) => i.itemId === "fresh-on-a"),
        5000,
        "replica B to nominate the upsert",
      );
      const onB = (await b.client.recommend({ userId: "someone", count: 20, filters })).items.find((i) => i.itemId === "fresh-on-a")!;
      expect(onB.reasons).toContain(`New from ${channel}`);

      // Items B serves a new user, taken down through A: never served by B after the call returned.
      const served = (await b.client.recommend({ userId: "visitor", count: 10 })).items.map((i) => i.itemId);
      expect(served.length).toBeGreaterThan(2);
      const victims = served.slice(0, 3);
      await catalogueA.deleteItems({ itemIds: victims });
      for (let k = 0; k < 5; k++) {
        const answer = await b.client.recommend({ userId: "visitor", count: 10, debug: true });
        expect(answer.items.map((i) => i.itemId).filter((id) => victims.includes(id))).toEqual([]);
        expect(answer.stageTimings.map((t) => t.stage)).toContain("catalogue");
      }
      // A replica started afterwards reads the takedowns and the item from the stores.
      const c = await startOrchestrator(env);
      running.push(c);
      expect(c.orchestrator.catalogue.isDeletedId(victims[0]!)).toBe(true);
      expect(c.orchestrator.catalogue.channel(c.orchestrator.catalogue.indexOf("fresh-on-a")!)).toBe(channel);
      catalogueA.$close();
    } finally {
      await (running[0]?.orchestrator.store as RedisUserStore | undefined)?.deleteAllKeys();
      for (const o of running) await o.stop();
    }
  });
});
