/**
 * `npm run bench -- retrain [--users N] [--items N] [--days D] [--seeds 1,2,3] [--epochs N] [--json]`:
 * does a model retrained from a day of traffic logged through the API beat the model it replaces
 * on the next day?
 *
 * Per seed, on the synthetic generator (`synthetic:users=..,items=..,days=..,seed=S`, period end E):
 * 1. bootstrap = the events before E − 2 days, written as an `events:` directory; the serving
 *    model M0 (candidate generator + ranker, `ensureStackModel`, holdout none) is trained on it;
 * 2. the four stages start on M0 (`launchStack`; the orchestrator seeds its embedded store from
 *    the bootstrap, `SERVING_CLOCK=wall` so that the generator's past timestamps are accepted);
 * 3. a client replays the day [E − 2 d, E − 1 d) through `RecordEvents` over gRPC: every watch
 *    (with its watch seconds) and every impression of the generator's slates, in time order,
 *    with their own timestamps; then the stack stops;
 * 4. M1 = the same training on `store:<run>/users` (what the system logged: the bootstrap the
 *    seeding recorded plus the replayed day), read with the `store:` dataset spec;
 * 5. both are evaluated on the next day's events [E − 1 d, E] of the generator (the store never
 *    saw them): for each user with a watch that day, the first one of an item not watched before,
 *    ranked among every item minus the user's history before E − 1 d (the same history for both
 *    models, replayed day included). HR@10 and watch-time DCG@10 (../cli/src/retrain.ts
 *    `gateFigures`), and the paired per-user difference M1 − M0 with a 95 % normal interval.
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  ensureStackModel,
  gateFigures,
  heldOutTargets,
  launchStack,
  openStoreContents,
  perUserGate,
  type StackModelSettings,
} from "@recsys/cli";
import { loadBundle, trainCandidateGen, saveBundle } from "@recsys/candidate-gen";
import { datasetBefore, generateSynthetic, loadDataset, parseSyntheticSpec, registerStoreOpener, type Dataset } from "@recsys/data";
import { RecommenderService, UserEventSchema } from "@recsys/gen";
import { connect } from "@recsys/runtime";
import { initBackend } from "@recsys/tf";

const DAY = 86_400;

interface Args {
  users: number;
  items: number;
  days: number;
  seeds: number[];
  epochs: number;
  json: boolean;
  cache: string;
}

function parse(argv: string[]): Args {
  const a: Args = { users: 2000, items: 1000, days: 14, seeds: [1, 2, 3], epochs: 5, json: false, cache: ".cache/bench-retrain" };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--users") a.users = Number(value());
    else if (arg === "--items") a.items = Number(value());
    else if (arg === "--days") a.days = Number(value());
    else if (arg === "--epochs") a.epochs = Number(value());
    else if (arg === "--seeds") a.seeds = value().split(",").map(Number);
    else if (arg === "--cache") a.cache = value();
    else if (arg === "--json") a.json = true;
    else throw new Error(`unknown option ${arg}`);
  }
  return a;
}

function csv(value: string | number | undefined): string {
  if (value === undefined || (typeof value === "number" && Number.isNaN(value))) return "";
  const s = String(value);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Writes `dataset` as an `events:` directory (events, users, items, searches). */
async function writeEventsDir(dataset: Dataset, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { users, items, events, searches } = dataset;
  const cat = (c: { codes: Int32Array; values: readonly string[] }, i: number): string | undefined =>
    c.codes[i]! < 0 ? undefined : c.values[c.codes[i]!];
  const ev = ["user_id,item_id,timestamp,watch_seconds"];
  for (let r = 0; r < events.user.length; r++)
    ev.push([users.ids[events.user[r]!], items.ids[events.item[r]!], events.timestamp[r], events.weight[r]].map(csv).join(","));
  const us = ["user_id,age,gender,occupation,geo"];
  users.ids.forEach((id, u) =>
    us.push([id, users.age[u], cat(users.gender, u), cat(users.occupation, u), cat(users.geo, u)].map(csv).join(",")),
  );
  const it = ["item_id,title,tags,channel,upload_timestamp,duration_seconds"];
  items.ids.forEach((id, i) => {
    const tags = Array.from(items.tagCodes.subarray(items.tagOffsets[i]!, items.tagOffsets[i + 1]!), (c) => items.tagValues[c]!).join("|");
    it.push([id, items.titles[i], tags, cat(items.channel, i), items.uploadTimestamp[i], items.durationSeconds[i]].map(csv).join(","));
  });
  const se = ["user_id,timestamp,query"];
  for (let k = 0; k < searches.user.length; k++)
    se.push([users.ids[searches.user[k]!], searches.timestamp[k], searches.query[k]].map(csv).join(","));
  await writeFile(join(dir, "events.csv"), `${ev.join("\n")}\n`);
  await writeFile(join(dir, "users.csv"), `${us.join("\n")}\n`);
  await writeFile(join(dir, "items.csv"), `${it.join("\n")}\n`);
  await writeFile(join(dir, "searches.csv"), `${se.join("\n")}\n`);
}

type ApiEvent = { t: number; event: ReturnType<typeof create<typeof UserEventSchema>> };

/** The generator's watches and impressions in [from, to), as RecordEvents events, in time order. */
function dayOfTraffic(d: Dataset, from: number, to: number): ApiEvent[] {
  const out: ApiEvent[] = [];
  const { events: ev, impressions: im, users, items } = d;
  for (let r = 0; r < ev.user.length; r++) {
    const t = ev.timestamp[r]!;
    if (t < from || t >= to) continue;
    const w = ev.weight[r]!;
    out.push({
      t,
      event: create(UserEventSchema, {
        userId: users.ids[ev.user[r]!]!,
        kind: {
          case: "watch",
          value: {
            itemId: items.ids[ev.item[r]!]!,
            watchedAt: timestampFromMs(t * 1000),
            ...(Number.isFinite(w) ? { watchSeconds: w } : {}),
          },
        },
      }),
    });
  }
  for (let k = 0; k < im.user.length; k++) {
    const t = im.timestamp[k]!;
    if (t < from || t >= to) continue;
    out.push({
      t,
      event: create(UserEventSchema, {
        userId: users.ids[im.user[k]!]!,
        kind: { case: "impression", value: { itemId: items.ids[im.item[k]!]!, shownAt: timestampFromMs(t * 1000) } },
      }),
    });
  }
  return out.sort((a, b) => a.t - b.t);
}

interface SeedResult {
  readonly seed: number;
  readonly replayed: { readonly watches: number; readonly impressions: number; readonly seconds: number };
  readonly users: number;
  readonly m0: { readonly version: string; readonly hr10: number; readonly wdcg10: number };
  readonly m1: { readonly version: string; readonly hr10: number; readonly wdcg10: number };
  readonly diff: { readonly hr10: number; readonly hr10_ci95: number; readonly wdcg10: number; readonly wdcg10_ci95: number };
}

function meanCi(values: Float64Array): { mean: number; ci: number } {
  const n = values.length;
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / n;
  let ss = 0;
  for (const v of values) ss += (v - mean) ** 2;
  return { mean, ci: (1.96 * Math.sqrt(ss / Math.max(1, n - 1))) / Math.sqrt(n) };
}

async function runSeed(args: Args, seed: number, log: (m: string) => void): Promise<SeedResult> {
  const spec = `synthetic:users=${args.users},items=${args.items},days=${args.days},seed=${seed}`;
  const full = generateSynthetic(spec, parseSyntheticSpec(spec.slice("synthetic:".length)));
  let end = -Infinity;
  for (const t of full.events.timestamp) end = Math.max(end, t);
  const dayStart = end - 2 * DAY;
  const nextDay = end - DAY;
  const root = resolve(args.cache, `seed-${seed}`);
  await rm(root, { recursive: true, force: true });
  const bootstrapDir = join(root, "bootstrap");
  await writeEventsDir(datasetBefore(full, dayStart), bootstrapDir);
  const bootstrap = await loadDataset(`events:${bootstrapDir}`);
  const settings: StackModelSettings = {
    holdout: "none",
    candidateGen: { epochs: args.epochs, seed },
    ranker: { pipeline: { budget: 50, mergedSize: 150 }, train: { epochs: 2, maxExamplesPerUser: 10, seed } },
  };
  log(`seed ${seed}: M0 on ${bootstrap.events.user.length} bootstrap watches (before ${new Date(dayStart * 1000).toISOString()})`);
  const m0 = await ensureStackModel(bootstrap, join(root, "m0"), settings, { log });

  const stack = await launchStack({
    modelDir: m0.dir,
    dataset: `events:${bootstrapDir}`,
    stateDir: join(root, "run"),
    shards: 1,
    env: { orchestrator: { SERVING_CLOCK: "wall", LOG_LEVEL: "warn" } },
    log,
  });
  const traffic = dayOfTraffic(full, dayStart, nextDay);
  const started = performance.now();
  try {
    const client = connect(RecommenderService, stack.orchestrator.address, { defaultTimeoutMs: 30_000 });
    try {
      for (let i = 0; i < traffic.length; i += 500) {
        await client.recordEvents({ events: traffic.slice(i, i + 500).map((e) => e.event) });
      }
    } finally {
      client.$close();
    }
  } finally {
    await stack.stop();
  }
  const watches = traffic.filter((e) => e.event.kind.case === "watch").length;
  const replayed = { watches, impressions: traffic.length - watches, seconds: (performance.now() - started) / 1000 };
  log(
    `seed ${seed}: replayed ${replayed.watches} watches and ${replayed.impressions} impressions of the day through RecordEvents in ${replayed.seconds.toFixed(1)} s`,
  );

  const storeSpec = `store:${join(root, "run", "users")}`;
  const logged = await loadDataset(storeSpec);
  log(
    `seed ${seed}: ${storeSpec}: ${logged.events.user.length} watches, ${logged.users.ids.length} users, ${logged.items.ids.length} items`,
  );
  const m1Dir = join(root, "m1");
  const trained = await trainCandidateGen(logged, { holdout: "none", epochs: args.epochs, seed });
  try {
    await saveBundle(m1Dir, trained);
  } finally {
    trained.model.dispose();
  }

  const heldOut = heldOutTargets(full, nextDay, Number.MAX_SAFE_INTEGER, seed);
  const b0 = await loadBundle(m0.dir);
  const b1 = await loadBundle(m1Dir);
  try {
    const f0 = gateFigures(b0, full, heldOut);
    const f1 = gateFigures(b1, full, heldOut);
    const p0 = perUserGate(b0, full, heldOut);
    const p1 = perUserGate(b1, full, heldOut);
    const dHr = meanCi(Float64Array.from(p1.hit, (h, k) => h - p0.hit[k]!));
    // Watch-time DCG is a weighted mean: its paired difference per user, scaled by n / Σw.
    const wSum = p0.weight.reduce((a, b) => a + b, 0);
    const n = heldOut.users.length;
    const dDcg = meanCi(Float64Array.from(p1.dcg, (g, k) => ((g - p0.dcg[k]!) * n) / wSum));
    return {
      seed,
      replayed,
      users: f0.users,
      m0: { version: b0.manifest.modelVersion, hr10: f0.hr10, wdcg10: f0.wdcg10 },
      m1: { version: b1.manifest.modelVersion, hr10: f1.hr10, wdcg10: f1.wdcg10 },
      diff: { hr10: dHr.mean, hr10_ci95: dHr.ci, wdcg10: dDcg.mean, wdcg10_ci95: dDcg.ci },
    };
  } finally {
    b0.dispose();
    b1.dispose();
  }
}

export async function run(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parse(argv);
  } catch (error) {
    process.stderr.write(`bench retrain: ${(error as Error).message}\n`);
    return 2;
  }
  const log = (m: string): void => {
    process.stderr.write(`bench retrain: ${m}\n`);
  };
  registerStoreOpener(openStoreContents);
  await initBackend();
  const results: SeedResult[] = [];
  for (const seed of args.seeds) {
    const r = await runSeed(args, seed, log);
    results.push(r);
    log(
      `seed ${seed}: ${r.users} users; M0 HR@10 ${r.m0.hr10.toFixed(4)} wDCG@10 ${r.m0.wdcg10.toFixed(4)}; M1 HR@10 ${r.m1.hr10.toFixed(4)} wDCG@10 ${r.m1.wdcg10.toFixed(4)}; ` +
        `M1 − M0: HR@10 ${r.diff.hr10.toFixed(4)} ± ${r.diff.hr10_ci95.toFixed(4)}, wDCG@10 ${r.diff.wdcg10.toFixed(4)} ± ${r.diff.wdcg10_ci95.toFixed(4)}`,
    );
  }
  if (args.json) process.stdout.write(`${JSON.stringify({ args, results })}\n`);
  else {
    let out = `retrained from a day of traffic logged through RecordEvents (M1) vs the model it replaces (M0), on the next day's events\n`;
    out += `synthetic:users=${args.users},items=${args.items},days=${args.days}, ${args.epochs} epochs; paired difference per user, 95 % normal interval\n\n`;
    out += `seed  users  M0 HR@10  M1 HR@10  Δ HR@10            M0 wDCG@10  M1 wDCG@10  Δ wDCG@10\n`;
    for (const r of results) {
      out += `${String(r.seed).padEnd(6)}${String(r.users).padEnd(7)}${r.m0.hr10.toFixed(4).padEnd(10)}${r.m1.hr10.toFixed(4).padEnd(10)}${`${r.diff.hr10 >= 0 ? "+" : ""}${r.diff.hr10.toFixed(4)} ± ${r.diff.hr10_ci95.toFixed(4)}`.padEnd(19)}`;
      out += `${r.m0.wdcg10.toFixed(4).padEnd(12)}${r.m1.wdcg10.toFixed(4).padEnd(12)}${r.diff.wdcg10 >= 0 ? "+" : ""}${r.diff.wdcg10.toFixed(4)} ± ${r.diff.wdcg10_ci95.toFixed(4)}\n`;
    }
    process.stdout.write(out);
  }
  return 0;
}
