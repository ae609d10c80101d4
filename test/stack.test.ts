/**
 * End to end: the four stages as separate processes (`node packages/<pkg>/dist/main.js`, the
 * launcher `recsys start` uses) on ephemeral loopback ports, over tiny models trained once here,
 * called only through gRPC. The tests share one stack and run in order: the last ones kill
 * processes.
 */
import { execFile } from "node:child_process";
import { appendFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchStack, trainStackModel, type Stack } from "@recsys/cli";
import type { Dataset } from "@recsys/data";
import {
  CandidateGenerationService,
  type Device,
  RankingService,
  RecommenderService,
  RetrievalService,
  type RecommendResponse,
} from "@recsys/gen";
import { SERVING_NODE_FLAGS, checkHealth, connect, type Client } from "@recsys/runtime";
import { E2E_MODEL_SETTINGS, e2eDataset, eventually, rpcFailure, trainingHistories } from "./stack-helpers.js";

let dir: string;
let dataset: Dataset;
let histories: Map<string, Set<string>>;
let stack: Stack | undefined;
let recommender: Client<typeof RecommenderService.method>;
let shards: Client<typeof RetrievalService.method>[] = [];

/** The stages' budgets are widened: two shared cores must not turn a slow call into a degraded answer. */
const ORCHESTRATOR_ENV = {
  USER_STORE_TIMEOUT: "3s",
  CANDIDATE_GENERATION_TIMEOUT: "3s",
  RETRIEVAL_TIMEOUT: "3s",
  RANKING_TIMEOUT: "3s",
  DELETED_ITEMS_POLL_INTERVAL: "100ms",
  MODEL_POLL_INTERVAL: "0",
};

function connectRecommender(address: string): Client<typeof RecommenderService.method> {
  return connect(RecommenderService, address, { defaultTimeoutMs: 15_000 });
}

async function recommend(userId: string, count = 10, excludedItemIds: string[] = []): Promise<RecommendResponse> {
  return recommender.recommend({ userId, count, excludedItemIds });
}

const ids = (response: RecommendResponse): string[] => response.items.map((item) => item.itemId);

/** Runs the `recsys` command (packages/cli/dist/main.js) with no state file to find. */
function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [fileURLToPath(new URL("../packages/cli/dist/main.js", import.meta.url)), ...args, "--state", join(dir, "no-state.json")],
      { env: { PATH: process.env.PATH ?? "", ...env }, timeout: 30_000 },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== "number") reject(error);
        else resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr });
      },
    );
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "recsys-e2e-"));
  dataset = e2eDataset();
  histories = trainingHistories(dataset);
  const model = await trainStackModel(dataset, join(dir, "bundle"), E2E_MODEL_SETTINGS);
  stack = await launchStack({
    modelDir: model.dir,
    dataset: dataset.spec,
    stateDir: join(dir, "run"),
    shards: 2,
    startTimeoutMs: 90_000,
    env: {
      orchestrator: ORCHESTRATOR_ENV,
      candidate_generation: { MODEL_POLL_INTERVAL: "0" },
      retrieval: { MODEL_POLL_INTERVAL: "0" },
      ranking: { MODEL_POLL_INTERVAL: "0" },
    },
  });
  recommender = connectRecommender(stack.orchestrator.address);
  shards = stack.retrieval.map((s) => connect(RetrievalService, s.address, { defaultTimeoutMs: 15_000 }));
}, 120_000);

afterAll(async () => {
  recommender?.$close();
  for (const shard of shards) shard.$close();
  await stack?.stop(3000);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}, 30_000);

describe("the stack as separate processes", () => {
  it("serves personalised answers in which every item has provenance and a reason", async () => {
    for (const s of stack!.stages()) {
      expect(await checkHealth(s.address)).toBe("SERVING");
      // Started with the serving processes' node flags (@recsys/runtime v8-flags.ts).
      const argv = (await readFile(`/proc/${s.pid}/cmdline`, "utf8")).split("\0");
      expect(argv.slice(1, 1 + SERVING_NODE_FLAGS.length), s.name).toEqual([...SERVING_NODE_FLAGS]);
    }
    for (const userId of ["1", "2", "3", "4", "5"]) {
      const response = await recommend(userId);
      expect(response.degraded, JSON.stringify(response.failedStages)).toBe(false);
      expect(response.items).toHaveLength(10);
      for (const item of response.items) {
        expect(item.provenance.length, item.itemId).toBeGreaterThan(0);
        for (const p of item.provenance) {
          expect(p.sourceName).not.toBe("");
          expect(p.rank).toBeGreaterThanOrEqual(1);
        }
        expect(item.reasons.length, item.itemId).toBeGreaterThan(0);
        expect(item.reasons.every((r) => r.trim() !== "")).toBe(true);
        expect(item.expectedWatchSeconds).toBeGreaterThan(0); // the ranker's exp(logit), not the degraded 0
      }
      const components = response.versions.map((v) => v.component).sort();
      expect(components).toEqual(["candidate_generation", "catalogue", "ranking", "retrieval/shard-0", "retrieval/shard-1"]);
      // The answer is the ranker's order.
      const scores = response.items.map((item) => item.score);
      expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    }
    // The DNN path reached the answers of some user.
    const sources = new Set<string>();
    for (const userId of ["1", "2", "3", "4", "5", "6", "7", "8"]) {
      for (const item of (await recommend(userId, 30)).items) for (const p of item.provenance) sources.add(p.sourceName);
    }
    expect(sources.has("dnn")).toBe(true);
  });

  it("never recommends a watched, excluded or deleted item", async () => {
    // Watched: the seeded histories.
    for (const userId of ["1", "2", "3", "4", "5", "6"]) {
      const watched = histories.get(userId) ?? new Set<string>();
      expect(watched.size).toBeGreaterThan(0);
      for (const id of ids(await recommend(userId, 50))) expect(watched.has(id), `user ${userId} watched ${id}`).toBe(false);
    }
    // Excluded: the top items of a first answer, asked again without them.
    const first = ids(await recommend("7", 10));
    const excluded = first.slice(0, 4);
    const again = ids(await recommend("7", 10, excluded));
    expect(again.some((id) => excluded.includes(id))).toBe(false);
    expect(again).toHaveLength(10);

    // Deleted: the items recommended most often, taken down the two ways an operator does it:
    // DeleteItems on every retrieval shard and the orchestrator's DELETED_ITEMS_FILE.
    const users = Array.from({ length: 20 }, (_, i) => String(i + 1));
    const counts = new Map<string, number>();
    for (const userId of users) for (const id of ids(await recommend(userId, 20))) counts.set(id, (counts.get(id) ?? 0) + 1);
    const deleted = [...counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([id]) => id);
    expect(counts.get(deleted[0]!)).toBeGreaterThan(2);
    let removed = 0;
    for (const shard of shards) removed += (await shard.deleteItems({ itemIds: deleted })).deleted;
    expect(removed).toBe(deleted.length); // each id is owned by exactly one shard
    await appendFile(stack!.deletedItemsFile, `${deleted.join("\n")}\n`);
    await eventually(
      async () => !ids(await recommend("1", 50)).some((id) => deleted.includes(id)),
      10_000,
      "the taken-down list to be read",
    );
    for (const userId of users) {
      const answer = ids(await recommend(userId, 50));
      expect(
        answer.filter((id) => deleted.includes(id)),
        `user ${userId}`,
      ).toEqual([]);
    }
    // Retrieval itself no longer returns them, whatever the k.
    const cg = connect(CandidateGenerationService, stack!.candidateGeneration.address, { defaultTimeoutMs: 15_000 });
    try {
      const embedded = await cg.embedUser({ context: { userId: "1" } });
      for (const shard of shards) {
        const hits = await shard.search({ userVector: embedded.userVector, k: 1000, modelVersion: embedded.version?.modelVersion ?? "" });
        expect(hits.items.length).toBeGreaterThan(0);
        expect(hits.items.filter((hit) => deleted.includes(hit.itemId))).toEqual([]);
      }
    } finally {
      cg.$close();
    }
  });

  it("reflects a recorded watch in the next recommendation", async () => {
    const userId = "9";
    const before = ids(await recommend(userId, 20));
    const watched = before[0]!;
    const accepted = await recommender.recordEvents({
      events: [{ userId, kind: { case: "watch", value: { itemId: watched, watchSeconds: 300 } } }],
    });
    expect(accepted.accepted).toBe(1);
    const after = await recommend(userId, 20);
    expect(ids(after)).not.toContain(watched);
    expect(ids(after)).not.toEqual(before.filter((id) => id !== watched));
    // Its co-watch neighbours are nominated because of it.
    const title = dataset.items.titles[dataset.items.ids.indexOf(watched)]!;
    expect(after.items.some((item) => item.reasons.includes(`Because you watched ${title}`))).toBe(true);
  });

  it("rejects malformed requests with INVALID_ARGUMENT or RESOURCE_EXHAUSTED and keeps serving", async () => {
    const unknownDevice = await rpcFailure(
      recommender.recommend({ userId: "1", count: 5, context: { userId: "1", device: 99 as Device } }),
    );
    expect(unknownDevice).toEqual({ code: "INVALID_ARGUMENT", details: "context.device has unknown value 99" });

    const empty = await rpcFailure(recommender.recommend({ count: 5, context: {} }));
    expect(empty.code).toBe("INVALID_ARGUMENT");
    expect(empty.details).toMatch(/user_id is required/);

    for (const count of [0, 100_000]) {
      const failure = await rpcFailure(recommender.recommend({ userId: "1", count }));
      expect(failure).toEqual({ code: "INVALID_ARGUMENT", details: `count must be between 1 and 500, got ${count}` });
    }

    // A 10 MB history (250,000 watches of 40-character ids): refused, never processed.
    const longId = "x".repeat(40);
    const history = Array.from({ length: 250_000 }, () => ({ itemId: longId }));
    const huge = await rpcFailure(recommender.recommend({ userId: "1", count: 5, context: { userId: "1", watchHistory: history } }));
    expect(huge).toEqual({ code: "INVALID_ARGUMENT", details: "context.watch_history has 250000 entries, at most 1000 allowed" });
    // Beyond the server's GRPC_MAX_MESSAGE_BYTES (16 MiB), from a client allowed to send it.
    const bigSender = connect(RecommenderService, stack!.orchestrator.address, {
      defaultTimeoutMs: 30_000,
      maxMessageBytes: 64 * 1024 * 1024,
    });
    try {
      const tooBig = await rpcFailure(
        bigSender.recommend({ userId: "1", count: 5, context: { userId: "1", watchHistory: [...history, ...history] } }),
      );
      expect(tooBig.code).toBe("RESOURCE_EXHAUSTED");
      expect(tooBig.details).toMatch(/larger than max/i);
    } finally {
      bigSender.$close();
    }

    const badEvent = await rpcFailure(recommender.recordEvents({ events: [{ userId: "1" }] }));
    expect(badEvent.code).toBe("INVALID_ARGUMENT");

    // Malformed calls to the internal stages too.
    const shardFailure = await rpcFailure(shards[0]!.search({ userVector: [1, 2, 3], k: 0 }));
    expect(shardFailure.code).toBe("INVALID_ARGUMENT");
    const ranking = connect(RankingService, stack!.ranking!.address, { defaultTimeoutMs: 15_000 });
    try {
      const rankFailure = await rpcFailure(ranking.rank({ context: { userId: "1" }, candidates: [] }));
      expect(rankFailure.code).toBe("INVALID_ARGUMENT");
      expect(rankFailure.details).toMatch(/candidates/);
    } finally {
      ranking.$close();
    }

    // Everything still up and answering.
    for (const s of stack!.stages()) {
      expect(s.hasExited(), s.name).toBe(false);
      expect(await checkHealth(s.address)).toBe("SERVING");
    }
    const ok = await recommend("1", 5);
    expect(ok.items).toHaveLength(5);
    expect(ok.degraded).toBe(false);
  });

  it("is reachable with recsys recommend and recsys event", async () => {
    const address = stack!.orchestrator.address;
    const event = await runCli(["event", "--user", "12", "--watch", "5", "--seconds", "60", "--address", address]);
    expect(event.code, event.stderr).toBe(0);
    expect(event.stdout).toMatch(/recorded 1 watch event for user 12 \(item 5\)/);
    const json = await runCli(["recommend", "--user", "12", "--count", "4", "--json", "--debug", "--address", address]);
    expect(json.code, json.stderr).toBe(0);
    const parsed = JSON.parse(json.stdout) as {
      items: { item_id: string; reasons: string[] }[];
      degraded: boolean;
      stage_timings: unknown[];
    };
    expect(parsed.items).toHaveLength(4);
    expect(parsed.items.map((item) => item.item_id)).not.toContain("5");
    expect(parsed.stage_timings.length).toBeGreaterThan(0);
    const table = await runCli(["recommend", "--user", "12", "--count", "3"], { RECSYS_ADDRESS: address });
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^rank +item +score +watch s +sources +reasons$/m);
    expect(table.stdout).toMatch(/^versions: .*ranking rk-/m);
    const refused = await runCli(["recommend", "--user", "12", "--count", "0", "--address", address]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/INVALID_ARGUMENT: count must be between 1 and 500, got 0/);
  });

  it("keeps acknowledged events across a kill -9 of the orchestrator", async () => {
    const userId = "11";
    const top = ids(await recommend(userId, 10)).slice(0, 3);
    expect(top).toHaveLength(3);
    const response = await recommender.recordEvents({
      events: top.map((itemId) => ({ userId, kind: { case: "watch" as const, value: { itemId } } })),
    });
    expect(response.accepted).toBe(3);
    const old = stack!.orchestrator;
    await old.kill();
    expect(old.hasExited()).toBe(true);
    recommender.$close();
    const restarted = await stack!.restartOrchestrator();
    expect(restarted.pid).not.toBe(old.pid);
    recommender = connectRecommender(restarted.address);
    const after = ids(await recommend(userId, 50));
    expect(after.length).toBeGreaterThan(0);
    expect(after.filter((id) => top.includes(id))).toEqual([]);
  });

  it("answers degraded, not with an error, when the ranker process is killed", async () => {
    await stack!.ranking!.kill();
    for (const userId of ["1", "2", "3"]) {
      const response = await recommend(userId, 10);
      expect(response.degraded).toBe(true);
      expect(response.failedStages.map((f) => f.stage)).toContain("ranking");
      expect(response.items).toHaveLength(10);
      for (const item of response.items) {
        expect(item.provenance.length).toBeGreaterThan(0);
        expect(item.reasons.length).toBeGreaterThan(0);
      }
      expect(response.versions.map((v) => v.component)).not.toContain("ranking");
    }
    expect(await checkHealth(stack!.orchestrator.address)).toBe("SERVING");
  });
});
