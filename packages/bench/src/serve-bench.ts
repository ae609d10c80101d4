/**
 * `npm run bench -- serve [--json] [--items N] [...]`: the serving stack under load.
 *
 * 1. A synthetic catalogue of `--items` (default 1,000,000) items watched by `--users` users
 *    (default 5,000, ~`--events` 4 watches each, no impression log): the catalogue is full size,
 *    the watch log small. The in-process sources of @recsys/sources cost O(distinct watched
 *    items) per watch event for trending (an insertion step in a sorted array), so the
 *    orchestrator's startup (applying the log) and the ranker's replay grow with events ×
 *    distinct items: a 200k-event log over 1M items took over 15 minutes before the first request.
 * 2. Both models trained on it (or reused from the cache directory): the candidate generator for
 *    10 epochs; the ranker behind the candidate sources without the DNN one (replaying the DNN
 *    source scores all items exactly per watch, hours at 1M items). The bundle is then extended
 *    to the whole catalogue with synthesised embeddings for the items nobody watched
 *    (serve-catalogue.ts).
 * 3. The four stages as separate processes on loopback (`recsys start`'s launcher), configured as
 *    deployed (each polls its model manifest every 30 s, the default MODEL_POLL_INTERVAL); the first
 *    run builds the shards' HNSW indexes (minutes at 1M items; cached for later runs). One
 *    retrieval shard by default (`--shards`): on one 2-core machine a second shard process adds a
 *    process and a call per request (measured under 100 req/s: 17.3 ms of CPU per request with 2
 *    shards, 15.8 with 1) and no capacity; `--shards 2` measures the fan-out.
 * 4. Load from gRPC clients in this process (`--transport`: the runtime's http2 client, the
 *    default, or grpc-js's; the orchestrator's downstream calls use the same; `--server`: every
 *    stage's gRPC server, the runtime's Http2Server by default, or grpc-js's): a sequential pass (latency without queueing), then
 *    `--requests` requests at `--rate` per second with at most `--concurrency` in flight and a
 *    time cap (with `--events-rate`, RecordEvents calls beside it): QPS, client-side p50/p95/p99, errors, degraded answers, and each stage's
 *    p50/p95/p99 from the orchestrator's stage histogram (bucket-interpolated).
 * 4b. With `--anonymous`, every Recommend the benchmark sends (warm-up, sequential pass, load,
 *    rollouts, curve, in-process comparison) is an anonymous session: `session_item_ids` = a
 *    random user's last 1-5 watches, no user id. The orchestrator answers it with the session
 *    source, co-watch, popular and trending, without candidate generation, retrieval or the user
 *    store; the stack serves the bundle with a session model (serve-session.ts). The report's
 *    `session_source` says in how many of the load's requests the session source ran (the
 *    orchestrator's candidates metric) and how many answers hold one of its items; the run
 *    exits 1 when it did not run in every answered request.
 * 5. The same pipeline in this process without gRPC (serve-in-process.ts), loaded while the stack
 *    still runs, in blocks taking turns with blocks of sequential calls to the stack
 *    (`compareInterleaved`): the split / in-process ratio compares samples taken at the same host
 *    speed. The pass before the load (step 4) stays as it was for comparison with earlier runs.
 * 6. HNSW recall@100 of the served shard indexes vs brute force and q/s at several ef, with the
 *    user vectors the candidate-generation stage returned (hnswlib searches with max(ef, k), so
 *    an ef below 100 is 100 here).
 * 6b. With `--rollout`, a new ranker version published while Recommend calls go on at the load's
 *    rate (serve-rollout.ts): errors, degraded answers, p99 and the slowest call around it; then a
 *    whole new bundle version with prebuilt shard indexes, published as `recsys retrain` does
 *    (serve-bundle-rollout.ts): also answers degraded by a retrieval version mismatch and indexes
 *    built by the shards.
 * 6c. The load curve (serve-curve.ts, `--curve`, default 100,200,300,400 per second for
 *    `--curve-seconds` 20 s each): p50/p99, errors, degraded share and CPU per request of each
 *    stage and of the load generator at each rate.
 * 7. `benchAnn` of @recsys/ann at the same item count on its clustered synthetic vectors (index
 *    cached under the cache directory), a recall figure independent of the synthesised catalogue.
 *
 * Every figure depends on the machine: it prints the load average, the core count and the time a
 * fixed loop takes on one core (`referenceLoopMs`) before the sequential pass, after the load and
 * before the in-process pass, since the host's speed moves between runs and within one.
 */
import { cp, mkdir, readFile, rm, symlink } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { benchAnn } from "@recsys/ann";
import { ensureStackModel, launchStack, stackPaths, type Stack } from "@recsys/cli";
import { type Dataset, loadDataset } from "@recsys/data";
import {
  CandidateGenerationService,
  RecommenderService,
  type RecommendRequestSchema,
  type RecommendResponse,
  type UserContextSchema,
} from "@recsys/gen";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { loadBundleInfo } from "@recsys/orchestrator";
import { applyServingV8Flags, collectStartupGarbage, connect, isServiceError, statusName } from "@recsys/runtime";
import { servedAnnRecall, type ServedAnnResult } from "./serve-ann.js";
import { existingExtension, extendBundleToCatalogue } from "./serve-catalogue.js";
import { startInProcessPipeline } from "./serve-in-process.js";
import { ensureSessionBundle, type SessionBundle } from "./serve-session.js";
import { measureRankerRollout, type RolloutResult } from "./serve-rollout.js";
import { measureBundleRollout, type BundleRolloutResult } from "./serve-bundle-rollout.js";
import { type CurvePoint, formatCurve, formatProfiles, measureLoadCurve, profileByStage, type ProfileEntry } from "./serve-curve.js";
import {
  cpuPerRequest,
  diffBuckets,
  histogramCount,
  histogramQuantile,
  machineLoad,
  meanMsBetween,
  parseHistogram,
  parseHistogramSums,
  referenceLoopMs,
  percentiles,
  round,
  prng,
  processCpuMs,
  processRssMb,
  runLoad,
  type Percentiles,
} from "./serve-load.js";

/**
 * The fresh source's window: @recsys/sources' FreshSource scores every item uploaded within the
 * window on each request (O(w log budget)); with 1M items over 90 days the default 30 days is ~250k
 * items per request. One day (~8k items) keeps the source on at a bearable cost.
 */
const FRESH_WINDOW_SECONDS = 86_400;

/** --rollout: Recommend calls for this long, the new ranker published this far into them. */
const ROLLOUT_SECONDS = 15;
const ROLLOUT_PUBLISH_AFTER_SECONDS = 5;
/**
 * The bundle rollout: calls for this long; `next` is pointed at the new bundle
 * ROLLOUT_PUBLISH_AFTER_SECONDS into them, `current` flipped BUNDLE_ROLLOUT_PRELOAD_SECONDS later
 * (the shards poll every second with --rollout; at 1M items a shard copies and loads its
 * prebuilt index in seconds), and the calls go on while every stage swaps.
 */
const BUNDLE_ROLLOUT_SECONDS = 60;
const BUNDLE_ROLLOUT_PRELOAD_SECONDS = 20;

const USAGE =
  "usage: npm run bench -- serve [--json] [--items N] [--users N] [--events N] [--shards N] [--requests N] [--concurrency N]\n" +
  "         [--rate R (0 = closed loop)] [--time-cap S] [--count N] [--sequential N] [--in-process N] [--ann-queries N]\n" +
  "         [--efs 100,150,200,400] [--cache DIR] [--fresh] [--no-ann-clustered] [--transport http2|grpc-js] [--server http2|grpc-js] [--events-rate R] [--rollout]\n" +
  "         [--curve 100,200,300,400 (rates of the load curve; 0 = none)] [--curve-seconds S] [--cpu-prof DIR (V8 profiles of every stage, cut to the curve's points)]\n" +
  "         [--node-arg ARG (repeatable: a node option for every stage's process, e.g. --trace-gc; their output is in the stage logs)]\n" +
  "         [--anonymous (every Recommend an anonymous session: a few recent item ids, no user id; the bundle served with a session model)]";

interface Args {
  json: boolean;
  items: number;
  users: number;
  events: number;
  shards: number;
  requests: number;
  concurrency: number;
  rate: number;
  timeCap: number;
  count: number;
  sequential: number;
  inProcess: number;
  annQueries: number;
  efs: number[];
  cache: string;
  fresh: boolean;
  annClustered: boolean;
  /** The gRPC client of the load generator and of the orchestrator's downstream calls. */
  transport: "http2" | "grpc-js";
  /** Every stage's gRPC server (GRPC_SERVER): the runtime's Http2Server or grpc-js's. */
  server: "http2" | "grpc-js";
  /** RecordEvents calls per second (one watch each) sent during the load; 0 = none. */
  eventsRate: number;
  /** After the load, publish a new ranker version under load (serve-rollout.ts). */
  rollout: boolean;
  /** Rates of the load curve (serve-curve.ts), empty for none. */
  curve: number[];
  /** Seconds at each rate of the curve. */
  curveSeconds: number;
  /** Directory for every stage's V8 CPU profile (`--cpu-prof`), summarised per curve point; "" for none. */
  cpuProf: string;
  /** Extra node options for every stage's process (`--node-arg`, repeatable). */
  nodeArgs: string[];
  /** Every Recommend an anonymous session (serve-session.ts), the bundle served with a session model. */
  anonymous: boolean;
}

function parse(argv: string[]): Args {
  const a: Args = {
    json: false,
    items: 1_000_000,
    users: 5_000,
    events: 4,
    shards: 1,
    requests: 3000,
    concurrency: 16,
    rate: 100,
    timeCap: 60,
    count: 20,
    sequential: 200,
    inProcess: 200,
    annQueries: 200,
    efs: [100, 150, 200, 400],
    cache: ".cache/bench-serve",
    fresh: false,
    annClustered: true,
    transport: "http2",
    server: "http2",
    eventsRate: 0,
    rollout: false,
    curve: [100, 200, 300, 400],
    curveSeconds: 20,
    cpuProf: "",
    nodeArgs: [],
    anonymous: false,
  };
  const numbers: Record<string, keyof Args> = {
    "--items": "items",
    "--users": "users",
    "--events": "events",
    "--shards": "shards",
    "--requests": "requests",
    "--concurrency": "concurrency",
    "--rate": "rate",
    "--time-cap": "timeCap",
    "--count": "count",
    "--sequential": "sequential",
    "--in-process": "inProcess",
    "--ann-queries": "annQueries",
    "--events-rate": "eventsRate",
    "--curve-seconds": "curveSeconds",
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--json") a.json = true;
    else if (arg === "--fresh") a.fresh = true;
    else if (arg === "--no-ann-clustered") a.annClustered = false;
    else if (arg === "--rollout") a.rollout = true;
    else if (arg === "--anonymous") a.anonymous = true;
    else if (arg === "--cache") a.cache = argv[++i] ?? "";
    else if (arg === "--cpu-prof") a.cpuProf = resolve(argv[++i] ?? "");
    else if (arg === "--node-arg") {
      const nodeArg = argv[++i] ?? "";
      if (!nodeArg.startsWith("--")) throw new Error(`--node-arg needs a node option (--...)\n${USAGE}`);
      a.nodeArgs.push(nodeArg);
    } else if (arg === "--transport") {
      const transport = argv[++i];
      if (transport !== "http2" && transport !== "grpc-js") throw new Error(`--transport is http2 or grpc-js\n${USAGE}`);
      a.transport = transport;
    } else if (arg === "--server") {
      const server = argv[++i];
      if (server !== "http2" && server !== "grpc-js") throw new Error(`--server is http2 or grpc-js\n${USAGE}`);
      a.server = server;
    } else if (arg === "--efs") a.efs = (argv[++i] ?? "").split(",").map(Number);
    else if (arg === "--curve")
      a.curve = (argv[++i] ?? "")
        .split(",")
        .map(Number)
        .filter((r) => r !== 0);
    else if (numbers[arg] !== undefined) {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) throw new Error(`${arg} needs a non-negative number`);
      (a as unknown as Record<string, number>)[numbers[arg]] = v;
    } else throw new Error(`unknown option ${arg}\n${USAGE}`);
  }
  if (a.items < 10 || a.users < 10 || a.shards < 1 || a.requests < 1 || a.concurrency < 1 || a.count < 1 || a.count > 500) {
    throw new Error(`out of range: --items, --users ≥ 10; --shards, --requests, --concurrency ≥ 1; --count 1..500\n${USAGE}`);
  }
  if (a.efs.some((ef) => !Number.isInteger(ef) || ef < 1)) throw new Error(`--efs must be positive integers\n${USAGE}`);
  if (a.curve.some((r) => !Number.isFinite(r) || r < 0) || (a.curve.length > 0 && !(a.curveSeconds > 0)))
    throw new Error(`--curve needs rates ≥ 0 and --curve-seconds > 0\n${USAGE}`);
  if (a.cache === "") throw new Error(`--cache needs a directory\n${USAGE}`);
  return a;
}

/** Every stage's /metrics text, by stage process name. */
async function scrapeStages(stack: Stack): Promise<Map<string, string>> {
  return new Map(await Promise.all(stack.stages().map(async (s) => [s.name, await (await fetch(s.metricsUrl)).text()] as const)));
}

/** One hop of a Recommend: the caller's mean wait and the callee's mean handling time. */
export interface Hop {
  readonly hop: string;
  readonly caller_ms: number;
  readonly callee_ms: number;
}

/**
 * Between two `scrapeStages` readings: for each call a Recommend makes, the mean time the caller
 * waited (the orchestrator's stage histogram; for Recommend itself, `clientMeanMs` of the load
 * generator) and the mean time the callee's handler took (its gRPC server histogram). The
 * difference is what the split adds to that hop: encoding, the network stack, decoding, the
 * server's call handling, waiting for a core.
 */
export function hopBreakdown(stack: Stack, before: Map<string, string>, after: Map<string, string>, clientMeanMs: number): Hop[] {
  const served = (stage: string, metricStage: string, method: string): number => {
    const name = `recsys_${metricStage}_grpc_request_duration_seconds`;
    return meanMsBetween(
      parseHistogramSums(before.get(stage) ?? "", name, "method").get(method),
      parseHistogramSums(after.get(stage) ?? "", name, "method").get(method),
    );
  };
  // The orchestrator's stage histogram, read once for every hop it waits on.
  const stageName = "recsys_orchestrator_stage_duration_seconds";
  const waitsBefore = parseHistogramSums(before.get(stack.orchestrator.name) ?? "", stageName, "stage");
  const waitsAfter = parseHistogramSums(after.get(stack.orchestrator.name) ?? "", stageName, "stage");
  const waited = (stage: string): number => meanMsBetween(waitsBefore.get(stage), waitsAfter.get(stage));
  const hops: Hop[] = [
    {
      hop: "Recommend",
      caller_ms: clientMeanMs,
      callee_ms: served(stack.orchestrator.name, "orchestrator", "recsys.v1.RecommenderService/Recommend"),
    },
    {
      hop: "EmbedUser",
      caller_ms: waited("candidate_generation"),
      callee_ms: served(stack.candidateGeneration.name, "candidate_generation", "recsys.v1.CandidateGenerationService/EmbedUser"),
    },
    ...stack.retrieval.map((shard) => ({
      hop: `Search (${shard.name})`,
      caller_ms: waited(shard.name),
      callee_ms: served(shard.name, "retrieval", "recsys.v1.RetrievalService/Search"),
    })),
  ];
  if (stack.ranking !== undefined) {
    hops.push({
      hop: "Rank",
      caller_ms: waited("ranking"),
      callee_ms: served(stack.ranking.name, "ranking", "recsys.v1.RankingService/Rank"),
    });
  }
  // A hop no call went through (an anonymous session makes no EmbedUser or Search call) is left out.
  return hops
    .filter((h) => !(Number.isNaN(h.caller_ms) && Number.isNaN(h.callee_ms)))
    .map((h) => ({ hop: h.hop, caller_ms: round(h.caller_ms), callee_ms: round(h.callee_ms) }));
}

function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return values.length > 0 ? sum / values.length : NaN;
}

/** Blocks of each side in `compareInterleaved`. */
const INTERLEAVED_BLOCKS = 10;

interface SideResult {
  readonly completed: number;
  readonly p: Percentiles;
  readonly degraded: number;
}

interface Comparison {
  readonly blocks: number;
  readonly split: SideResult;
  readonly inProcess: SideResult;
  /** referenceLoopMs before the first block. */
  readonly referenceMs: number;
}

/**
 * Sequential requests to both sides in `blocks` turns (a block of the split stack, then a block
 * of the in-process pipeline), after a warm-up of the in-process pipeline (the stack is warm
 * from the load). Each side's percentiles are over all its blocks.
 */
export async function compareInterleaved(options: {
  readonly blocks: number;
  readonly splitRequests: number;
  readonly inProcessRequests: number;
  readonly split: () => Promise<RecommendResponse>;
  readonly inProcess: () => Promise<RecommendResponse>;
  readonly errorKey: (error: unknown) => string;
}): Promise<Comparison> {
  const { blocks, errorKey } = options;
  await runLoad({ requests: 50, concurrency: 1, rate: 0, timeCapSeconds: 60 }, options.inProcess, errorKey);
  const referenceMs = referenceLoopMs();
  const latencies = { split: [] as number[], inProcess: [] as number[] };
  const degraded = { split: 0, inProcess: 0 };
  for (let block = 0; block < blocks; block++) {
    for (const side of ["split", "inProcess"] as const) {
      const total = side === "split" ? options.splitRequests : options.inProcessRequests;
      const requests = Math.floor(total / blocks) + (block < total % blocks ? 1 : 0);
      if (requests === 0) continue;
      const result = await runLoad({ requests, concurrency: 1, rate: 0, timeCapSeconds: 60 }, options[side], errorKey);
      latencies[side].push(...result.latenciesMs);
      degraded[side] += result.outcomes.filter((r) => r.degraded).length;
    }
  }
  const side = (name: "split" | "inProcess"): SideResult => {
    const sorted = Float64Array.from(latencies[name]).sort();
    return { completed: sorted.length, p: percentiles(sorted), degraded: degraded[name] };
  };
  return { blocks, split: side("split"), inProcess: side("inProcess"), referenceMs };
}

/** Start row of each user's events (events are sorted by user), plus the end. */
function userOffsets(eventUsers: Int32Array, numUsers: number): Int32Array {
  const offsets = new Int32Array(numUsers + 1);
  for (let row = 0; row < eventUsers.length; row++) offsets[eventUsers[row]! + 1]! += 1;
  for (let u = 0; u < numUsers; u++) offsets[u + 1]! += offsets[u]!;
  return offsets;
}

interface Prepared {
  readonly spec: string;
  readonly runDir: string;
  readonly model: { readonly dir: string; readonly reused: boolean };
  /** The bundle the stack serves: `model.dir`, or with --anonymous the same with a session model (serve-session.ts). */
  readonly servedDir: string;
  /** With --anonymous, the session model's training (null otherwise). */
  readonly session: SessionBundle | null;
  /** With --anonymous, the sessions the requests send (item ids, oldest first); empty otherwise. */
  readonly sessions: readonly (readonly string[])[];
  readonly lowered: string[];
  readonly datasetSeconds: number;
  readonly trainSeconds: number;
  readonly users: readonly string[];
  readonly itemCount: number;
  /** The contexts whose user vectors the ANN recall check queries with. */
  readonly annContexts: MessageInitShape<typeof UserContextSchema>[];
}

/** Steps 1-2: the synthetic catalogue, the models trained on it (or reused) and the served bundle. */
async function prepareCatalogueAndModels(args: Args, log: (message: string) => void): Promise<Prepared> {
  // 1. The catalogue.
  const spec = `synthetic:users=${args.users},items=${args.items},events=${args.events},impressions=0,seed=1`;
  let t = performance.now();
  const dataset = await loadDataset(spec);
  const datasetSeconds = (performance.now() - t) / 1000;
  log(
    `dataset ${spec}: ${dataset.users.ids.length} users, ${dataset.items.ids.length} items, ${dataset.events.user.length} watches (${datasetSeconds.toFixed(1)} s)`,
  );
  const lowered = [
    `training data: ${dataset.users.ids.length} users × ~${args.events} watches (${dataset.events.user.length} events) over the ${dataset.items.ids.length}-item catalogue`,
    "the candidate generator trains 10 epochs on that log; the ranker 1 epoch on ≤ 5 examples per user, behind the sources without dnn (it ignores dnn provenance)",
    "fresh-upload window 1 day instead of 30 (the fresh source scores every item uploaded in the window per request: ~250k items at 1M)",
  ];

  // 2. The models.
  const runDir = resolve(args.cache, `${dataset.fingerprint.slice(0, 12)}`);
  if (args.fresh) await rm(runDir, { recursive: true, force: true });
  const pipeline = { budget: 50, mergedSize: 150 };
  t = performance.now();
  const trained = await ensureStackModel(
    dataset,
    join(runDir, "trained"),
    {
      holdout: "none",
      // 10 epochs (~15 s): 1 epoch left the item embeddings near their random initialisation,
      // which the synthesised catalogue then copied (an unrealistically hard ANN workload).
      candidateGen: { epochs: 10, seed: 1 },
      ranker: {
        pipeline,
        train: { epochs: 1, maxExamplesPerUser: 5, seed: 1 },
        dnnSource: false,
        freshWindowSeconds: FRESH_WINDOW_SECONDS,
      },
    },
    { log },
  );
  const trainSeconds = (performance.now() - t) / 1000;
  // The served bundle covers the whole catalogue (serve-catalogue.ts).
  const model = { dir: join(runDir, "bundle"), reused: trained.reused };
  const extension = (await existingExtension(trained.dir, model.dir)) ?? (await extendBundleToCatalogue(trained.dir, model.dir, dataset));
  const info = extension.syntheticCatalogue;
  lowered.push(
    `catalogue: ${info.trained} items were watched in training and keep their trained embeddings; the other ${info.synthesised} got synthesised ones (a low-rank Gaussian fitted on the trained items of their topic: its top 8 principal directions plus a small residual)`,
  );
  // 2b. With --anonymous, the bundle with a session model (serve-session.ts).
  let session: SessionBundle | null = null;
  if (args.anonymous) {
    session = await ensureSessionBundle({ bundleDir: model.dir, dir: join(runDir, "bundle-session"), dataset, log });
    lowered.push(
      `session model: ${session.encoder} trained ${session.epochs} epochs with a sampled softmax on the same watch log over the whole catalogue (items nobody watched keep random embeddings); anonymous sessions are each a random user's last 1-${SESSION_ITEMS} watches, sent without the user id`,
    );
  }
  for (const line of lowered) log(`lowered: ${line}`);

  // Each ANN query context carries the user's last 50 watches (with their times), as the
  // orchestrator sends it.
  const users = [...dataset.users.ids];
  const offsets = userOffsets(dataset.events.user, users.length);
  const annContexts: MessageInitShape<typeof UserContextSchema>[] = [];
  for (let i = 0; i < args.annQueries; i++) {
    const u = (i * 7919) % users.length;
    const from = Math.max(offsets[u]!, offsets[u + 1]! - 50);
    const watchHistory = [];
    let last = 0;
    for (let row = from; row < offsets[u + 1]!; row++) {
      const seconds = dataset.events.timestamp[row]!;
      last = Math.max(last, seconds);
      watchHistory.push({
        itemId: dataset.items.ids[dataset.events.item[row]!]!,
        watchedAt: { seconds: BigInt(Math.floor(seconds)), nanos: 0 },
      });
    }
    annContexts.push({ userId: users[u]!, watchHistory, requestTime: { seconds: BigInt(Math.floor(last) + 1), nanos: 0 } });
  }
  const sessions = args.anonymous ? anonymousSessions(dataset, SESSION_POOL, prng(7)) : [];
  return {
    spec,
    runDir,
    model,
    servedDir: session?.dir ?? model.dir,
    session,
    sessions,
    lowered,
    datasetSeconds,
    trainSeconds,
    users,
    itemCount: dataset.items.ids.length,
    annContexts,
  };
}

/** Items of an anonymous session: at most this many. */
const SESSION_ITEMS = 5;
/** Sessions drawn once; the requests cycle through them at random. */
const SESSION_POOL = 10_000;

/**
 * `count` anonymous sessions: each the last 1..SESSION_ITEMS watches (oldest first, as
 * `session_item_ids` wants them) of a random user of the watch log, so that a session holds
 * items watched together, as a visitor's would.
 */
export function anonymousSessions(dataset: Dataset, count: number, random: () => number): string[][] {
  const users = dataset.users.ids.length;
  const offsets = userOffsets(dataset.events.user, users);
  const out: string[][] = [];
  for (let attempt = 0; out.length < count && attempt < count * 10; attempt++) {
    const u = Math.floor(random() * users);
    const watches = offsets[u + 1]! - offsets[u]!;
    if (watches === 0) continue;
    const n = 1 + Math.floor(random() * Math.min(SESSION_ITEMS, watches));
    const ids: string[] = [];
    for (let row = offsets[u + 1]! - n; row < offsets[u + 1]!; row++) ids.push(dataset.items.ids[dataset.events.item[row]!]!);
    out.push(ids);
  }
  if (out.length === 0) throw new Error("no user of the watch log has a watch: no anonymous session to send");
  return out;
}

/** The `seconds` field of the last log line with each message (JSON log lines). */
async function logSeconds(file: string, messages: readonly string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const text = await readFile(file, "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const parsed = JSON.parse(line) as { msg?: unknown; seconds?: unknown };
      if (typeof parsed.msg === "string" && messages.includes(parsed.msg) && typeof parsed.seconds === "number")
        out[parsed.msg] = parsed.seconds;
    } catch {
      // not JSON
    }
  }
  return out;
}

/** How the load's requests used the session source (--anonymous). */
export interface SessionSourceUse {
  /** Requests the session source ran in (the orchestrator's `recsys_orchestrator_candidates{source="session"}` observations). */
  readonly requests: number;
  /** Mean candidates it contributed per request it ran in. */
  readonly candidates_per_request: number;
  /** Successful answers of the load. */
  readonly answers: number;
  /** Answers with at least one item nominated by the session source (provenance "session"). */
  readonly answers_with_session_items: number;
}

/** The session source's use between two scrapes of the orchestrator's /metrics, and in the answers. */
export function sessionSourceUse(before: string, after: string, answers: readonly RecommendResponse[]): SessionSourceUse {
  const name = "recsys_orchestrator_candidates";
  const b = parseHistogramSums(before, name, "source").get("session");
  const a = parseHistogramSums(after, name, "source").get("session");
  const requests = (a?.count ?? 0) - (b?.count ?? 0);
  const candidates = (a?.sum ?? 0) - (b?.sum ?? 0);
  return {
    requests,
    candidates_per_request: requests > 0 ? round(candidates / requests, 1) : 0,
    answers: answers.length,
    answers_with_session_items: answers.filter((r) => r.items.some((item) => item.provenance.some((p) => p.sourceName === "session")))
      .length,
  };
}

/**
 * Why the anonymous load did not measure the session source, or undefined when it did: every
 * answered request ran it (a request answered ran it before answering; one the client gave up on
 * may have run it too) and it nominated candidates.
 */
export function sessionSourceSkipped(use: SessionSourceUse): string | undefined {
  if (use.requests < use.answers)
    return `the session source ran in ${use.requests} of the ${use.answers} answered anonymous requests (no session model in the served bundle, or it failed: see degraded_by_stage)`;
  if (use.candidates_per_request <= 0) return "the session source ran but nominated no candidate";
  return undefined;
}

function errorKey(error: unknown): string {
  return isServiceError(error) ? statusName(error.code) : error instanceof Error ? error.message : String(error);
}

const pctJson = (p: Percentiles): { p50_ms: number; p95_ms: number; p99_ms: number } => ({
  p50_ms: round(p.p50),
  p95_ms: round(p.p95),
  p99_ms: round(p.p99),
});

export async function run(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parse(argv);
  } catch (error) {
    process.stderr.write(`bench serve: ${(error as Error).message}\n`);
    return 2;
  }
  const log = (message: string): void => {
    process.stderr.write(`bench serve: ${message}\n`);
  };
  // This process is the load generator and, later, the in-process pipeline: the same GC settings
  // as the stages (those V8 takes at run time), so that the comparison is like for like.
  applyServingV8Flags();
  const loadAtStart = await machineLoad();
  log(`machine: ${loadAtStart.cores} cores, load average ${loadAtStart.loadAverage1m} (shared with other work: figures are noisy)`);

  // 1-2. The catalogue and the models. Only what the load generator needs comes back: the dataset
  // (a 1M-item catalogue) stays out of this process's heap during the load, so that this
  // process's own GC does not stall the clients it times.
  const prepared = await prepareCatalogueAndModels(args, log);
  const { spec, runDir, model, servedDir, sessions, lowered, datasetSeconds, trainSeconds, users, itemCount, annContexts } = prepared;
  collectStartupGarbage(); // the dataset's garbage goes now rather than during the load

  // 3. The stack. With --rollout every stage reads the bundle through a symlink, as deployed, so
  // that a whole new bundle can be published (serve-bundle-rollout.ts).
  let modelPath = servedDir;
  if (args.rollout) {
    const rolloutDir = join(runDir, "rollout");
    await rm(rolloutDir, { recursive: true, force: true });
    await mkdir(rolloutDir, { recursive: true });
    modelPath = join(rolloutDir, "current");
    await symlink(servedDir, modelPath);
  }
  const t = performance.now();
  let stack: Stack | undefined = await launchStack({
    modelDir: modelPath,
    dataset: spec,
    stateDir: join(runDir, "run"),
    shards: args.shards,
    startTimeoutMs: 3_600_000,
    nodeArgs: [...(args.cpuProf === "" ? [] : ["--cpu-prof", `--cpu-prof-dir=${args.cpuProf}`]), ...args.nodeArgs],
    env: {
      // Every stage polls its model manifest at the default MODEL_POLL_INTERVAL (30 s), as deployed:
      // the load runs across at least one poll per stage.
      // With --rollout every stage polls every second (a stat), so that the bundle rollout is
      // picked up within the measured window.
      candidate_generation: { LOG_LEVEL: "warn", GRPC_SERVER: args.server, ...(args.rollout ? { MODEL_POLL_INTERVAL: "1s" } : {}) },
      retrieval: { LOG_LEVEL: "info", GRPC_SERVER: args.server, ...(args.rollout ? { MODEL_POLL_INTERVAL: "1s" } : {}) },
      // With --rollout the ranking stage checks its ranker's manifest every second (stat only).
      ranking: { LOG_LEVEL: "warn", GRPC_SERVER: args.server, ...(args.rollout ? { MODEL_POLL_INTERVAL: "1s" } : {}) },
      orchestrator: {
        LOG_LEVEL: "info",
        FRESH_WINDOW: `${FRESH_WINDOW_SECONDS}s`,
        DOWNSTREAM_TRANSPORT: args.transport,
        GRPC_SERVER: args.server,
        ...(args.rollout ? { MODEL_POLL_INTERVAL: "1s" } : {}),
      },
    },
    log,
  });
  const startSeconds = (performance.now() - t) / 1000;
  const orchestratorStartup = await logSeconds(stack.orchestrator.logFile, [
    "catalogue and candidate sources ready",
    "source state applied",
  ]);
  log(`stack serving after ${startSeconds.toFixed(1)} s (orchestrator: ${JSON.stringify(orchestratorStartup)})`);
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping the stack`);
    void (stack?.stop(3000) ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const random = prng(42);
  const pickUser = (): string => users[Math.floor(random() * users.length)]!;
  // Every Recommend the benchmark sends: a user's, or with --anonymous an anonymous session.
  const nextRequest = (): MessageInitShape<typeof RecommendRequestSchema> =>
    args.anonymous
      ? { sessionItemIds: [...sessions[Math.floor(random() * sessions.length)]!], count: args.count }
      : { userId: pickUser(), count: args.count };
  let report: Record<string, unknown>;
  let sessionSource: SessionSourceUse | undefined;
  const queries: Float32Array[] = [];
  let curvePoints: CurvePoint[] = [];
  const stagePids = new Map<number, string>();
  try {
    const client = connect(RecommenderService, stack.orchestrator.address, { defaultTimeoutMs: 5000, transport: args.transport });
    const cg = connect(CandidateGenerationService, stack.candidateGeneration.address, {
      defaultTimeoutMs: 5000,
      transport: args.transport,
    });
    try {
      // Warm-up: channels, JIT.
      const warmUp = await runLoad(
        { requests: 100, concurrency: 4, rate: 0, timeCapSeconds: 60 },
        () => client.recommend(nextRequest()),
        errorKey,
      );
      // What the event load watches: items the stack recommended.
      const watchable = [...new Set(warmUp.outcomes.flatMap((response) => response.items.map((item) => item.itemId)))];

      const referenceBefore = referenceLoopMs();
      log(`reference loop: ${referenceBefore.toFixed(0)} ms (the host's speed now; lower is faster)`);

      // Sequential: latency without queueing.
      const beforeSequential = await scrapeStages(stack);
      const sequential = await runLoad(
        { requests: args.sequential, concurrency: 1, rate: 0, timeCapSeconds: 60 },
        () => client.recommend(nextRequest()),
        errorKey,
      );
      const sequentialP = percentiles(sequential.latenciesMs);
      const sequentialHops = hopBreakdown(stack, beforeSequential, await scrapeStages(stack), mean(sequential.latenciesMs));
      log(`sequential: ${sequential.completed} requests, p50 ${sequentialP.p50.toFixed(1)} ms, p99 ${sequentialP.p99.toFixed(1)} ms`);

      // Load.
      const beforeLoad = await scrapeStages(stack);
      const before = beforeLoad.get(stack.orchestrator.name) ?? "";
      const loadStart = await machineLoad();
      const processes = [...stack.stages().map((s) => [s.name, s.pid] as const), ["load generator", process.pid] as const];
      const readCpu = async (): Promise<Map<string, number | undefined>> =>
        new Map(await Promise.all(processes.map(async ([name, pid]) => [name, await processCpuMs(pid)] as const)));
      const cpuBefore = await readCpu();
      // With --events-rate, RecordEvents calls (one watch of a recommended item each) run beside the
      // Recommend load for as long; they change the stored histories (the user store persists in
      // the cache directory between runs).
      const eventsLoad =
        args.eventsRate > 0 && watchable.length > 0
          ? runLoad(
              {
                requests: Math.round((args.requests * args.eventsRate) / Math.max(args.rate, 1)),
                concurrency: 4,
                rate: args.eventsRate,
                timeCapSeconds: args.timeCap,
              },
              () =>
                client.recordEvents({
                  events: [
                    {
                      userId: pickUser(),
                      kind: { case: "watch", value: { itemId: watchable[Math.floor(random() * watchable.length)]!, watchSeconds: 120 } },
                    },
                  ],
                }),
              errorKey,
            )
          : undefined;
      const load = await runLoad<RecommendResponse>(
        { requests: args.requests, concurrency: args.concurrency, rate: args.rate, timeCapSeconds: args.timeCap },
        () => client.recommend(nextRequest()),
        errorKey,
      );
      const events = await eventsLoad;
      const cpuAfter = await readCpu();
      const loadEnd = await machineLoad();
      const referenceAfter = referenceLoopMs();
      const cpuMs = cpuPerRequest(cpuBefore, cpuAfter, load.completed);
      // Resident memory of each stage after the load (the load generator holds the dataset too).
      const rssMb: Record<string, number> = {};
      for (const [name, pid] of processes) {
        const mb = await processRssMb(pid);
        if (mb !== undefined) rssMb[name] = Math.round(mb);
      }
      const afterLoad = await scrapeStages(stack);
      const after = afterLoad.get(stack.orchestrator.name) ?? "";
      const loadHops = hopBreakdown(stack, beforeLoad, afterLoad, mean(load.latenciesMs));
      const loadP = percentiles(load.latenciesMs);
      const errors = Object.values(load.errors).reduce((s, n) => s + n, 0);
      const degradedBy: Record<string, number> = {};
      let degraded = 0;
      for (const response of load.outcomes) {
        if (!response.degraded) continue;
        degraded += 1;
        for (const f of response.failedStages) degradedBy[`${f.stage} ${f.code}`] = (degradedBy[`${f.stage} ${f.code}`] ?? 0) + 1;
      }
      const name = "recsys_orchestrator_stage_duration_seconds";
      const beforeH = parseHistogram(before, name, "stage");
      const stages: Record<string, { p50_ms: number; p95_ms: number; p99_ms: number; count: number }> = {};
      for (const [stage, buckets] of parseHistogram(after, name, "stage")) {
        const diff = diffBuckets(buckets, beforeH.get(stage));
        const count = histogramCount(diff);
        if (count === 0) continue;
        stages[stage] = {
          p50_ms: round(histogramQuantile(diff, 0.5) * 1000),
          p95_ms: round(histogramQuantile(diff, 0.95) * 1000),
          p99_ms: round(histogramQuantile(diff, 0.99) * 1000),
          count,
        };
      }
      // With --anonymous: did the session source run in the load's requests (the orchestrator's
      // candidates metric, observed once per request it ran in), and did its items reach answers?
      if (args.anonymous) {
        sessionSource = sessionSourceUse(before, after, load.outcomes);
        log(
          `session source: ran in ${sessionSource.requests} requests (${load.outcomes.length} answered), ${sessionSource.candidates_per_request} candidates per request; ` +
            `${sessionSource.answers_with_session_items} answers hold a session item`,
        );
      }
      const cpuTotal = Object.values(cpuMs).reduce((sum, ms) => sum + ms, 0);
      if (Object.keys(rssMb).length > 0)
        log(
          `resident memory after the load: ${Object.entries(rssMb)
            .map(([name, mb]) => `${name} ${mb} MiB`)
            .join(", ")}`,
        );
      if (Object.keys(cpuMs).length > 0) {
        log(
          `CPU per request under load: ${Object.entries(cpuMs)
            .map(([name, ms]) => `${name} ${ms.toFixed(2)} ms`)
            .join(", ")}; total ${cpuTotal.toFixed(2)} ms`,
        );
      }
      log(
        `load: ${load.completed} requests in ${load.seconds.toFixed(1)} s = ${load.rps.toFixed(1)} req/s (target rate ${args.rate || "unpaced"}, ≤ ${args.concurrency} in flight${load.capped ? ", stopped by the time cap" : ""}), ` +
          `p50 ${loadP.p50.toFixed(1)} / p95 ${loadP.p95.toFixed(1)} / p99 ${loadP.p99.toFixed(1)} ms, ${errors} errors, ${degraded} degraded`,
      );

      // A ranker rollout under the same rate: its figures against the load's.
      let rollout: RolloutResult | undefined;
      let bundleRollout: BundleRolloutResult | undefined;
      if (args.rollout) {
        rollout = await measureRankerRollout({
          bundleDir: servedDir,
          rate: args.rate || 100,
          seconds: ROLLOUT_SECONDS,
          concurrency: args.concurrency,
          publishAfterSeconds: ROLLOUT_PUBLISH_AFTER_SECONDS,
          send: () => client.recommend(nextRequest()),
          errorKey,
          log,
        });
        log(
          `rollout: ${rollout.requests} requests, ${rollout.answered_by_next} answered by the new ranker; p50 ${rollout.p50_ms} / p99 ${rollout.p99_ms} / max ${rollout.max_ms} ms, ` +
            `${rollout.errors} errors, ${rollout.degraded} degraded`,
        );
        const retrievalStages = stack.retrieval;
        bundleRollout = await measureBundleRollout({
          current: modelPath,
          shardCount: args.shards,
          rate: args.rate || 100,
          seconds: BUNDLE_ROLLOUT_SECONDS,
          concurrency: args.concurrency,
          publishAfterSeconds: ROLLOUT_PUBLISH_AFTER_SECONDS,
          preloadSeconds: BUNDLE_ROLLOUT_PRELOAD_SECONDS,
          send: () => client.recommend(nextRequest()),
          errorKey,
          indexBuilds: async () => {
            let total = 0;
            for (const stage of retrievalStages) {
              const text = await (await fetch(stage.metricsUrl)).text();
              for (const m of text.matchAll(/^recsys_retrieval_index_builds_total\{[^}]*\} (\S+)$/gm)) total += Number(m[1]);
            }
            return total;
          },
          log,
        });
        log(
          `bundle rollout (${bundleRollout.previous_version} -> ${bundleRollout.next_version}, indexes prebuilt in ${bundleRollout.prebuild_seconds} s): ${bundleRollout.requests} requests, ` +
            `${bundleRollout.answered_by_next} answered by the new version; ${bundleRollout.errors} errors, ${bundleRollout.degraded} degraded ` +
            `(${bundleRollout.degraded_by_version_mismatch} by a retrieval version mismatch), ${bundleRollout.indexes_built_by_shards} indexes built by the shards; ` +
            `p50 ${bundleRollout.p50_ms} / p99 ${bundleRollout.p99_ms} / max ${bundleRollout.max_ms} ms`,
        );
      }

      // The load curve: the same Recommend calls paced at each rate, CPU per request per process.
      let curve: CurvePoint[] = [];
      for (const s of stack.stages()) stagePids.set(s.pid, s.name);
      if (args.curve.length > 0) {
        curve = await measureLoadCurve({
          rates: args.curve,
          seconds: args.curveSeconds,
          // Enough in flight that the pace, not the concurrency, sets the rate (400/s × 0.1 s).
          concurrency: Math.max(args.concurrency, 64),
          send: () => client.recommend(nextRequest()),
          errorKey,
          processes,
          log,
        });
        curvePoints = curve;
      }

      // User vectors for the ANN recall check, from the candidate-generation stage.
      for (const context of annContexts) {
        const embedded = await cg.embedUser({ context });
        queries.push(Float32Array.from(embedded.userVector));
      }

      // 5. The same pipeline in this process without gRPC, in blocks taking turns with blocks of
      // sequential calls to the stack, so that the host's speed, which moves during a run (see
      // referenceLoopMs), moves both sides alike (the separate pass after the stack had stopped,
      // which this replaces, measured 3.4-5.6 ms p50 from run to run on one host). Both are in
      // memory at once: at 1M items this process grows by ~2.7 GB while the stages still run.
      let comparison: Comparison | undefined;
      if (args.inProcess > 0) {
        log("in-process pipeline: loading every stage into this process");
        const paths = stackPaths(join(runDir, "run"));
        // The served orchestrator holds the embedded user store (one process at a time): the
        // in-process one opens a copy of it (the load's writes are done).
        const usersCopy = join(runDir, "run", "users-in-process");
        await rm(usersCopy, { recursive: true, force: true });
        await cp(paths.users, usersCopy, { recursive: true, filter: (source) => basename(source) !== "LOCK" });
        const inProcess = await startInProcessPipeline({
          modelDir: servedDir,
          dataset: spec,
          indexDir: paths.index,
          shards: args.shards,
          usersDir: usersCopy,
          deletedItemsFile: paths.deletedItems,
          orchestratorEnv: { FRESH_WINDOW: `${FRESH_WINDOW_SECONDS}s` },
        });
        try {
          comparison = await compareInterleaved({
            blocks: INTERLEAVED_BLOCKS,
            splitRequests: args.sequential,
            inProcessRequests: args.inProcess,
            split: () => client.recommend(nextRequest()),
            inProcess: () => inProcess.recommend(nextRequest()),
            errorKey,
          });
        } finally {
          await inProcess.close();
        }
        const { split: sp, inProcess: ip } = comparison;
        log(
          `in process: ${ip.completed} sequential requests, p50 ${ip.p.p50.toFixed(1)} / p95 ${ip.p.p95.toFixed(1)} / p99 ${ip.p.p99.toFixed(1)} ms, ${ip.degraded} degraded; ` +
            `the stack in the blocks between: p50 ${sp.p.p50.toFixed(1)} ms (${comparison.blocks} blocks each, reference loop ${comparison.referenceMs.toFixed(0)} ms)`,
        );
      }

      if (events !== undefined) {
        const p = percentiles(events.latenciesMs);
        const failed = Object.values(events.errors).reduce((sum, n) => sum + n, 0);
        log(
          `events: ${events.completed} RecordEvents at ${events.rps.toFixed(1)}/s beside the load, p50 ${p.p50.toFixed(1)} / p99 ${p.p99.toFixed(1)} ms, ${failed} errors`,
        );
      }
      report = {
        items: itemCount,
        users: users.length,
        anonymous: args.anonymous,
        ...(sessionSource === undefined ? {} : { session_source: sessionSource }),
        shards: args.shards,
        transport: args.transport,
        server: args.server,
        count: args.count,
        concurrency: args.concurrency,
        target_rate: args.rate,
        requests: load.completed,
        seconds: round(load.seconds),
        rps: round(load.rps, 1),
        ...pctJson(loadP),
        errors,
        errors_by_code: load.errors,
        ...(events === undefined
          ? {}
          : {
              events: {
                rate: args.eventsRate,
                requests: events.completed,
                ...pctJson(percentiles(events.latenciesMs)),
                errors_by_code: events.errors,
              },
            }),
        degraded,
        degraded_by_stage: degradedBy,
        stages,
        cpu_ms_per_request: Object.fromEntries(Object.entries(cpuMs).map(([name, ms]) => [name, round(ms)])),
        rss_mb_after_load: rssMb,
        sequential: { requests: sequential.completed, ...pctJson(sequentialP) },
        hops: { sequential: sequentialHops, under_load: loadHops },
        ...(rollout === undefined ? {} : { rollout }),
        ...(bundleRollout === undefined ? {} : { bundle_rollout: bundleRollout }),
        ...(curve.length === 0 ? {} : { load_curve: curve }),
        machine: {
          cores: loadAtStart.cores,
          load_average_1m_start: loadAtStart.loadAverage1m,
          load_average_1m_during_load: [loadStart.loadAverage1m, loadEnd.loadAverage1m],
          reference_loop_ms: [round(referenceBefore, 0), round(referenceAfter, 0)],
        },
        setup_seconds: {
          dataset: round(datasetSeconds, 1),
          train: round(trainSeconds, 1),
          model_reused: model.reused,
          stack_start: round(startSeconds, 1),
          orchestrator: orchestratorStartup,
        },
        lowered,
        ...(comparison === undefined
          ? {}
          : {
              in_process_p50_ms: round(comparison.inProcess.p.p50),
              in_process: {
                requests: comparison.inProcess.completed,
                ...pctJson(comparison.inProcess.p),
                degraded: comparison.inProcess.degraded,
                reference_loop_ms: round(comparison.referenceMs, 0),
              },
              sequential_interleaved: { requests: comparison.split.completed, ...pctJson(comparison.split.p), blocks: comparison.blocks },
              split_over_in_process_p50: {
                sequential: round(comparison.split.p.p50 / comparison.inProcess.p.p50),
                under_load: round(loadP.p50 / comparison.inProcess.p.p50),
              },
            }),
      };
    } finally {
      client.$close();
      cg.$close();
    }
  } finally {
    await stack.stop();
    stack = undefined;
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }

  // 6c'. The stages' CPU profiles (written as they exited), cut to each point of the curve.
  if (args.cpuProf !== "" && curvePoints.length > 0) {
    const byRate: Record<string, Record<string, ProfileEntry[]>> = {};
    for (const point of curvePoints)
      byRate[String(point.rate)] = await profileByStage(args.cpuProf, stagePids, point.window_us, point.requests);
    report = { ...report, load_curve_profiles: byRate };
  }

  // 6. ANN recall of the served indexes (none with --ann-queries 0).
  const bundle = await loadBundleInfo(model.dir);
  const ann =
    queries.length === 0
      ? { results: [], bruteForceQps: 0 }
      : await servedAnnRecall({
          indexDir: stackPaths(join(runDir, "run")).index,
          modelVersion: bundle.modelVersion,
          shards: args.shards,
          itemIds: bundle.itemIds,
          embeddings: bundle.embeddings,
          dim: bundle.dim,
          queries,
          efs: args.efs,
          log,
        });
  report = { ...report, ann: ann.results, ...(queries.length === 0 ? {} : { ann_brute_force_qps: round(ann.bruteForceQps, 1) }) };

  // 7. The ANN package's own benchmark at the same size (clustered synthetic vectors), for a
  // figure that does not depend on how the catalogue above was synthesised.
  if (args.annClustered && args.annQueries > 0) {
    const clustered = await benchAnn({
      items: args.items,
      dim: bundle.dim,
      queries: args.annQueries,
      efs: args.efs,
      indexDir: resolve(args.cache, `ann-clustered-${args.items}`),
      reuseIndex: true,
      log: (line) => log(`benchAnn: ${line}`),
    });
    report = {
      ...report,
      ann_clustered: {
        items: clustered.data.items,
        clusters: clustered.data.clusters,
        build_seconds: clustered.buildSeconds === undefined ? null : round(clustered.buildSeconds, 1),
        results: clustered.results.map((x) => ({ ef: x.ef, recall_at_100: round(x.recall, 4), qps: Math.round(x.qps) })),
      },
    };
  }

  if (args.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(formatReport(report, ann.results));
  // An anonymous benchmark whose requests skipped the session source measured something else.
  const skipped = sessionSource === undefined ? undefined : sessionSourceSkipped(sessionSource);
  if (skipped !== undefined) {
    log(`FAILED: ${skipped}`);
    return 1;
  }
  return 0;
}

function formatReport(r: Record<string, unknown>, ann: readonly ServedAnnResult[]): string {
  const stages = r["stages"] as Record<string, { p50_ms: number; p95_ms: number; p99_ms: number; count: number }>;
  const seq = r["sequential"] as { p50_ms: number; p95_ms: number; p99_ms: number };
  const machine = r["machine"] as {
    cores: number;
    load_average_1m_start: number;
    load_average_1m_during_load: number[];
    reference_loop_ms: number[];
  };
  let out = `serving benchmark: ${r["items"]} items, ${r["users"]} users, ${r["shards"]} retrieval shards, count ${r["count"]}, ${r["transport"]} clients, ${r["server"]} servers${r["anonymous"] === true ? ", anonymous sessions (session_item_ids, no user id)" : ""}\n`;
  out += `machine: ${machine.cores} cores, load average ${machine.load_average_1m_start} at start, ${machine.load_average_1m_during_load.join(" → ")} during the load; reference loop ${machine.reference_loop_ms.join(" → ")} ms (one core, before the sequential pass → after the load; lower is faster)\n`;
  for (const line of r["lowered"] as string[]) out += `lowered: ${line}\n`;
  out += `\nRecommend over gRPC (4 stages as processes on loopback)\n`;
  out += `  sequential         p50 ${seq.p50_ms} ms  p95 ${seq.p95_ms} ms  p99 ${seq.p99_ms} ms\n`;
  out += `  load               ${r["requests"]} requests in ${r["seconds"]} s = ${r["rps"]} req/s (rate ${r["target_rate"] || "unpaced"}, ≤ ${r["concurrency"]} in flight)\n`;
  out += `                     p50 ${r["p50_ms"]} ms  p95 ${r["p95_ms"]} ms  p99 ${r["p99_ms"]} ms  errors ${r["errors"]}  degraded ${r["degraded"]}\n`;
  const session = r["session_source"] as SessionSourceUse | undefined;
  if (session !== undefined)
    out += `  session source     ran in ${session.requests} requests (${session.answers} answered), ${session.candidates_per_request} candidates per request; ${session.answers_with_session_items} answers hold a session item\n`;
  const events = r["events"] as
    | { rate: number; requests: number; p50_ms: number; p99_ms: number; errors_by_code: Record<string, number> }
    | undefined;
  if (events !== undefined) {
    const failed = Object.values(events.errors_by_code).reduce((sum, n) => sum + n, 0);
    out += `  RecordEvents       ${events.requests} beside the load (rate ${events.rate}/s): p50 ${events.p50_ms} ms  p99 ${events.p99_ms} ms  errors ${failed}\n`;
  }
  const degradedBy = r["degraded_by_stage"] as Record<string, number>;
  if (Object.keys(degradedBy).length > 0)
    out += `  degraded by        ${Object.entries(degradedBy)
      .map(([k, n]) => `${k} ×${n}`)
      .join(", ")}\n`;
  out += `\nstages under load (orchestrator's histogram, bucket-interpolated)\n`;
  const width = Math.max(...Object.keys(stages).map((s) => s.length));
  for (const [stage, s] of Object.entries(stages))
    out += `  ${stage.padEnd(width)}  p50 ${String(s.p50_ms).padStart(7)} ms  p95 ${String(s.p95_ms).padStart(7)} ms  p99 ${String(s.p99_ms).padStart(7)} ms  (${s.count})\n`;
  const hops = r["hops"] as { sequential: Hop[]; under_load: Hop[] };
  out += `\nwhere a Recommend's time goes: mean wait of the caller vs mean handling of the callee (its /metrics); the difference is the hop\n`;
  out += `  ${"call".padEnd(28)} ${"sequential: caller".padStart(18)} ${"callee".padStart(8)} ${"hop".padStart(7)}   ${"under load: caller".padStart(18)} ${"callee".padStart(8)} ${"hop".padStart(7)}\n`;
  hops.sequential.forEach((h) => {
    const l = hops.under_load.find((x) => x.hop === h.hop);
    const cells = (x: Hop | undefined): string =>
      x === undefined
        ? ""
        : `${x.caller_ms.toFixed(2).padStart(18)} ${x.callee_ms.toFixed(2).padStart(8)} ${(x.caller_ms - x.callee_ms).toFixed(2).padStart(7)}`;
    out += `  ${h.hop.padEnd(28)} ${cells(h)}   ${cells(l)}\n`;
  });
  const rss = r["rss_mb_after_load"] as Record<string, number>;
  if (Object.keys(rss).length > 0)
    out += `\nresident memory after the load (VmRSS): ${Object.entries(rss)
      .map(([name, mb]) => `${name} ${mb} MiB`)
      .join(", ")}\n`;
  const rollout = r["rollout"] as RolloutResult | undefined;
  if (rollout !== undefined) {
    out += `\na ranker rollout under the same rate (${rollout.previous_version} → ${rollout.next_version}, published ${ROLLOUT_PUBLISH_AFTER_SECONDS} s into ${ROLLOUT_SECONDS} s of calls)\n`;
    out += `  Recommend          p50 ${rollout.p50_ms} ms  p99 ${rollout.p99_ms} ms  max ${rollout.max_ms} ms  errors ${rollout.errors}  degraded ${rollout.degraded}  answered by the new ranker ${rollout.answered_by_next} of ${rollout.requests}\n`;
  }
  const bundle = r["bundle_rollout"] as BundleRolloutResult | undefined;
  if (bundle !== undefined) {
    out += `
a bundle rollout under the same rate (${bundle.previous_version} → ${bundle.next_version}; shard indexes prebuilt in ${bundle.prebuild_seconds} s before; next ${ROLLOUT_PUBLISH_AFTER_SECONDS} s into ${BUNDLE_ROLLOUT_SECONDS} s of calls, current ${BUNDLE_ROLLOUT_PRELOAD_SECONDS} s later)\n`;
    out += `  Recommend          p50 ${bundle.p50_ms} ms  p99 ${bundle.p99_ms} ms  max ${bundle.max_ms} ms  errors ${bundle.errors}  degraded ${bundle.degraded} (version mismatch ${bundle.degraded_by_version_mismatch})  answered by the new version ${bundle.answered_by_next} of ${bundle.requests}  indexes built by shards ${bundle.indexes_built_by_shards}\n`;
  }
  const cpu = r["cpu_ms_per_request"] as Record<string, number>;
  if (Object.keys(cpu).length > 0) {
    const total = Object.values(cpu).reduce((sum, ms) => sum + ms, 0);
    out += `\nCPU per request under load (/proc, user + system)\n`;
    for (const [name, ms] of Object.entries(cpu)) out += `  ${name.padEnd(width)}  ${ms.toFixed(2)} ms\n`;
    out += `  ${"total".padEnd(width)}  ${total.toFixed(2)} ms (${((total * (r["rps"] as number)) / 10 / machine.cores).toFixed(0)} % of ${machine.cores} cores at ${r["rps"]} req/s)\n`;
  }
  const curve = r["load_curve"] as CurvePoint[] | undefined;
  if (curve !== undefined) out += formatCurve(curve);
  const profiles = r["load_curve_profiles"] as Record<string, Record<string, ProfileEntry[]>> | undefined;
  if (profiles !== undefined) for (const [rate, byStage] of Object.entries(profiles)) out += formatProfiles(Number(rate), byStage);
  if (r["in_process_p50_ms"] !== undefined) {
    const ip = r["in_process"] as { p50_ms: number; p95_ms: number; p99_ms: number; reference_loop_ms: number };
    const ratio = r["split_over_in_process_p50"] as { sequential: number; under_load: number };
    const interleaved = r["sequential_interleaved"] as { p50_ms: number; p95_ms: number; p99_ms: number; blocks: number };
    out += `\nsame pipeline in one process, no gRPC, in ${interleaved.blocks} blocks taking turns with blocks of sequential calls to the stack\n`;
    out += `  in process         p50 ${ip.p50_ms} ms  p95 ${ip.p95_ms} ms  p99 ${ip.p99_ms} ms  (reference loop ${ip.reference_loop_ms} ms)\n`;
    out += `  the stack          p50 ${interleaved.p50_ms} ms  p95 ${interleaved.p95_ms} ms  p99 ${interleaved.p99_ms} ms\n`;
    out += `split / in-process p50: ${ratio.sequential}× sequential (interleaved), ${ratio.under_load}× under load\n`;
  }
  if (ann.length > 0)
    out += `\nHNSW as served vs brute force (recall@100, user vectors from EmbedUser; brute force ${r["ann_brute_force_qps"]} q/s)\n`;
  for (const a of ann) out += `  ef ${String(a.ef).padStart(4)}  recall ${a.recall_at_100.toFixed(4)}  ${a.qps} q/s\n`;
  const clustered = r["ann_clustered"] as { items: number; clusters: number; results: ServedAnnResult[] } | undefined;
  if (clustered !== undefined) {
    out += `\nbenchAnn (@recsys/ann): ${clustered.items} clustered synthetic vectors (${clustered.clusters} clusters), one index\n`;
    for (const a of clustered.results) out += `  ef ${String(a.ef).padStart(4)}  recall ${a.recall_at_100.toFixed(4)}  ${a.qps} q/s\n`;
  }
  return out;
}
