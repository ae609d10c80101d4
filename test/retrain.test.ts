/**
 * The live loop end to end, over gRPC and the `recsys` command only: the stack serves a first
 * bundle (a plain directory, as `recsys start` writes it); a client records watches through
 * RecordEvents and asks for recommendations; `recsys retrain` on the orchestrator's embedded store
 * refuses a deliberately broken candidate (--epochs 0) while the stack keeps answering with the
 * serving version, then publishes a trained one, which every stage picks up (candidate generation,
 * each retrieval shard, the orchestrator's catalogue) without a shard building an index, with a
 * session model retrained on the same window (anonymous sessions still answered); a restart of
 * the stack with DATASET set then starts from the seeded stores and the published bundle.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchStack, stackPaths, trainStackModel, type Stack } from "@recsys/cli";
import type { Dataset } from "@recsys/data";
import { RecommenderService, type RecommendResponse } from "@recsys/gen";
import { connect, type Client } from "@recsys/runtime";
import { E2E_MODEL_SETTINGS, e2eDataset, eventually } from "./stack-helpers.js";

let dir: string;
let dataset: Dataset;
let stack: Stack | undefined;
let recommender: Client<typeof RecommenderService.method>;
let firstVersion: string;

const POLL = { MODEL_POLL_INTERVAL: "1s" };

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [fileURLToPath(new URL("../packages/cli/dist/main.js", import.meta.url)), ...args],
      { env: { PATH: process.env.PATH ?? "" }, timeout: 240_000 },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== "number") reject(error);
        else resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr });
      },
    );
  });
}

const cgVersions = (r: RecommendResponse): Set<string> =>
  new Set(
    r.versions
      .filter((v) => v.component === "candidate_generation" || v.component.startsWith("retrieval") || v.component === "catalogue")
      .map((v) => v.modelVersion),
  );

async function indexBuilds(): Promise<number> {
  let total = 0;
  for (const shard of stack!.retrieval) {
    const text = await (await fetch(shard.metricsUrl)).text();
    for (const m of text.matchAll(/^recsys_retrieval_index_builds_total\{[^}]*\} (\S+)$/gm)) total += Number(m[1]);
  }
  return total;
}

/** The stack on the bundle at dir/bundle (a directory, later the symlink retrain flips), DATASET set. */
function launch(): Promise<Stack> {
  return launchStack({
    modelDir: join(dir, "bundle"),
    dataset: dataset.spec,
    stateDir: join(dir, "run"),
    shards: 2,
    startTimeoutMs: 90_000,
    env: {
      // The wall clock (the default): the bootstrap is stored shifted by the model time offset,
      // which `recsys retrain` reads beside the store to place the bundle's window on store time.
      orchestrator: {
        ...POLL,
        USER_STORE_TIMEOUT: "3s",
        CANDIDATE_GENERATION_TIMEOUT: "3s",
        RETRIEVAL_TIMEOUT: "3s",
        RANKING_TIMEOUT: "3s",
      },
      candidate_generation: POLL,
      retrieval: POLL,
      ranking: POLL,
    },
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "recsys-retrain-e2e-"));
  dataset = e2eDataset();
  const model = await trainStackModel(dataset, join(dir, "bundle"), E2E_MODEL_SETTINGS);
  firstVersion = model.manifest.modelVersion;
  // The bundle's session model (anonymous sessions, the "session" source).
  const session = await runCli(["train-session", "--dataset", dataset.spec, "--model", model.dir, "--encoder", "gru4rec", "--epochs", "2"]);
  if (session.code !== 0) throw new Error(`recsys train-session failed (${session.code}): ${session.stderr}`);
  stack = await launch();
  recommender = connect(RecommenderService, stack.orchestrator.address, { defaultTimeoutMs: 15_000 });
  // Traffic through the API: each user asks, then watches two of the items answered.
  for (const userId of dataset.users.ids.slice(0, 120)) {
    const answer = await recommender.recommend({ userId, count: 10 });
    const watched = answer.items.slice(0, 2).map((item) => item.itemId);
    // Spread the traffic over a few seconds, so that the 1 s watch windows of the earlier answers
    // close before the held-out cut-off (the latest 20 % of the new watches).
    await new Promise((resolve) => setTimeout(resolve, 25));
    await recommender.recordEvents({
      events: [
        ...answer.items.map((item, k) => ({
          userId,
          kind: { case: "impression" as const, value: { itemId: item.itemId, position: k + 1, requestId: answer.requestId } },
        })),
        ...watched.map((itemId) => ({ userId, kind: { case: "watch" as const, value: { itemId, watchSeconds: 120 } } })),
      ],
    });
  }
}, 180_000);

afterAll(async () => {
  recommender?.$close();
  await stack?.stop(3000);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}, 30_000);

describe("recsys retrain on the stack's own store", () => {
  const store = () => `store:${stackPaths(join(dir, "run")).users}`;

  it("refuses a candidate trained for zero epochs while the serving version keeps answering", async () => {
    const running = runCli([
      "retrain",
      "--dataset",
      store(),
      "--current",
      join(dir, "bundle"),
      "--shards",
      "2",
      "--epochs",
      "0",
      "--ranker-epochs",
      "1",
      "--preload-seconds",
      "3",
    ]);
    let answered = 0;
    let done = false;
    void running.finally(() => (done = true));
    while (!done) {
      const r = await recommender.recommend({ userId: dataset.users.ids[0]!, count: 5 });
      expect(cgVersions(r)).toEqual(new Set([firstVersion]));
      answered++;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const result = await running;
    expect(result.code, result.stderr).toBe(3);
    expect(result.stdout).toMatch(/^candidate .* HR@10 [\d.]+ {2}watch-time DCG@10 [\d.]+/m);
    expect(result.stdout).toMatch(/^serving .* HR@10 [\d.]+ {2}watch-time DCG@10 [\d.]+/m);
    expect(result.stdout).toMatch(/^refused: /m);
    expect(answered).toBeGreaterThan(0);
    const status = JSON.parse(await readFile(join(dir, "retrain-status.json"), "utf8")) as { outcome: string };
    expect(status.outcome).toBe("refused");
  }, 240_000);

  it("publishes a trained candidate that every stage picks up, with no index built by a shard and no answer degraded by a version mismatch", async () => {
    const builds = await indexBuilds();
    // Calls go on during the whole publication: none may fail or lose a shard to a version mismatch.
    let stop = false;
    const answers: RecommendResponse[] = [];
    const errors: unknown[] = [];
    const users = dataset.users.ids.slice(0, 50);
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        await recommender.recommend({ userId: users[i % users.length]!, count: 5 }).then(
          (r) => answers.push(r),
          (e: unknown) => errors.push(e),
        );
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    // A generous margin: this checks the publication path (the gate's refusal is checked above).
    const result = await runCli([
      "retrain",
      "--dataset",
      store(),
      "--current",
      join(dir, "bundle"),
      "--shards",
      "2",
      "--epochs",
      "2",
      "--ranker-epochs",
      "1",
      "--margin",
      "0.9",
      "--preload-seconds",
      "3",
      "--watch-window",
      "1",
    ]);
    expect(result.code, result.stderr).toBe(0);
    // The ranker learnt from the answers the orchestrator logged and the impressions/watches recorded.
    expect(result.stderr).toMatch(/ranker: [1-9]\d* examples from [1-9]\d* served answers/);
    const published = /^published: published (\S+)/m.exec(result.stdout)?.[1];
    expect(published).toBeDefined();
    await eventually(
      async () => {
        const r = await recommender.recommend({ userId: dataset.users.ids[1]!, count: 5 });
        const versions = cgVersions(r);
        return versions.size === 1 && versions.has(published!) && r.failedStages.length === 0;
      },
      30_000,
      "every stage on the published version",
    );
    await new Promise((resolve) => setTimeout(resolve, 2000)); // the calls after the last swap
    stop = true;
    await load;
    expect(errors).toEqual([]);
    const byNew = answers.filter((r) => r.versions.find((v) => v.component === "candidate_generation")?.modelVersion === published).length;
    expect(byNew).toBeGreaterThan(0);
    expect(answers.length - byNew).toBeGreaterThan(0);
    const mismatched = answers.filter((r) => r.failedStages.some((f) => /model version mismatch/.test(f.message)));
    expect(mismatched.map((r) => r.failedStages)).toEqual([]);
    expect(await indexBuilds()).toBe(builds);
    // The published bundle has a session model trained on the store's window: the session source
    // still answers anonymous sessions.
    const session = JSON.parse(await readFile(join(dir, published!, "session", "manifest.json"), "utf8")) as {
      training: { datasetSpec: string; candidateGenVersion: string };
    };
    expect(session.training.datasetSpec).toMatch(/^store:/);
    expect(session.training.candidateGenVersion).toBe(published);
    expect(result.stdout).toMatch(/session model: gru4rec trained on the training window/);
    const anonymous = await recommender.recommend({ sessionItemIds: dataset.items.ids.slice(10, 14), count: 10 });
    expect(cgVersions(anonymous)).toEqual(new Set([published]));
    expect(anonymous.items.some((i) => i.provenance.some((p) => p.sourceName === "session"))).toBe(true);
  }, 240_000);

  it("restarts with DATASET still set: the stores are seeded, the bundle trained on them serves", async () => {
    const published = await readlink(join(dir, "bundle"));
    recommender.$close();
    await stack!.stop(3000);
    stack = undefined;
    stack = await launch();
    recommender = connect(RecommenderService, stack.orchestrator.address, { defaultTimeoutMs: 15_000 });
    const log = await readFile(join(stackPaths(join(dir, "run")).logs, "orchestrator.log"), "utf8");
    expect(log).toContain("DATASET not loaded: the stores are seeded already and the bundle was trained on the store");
    const r = await recommender.recommend({ userId: dataset.users.ids[1]!, count: 5 });
    expect(r.failedStages).toEqual([]);
    expect(r.items).toHaveLength(5);
    expect(cgVersions(r)).toEqual(new Set([published]));
  }, 180_000);
});
