/**
 * The stages as processes, scraped by a real Prometheus server (Debian's /usr/bin/prometheus) on
 * loopback with the project's rule files: every target up, the request metrics and the recording
 * rules present after a few calls; and every metric name the rules and the dashboard use is one
 * the code registers (read from the running services' /metrics).
 *
 * Started (the stages whose package has landed): candidate generation, retrieval (one shard),
 * ranking and the orchestrator, configured only through environment variables as in the
 * manifests, on one tiny bundle with its ranker. Without a ranking service the orchestrator is
 * pointed at a closed port and its responses must show up as degraded by ranking.
 */
import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CandidateGenerationService, RecommenderService, RetrievalService } from "@recsys/gen";
import { connect, createLogger, createRpcMetrics, watchModel } from "@recsys/runtime";
import { scrapeMetrics } from "@recsys/runtime/testing";
import type { BundleManifest } from "@recsys/candidate-gen";
import { DEPLOY_DIR } from "./paths.js";
import {
  freePort,
  prometheusApi,
  publishBundle,
  startPrometheus,
  startStage,
  stopAll,
  tinyDataset,
  writeTinyBundle,
  writeTinyRanker,
  type Started,
} from "./processes.js";
import { PROMETHEUS_SERIES, exposedMetricNames, metricNames } from "./promql.js";
import { allRules, readRuleFiles, recordedNames, RULES_DIR } from "./rules.js";
import { STAGES, isLanded, loadStagePackage, stageByName } from "./stages.js";
import { PROMETHEUS, requireTool } from "./tools.js";

/** Stages this test knows how to start. */
const LAUNCHABLE = new Set(["candidate_generation", "retrieval", "ranking", "orchestrator"]);
const started = STAGES.filter((s) => isLanded(s) && LAUNCHABLE.has(s.stage));
const notStarted = STAGES.filter((s) => !started.includes(s));

/** Every metric name the rules and the dashboard use, with where. */
async function usedMetricNames(): Promise<Map<string, string>> {
  const used = new Map<string, string>();
  for (const { file, rule } of allRules(await readRuleFiles())) {
    for (const name of metricNames(rule.expr)) used.set(name, `${file.slice(DEPLOY_DIR.length + 1)}: ${rule.record ?? rule.alert}`);
  }
  const dashboard = JSON.parse(await readFile(join(DEPLOY_DIR, "grafana", "recsys-stages.json"), "utf8")) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  };
  for (const panel of dashboard.panels) {
    for (const target of panel.targets ?? []) for (const name of metricNames(target.expr)) used.set(name, `dashboard: ${panel.title}`);
  }
  return used;
}

/** The names @recsys/runtime registers for `stage` (RPC metrics, process metrics, watchModel). */
async function runtimeMetricNames(stage: string, scratch: string): Promise<Set<string>> {
  const registry = new Registry();
  createRpcMetrics(stage, registry);
  const dir = join(scratch, `runtime-${stage}`);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "manifest.json"), JSON.stringify({ modelVersion: "v" }));
  const watcher = await watchModel({
    path: dir,
    load: async () => ({}),
    versionOf: () => "v",
    pollMs: 0,
    logger: createLogger({ service: stage, level: "silent" }),
    stage,
    registry,
  });
  const names = exposedMetricNames(await registry.metrics());
  await watcher.close();
  return names;
}

const USED = await usedMetricNames();
const RECORDED = recordedNames(await readRuleFiles());
const stagePrefix = (name: string): string | undefined => STAGES.find((s) => name.startsWith(`recsys_${s.stage}_`))?.stage;
const SCRATCH = await mkdtemp(join(tmpdir(), "recsys-deploy-live-"));
/** For stages not started here: names used beyond what the runtime registers for any stage. */
const PENDING = new Map<string, string[]>();
const RUNTIME_NAMES = new Map<string, Set<string>>();
for (const stage of notStarted) {
  const runtime = await runtimeMetricNames(stage.stage, SCRATCH);
  RUNTIME_NAMES.set(stage.stage, runtime);
  PENDING.set(stage.stage, [...USED.keys()].filter((n) => stagePrefix(n) === stage.stage && !runtime.has(n)).sort());
}

let root: string;
let manifest: BundleManifest;
const running = new Map<string, Started>();
let prometheus: { url: string; output(): string };
const exposed = new Map<string, Set<string>>();

async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const data = await prometheusApi<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
    prometheus.url,
    `query?query=${encodeURIComponent(expr)}`,
  );
  return data.result;
}

/** Polls `check` until it returns without throwing or `timeoutMs` passes (then rethrows). */
async function eventually<T>(check: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}

beforeAll(async () => {
  const prometheusBinary = requireTool(PROMETHEUS, "prometheus");
  root = SCRATCH;
  const models = join(root, "models");
  await mkdir(models, { recursive: true });
  const dataset = tinyDataset();
  manifest = await writeTinyBundle(join(models, "cg-1"), dataset);
  const withRanking = started.some((s) => s.stage === "ranking");
  if (withRanking) await writeTinyRanker(join(models, "cg-1"), manifest, dataset);
  await publishBundle(join(models, "current"), join(models, "cg-1"));
  const common = {
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    METRICS_PORT: "0",
    LOG_LEVEL: "info",
    MODEL_PATH: join(models, "current"),
    MODEL_POLL_INTERVAL: "0",
  };
  const main = async (stage: string): Promise<string> => (await loadStagePackage(stageByName(stage))).main;

  const [cg, retrieval, ranking] = await Promise.all([
    startStage("candidate_generation", await main("candidate_generation"), common),
    startStage("retrieval", await main("retrieval"), { ...common, INDEX_DIR: join(root, "index"), SHARD_INDEX: "0", SHARD_COUNT: "1" }),
    withRanking ? startStage("ranking", await main("ranking"), common) : undefined,
  ]);
  running.set("candidate_generation", cg);
  running.set("retrieval", retrieval);
  if (ranking !== undefined) running.set("ranking", ranking);
  if (started.some((s) => s.stage === "orchestrator")) {
    const orchestrator = await startStage("orchestrator", await main("orchestrator"), {
      ...common,
      CANDIDATE_GENERATION_ADDRESS: `127.0.0.1:${cg.port}`,
      RETRIEVAL_ADDRESSES: `127.0.0.1:${retrieval.port}`,
      RANKING_ADDRESS: `127.0.0.1:${ranking?.port ?? (await freePort())}`, // without ranking: a closed port
      USER_STORE: "embedded",
      USER_STORE_PATH: join(root, "users"),
      // Generous budgets: this test is about wiring and metrics, on a shared, busy machine.
      USER_STORE_TIMEOUT: "5s",
      CANDIDATE_GENERATION_TIMEOUT: "5s",
      RETRIEVAL_TIMEOUT: "5s",
      RANKING_TIMEOUT: "5s",
    });
    running.set("orchestrator", orchestrator);
  }
  for (const [stage, process] of running) exposed.set(stage, exposedMetricNames(await scrapeMetrics(process.metricsPort)));

  const config = {
    global: { scrape_interval: "1s", scrape_timeout: "900ms", evaluation_interval: "1s" },
    rule_files: [join(RULES_DIR, "*.rules.yml")],
    // `namespace` as Kubernetes discovery sets it (every rule keeps it); retrieval's one shard of one.
    scrape_configs: [...running].map(([stage, process]) => ({
      job_name: stage,
      static_configs: [
        {
          targets: [`127.0.0.1:${process.metricsPort}`],
          labels: { namespace: "live", ...(stage === "retrieval" ? { shard: "0", shard_count: "1" } : {}) },
        },
      ],
    })),
  };
  const configFile = join(root, "prometheus.yml");
  await writeFile(configFile, JSON.stringify(config, null, 2)); // JSON is YAML
  prometheus = await startPrometheus(prometheusBinary, configFile, join(root, "tsdb"), await freePort());

  // Every target scraped once, then the calls, so that rates over the next scrapes are non-zero.
  await eventually(async () => {
    const up = await query("up");
    if (up.length !== running.size || up.some((s) => s.value[1] !== "1")) throw new Error(`targets not up yet: ${JSON.stringify(up)}`);
  });
  // Two rounds of calls with a scrape between them: the counters' series exist (prom-client
  // exports a label set once it is used) before the second round, so rates are non-zero.
  const cgClient = connect(CandidateGenerationService, `127.0.0.1:${cg.port}`);
  const retrievalClient = connect(RetrievalService, `127.0.0.1:${retrieval.port}`);
  const orchestrator = running.get("orchestrator");
  const recommender = orchestrator === undefined ? undefined : connect(RecommenderService, `127.0.0.1:${orchestrator.port}`);
  const round = async (users: readonly number[]): Promise<void> => {
    for (const user of users) {
      const embedded = await cgClient.embedUser({ context: { userId: String(user), watchHistory: [{ itemId: manifest.itemIds[user]! }] } });
      await retrievalClient.search({ userVector: embedded.userVector, k: 5, modelVersion: manifest.modelVersion });
      if (recommender !== undefined) {
        const response = await recommender.recommend({ userId: String(user), count: 5 }, { deadline: Date.now() + 30_000 });
        expect(response.failedStages.map((f) => `${f.stage}: ${f.code} ${f.message}`)).toEqual(
          ranking === undefined ? [expect.stringMatching(/^ranking: /)] : [],
        );
        expect(response.items.length).toBeGreaterThan(0);
      }
    }
    // One refused call per stage and round (INVALID_ARGUMENT), so the error series grows too.
    await expect(cgClient.embedUser({ context: { userId: "" } })).rejects.toMatchObject({ code: 3 });
    await expect(retrievalClient.search({ userVector: [1], k: 5 })).rejects.toMatchObject({ code: 3 });
  };
  try {
    await round([1]);
    // Every stage's counters (each was called in round 1) scraped once, or a stage first scraped
    // after round 2 has a single sample and a zero rate. The refused calls' series too: a scrape
    // between a stage's first accepted and its refused call of round 1 would otherwise pass.
    await eventually(async () => {
      for (const stage of running.keys()) {
        const series = await query(`recsys_${stage}_grpc_requests_total`);
        if (series.length === 0) throw new Error(`first round not scraped yet from ${stage}`);
      }
      for (const stage of ["candidate_generation", "retrieval"]) {
        const refused = await query(`recsys_${stage}_grpc_requests_total{code="INVALID_ARGUMENT"}`);
        if (refused.length === 0) throw new Error(`first round's refused call not scraped yet from ${stage}`);
      }
    });
    await round([2, 3, 4]);
  } finally {
    cgClient.$close();
    retrievalClient.$close();
    recommender?.$close();
  }
}, 120_000);

afterAll(async () => {
  await stopAll();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

describe("Prometheus scraping the stages", () => {
  it("has every started stage as a healthy target (job = stage)", async () => {
    const targets = await prometheusApi<{ activeTargets: { labels: { job: string }; health: string; lastError: string }[] }>(
      prometheus.url,
      "targets",
    );
    expect(targets.activeTargets.map((t) => [t.labels.job, t.health, t.lastError]).sort()).toEqual(
      [...running.keys()].map((job) => [job, "up", ""]).sort(),
    );
    expect([...running.keys()].sort()).toEqual(started.map((s) => s.stage).sort());
  });

  it("stores the request counters by method and code, equal to what the services expose", async () => {
    for (const [stage, process] of running) {
      const own = await scrapeMetrics(process.metricsPort); // no calls since: final values
      const expected = own
        .split("\n")
        .filter((line) => line.startsWith(`recsys_${stage}_grpc_requests_total{`))
        .map((line) => {
          const [, labels, value] = /\{(.*)\} (\S+)$/.exec(line)!;
          return [/method="([^"]+)"/.exec(labels!)![1], /code="([^"]+)"/.exec(labels!)![1], value] as const;
        })
        .sort();
      expect(expected.length, stage).toBeGreaterThan(0);
      await eventually(async () => {
        const stored = (await query(`recsys_${stage}_grpc_requests_total`))
          .map((s) => [s.metric["method"], s.metric["code"], s.value[1]] as const)
          .sort();
        expect(stored).toEqual(expected);
      });
    }
    // Our own calls: 4 EmbedUser and 4 Search answered OK (more through the orchestrator), 2 each refused.
    const ok = async (stage: string, method: string): Promise<number> =>
      Number((await query(`recsys_${stage}_grpc_requests_total{method="${method}",code="OK"}`))[0]?.value[1]);
    expect(await ok("candidate_generation", "recsys.v1.CandidateGenerationService/EmbedUser")).toBeGreaterThanOrEqual(4);
    expect(await ok("retrieval", "recsys.v1.RetrievalService/Search")).toBeGreaterThanOrEqual(4);
    const invalid = await query('recsys_retrieval_grpc_requests_total{code="INVALID_ARGUMENT"}');
    expect(invalid.map((s) => s.value[1])).toEqual(["2"]);
    const buckets = await query('sum(recsys_retrieval_grpc_request_duration_seconds_count{method="recsys.v1.RetrievalService/Search"})');
    expect(Number(buckets[0]?.value[1])).toBeGreaterThanOrEqual(6);
    if (running.has("orchestrator")) {
      expect(await ok("orchestrator", "recsys.v1.RecommenderService/Recommend")).toBe(4);
      const degraded = await query("recsys_orchestrator_degraded_responses_total");
      expect(degraded.map((s) => [s.metric["stage"], s.value[1]])).toEqual(running.has("ranking") ? [] : [["ranking", "4"]]);
      if (running.has("ranking")) expect(await ok("ranking", "recsys.v1.RankingService/Rank")).toBe(4);
    }
  });

  it("evaluates the recording rules over the live series", async () => {
    await eventually(async () => {
      const rates = await query("stage:recsys_grpc_requests:rate5m > 0");
      expect(rates.map((s) => s.metric["stage"]).sort()).toEqual([...running.keys()].sort());
      expect(new Set(rates.map((s) => s.metric["namespace"]))).toEqual(new Set(["live"]));
      if (running.has("retrieval")) {
        // Shard completeness: one shard of one up.
        const shards = await query("namespace:recsys_retrieval_shards_up:count");
        expect(shards.map((s) => [s.metric["namespace"], s.metric["shard_count"], s.value[1]])).toEqual([["live", "1", "1"]]);
      }
      const errors = await query('stage:recsys_grpc_errors:ratio_rate5m{stage="candidate_generation"}');
      expect(Number(errors[0]?.value[1])).toBeGreaterThan(0); // its INVALID_ARGUMENT counts: the caller is ours
      const p99 = await query("stage:recsys_grpc_request_duration_seconds:p99_rate5m");
      expect(p99.map((s) => s.metric["stage"]).sort()).toEqual([...running.keys()].sort());
      // One bundle version across candidate generation, retrieval and the orchestrator: no skew.
      expect((await query("namespace:recsys_candidate_model_versions:count")).map((s) => [s.metric["namespace"], s.value[1]])).toEqual([
        ["live", "1"],
      ]);
      const info = await query("recsys_candidate_generation_model_info");
      expect(info.map((s) => s.metric["model_version"])).toEqual([manifest.modelVersion]);
      if (running.has("orchestrator") && !running.has("ranking")) {
        const degraded = await query("stage:recsys_orchestrator_degraded_responses:ratio_rate5m");
        expect(degraded.map((s) => [s.metric["stage"], Number(s.value[1])])).toEqual([["ranking", 1]]);
      }
      if (running.has("ranking")) {
        // The ranker's own version (rk-...), one across the ranking replicas.
        expect((await query("namespace:recsys_ranking_model_versions:count")).map((s) => [s.metric["namespace"], s.value[1]])).toEqual([
          ["live", "1"],
        ]);
      }
    }, 30_000);
  });
});

describe("metric names", () => {
  it("used by the rules and the dashboard are registered by the code (started stages: their /metrics; others: the runtime's metrics for that stage)", () => {
    const problems: string[] = [];
    for (const [name, where] of USED) {
      if (RECORDED.has(name) || PROMETHEUS_SERIES.has(name)) continue;
      const stage = stagePrefix(name);
      if (stage === undefined)
        problems.push(`${name} (${where}) is neither a recsys stage's metric, a recording rule nor a Prometheus series`);
      else if (running.has(stage) && !exposed.get(stage)!.has(name))
        problems.push(`${name} (${where}) is not exposed by the ${stage} service's /metrics`);
      else if (!running.has(stage) && !RUNTIME_NAMES.get(stage)!.has(name) && !PENDING.get(stage)!.includes(name))
        problems.push(`${name} (${where}): unverified`);
    }
    expect(problems).toEqual([]);
    expect(exposed.size).toBe(running.size);
  });

  for (const stage of notStarted) {
    const reason = isLanded(stage)
      ? "landed, but this test does not start it yet: add a launcher"
      : `packages/${stage.packageDir} has not landed`;
    it.skip(`scrapes the ${stage.stage} service (skipped: ${reason})`, () => {});
    const pending = PENDING.get(stage.stage)!;
    if (pending.length > 0) it.skip(`${pending.join(", ")} exist (skipped: ${reason})`, () => {});
  }
});
