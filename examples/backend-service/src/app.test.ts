/**
 * The example backend in front of a real stack: the four stages as processes (`launchStack`, as
 * `recsys start` runs them) over tiny models trained here, the example service started as its own
 * process (`node dist/main.js`) and called over HTTP as its web page would; and the gateway in
 * front of the same orchestrator, called with curl.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchStack, trainStackModel, type Stack, type StackModelSettings } from "@recsys/cli";
import { generateSynthetic, parseSyntheticSpec } from "@recsys/data";
import { configSchema as gatewayConfigSchema, startGateway, type RunningGateway } from "@recsys/gateway";
import { loadConfig } from "@recsys/runtime";

const run = promisify(execFile);
const SPEC = "users=150,items=120,events=15,impressions=30,seed=3";
const SETTINGS: StackModelSettings = {
  holdout: "test",
  candidateGen: {
    epochs: 1,
    batchSize: 64,
    negatives: 20,
    seed: 7,
    threads: 1,
    model: { embeddingDim: 8, searchDim: 4, categoricalDim: 4, tower: [16, 8], finalActivation: "linear" },
  },
  ranker: {
    pipeline: { budget: 20, mergedSize: 40 },
    train: { epochs: 1, maxExamplesPerUser: 4, negatives: 6, seed: 7 },
    model: { itemDim: 8, categoricalDim: 4, tower: [16, 8] },
    features: { quantiles: 50 },
  },
};

let dir: string;
let stack: Stack | undefined;
let example: ChildProcess | undefined;
let exampleUrl: string;
let gateway: RunningGateway | undefined;
let user: string;

interface Listed {
  requestId: string;
  degraded: boolean;
  items: Array<{ id: string; score: number; reasons: string[] }>;
}

async function impressionsRecorded(): Promise<number> {
  const text = await (await fetch(stack!.orchestrator.metricsUrl)).text();
  const match = /recsys_orchestrator_recorded_events_total\{kind="impression"\} (\d+)/.exec(text);
  return match === null ? 0 : Number(match[1]);
}

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "recsys-example-"));
  const dataset = generateSynthetic(`synthetic:${SPEC}`, parseSyntheticSpec(SPEC));
  user = dataset.users.ids[0]!;
  const model = await trainStackModel(dataset, join(dir, "bundle"), SETTINGS);
  stack = await launchStack({
    modelDir: model.dir,
    dataset: dataset.spec,
    stateDir: join(dir, "run"),
    shards: 1,
    startTimeoutMs: 90_000,
    // Wide budgets: two shared cores must not turn a slow stage into a degraded answer.
    env: {
      orchestrator: {
        USER_STORE_TIMEOUT: "3s",
        CANDIDATE_GENERATION_TIMEOUT: "3s",
        RETRIEVAL_TIMEOUT: "3s",
        RANKING_TIMEOUT: "3s",
        MODEL_POLL_INTERVAL: "0",
      },
    },
  });
  example = spawn(process.execPath, [fileURLToPath(new URL("../dist/main.js", import.meta.url))], {
    env: { PATH: process.env.PATH ?? "", RECSYS_ADDRESS: stack.orchestrator.address, PORT: "0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  exampleUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the example did not print its URL within 20 s")), 20_000);
    createInterface({ input: example!.stdout! }).on("line", (line) => {
      const match = /listening on (http:\/\/\S+)/.exec(line);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
  });
  gateway = await startGateway(
    loadConfig(gatewayConfigSchema, {
      ORCHESTRATOR_ADDRESS: stack.orchestrator.address,
      GATEWAY_HOST: "127.0.0.1",
      GATEWAY_PORT: "0",
      METRICS_PORT: "0",
      LOG_LEVEL: "silent",
      GATEWAY_TIMEOUT: "5s",
    }),
  );
}, 300_000);

afterAll(async () => {
  await gateway?.stop();
  if (example !== undefined && example.exitCode === null) {
    const exited = new Promise((resolve) => example!.once("exit", resolve));
    example.kill("SIGTERM");
    await exited;
  }
  await stack?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe("examples/backend-service against a running stack", () => {
  it("serves the page and its recommendations, and records their impressions", async () => {
    const page = await fetch(`${exampleUrl}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("/api/recommendations");

    const before = await impressionsRecorded();
    const response = await fetch(`${exampleUrl}/api/recommendations?user=${user}&count=5`);
    expect(response.status).toBe(200);
    const listed = (await response.json()) as Listed;
    expect(listed.degraded).toBe(false);
    expect(listed.items).toHaveLength(5);
    expect(listed.requestId).not.toBe("");
    for (const item of listed.items) expect(item.reasons.length).toBeGreaterThan(0);
    await eventually(async () => (await impressionsRecorded()) === before + 5, "5 impressions recorded by the orchestrator");
  });

  it("records a watch, and the next list leaves the watched item out", async () => {
    const first = (await (await fetch(`${exampleUrl}/api/recommendations?user=${user}&count=5`)).json()) as Listed;
    const watched = first.items[0]!.id;
    const response = await fetch(`${exampleUrl}/api/watch`, {
      method: "POST",
      body: JSON.stringify({ user, item: watched, seconds: 300 }),
    });
    expect(response.status).toBe(204);
    const next = (await (await fetch(`${exampleUrl}/api/recommendations?user=${user}&count=20`)).json()) as Listed;
    expect(next.items.map((item) => item.id)).not.toContain(watched);
  });

  it("answers the caller's mistakes with 400 and the orchestrator's message", async () => {
    expect((await fetch(`${exampleUrl}/api/recommendations`)).status).toBe(400);
    const tooMany = await fetch(`${exampleUrl}/api/recommendations?user=${user}&count=100000`);
    expect(tooMany.status).toBe(400);
    expect(await tooMany.json()).toMatchObject({ code: "INVALID_ARGUMENT", error: expect.stringContaining("count") });
    const badWatch = await fetch(`${exampleUrl}/api/watch`, { method: "POST", body: "{}" });
    expect(badWatch.status).toBe(400);
  });
});

describe("examples/backend-service: the catalogue against the running orchestrator", () => {
  it("uploads an item (readable through the gateway's GetItems) and takes it down", async () => {
    const uploaded = await fetch(`${exampleUrl}/api/items`, {
      method: "POST",
      body: JSON.stringify({ id: "example-upload-1", title: "A new upload", tags: ["example"], channel: "example-channel", seconds: 95 }),
    });
    expect(uploaded.status).toBe(201);
    expect(await uploaded.json()).toMatchObject({ id: "example-upload-1" });

    const getItems = async (): Promise<{ items?: Array<Record<string, unknown>>; deletedItemIds?: string[] }> => {
      const { stdout } = await run("curl", [
        "-sS",
        "--fail-with-body",
        "-H",
        "content-type: application/json",
        "-d",
        '{"itemIds": ["example-upload-1"]}',
        `${gateway!.url}/recsys.v1.CatalogueService/GetItems`,
      ]);
      return JSON.parse(stdout) as { items?: Array<Record<string, unknown>>; deletedItemIds?: string[] };
    };
    const stored = await getItems();
    expect(stored.items).toHaveLength(1);
    expect(stored.items![0]).toMatchObject({
      itemId: "example-upload-1",
      title: "A new upload",
      tags: ["example"],
      channel: "example-channel",
      durationSeconds: 95,
    });

    const taken = await fetch(`${exampleUrl}/api/items/example-upload-1`, { method: "DELETE" });
    expect(taken.status).toBe(204);
    expect(await getItems()).toEqual({ deletedItemIds: ["example-upload-1"] });

    const bad = await fetch(`${exampleUrl}/api/items`, { method: "POST", body: '{"id": ""}' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: "INVALID_ARGUMENT", error: expect.stringContaining("item_id") });
  });
});

describe("gateway in front of the same orchestrator", () => {
  it("answers the README's curl line with the JSON of RecommendResponse", async () => {
    const { stdout } = await run("curl", [
      "-sS",
      "--fail-with-body",
      "-H",
      "content-type: application/json",
      "-d",
      `{"userId": "${user}", "count": 3}`,
      `${gateway!.url}/recsys.v1.RecommenderService/Recommend`,
    ]);
    const body = JSON.parse(stdout) as {
      items: Array<{
        itemId: string;
        score: number;
        expectedWatchSeconds: number;
        provenance: Array<{ source: string; rank: number }>;
        reasons: string[];
      }>;
      requestId: string;
      versions: unknown[];
    };
    expect(body.items).toHaveLength(3);
    expect(body.requestId).not.toBe("");
    expect(body.versions.length).toBeGreaterThan(0);
    for (const item of body.items) {
      expect(typeof item.itemId).toBe("string");
      expect(item.provenance[0]!.source).toMatch(/^CANDIDATE_SOURCE_/);
      expect(item.reasons.length).toBeGreaterThan(0);
    }
  });
});
