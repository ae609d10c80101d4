/**
 * End to end: `recsys train-session` writes a session model into a bundle; the four stages run as
 * separate processes over it; an anonymous session (session_item_ids, no user id) asked over gRPC
 * is answered with "Because you just watched …" reasons, and a logged-in user gets the session
 * source's candidates alongside the others.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchStack, trainStackModel, type Stack } from "@recsys/cli";
import type { Dataset } from "@recsys/data";
import { RecommenderService } from "@recsys/gen";
import { connect, type Client } from "@recsys/runtime";
import { E2E_MODEL_SETTINGS, e2eDataset } from "./stack-helpers.js";

let dir: string;
let dataset: Dataset;
let stack: Stack | undefined;
let recommender: Client<typeof RecommenderService.method>;
let trainOutput = "";

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [fileURLToPath(new URL("../packages/cli/dist/main.js", import.meta.url)), ...args],
      { env: { PATH: process.env.PATH ?? "" }, timeout: 120_000 },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== "number") reject(error);
        else resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr });
      },
    );
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "recsys-anon-e2e-"));
  dataset = e2eDataset();
  const model = await trainStackModel(dataset, join(dir, "bundle"), E2E_MODEL_SETTINGS);
  const trained = await runCli([
    "train-session",
    "--dataset",
    dataset.spec,
    "--model",
    model.dir,
    "--encoder",
    "gru4rec",
    "--epochs",
    "3",
    "--seed",
    "2",
  ]);
  if (trained.code !== 0) throw new Error(`recsys train-session failed (${trained.code}): ${trained.stderr}`);
  trainOutput = trained.stdout;
  stack = await launchStack({
    modelDir: model.dir,
    dataset: dataset.spec,
    stateDir: join(dir, "run"),
    shards: 1,
    startTimeoutMs: 90_000,
    env: {
      orchestrator: {
        USER_STORE_TIMEOUT: "3s",
        CANDIDATE_GENERATION_TIMEOUT: "3s",
        RETRIEVAL_TIMEOUT: "3s",
        RANKING_TIMEOUT: "3s",
        MODEL_POLL_INTERVAL: "0",
      },
      candidate_generation: { MODEL_POLL_INTERVAL: "0" },
      retrieval: { MODEL_POLL_INTERVAL: "0" },
      ranking: { MODEL_POLL_INTERVAL: "0" },
    },
  });
  recommender = connect(RecommenderService, stack.orchestrator.address, { defaultTimeoutMs: 15_000 });
}, 240_000);

afterAll(async () => {
  recommender?.$close();
  await stack?.stop(3000);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}, 30_000);

describe("anonymous sessions over gRPC, the stages as processes", () => {
  it("train-session wrote the bundle's session model on the bundle's holdout", async () => {
    expect(trainOutput).toMatch(/wrote a gru4rec session model to .*session/);
    const manifest = JSON.parse(await readFile(join(dir, "bundle", "session", "manifest.json"), "utf8")) as {
      encoder: { kind: string };
      training: { holdout: string; epochs: number };
    };
    expect(manifest.encoder.kind).toBe("gru4rec");
    expect(manifest.training.holdout).toBe("test");
    expect(manifest.training.epochs).toBe(3);
  });

  it("answers an anonymous session with 'Because you just watched' reasons", async () => {
    const session = dataset.items.ids.slice(10, 14);
    const titleOf = (id: string): string => dataset.items.titles[dataset.items.ids.indexOf(id)] || `"${id}"`;
    const response = await recommender.recommend({ sessionItemIds: session, count: 10 });
    expect(response.degraded, JSON.stringify(response.failedStages)).toBe(false);
    expect(response.items).toHaveLength(10);
    const reasons = response.items.flatMap((i) => i.reasons).filter((r) => r.startsWith("Because you just watched "));
    expect(reasons.length).toBeGreaterThan(0);
    for (const r of reasons) expect(session.map(titleOf)).toContain(r.slice("Because you just watched ".length));
    for (const item of response.items) {
      expect(session).not.toContain(item.itemId);
      expect(item.reasons.length).toBeGreaterThan(0);
    }
  });

  it("recsys recommend --session asks for an anonymous session", async () => {
    const session = dataset.items.ids.slice(10, 14);
    const r = await runCli([
      "recommend",
      "--session",
      session.join(","),
      "--count",
      "5",
      "--json",
      "--address",
      stack!.orchestrator.address,
      "--state",
      join(dir, "no-state.json"),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as { items: { itemId: string; reasons: string[] }[] };
    expect(json.items).toHaveLength(5);
    expect(json.items.some((i) => i.reasons.some((s) => s.startsWith("Because you just watched ")))).toBe(true);
    expect((await runCli(["recommend", "--session", "1", "--user", "1", "--address", stack!.orchestrator.address])).code).toBe(2);
  });

  it("gives a logged-in user the session source alongside the DNN", async () => {
    const response = await recommender.recommend({ userId: "1", count: 30 });
    expect(response.degraded, JSON.stringify(response.failedStages)).toBe(false);
    const sources = new Set(response.items.flatMap((i) => i.provenance.map((p) => p.sourceName)));
    expect(sources.has("session")).toBe(true);
  });
});
