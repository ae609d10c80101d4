/**
 * `npm run bench -- sequence [--seeds 1,2,3] [--models sasrec,gru4rec] [--protocols lastout,lastout-shuffled]
 *   [--shuffle-seed N] [--max-epochs N] [--batch N] [--lr X] [--eval-every N] [--patience N]
 *   [--windows last|all] [--softmax full|sampled] [--no-reference] [--no-recall] [--json]`
 * Defaults: 3 seeds, both models and protocols, batch 64, lr 2e-3, validation every 3 epochs,
 * patience 3, at most 60 epochs (bounded so that a run takes minutes per seed on 2 cores); the
 * reference gets the same settings.
 *
 * The session models of @recsys/sequence against a PyTorch SASRec (reference/sasrec.py, run
 * with Debian's python3-torch) trained in the same run on ml-100k with the same split, tie order
 * and exclusions (the bench writes the split's sequences to a file the reference reads). Per
 * protocol and seed: early stopping on validation NDCG@10 (every --eval-every epochs), a fresh
 * model trained on training + validation events for the best epoch count, scored on test.
 * Prints HR@10 / NDCG@10 (and the validation figure) per seed, means, paired differences to the
 * reference over seeds (mean ± t₀.₉₇₅·sd/√n), and training examples/s (next-item targets per
 * second of training steps, wall and CPU) of both and their ratio; with --json each row also
 * holds `ranks`, the 0-based test rank of every evaluated user (user index order), for paired
 * per-user intervals. Inside the candidate stage:
 * the merged recall@300 (budget 100 per source; sources fed every non-test event, each user
 * served after the end of the log, so the test event's time is never used) of the
 * standard sources with and without each test model as the "session" source.
 *
 * `lastout-shuffled` (/work/shared/PROTOCOL.md): the permutation of @recsys/eval's
 * shuffledTieOrder orders same-second events of a user and breaks ranking ties. The bench
 * applies it by relabelling items in permutation order, so that the protocol's "by item index"
 * order is the permutation order everywhere, in this process and in the reference's (split,
 * training sequences, ranking ties) with the unchanged lastout code.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { type Dataset, lastoutSplit, type LastoutSplit, loadDataset, trainingRows } from "@recsys/data";
import { evaluateLastout, historyRows, itemKnnScorer, mostPopularScorer, shuffledTieOrder } from "@recsys/eval";
import {
  DEFAULT_SEQUENCE_CONFIG,
  ENCODER_KINDS,
  type EncoderKind,
  sequenceScorer,
  sessionEncoder,
  type SequenceModel,
  type SequenceTrainConfig,
  trainSequenceModel,
  userSequences,
} from "@recsys/sequence";
import { BruteForceIndex, candidateRecall, createStandardSources } from "@recsys/sources";
import { initBackend } from "@recsys/tf";
import { ml100kDir, repoRoot } from "./paths.js";

type Protocol = "lastout" | "lastout-shuffled";

interface ModelSpec {
  readonly kind: EncoderKind;
  /** undefined: the --windows option. */
  readonly windows?: "last" | "all";
  /** The row's name: "<kind>-tfjs", or "<kind>-<windows>-tfjs" when the spec names its windows. */
  readonly name: string;
}

function parseModel(spec: string): ModelSpec {
  const [kind, windows] = spec.split(":");
  if (!ENCODER_KINDS.includes(kind as EncoderKind))
    throw new Error(`bench sequence: unknown model ${kind} (use ${ENCODER_KINDS.join(", ")}, optionally :last or :all)`);
  if (windows !== undefined && windows !== "last" && windows !== "all")
    throw new Error(`bench sequence: unknown windows ${windows} in ${spec} (use last or all)`);
  return windows === undefined
    ? { kind: kind as EncoderKind, name: `${kind}-tfjs` }
    : { kind: kind as EncoderKind, windows, name: `${kind}-${windows}-tfjs` };
}

interface Options {
  seeds: number[];
  /** Encoder kinds, each optionally with its training windows: "sasrec", "sasrec:all", "gru4rec:last". */
  models: ModelSpec[];
  protocols: Protocol[];
  shuffleSeed: number;
  maxEpochs: number;
  batchSize: number;
  learningRate: number;
  evalEvery: number;
  patience: number;
  windows: "last" | "all";
  softmax: "full" | "sampled";
  reference: boolean;
  recall: boolean;
  json: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    seeds: [1, 2, 3],
    models: [parseModel("sasrec"), parseModel("gru4rec")],
    protocols: ["lastout", "lastout-shuffled"],
    shuffleSeed: 1,
    maxEpochs: 60,
    batchSize: 64,
    learningRate: 2e-3,
    evalEvery: 3,
    patience: 3,
    windows: "last",
    softmax: "full",
    reference: true,
    recall: true,
    json: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench sequence: ${a} needs a value`);
      return v;
    };
    if (a === "--seeds") o.seeds = value().split(",").map(Number);
    else if (a === "--models") o.models = value().split(",").map(parseModel);
    else if (a === "--protocols") {
      o.protocols = value().split(",") as Protocol[];
      for (const p of o.protocols)
        if (p !== "lastout" && p !== "lastout-shuffled") throw new Error(`bench sequence: unknown protocol ${p}`);
    } else if (a === "--shuffle-seed") o.shuffleSeed = Number(value());
    else if (a === "--max-epochs") o.maxEpochs = Number(value());
    else if (a === "--batch") o.batchSize = Number(value());
    else if (a === "--lr") o.learningRate = Number(value());
    else if (a === "--eval-every") o.evalEvery = Number(value());
    else if (a === "--patience") o.patience = Number(value());
    else if (a === "--windows") o.windows = value() as "last" | "all";
    else if (a === "--softmax") o.softmax = value() as "full" | "sampled";
    else if (a === "--no-reference") o.reference = false;
    else if (a === "--no-recall") o.recall = false;
    else if (a === "--json") o.json = true;
    else throw new Error(`bench sequence: unknown option ${a}`);
  }
  if (o.seeds.some((s) => !Number.isInteger(s))) throw new Error("bench sequence: --seeds takes integers, e.g. 1,2,3");
  return o;
}

/** The catalogue in the tie order of protocol lastout-shuffled (@recsys/eval's shuffledTieOrder): order[k] = the item ranked k. */
function permutation(n: number, seed: number): Int32Array {
  const { rank } = shuffledTieOrder(n, seed);
  const order = new Int32Array(n);
  rank.forEach((r, item) => (order[r] = item));
  return order;
}

/**
 * The dataset with items relabelled so that index order is a seeded random order of the
 * catalogue, and each user's events re-sorted by (timestamp, new index): protocol
 * lastout-shuffled through the unchanged lastout code. Only what the sequence models and the
 * evaluation read is carried over (item ids; the events).
 */
export function shuffleTies(dataset: Dataset, seed: number): Dataset {
  const n = dataset.items.ids.length;
  const order = permutation(n, seed); // order[newIndex] = old index
  const rank = new Int32Array(n);
  order.forEach((old, k) => (rank[old] = k));
  const e = dataset.events;
  const rows = Int32Array.from({ length: e.item.length }, (_, i) => i);
  const sorted = Array.from(rows).sort(
    (a, b) => e.user[a]! - e.user[b]! || e.timestamp[a]! - e.timestamp[b]! || rank[e.item[a]!]! - rank[e.item[b]!]!,
  );
  const pick = <T extends Int32Array | Float32Array | Float64Array>(src: T, map?: (v: number) => number): T => {
    const out = new (src.constructor as new (n: number) => T)(src.length);
    sorted.forEach((r, k) => (out[k] = map === undefined ? src[r]! : map(src[r]!)));
    return out;
  };
  return {
    ...dataset,
    spec: `${dataset.spec} (ties shuffled, seed ${seed})`,
    items: {
      ...dataset.items,
      ids: Array.from(order, (old) => dataset.items.ids[old]!),
      titles: Array.from(order, (old) => dataset.items.titles[old]!),
    },
    events: {
      user: pick(e.user),
      item: pick(e.item, (old) => rank[old]!),
      timestamp: pick(e.timestamp),
      weight: pick(e.weight),
      userOffsets: e.userOffsets,
    },
  };
}

interface Row {
  protocol: Protocol;
  seed: number;
  model: string;
  "val_ndcg@10": number;
  "hr@10": number;
  "ndcg@10": number;
  best_epoch: number;
  epochs_run: number;
  /**
   * 0-based test rank of each evaluated user's target (users in index order, as `evaluateLastout`'s
   * userIndex and `recsys evaluate --json`'s `ranks`): for paired per-user intervals. JSON only.
   */
  ranks: number[];
  examples_per_second: number;
  examples_per_cpu_second: number;
  train_seconds: number;
  /** Candidate stage (standard sources, budget 100, merged 300; static: fed every non-test event): recall with and without this session source. */
  candidate_recall_with_session?: number;
  candidate_recall_without_session?: number;
  session_source_recall?: number;
}

/** Merged recall@300 (budget 100 per source) of the standard sources, with the session model as a source or without. */
function pipelineRecall(dataset: Dataset, model: SequenceModel | null): { merged: number; session: number } {
  const session =
    model === null ? undefined : { index: new BruteForceIndex(model.itemVectors(), model.dim), encoder: sessionEncoder(model) };
  const report = candidateRecall(dataset, {
    createSources: () => createStandardSources(dataset, session === undefined ? {} : { session }),
    budgets: [100],
    mergedSizes: [300],
    target: "test",
    // Every non-test event visible, each user served once after the log: nothing of the test
    // event (not its time) reaches the sources ("replay" would serve at the test event's time).
    mode: "static",
  });
  return { merged: report.merged[0]!.recall, session: report.perSource.find((s) => s.source === "session")?.recall ?? NaN };
}

function runReference(dataFile: string, seed: number, options: Options): Row & { threads: number } {
  const script = join(repoRoot(), "packages", "bench", "reference", "sasrec.py");
  const python = process.env["RECSYS_PYTHON"] ?? "/usr/bin/python3";
  const r = spawnSync(
    python,
    [
      script,
      dataFile,
      "--seed",
      String(seed),
      "--max-epochs",
      String(options.maxEpochs),
      "--batch",
      String(options.batchSize),
      "--lr",
      String(options.learningRate),
      "--eval-every",
      String(options.evalEvery),
      "--patience",
      String(options.patience),
    ],
    {
      env: { ...process.env, OMP_WAIT_POLICY: "PASSIVE" },
      encoding: "utf8",
      maxBuffer: 1 << 24,
    },
  );
  if (r.status !== 0) throw new Error(`reference ${script} failed (status ${r.status}): ${r.stderr || r.error?.message}`);
  const out = JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, number> & { ranks: number[] };
  return {
    protocol: "lastout",
    seed,
    model: "sasrec-pytorch",
    "val_ndcg@10": out["val_ndcg@10"]!,
    "hr@10": out["hr@10"]!,
    "ndcg@10": out["ndcg@10"]!,
    best_epoch: out["best_epoch"]!,
    epochs_run: out["epochs_run"]!,
    ranks: out.ranks,
    examples_per_second: out["examples_per_second"]!,
    examples_per_cpu_second: out["examples_per_cpu_second"]!,
    train_seconds: out["train_seconds"]!,
    threads: out["threads"]!,
  };
}

function histories(split: LastoutSplit, target: "val" | "test"): (Int32Array | null)[] {
  return Array.from({ length: split.testRow.length }, (_, u) => historyRows(split, u, target));
}

function evaluateModel(
  model: SequenceModel,
  dataset: Dataset,
  split: LastoutSplit,
  target: "val" | "test",
): { metrics: Record<string, number>; ranks: Int32Array } {
  const scorer = sequenceScorer(model, dataset);
  scorer.precompute(histories(split, target));
  const r = evaluateLastout({ dataset, split, scorers: [scorer], target }).results[0]!;
  return { metrics: r.metrics, ranks: r.ranks };
}

function runOurs(spec: ModelSpec, dataset: Dataset, split: LastoutSplit, seed: number, options: Options, log: (s: string) => void): Row {
  const numItems = dataset.items.ids.length;
  const kind = spec.kind;
  const config: SequenceTrainConfig = {
    ...DEFAULT_SEQUENCE_CONFIG,
    encoder: { ...DEFAULT_SEQUENCE_CONFIG.encoder, kind },
    softmax: options.softmax,
    windows: spec.windows ?? options.windows,
    maxEpochs: options.maxEpochs,
    batchSize: options.batchSize,
    learningRate: options.learningRate,
    evalEvery: options.evalEvery,
    patience: options.patience,
    seed,
  };
  const val = trainSequenceModel(userSequences(dataset, trainingRows(split, "val")), numItems, config, {
    validate: (m) => evaluateModel(m, dataset, split, "val").metrics["ndcg@10"]!,
    onEpoch: (p) => {
      if (p.validation !== undefined)
        log(`  ${spec.name} seed ${seed} epoch ${p.epoch} loss ${p.loss.toFixed(4)} val ndcg@10 ${p.validation.toFixed(4)}`);
    },
  });
  val.model.dispose();
  const test = trainSequenceModel(userSequences(dataset, trainingRows(split, "test")), numItems, {
    ...config,
    maxEpochs: Math.max(1, val.bestEpoch),
  });
  const { metrics: m, ranks } = evaluateModel(test.model, dataset, split, "test");
  const withSession = options.recall ? pipelineRecall(dataset, test.model) : undefined;
  test.model.dispose();
  const seconds = val.trainSeconds + test.trainSeconds;
  return {
    protocol: "lastout",
    seed,
    model: spec.name,
    "val_ndcg@10": val.bestValidation,
    "hr@10": m["hr@10"]!,
    "ndcg@10": m["ndcg@10"]!,
    best_epoch: val.bestEpoch,
    epochs_run: val.epochs,
    ranks: Array.from(ranks),
    examples_per_second: (val.examples + test.examples) / seconds,
    examples_per_cpu_second: (val.examples + test.examples) / (val.trainCpuSeconds + test.trainCpuSeconds),
    train_seconds: seconds,
    ...(withSession === undefined
      ? {}
      : {
          candidate_recall_with_session: withSession.merged,
          candidate_recall_without_session: pipelineRecall(dataset, null).merged,
          session_source_recall: withSession.session,
        }),
  };
}

/** mean ± t₀.₉₇₅(n−1)·sd/√n of paired differences. */
function pairedInterval(diffs: number[]): { mean: number; half: number } {
  const n = diffs.length;
  const mean = diffs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, half: NaN };
  const sd = Math.sqrt(diffs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const t = [NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262][n - 1] ?? 1.96;
  return { mean, half: (t * sd) / Math.sqrt(n) };
}

export async function run(argv: string[]): Promise<number> {
  const options = parseArgs(argv);
  const log = (s: string): void => {
    process.stderr.write(`${s}\n`);
  };
  const backend = await initBackend({ backend: "wasm", log: null });
  const base = await loadDataset(`ml100k:${ml100kDir()}`);
  const dir = mkdtempSync(join(tmpdir(), "seq-bench-"));
  const rows: Row[] = [];
  const baselines: Record<string, Record<string, number>> = {};
  let threads = NaN;
  try {
    for (const protocol of options.protocols) {
      const dataset = protocol === "lastout" ? base : shuffleTies(base, options.shuffleSeed);
      const split = lastoutSplit(dataset.events, dataset.users.ids.length);
      const trainRows = trainingRows(split, "test");
      const bl = evaluateLastout({
        dataset,
        split,
        scorers: [mostPopularScorer(dataset, trainRows), itemKnnScorer(dataset, trainRows)],
        target: "test",
      });
      for (const r of bl.results) baselines[`${protocol}/${r.name}`] = r.metrics;
      const dataFile = join(dir, `${protocol}.json`);
      const kept = userSequences(dataset, split.keptRows);
      writeFileSync(
        dataFile,
        JSON.stringify({
          numItems: dataset.items.ids.length,
          sequences: kept.map((s) => Array.from(s)),
          evaluated: Array.from(split.testRow, (r) => (r >= 0 ? 1 : 0)),
        }),
      );
      log(
        `${protocol}: ${split.evaluatedUsers} users evaluated${protocol === "lastout-shuffled" ? `, shuffle seed ${options.shuffleSeed}` : ""}`,
      );
      for (const seed of options.seeds) {
        if (options.reference) {
          const ref = runReference(dataFile, seed, options);
          threads = ref.threads;
          rows.push({ ...ref, protocol });
          log(
            `  sasrec-pytorch seed ${seed}: hr@10 ${ref["hr@10"].toFixed(4)} ndcg@10 ${ref["ndcg@10"].toFixed(4)} (best epoch ${ref.best_epoch}, ${ref.examples_per_second.toFixed(0)} ex/s)`,
          );
        }
        for (const spec of options.models) {
          const r = runOurs(spec, dataset, split, seed, options, log);
          rows.push({ ...r, protocol });
          log(
            `  ${r.model} seed ${seed}: hr@10 ${r["hr@10"].toFixed(4)} ndcg@10 ${r["ndcg@10"].toFixed(4)} (best epoch ${r.best_epoch}, ${r.examples_per_second.toFixed(0)} ex/s)`,
          );
        }
      }
    }
  } finally {
    if (process.env["RECSYS_BENCH_KEEP"] === undefined) rmSync(dir, { recursive: true, force: true });
    else log(`kept ${dir}`);
  }

  const comparisons: Record<string, unknown>[] = [];
  for (const protocol of options.protocols) {
    const ref = rows.filter((r) => r.protocol === protocol && r.model === "sasrec-pytorch");
    for (const spec of options.models) {
      const ours = rows.filter((r) => r.protocol === protocol && r.model === spec.name);
      if (ref.length !== ours.length || ref.length === 0) continue;
      const c: Record<string, unknown> = { protocol, model: spec.name, versus: "sasrec-pytorch", seeds: ours.length };
      for (const metric of ["hr@10", "ndcg@10"] as const) {
        const d = pairedInterval(ours.map((o, i) => o[metric] - ref[i]![metric]));
        c[`${metric}_diff`] = d.mean;
        c[`${metric}_diff_ci95_half`] = d.half;
      }
      const sum = (rs: Row[], k: "examples_per_second" | "examples_per_cpu_second"): number => rs.reduce((a, r) => a + r[k], 0) / rs.length;
      c["examples_per_second_ratio"] = sum(ours, "examples_per_second") / sum(ref, "examples_per_second");
      c["examples_per_cpu_second_ratio"] = sum(ours, "examples_per_cpu_second") / sum(ref, "examples_per_cpu_second");
      comparisons.push(c);
    }
  }
  const report = {
    bench: "sequence",
    dataset: base.spec,
    date: new Date().toISOString(),
    backend: backend.name,
    simd: backend.simd,
    wasm_threads: backend.threads,
    torch_threads: threads,
    shuffle_seed: options.shuffleSeed,
    windows: options.windows,
    softmax: options.softmax,
    load_average_1m: loadavg()[0],
    rows,
    baselines,
    comparisons,
  };
  if (options.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return 0;
  }
  const f = (v: number): string => v.toFixed(4);
  const lines: string[] = [
    `sequence bench on ${base.spec} (${report.date}; wasm simd=${String(backend.simd)}, torch threads=${threads}; load ${report.load_average_1m.toFixed(1)})`,
  ];
  lines.push("protocol          model            seed  val_ndcg@10  hr@10   ndcg@10  best_ep  ex/s    ex/cpu-s");
  for (const r of rows) {
    lines.push(
      `${r.protocol.padEnd(17)} ${r.model.padEnd(16)} ${String(r.seed).padStart(4)}  ${f(r["val_ndcg@10"]).padStart(11)}  ${f(r["hr@10"])}  ${f(r["ndcg@10"])}  ${String(r.best_epoch).padStart(7)}  ${r.examples_per_second.toFixed(0).padStart(6)}  ${r.examples_per_cpu_second.toFixed(0).padStart(8)}`,
    );
  }
  for (const r of rows) {
    if (r.candidate_recall_with_session !== undefined) {
      lines.push(
        `${r.protocol} ${r.model} seed ${r.seed}: candidate recall@300 with session ${f(r.candidate_recall_with_session)}, without ${f(r.candidate_recall_without_session!)}; session source alone recall@100 ${f(r.session_source_recall!)}`,
      );
    }
  }
  for (const [name, m] of Object.entries(baselines)) lines.push(`baseline ${name}: hr@10 ${f(m["hr@10"]!)} ndcg@10 ${f(m["ndcg@10"]!)}`);
  for (const c of comparisons) {
    lines.push(
      `${String(c["protocol"])} ${String(c["model"])} - sasrec-pytorch over ${String(c["seeds"])} seeds: hr@10 ${f(c["hr@10_diff"] as number)} ± ${f(c["hr@10_diff_ci95_half"] as number)}, ndcg@10 ${f(c["ndcg@10_diff"] as number)} ± ${f(c["ndcg@10_diff_ci95_half"] as number)}; examples/s ratio ${(c["examples_per_second_ratio"] as number).toFixed(2)} (CPU ${(c["examples_per_cpu_second_ratio"] as number).toFixed(2)})`,
    );
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  return 0;
}
