/**
 * The candidate-generation service on a real gRPC server (port 0) over a tiny trained bundle:
 * train/serve parity through gRPC, request-time handling, validation, hot reload under load,
 * broken bundles, metrics, and the process started from its environment.
 */
import { spawn } from "node:child_process";
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadBundle, type BundleManifest, type CandidateGenBundle } from "@recsys/candidate-gen";
import type { UserContext as FeatureContext } from "@recsys/features";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { CandidateGenerationService, MAX_WATCH_HISTORY, type UserContext as ProtoUserContext, type UserContextSchema } from "@recsys/gen";
import { connect, isServiceError, loadConfig, startService, status, type Client, type RunningService } from "@recsys/runtime";
import { memoryLogger, metricValue, scrapeMetrics } from "@recsys/runtime/testing";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STAGE, configSchema } from "./config.js";
import { createCandidateGenService, type CandidateGenService } from "./service.js";
import { publishBundle, writeTinyBundle } from "./test-helpers.js";

/** The init-object form of a UserContext (not the message class). */
type UserContextInit = Exclude<MessageInitShape<typeof UserContextSchema>, ProtoUserContext>;

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "main.js");
const T0 = 1_607_000_000; // inside the synthetic dataset's period

let root: string;
let link: string;
let manifestA: BundleManifest;
let manifestB: BundleManifest;
let bundleA: CandidateGenBundle;
let bundleB: CandidateGenBundle;
let stage: CandidateGenService;
let service: RunningService;
let client: Client<typeof CandidateGenerationService.method>;
let registry: Registry;
let logs: ReturnType<typeof memoryLogger>;

function ts(seconds: number) {
  return { seconds: BigInt(Math.floor(seconds)), nanos: Math.round((seconds - Math.floor(seconds)) * 1e9) };
}

async function expectCode(promise: Promise<unknown>, code: status, details: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isServiceError(error)) throw new Error(`expected a gRPC error ${status[code]}, got ${String(error)}`);
  expect(status[error.code]).toBe(status[code]);
  expect(error.details).toMatch(details);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "cg-service-"));
  manifestA = await writeTinyBundle(join(root, "a"), 1);
  manifestB = await writeTinyBundle(join(root, "b"), 2);
  expect(manifestA.modelVersion).not.toBe(manifestB.modelVersion);
  bundleA = await loadBundle(join(root, "a"));
  bundleB = await loadBundle(join(root, "b"));
  link = join(root, "current");
  await publishBundle(link, join(root, "a"));

  const config = loadConfig(configSchema, {
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    METRICS_PORT: "0",
    LOG_LEVEL: "silent",
    DRAIN_TIMEOUT: "2s",
    SHUTDOWN_TIMEOUT: "1s",
    MODEL_PATH: link,
    MODEL_POLL_INTERVAL: "0",
    MODEL_RETIRE_DELAY: "500ms",
  });
  registry = new Registry();
  logs = memoryLogger(STAGE);
  stage = await createCandidateGenService({ config, logger: logs.logger, registry });
  service = await startService({ stage: STAGE, config, services: stage.services, logger: logs.logger, registry });
  client = connect(CandidateGenerationService, service.address);
});

afterAll(async () => {
  client?.$close();
  await service?.stop();
  await stage?.close();
  bundleA?.dispose();
  bundleB?.dispose();
  await rm(root, { recursive: true, force: true });
});

/** A context with known and unknown items, searches and demographics, and the same in features form. */
function richContext(bundle: CandidateGenBundle): { proto: UserContextInit; features: FeatureContext } {
  const items = bundle.itemIds;
  const watched = [items[3]!, items[10]!, "never-seen-item", items[20]!];
  const proto: UserContextInit = {
    userId: "u1",
    watchHistory: watched.map((itemId, i) => ({ itemId, watchedAt: ts(T0 + 100 * i) })),
    searchHistory: [
      { query: "cooking gaming", searchedAt: ts(T0 + 50) },
      { query: "zzz unknown words", searchedAt: ts(T0 + 150.5) },
    ],
    demographics: { age: 31, gender: "F", occupation: "engineer" },
    geo: "r03",
    requestTime: ts(T0 + 1000),
  };
  const features: FeatureContext = {
    watches: watched.map((itemId, i) => ({ itemId, timestamp: T0 + 100 * i })),
    searches: [
      { query: "cooking gaming", timestamp: T0 + 50 },
      { query: "zzz unknown words", timestamp: T0 + 150.5 },
    ],
    age: 31,
    gender: "F",
    occupation: "engineer",
    geo: "r03",
    requestTime: T0 + 1000,
  };
  return { proto, features };
}

describe("EmbedUser", () => {
  it("returns exactly the bundle's user vector for the same context (train/serve parity through gRPC)", async () => {
    const { proto, features } = richContext(bundleA);
    const response = await client.embedUser({ context: proto });
    const expected = Array.from(bundleA.userVector(features));
    expect(response.userVector).toHaveLength(manifestA.dim);
    expect(response.userVector).toEqual(expected);
    expect(expected.some((v) => v !== 0)).toBe(true);
    expect(response.version).toMatchObject({ component: "candidate_generation", modelVersion: manifestA.modelVersion });

    // A different context gives a different vector (the comparison above is not vacuous).
    const other = await client.embedUser({ context: { ...proto, watchHistory: [], searchHistory: [] } });
    expect(other.userVector).not.toEqual(expected);
    expect(other.userVector).toEqual(Array.from(bundleA.userVector({ ...features, watches: [], searches: [] })));
  });

  it("uses the service clock when request_time is absent, and ignores watches after the request time", async () => {
    const { proto, features } = richContext(bundleA);
    const { requestTime: _omit, ...withoutTime } = proto;
    const now = Date.now() / 1000;
    const response = await client.embedUser({ context: withoutTime });
    // The whole history is in the past: any "now" sees all of it, and the example age is 0.
    expect(response.userVector).toEqual(Array.from(bundleA.userVector({ ...features, requestTime: now })));

    const future = await client.embedUser({
      context: {
        ...proto,
        watchHistory: [...proto.watchHistory!, { itemId: bundleA.itemIds[30]!, watchedAt: ts(T0 + 5000) }],
      },
    });
    expect(future.userVector).toEqual(Array.from(bundleA.userVector(features)));
  });

  it("treats a watch without watched_at as watched at the request time", async () => {
    const item = bundleA.itemIds[7]!;
    const response = await client.embedUser({
      context: { userId: "u2", watchHistory: [{ itemId: item }], requestTime: ts(T0) },
    });
    expect(response.userVector).toEqual(
      Array.from(bundleA.userVector({ watches: [{ itemId: item, timestamp: T0 }], searches: [], requestTime: T0 })),
    );
    const empty = await client.embedUser({ context: { userId: "u2", requestTime: ts(T0) } });
    expect(empty.userVector).not.toEqual(response.userVector);
  });

  it("answers a user with only unknown items (out of vocabulary)", async () => {
    const response = await client.embedUser({
      context: {
        userId: "new-user",
        watchHistory: [
          { itemId: "x-1", watchedAt: ts(T0) },
          { itemId: "x-2", watchedAt: ts(T0 + 1) },
        ],
      },
    });
    expect(response.userVector).toHaveLength(manifestA.dim);
    expect(response.userVector.every(Number.isFinite)).toBe(true);
  });

  it("rejects bad contexts with INVALID_ARGUMENT naming the field, and keeps serving", async () => {
    await expectCode(client.embedUser({}), status.INVALID_ARGUMENT, /^context is required$/);
    await expectCode(client.embedUser({ context: { userId: "" } }), status.INVALID_ARGUMENT, /^context\.user_id is required$/);
    await expectCode(
      client.embedUser({ context: { userId: "u", watchHistory: [{ itemId: "" }] } }),
      status.INVALID_ARGUMENT,
      /^context\.watch_history\[0\]\.item_id is required$/,
    );
    const tooLong = Array.from({ length: MAX_WATCH_HISTORY + 1 }, (_, i) => ({ itemId: `i${i}` }));
    await expectCode(
      client.embedUser({ context: { userId: "u", watchHistory: tooLong } }),
      status.INVALID_ARGUMENT,
      /^context\.watch_history has 1001 entries, at most 1000 allowed$/,
    );
    const ok = await client.embedUser({ context: { userId: "u" } });
    expect(ok.userVector).toHaveLength(manifestA.dim);
  });

  it("exports the tower's compute time and the model version", async () => {
    const text = await scrapeMetrics(service.metricsPort);
    expect(metricValue(text, "recsys_candidate_generation_user_tower_seconds_count")).toBeGreaterThan(5);
    expect(metricValue(text, "recsys_candidate_generation_model_info", { model_version: manifestA.modelVersion })).toBe(1);
  });
});

describe("hot reload", () => {
  it("keeps the old model on a broken bundle, then swaps to a new one under load without a failed call", async () => {
    // A broken bundle: a manifest with a new version but no weight files.
    const broken = join(root, "broken");
    await mkdir(broken, { recursive: true });
    const manifest = JSON.parse(await readFile(join(root, "b", "manifest.json"), "utf8")) as BundleManifest;
    await writeFile(join(broken, "manifest.json"), JSON.stringify({ ...manifest, modelVersion: "cg-broken" }));
    await publishBundle(link, broken);
    expect(await stage.model.checkNow()).toBe("failed");
    const { proto, features } = richContext(bundleA);
    const still = await client.embedUser({ context: proto });
    expect(still.version!.modelVersion).toBe(manifestA.modelVersion);
    expect(metricValue(await scrapeMetrics(service.metricsPort), "recsys_candidate_generation_model_reload_failures_total")).toBe(1);
    expect(logs.lines.some((l) => l.msg === "new model failed to load; the current model keeps serving")).toBe(true);

    let stop = false;
    const answers: Array<{ version: string; vector: number[] }> = [];
    const workers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const response = await client.embedUser({ context: proto });
        answers.push({ version: response.version!.modelVersion, vector: response.userVector });
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await publishBundle(link, join(root, "b"));
    expect(await stage.model.checkNow()).toBe("swapped");
    await new Promise((resolve) => setTimeout(resolve, 100));
    stop = true;
    await Promise.all(workers); // a failed call would reject here

    const expectedA = Array.from(bundleA.userVector(features));
    const expectedB = Array.from(bundleB.userVector(features));
    expect(new Set(answers.map((a) => a.version))).toEqual(new Set([manifestA.modelVersion, manifestB.modelVersion]));
    for (const answer of answers) {
      expect(answer.vector).toEqual(answer.version === manifestA.modelVersion ? expectedA : expectedB);
    }
    const after = await client.embedUser({ context: proto });
    expect(after.version!.modelVersion).toBe(manifestB.modelVersion);
    const text = await scrapeMetrics(service.metricsPort);
    expect(metricValue(text, "recsys_candidate_generation_model_info", { model_version: manifestB.modelVersion })).toBe(1);
    expect(metricValue(text, "recsys_candidate_generation_model_info", { model_version: manifestA.modelVersion })).toBeUndefined();
  });
});

describe("the process", () => {
  function run(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [MAIN], {
        env: { PATH: process.env["PATH"] ?? "", ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        const serving = stdout.split("\n").find((line) => line.includes('"msg":"serving"'));
        if (serving !== undefined && !child.killed) {
          const port = (JSON.parse(serving) as { port: number }).port;
          const c = connect(CandidateGenerationService, `127.0.0.1:${port}`);
          c.embedUser({ context: { userId: "u", requestTime: ts(T0) } })
            .then((response) => {
              stdout += `\nRESPONSE ${JSON.stringify({ dim: response.userVector.length, version: response.version?.modelVersion })}\n`;
            })
            .catch((error: unknown) => {
              stdout += `\nCALL FAILED ${String(error)}\n`;
            })
            .finally(() => {
              c.$close();
              child.kill("SIGTERM");
            });
        }
      });
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      child.on("error", reject);
      child.on("exit", (code) => resolve({ code, stdout, stderr }));
    });
  }

  it("starts from its environment, answers, and exits 0 on SIGTERM", async () => {
    const result = await run({ MODEL_PATH: join(root, "a"), GRPC_HOST: "127.0.0.1", GRPC_PORT: "0", METRICS_PORT: "0" });
    expect(result.stdout).toContain(`RESPONSE {"dim":8,"version":"${manifestA.modelVersion}"}`);
    expect(result.code).toBe(0);
  });

  it("exits 1 with a clear message when MODEL_PATH is missing or points nowhere", async () => {
    const [unset, nowhere] = await Promise.all([
      run({ GRPC_PORT: "0", METRICS_PORT: "0" }),
      run({ MODEL_PATH: join(root, "nope"), GRPC_PORT: "0", METRICS_PORT: "0" }),
    ]);
    expect(unset.code).toBe(1);
    expect(unset.stderr).toContain("candidate_generation: configuration error: MODEL_PATH is required but not set");
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toContain(`candidate_generation: configuration error: MODEL_PATH=${join(root, "nope")}: no model there`);
  });
});
