/**
 * The ranking service on a real gRPC server (port 0) over a tiny trained ranker: train/serve
 * parity through gRPC (the inputs the ranking package's own serving path builds, sent as the
 * orchestrator sends them), the response contract, provenance handling, validation, hot reload
 * under load, broken bundles, metrics, and the process started from its environment.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { compareIds, lastoutSplit, trainingRows, type Dataset } from "@recsys/data";
import { CandidateSource, MAX_IMPRESSION_HISTORY, MAX_RANK_CANDIDATES, RankingService } from "@recsys/gen";
import {
  encodeCandidates,
  encodedRow,
  loadRanker,
  rankingCandidates,
  rankingContextFromDataset,
  sourceItemStats,
  type Ranker,
  type RankerManifest,
  type RankingCandidate,
  type RankingContext,
} from "@recsys/ranking";
import { connect, isServiceError, loadConfig, startService, status, type Client, type RunningService } from "@recsys/runtime";
import { memoryLogger, metricValue, scrapeMetrics } from "@recsys/runtime/testing";
import { createStandardSources, datasetRequest, observeRows } from "@recsys/sources";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STAGE, configSchema } from "./config.js";
import { createRankingService, rankedOrder, type RankingStage } from "./service.js";
import { TINY_PIPELINE, publishBundle, tinyDataset, toRankRequest, writeTinyRankerBundle, type RankRequestInit } from "./test-helpers.js";

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "main.js");

let root: string;
let link: string;
let dataset: Dataset;
let manifestA: RankerManifest;
let manifestB: RankerManifest;
let rankerA: Ranker;
let rankerB: Ranker;
let stage: RankingStage;
let service: RunningService;
let client: Client<typeof RankingService.method>;
let logs: ReturnType<typeof memoryLogger>;

/** Serving-style requests: a user's context and merged candidates at one time, as the ranking package builds them. */
interface Case {
  readonly user: number;
  readonly time: number;
  readonly context: RankingContext;
  readonly candidates: RankingCandidate[];
}
let cases: Case[];

async function expectCode(promise: Promise<unknown>, code: status, details: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isServiceError(error)) throw new Error(`expected a gRPC error ${status[code]}, got ${String(error)}`);
  expect(status[error.code]).toBe(status[code]);
  expect(error.details).toMatch(details);
}

/**
 * For test users, at the time of their held-out watch: the sources fed with every training row
 * (time-gated), their merged candidates with item stats from the same sources
 * (`rankingCandidates` + `sourceItemStats`, the offline pipeline's code), and the user's context
 * with earlier watches and logged impressions (`rankingContextFromDataset`).
 */
function servingCases(count: number): Case[] {
  const split = lastoutSplit(dataset.events, dataset.users.ids.length);
  const rows = trainingRows(split, "test");
  const sources = createStandardSources(dataset, { mergedSize: TINY_PIPELINE.mergedSize });
  observeRows(sources, dataset, rows);
  const stats = sourceItemStats(sources);
  const ev = dataset.events;
  const users = Array.from({ length: dataset.users.ids.length }, (_, u) => u)
    .filter((u) => split.testRow[u]! >= 0)
    .sort((a, b) => ev.timestamp[split.testRow[a]!]! - ev.timestamp[split.testRow[b]!]!);
  const step = Math.max(1, Math.floor(users.length / count));
  const out: Case[] = [];
  for (let k = 0; k < users.length && out.length < count; k += step) {
    const u = users[k]!;
    const time = ev.timestamp[split.testRow[u]!]!;
    const history = Array.from(rows).filter((r) => ev.user[r] === u && ev.timestamp[r]! < time);
    const run = sources.run(
      datasetRequest(
        dataset,
        u,
        Int32Array.from(history, (r) => ev.item[r]!),
        time,
        TINY_PIPELINE.budget,
      ),
    );
    const candidates = rankingCandidates(dataset, run.merged, stats, time);
    if (candidates.length < 5) continue;
    out.push({ user: u, time, context: rankingContextFromDataset(dataset, u, history, time), candidates });
  }
  return out;
}

/** The in-process logits of a case, by item id. */
function inProcess(ranker: Ranker, c: Pick<Case, "context" | "candidates" | "time">): Map<string, number> {
  const logits = ranker.score(c.context, c.candidates, c.time);
  return new Map(c.candidates.map((cand, k) => [cand.itemId, logits[k]!]));
}

/** The candidates as they arrive over the wire: provenance scores are proto floats (float32). */
function wireRounded(candidates: readonly RankingCandidate[]): RankingCandidate[] {
  return candidates.map((c) => ({ ...c, provenance: c.provenance.map((p) => ({ ...p, score: Math.fround(p.score) })) }));
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "ranking-service-"));
  dataset = tinyDataset();
  manifestA = await writeTinyRankerBundle(join(root, "a"), 1, dataset);
  manifestB = await writeTinyRankerBundle(join(root, "b"), 2, dataset);
  expect(manifestA.modelVersion).not.toBe(manifestB.modelVersion);
  rankerA = await loadRanker(join(root, "a", "ranker"));
  rankerB = await loadRanker(join(root, "b", "ranker"));
  link = join(root, "current");
  await publishBundle(link, join(root, "a"));
  cases = servingCases(12);
  expect(cases.length).toBeGreaterThanOrEqual(8);

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
  const registry = new Registry();
  logs = memoryLogger(STAGE);
  stage = await createRankingService({ config, logger: logs.logger, registry });
  service = await startService({ stage: STAGE, config, services: stage.services, logger: logs.logger, registry });
  client = connect(RankingService, service.address);
});

afterAll(async () => {
  client?.$close();
  await service?.stop();
  await stage?.close();
  rankerA?.dispose();
  rankerB?.dispose();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

describe("Rank", () => {
  it("scores exactly as the in-process ranker for the inputs the ranking package builds (train/serve parity through gRPC)", async () => {
    let compared = 0;
    let maxDiffUnrounded = 0;
    for (const c of cases) {
      const response = await client.rank(toRankRequest(c.context, c.candidates, dataset.users.ids[c.user]!));
      expect(response.items).toHaveLength(c.candidates.length);
      expect(response.version).toMatchObject({ component: "ranking", modelVersion: manifestA.modelVersion });
      // Bit-identical to the in-process ranker given what crosses the wire (float32 provenance scores)...
      const expected = inProcess(rankerA, { ...c, candidates: wireRounded(c.candidates) });
      // ...and within float32 noise of the unrounded inputs.
      const unrounded = inProcess(rankerA, c);
      for (const item of response.items) {
        expect(item.score, item.itemId).toBe(expected.get(item.itemId));
        maxDiffUnrounded = Math.max(maxDiffUnrounded, Math.abs(item.score - unrounded.get(item.itemId)!));
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(100);
    expect(maxDiffUnrounded).toBeLessThan(1e-5);
    // Not vacuous: the scores vary across items.
    const first = await client.rank(toRankRequest(cases[0]!.context, cases[0]!.candidates));
    expect(new Set(first.items.map((i) => i.score)).size).toBeGreaterThan(3);
  });

  it("answers every candidate once, by score descending then item id, with expected_watch_seconds = exp(score)", async () => {
    for (const c of cases.slice(0, 4)) {
      const response = await client.rank(toRankRequest(c.context, c.candidates));
      expect(response.items.map((i) => i.itemId).sort()).toEqual(c.candidates.map((x) => x.itemId).sort());
      for (let k = 1; k < response.items.length; k++) {
        const [a, b] = [response.items[k - 1]!, response.items[k]!];
        expect(a.score > b.score || (a.score === b.score && compareIds(a.itemId, b.itemId) < 0), `${a.itemId} before ${b.itemId}`).toBe(
          true,
        );
      }
      for (const item of response.items) {
        expect(item.expectedWatchSeconds).toBe(Math.fround(Math.exp(item.score)));
        expect(item.features).toEqual({});
      }
    }
  });

  it("orders equal scores by item id (compareIds), NaN last", () => {
    const ids = ["b", "10", "9", "a", "x", "2"];
    expect(rankedOrder([1, 0.5, 0.5, 2, Number.NaN, 0.5], ids).map((k) => ids[k])).toEqual(["a", "b", "2", "9", "10", "x"]);
    expect(rankedOrder([Number.NEGATIVE_INFINITY, Number.NaN, 0], ["p", "q", "r"])).toEqual([2, 0, 1]);
  });

  it("uses the request's item stats and impression history (they are features)", async () => {
    const c = cases[1]!;
    const request = toRankRequest(c.context, c.candidates);
    const base = await client.rank(request);
    const zeroStats = await client.rank({
      ...request,
      candidates: request.candidates!.map((x) => ({ ...x, stats: { watchCount: 0, trending: 0 } })),
    });
    const expectedZero = inProcess(rankerA, {
      ...c,
      candidates: wireRounded(c.candidates.map((x) => ({ ...x, stats: { watchCount: 0, trending: 0 } }))),
    });
    for (const item of zeroStats.items) expect(item.score).toBe(expectedZero.get(item.itemId));
    expect(zeroStats.items.map((i) => i.score)).not.toEqual(base.items.map((i) => i.score));

    // Five earlier impressions of the first candidate change its previous_impressions feature.
    const target = c.candidates[0]!.itemId;
    const shown = Array.from({ length: 5 }, (_, k) => ({ itemId: target, timestamp: c.time - 3600 * (k + 1) }));
    const context = { ...c.context, impressions: [...(c.context.impressions ?? []), ...shown] };
    const withImpressions = await client.rank(toRankRequest(context, c.candidates));
    const expectedImp = inProcess(rankerA, { ...c, context, candidates: wireRounded(c.candidates) });
    for (const item of withImpressions.items) expect(item.score).toBe(expectedImp.get(item.itemId));
    const scoreOf = (r: typeof base, id: string) => r.items.find((i) => i.itemId === id)!.score;
    expect(scoreOf(withImpressions, target)).not.toBe(scoreOf(base, target));
  });

  it("returns the encoded features (and raw base features) with debug, equal to the in-process encoding", async () => {
    const c = cases[2]!;
    const response = await client.rank(toRankRequest(c.context, c.candidates, "u", true));
    const candidates = wireRounded(c.candidates);
    const batch = encodeCandidates(rankerA.space, c.context, candidates, c.time);
    const columns = rankerA.space.columnNames();
    for (const item of response.items) {
      const k = candidates.findIndex((x) => x.itemId === item.itemId);
      const row = encodedRow(batch, k).continuous;
      columns.forEach((name, j) => expect(item.features[name], `${item.itemId} ${name}`).toBe(row[j]));
      expect(item.features["raw_item_watch_count"]).toBe(candidates[k]!.stats.watchCount);
      expect(item.features["raw_item_trending"]).toBeCloseTo(candidates[k]!.stats.trending, 3);
      expect(item.features["position"]).toBe(row[columns.indexOf("position")]);
    }
  });

  it("reads provenance by source_name, else by the enum; ignores sources the ranker does not know", async () => {
    const c = cases[3]!;
    const request = toRankRequest(c.context, c.candidates);
    const byEnum = await client.rank({
      ...request,
      candidates: request.candidates!.map((x) => ({
        ...x,
        provenance: x.provenance!.map((p) => (p.sourceName === "popular" || p.sourceName === "trending" ? { ...p, sourceName: "" } : p)),
      })),
    });
    const base = await client.rank(request);
    expect(byEnum.items).toEqual(base.items);

    // An unknown source name (and UNSPECIFIED without a name) is dropped: same as no such entry.
    const extra = await client.rank({
      ...request,
      candidates: request.candidates!.map((x, k) =>
        k % 2 === 0
          ? {
              ...x,
              provenance: [
                ...x.provenance!,
                { source: CandidateSource.DNN, sourceName: "ann/shard-2", rank: 1, score: 0.9 },
                { rank: 3, score: 1 },
              ],
            }
          : x,
      ),
    });
    expect(extra.items).toEqual(base.items);
    const text = await scrapeMetrics(service.metricsPort);
    expect(metricValue(text, "recsys_ranking_ignored_provenance_total")).toBeGreaterThanOrEqual(2 * Math.ceil(c.candidates.length / 2));

    // Without the real provenance the scores change (the provenance features are live).
    const none = await client.rank({ ...request, candidates: request.candidates!.map((x) => ({ ...x, provenance: [] })) });
    expect(none.items.map((i) => i.score)).not.toEqual(base.items.map((i) => i.score));
  });

  it("uses the service clock when request_time is absent", async () => {
    const c = cases[0]!;
    const request = toRankRequest(c.context, c.candidates);
    const { requestTime: _omit, ...context } = request.context!;
    const before = Date.now() / 1000;
    const response = await client.rank({ ...request, context });
    const after = Date.now() / 1000;
    const atBefore = inProcess(rankerA, {
      context: { ...c.context, requestTime: before },
      candidates: wireRounded(c.candidates),
      time: before,
    });
    const atAfter = inProcess(rankerA, {
      context: { ...c.context, requestTime: after },
      candidates: wireRounded(c.candidates),
      time: after,
    });
    for (const item of response.items) {
      const lo = Math.min(atBefore.get(item.itemId)!, atAfter.get(item.itemId)!);
      const hi = Math.max(atBefore.get(item.itemId)!, atAfter.get(item.itemId)!);
      expect(item.score).toBeGreaterThanOrEqual(lo - 1e-4);
      expect(item.score).toBeLessThanOrEqual(hi + 1e-4);
    }
  });

  it("rejects invalid requests with INVALID_ARGUMENT naming the field, and keeps serving", async () => {
    const c = cases[0]!;
    const ok = toRankRequest(c.context, c.candidates);
    const cands = ok.candidates!;
    const first = cands[0]!;
    const withFirst = (patch: object): RankRequestInit => ({ ...ok, candidates: [{ ...first, ...patch }, ...cands.slice(1)] });
    await expectCode(client.rank({ candidates: cands }), status.INVALID_ARGUMENT, /^context is required$/);
    await expectCode(
      client.rank({ ...ok, context: { ...ok.context!, userId: "" } }),
      status.INVALID_ARGUMENT,
      /^context\.user_id is required$/,
    );
    await expectCode(client.rank({ ...ok, candidates: [] }), status.INVALID_ARGUMENT, /^candidates must have 1\.\.2000 entries, got 0$/);
    const tooMany = Array.from({ length: MAX_RANK_CANDIDATES + 1 }, (_, k) => ({ itemId: `i${k}`, stats: { watchCount: 0, trending: 0 } }));
    await expectCode(
      client.rank({ ...ok, candidates: tooMany }),
      status.INVALID_ARGUMENT,
      /^candidates must have 1\.\.2000 entries, got 2001$/,
    );
    await expectCode(
      client.rank({ ...ok, candidates: [...cands, { ...first }] }),
      status.INVALID_ARGUMENT,
      new RegExp(`^candidates contains item_id "${first.itemId}" more than once$`),
    );
    await expectCode(client.rank(withFirst({ itemId: "" })), status.INVALID_ARGUMENT, /^candidates\[0\]\.item_id is required$/);
    await expectCode(client.rank(withFirst({ stats: undefined })), status.INVALID_ARGUMENT, /^candidates\[0\]\.stats is required/);
    await expectCode(
      client.rank(withFirst({ stats: { watchCount: -1, trending: 0 } })),
      status.INVALID_ARGUMENT,
      /^candidates\[0\]\.stats\.watch_count must be a finite number >= 0, got -1$/,
    );
    await expectCode(
      client.rank(withFirst({ stats: { watchCount: 1, trending: Number.NaN } })),
      status.INVALID_ARGUMENT,
      /^candidates\[0\]\.stats\.trending must be a finite number >= 0, got NaN$/,
    );
    await expectCode(
      client.rank(withFirst({ provenance: [{ source: CandidateSource.POPULAR, sourceName: "popular", rank: 0, score: 1 }] })),
      status.INVALID_ARGUMENT,
      /^candidates\[0\]\.provenance\[0\]\.rank must be >= 1/,
    );
    await expectCode(
      client.rank(
        withFirst({
          provenance: [
            { source: CandidateSource.POPULAR, rank: 1, score: 1 },
            { source: CandidateSource.POPULAR, sourceName: "popular", rank: 2, score: 1 },
          ],
        }),
      ),
      status.INVALID_ARGUMENT,
      /^candidates\[0\]\.provenance lists source "popular" more than once$/,
    );
    const impressions = Array.from({ length: MAX_IMPRESSION_HISTORY + 1 }, () => ({ itemId: first.itemId! }));
    await expectCode(
      client.rank({ ...ok, context: { ...ok.context!, impressionHistory: impressions } }),
      status.INVALID_ARGUMENT,
      /^context\.impression_history has 1001 entries, at most 1000 allowed$/,
    );
    await expectCode(
      client.rank({ ...ok, context: { ...ok.context!, impressionHistory: [{ itemId: "" }] } }),
      status.INVALID_ARGUMENT,
      /^context\.impression_history\[0\]\.item_id is required$/,
    );
    await expectCode(
      client.rank({ ...ok, context: { ...ok.context!, requestTime: { seconds: 1n, nanos: 2_000_000_000 } } }),
      status.INVALID_ARGUMENT,
      /^context\.request_time\.nanos must be in 0\.\.999999999, got 2000000000$/,
    );
    const after = await client.rank(ok);
    expect(after.items).toHaveLength(cands.length);
    const text = await scrapeMetrics(service.metricsPort);
    expect(
      metricValue(text, "recsys_ranking_grpc_requests_total", { method: "recsys.v1.RankingService/Rank", code: "INVALID_ARGUMENT" }),
    ).toBe(14);
  });

  it("exports the scoring time, candidates per request and the model version", async () => {
    const text = await scrapeMetrics(service.metricsPort);
    const requests = metricValue(text, "recsys_ranking_candidates_count")!;
    expect(requests).toBeGreaterThan(20);
    expect(metricValue(text, "recsys_ranking_scoring_seconds_count")).toBe(requests);
    expect(metricValue(text, "recsys_ranking_candidates_bucket", { le: "2000" })).toBe(requests);
    expect(metricValue(text, "recsys_ranking_model_info", { model_version: manifestA.modelVersion })).toBe(1);
  });
});

describe("hot reload", () => {
  it("keeps the old ranker on a broken bundle, then swaps to a new one under load without a failed call", async () => {
    // A broken bundle: a ranker manifest with a new version but no weight files.
    const broken = join(root, "broken");
    await mkdir(join(broken, "ranker"), { recursive: true });
    const manifest = JSON.parse(await readFile(join(root, "b", "ranker", "manifest.json"), "utf8")) as RankerManifest;
    await writeFile(join(broken, "ranker", "manifest.json"), JSON.stringify({ ...manifest, modelVersion: "rk-broken" }));
    await publishBundle(link, broken);
    expect(await stage.model.checkNow()).toBe("failed");
    const c = cases[4]!;
    const request = toRankRequest(c.context, c.candidates);
    const still = await client.rank(request);
    expect(still.version!.modelVersion).toBe(manifestA.modelVersion);
    expect(metricValue(await scrapeMetrics(service.metricsPort), "recsys_ranking_model_reload_failures_total")).toBe(1);

    let stop = false;
    const answers: Array<{ version: string; scores: Map<string, number> }> = [];
    const workers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const response = await client.rank(request);
        answers.push({ version: response.version!.modelVersion, scores: new Map(response.items.map((i) => [i.itemId, i.score])) });
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await publishBundle(link, join(root, "b"));
    expect(await stage.model.checkNow()).toBe("swapped");
    await new Promise((resolve) => setTimeout(resolve, 100));
    stop = true;
    await Promise.all(workers); // a failed call would reject here

    const expectedA = inProcess(rankerA, { ...c, candidates: wireRounded(c.candidates) });
    const expectedB = inProcess(rankerB, { ...c, candidates: wireRounded(c.candidates) });
    expect(expectedA).not.toEqual(expectedB);
    expect(new Set(answers.map((a) => a.version))).toEqual(new Set([manifestA.modelVersion, manifestB.modelVersion]));
    for (const answer of answers) expect(answer.scores).toEqual(answer.version === manifestA.modelVersion ? expectedA : expectedB);
    const text = await scrapeMetrics(service.metricsPort);
    expect(metricValue(text, "recsys_ranking_model_info", { model_version: manifestB.modelVersion })).toBe(1);
    expect(metricValue(text, "recsys_ranking_model_info", { model_version: manifestA.modelVersion })).toBeUndefined();
    expect(metricValue(text, "recsys_ranking_model_reloads_total")).toBe(1);
  });
});

describe("the process", () => {
  function run(env: Record<string, string>, request?: RankRequestInit): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [MAIN], {
        env: { PATH: process.env["PATH"] ?? "", ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      let asked = false;
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
        const serving = stdout.split("\n").find((line) => line.includes('"msg":"serving"'));
        if (serving !== undefined && !asked && request !== undefined) {
          asked = true;
          const port = (JSON.parse(serving) as { port: number }).port;
          const c = connect(RankingService, `127.0.0.1:${port}`);
          c.rank(request)
            .then((response) => {
              stdout += `\nRESPONSE ${JSON.stringify({ items: response.items.length, version: response.version?.modelVersion })}\n`;
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
    const c = cases[0]!;
    const result = await run(
      { MODEL_PATH: join(root, "a"), GRPC_HOST: "127.0.0.1", GRPC_PORT: "0", METRICS_PORT: "0" },
      toRankRequest(c.context, c.candidates),
    );
    expect(result.stdout).toContain(`RESPONSE {"items":${c.candidates.length},"version":"${manifestA.modelVersion}"}`);
    expect(result.code).toBe(0);
  });

  it("exits 1 with a clear message when MODEL_PATH is missing, points nowhere, or holds no ranker", async () => {
    const [unset, nowhere, noRanker] = await Promise.all([
      run({ GRPC_PORT: "0", METRICS_PORT: "0" }),
      run({ MODEL_PATH: join(root, "nope"), GRPC_PORT: "0", METRICS_PORT: "0" }),
      run({ MODEL_PATH: join(root, "a", "ranker"), GRPC_PORT: "0", METRICS_PORT: "0" }),
    ]);
    expect(unset.code).toBe(1);
    expect(unset.stderr).toContain("ranking: configuration error: MODEL_PATH is required but not set");
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toContain(`ranking: configuration error: MODEL_PATH=${join(root, "nope")}: no model there`);
    expect(noRanker.code).toBe(1);
    expect(noRanker.stderr).toContain(`ranking: configuration error: MODEL_PATH=${join(root, "a", "ranker")}: no ranker there`);
  });
});
