/**
 * Overload and readiness on real gRPC servers: the real candidate-generation service and
 * retrieval shards over a tiny bundle, a fake ranker that can be made slow, and the orchestrator
 * with a small MAX_IN_FLIGHT (load-shed.ts); and readiness following a stage that goes down and
 * comes back (readiness.ts).
 */
import { join } from "node:path";
import { RecommenderService } from "@recsys/gen";
import { checkHealth, isServiceError, startService, status } from "@recsys/runtime";
import { metricValue, testConfig } from "@recsys/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StageReadiness } from "./readiness.js";
import {
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
let bundle: string;
let cg: Started;
let shards: Started[];
let ranker: FakeRanker;
const running: RunningOrchestrator[] = [];

beforeAll(async () => {
  root = await tempDir("overload");
  bundle = join(root, "bundle");
  await writeTinyBundle(bundle, 1);
  cg = await startCandidateGeneration(bundle);
  shards = [await startRetrievalShard(bundle, join(root, "index"), 0, 1)];
  ranker = await startFakeRanker();
});

afterAll(async () => {
  for (const o of running.splice(0)) await o.stop();
  for (const s of [ranker, ...(shards ?? []), cg]) await s?.stop();
  if (root !== undefined) await removeDir(root);
});

async function start(extra: Record<string, string>): Promise<RunningOrchestrator> {
  const o = await startOrchestrator({
    MODEL_PATH: bundle,
    CANDIDATE_GENERATION_ADDRESS: cg.address,
    RETRIEVAL_ADDRESSES: shards.map((s) => s.address).join(","),
    RANKING_ADDRESS: ranker.address,
    USER_STORE: "embedded",
    USER_STORE_PATH: join(root, `store-${running.length}`),
    ...extra,
  });
  running.push(o);
  return o;
}

describe("load shedding (MAX_IN_FLIGHT)", () => {
  it("answers the calls beyond MAX_IN_FLIGHT RESOURCE_EXHAUSTED at once, with a retry hint, and the rest in full", async () => {
    const o = await start({ MAX_IN_FLIGHT: "4", SHED_RETRY_AFTER: "250ms", RANKING_TIMEOUT: "5s" });
    ranker.mode = "slow";
    ranker.slowMs = 400;
    try {
      const started = Date.now();
      const outcomes = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          o.client.recommend({ userId: String(1 + i), count: 5 }, { deadline: Date.now() + 10_000 }).then(
            (response) => ({ ok: true as const, degraded: response.degraded, ms: Date.now() - started }),
            (error: unknown) => ({ ok: false as const, error, ms: Date.now() - started }),
          ),
        ),
      );
      const answered = outcomes.filter((o) => o.ok);
      const shed = outcomes.filter((o) => !o.ok);
      expect(answered).toHaveLength(4);
      expect(answered.every((a) => a.ok && !a.degraded)).toBe(true);
      expect(shed).toHaveLength(8);
      for (const s of shed) {
        if (s.ok || !isServiceError(s.error)) throw new Error("expected a gRPC error");
        expect(s.error.code).toBe(status.RESOURCE_EXHAUSTED);
        expect(s.error.details).toMatch(/overloaded: 4 Recommend calls in flight \(MAX_IN_FLIGHT=4\); retry after 250 ms/);
        expect(s.error.metadata.get("grpc-retry-pushback-ms")).toEqual(["250"]);
        // At once: before any admitted call, which waits 400 ms for the ranker.
        expect(s.ms).toBeLessThan(Math.min(...answered.map((a) => a.ms)));
      }
      const metrics = await o.registry.metrics();
      expect(metricValue(metrics, "recsys_orchestrator_shed_total", { method: "Recommend" })).toBe(8);
      // Once the burst is over every call is admitted again.
      ranker.mode = "ok";
      expect((await o.client.recommend({ userId: "1", count: 5 })).items).toHaveLength(5);
    } finally {
      ranker.mode = "ok";
    }
  });

  it("does not bound RecordEvents", async () => {
    const o = await start({ MAX_IN_FLIGHT: "1" });
    const all = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        o.client
          .recordEvents({ events: [{ userId: `burst-${i}`, kind: { case: "watch", value: { itemId: "i1" } } }] })
          .catch((e: unknown) => e),
      ),
    );
    expect(all.filter((r) => isServiceError(r) && r.code === status.RESOURCE_EXHAUSTED)).toHaveLength(0);
  });
});

describe("readiness from the downstream stages", () => {
  it("turns NOT_SERVING once a stage has been down longer than downAfterMs, and SERVING when it is back", async () => {
    const stage = await startService({ stage: "readiness_probe", config: testConfig(), services: [] });
    const port = stage.port;
    // Checked by hand (checkNow): the timer's interval is longer than the test.
    const readiness = new StageReadiness({ stages: [{ name: "ranking", address: stage.address }], intervalMs: 60_000, downAfterMs: 300 });
    const flips: boolean[] = [];
    readiness.start((ready) => flips.push(ready));
    try {
      await readiness.checkNow();
      expect(readiness.isReady()).toBe(true);
      await stage.stop();
      await readiness.checkNow();
      expect(readiness.isReady()).toBe(true); // down, but not for long yet
      expect(readiness.down().map((d) => d.stage)).toEqual(["ranking"]);
      await new Promise((r) => setTimeout(r, 500));
      await readiness.checkNow();
      expect(readiness.isReady()).toBe(false);
      const back = await startService({ stage: "readiness_probe", config: testConfig({ GRPC_PORT: port }), services: [] });
      try {
        await readiness.checkNow();
        expect(readiness.isReady()).toBe(true);
        expect(flips).toEqual([false, true]);
      } finally {
        await back.stop();
      }
    } finally {
      readiness.stop();
    }
  });

  it("the orchestrator's RecommenderService health is its readiness; its overall health (liveness) stays SERVING", async () => {
    const o = await start({ STAGE_HEALTH_INTERVAL: "100ms", STAGE_DOWN_NOT_READY_AFTER: "300ms" });
    const fake = await startFakeRanker();
    const o2 = await start({ RANKING_ADDRESS: fake.address, STAGE_HEALTH_INTERVAL: "100ms", STAGE_DOWN_NOT_READY_AFTER: "300ms" });
    o2.orchestrator.readiness.start((ready) => o2.service.setServing(ready ? "SERVING" : "NOT_SERVING", RecommenderService.typeName));
    await fake.stop();
    await new Promise((r) => setTimeout(r, 800));
    await o2.orchestrator.readiness.checkNow();
    expect(await checkHealth(o2.service.address, { service: RecommenderService.typeName })).toBe("NOT_SERVING");
    expect(await checkHealth(o2.service.address)).toBe("SERVING");
    const metrics = await o2.registry.metrics();
    expect(metricValue(metrics, "recsys_orchestrator_stage_up", { stage: "ranking" })).toBe(0);
    expect(metricValue(metrics, "recsys_orchestrator_stage_up", { stage: "candidate_generation" })).toBe(1);
    // The other orchestrator, whose stages all run, was never made unready.
    expect(await checkHealth(o.service.address, { service: RecommenderService.typeName })).toBe("SERVING");
    // Answers go on, degraded, meanwhile.
    const response = await o2.client.recommend({ userId: "1", count: 5 });
    expect(response.degraded).toBe(true);
  });
});
