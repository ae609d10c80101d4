/**
 * `npm run bench -- train [--json] [--batches N] [--warmup N] [--users N] [--no-baseline]`
 *
 * Steady-state training throughput of the candidate generator at the fixed reference size
 * (tower 256-128-64, 64-dim embeddings, 500 sampled negatives, batch 256) on
 *   - ml-100k (../shared/data/ml-100k next to the repository root, or $RECSYS_ML100K_DIR), and
 *   - a synthetic dataset with a 100,000-item catalogue (the project's generator);
 * plus, in the same run, the naive dense tfjs baseline on ml-100k (see naive-dense.ts) and the
 * ratio to the PyTorch 1.13 figure for the same model on this kind of machine (12,128 examples/s).
 * The first `warmup` batches are excluded. Figures are printed, never asserted: the machine may
 * be shared, so the 1-minute load average is printed with them.
 */
import { loadavg } from "node:os";
import { DEFAULT_MODEL_CONFIG, trainCandidateGen, type TrainProgress } from "@recsys/candidate-gen";
import { NUM_CATEGORICAL, NUM_CONTINUOUS } from "@recsys/features";
import { type Dataset, loadDataset } from "@recsys/data";
import { initBackend } from "@recsys/tf";
import { naiveDenseExamplesPerSecond } from "./naive-dense.js";
import { ml100kDir } from "./paths.js";

export const PYTORCH_REFERENCE_EXAMPLES_PER_SECOND = 12_128;

export const REFERENCE_SIZE = {
  embeddingDim: 64,
  tower: [256, 128, 64],
  negatives: 500,
  batchSize: 256,
} as const;

export interface TrainBenchResult {
  readonly spec: string;
  readonly items: number;
  readonly examples_per_second: number;
  /** Examples per second of CPU time of this process (less sensitive to a busy machine). */
  readonly examples_per_cpu_second: number;
  readonly batches: number;
  /** Training threads (1, the default, or 2: data-parallel; the bench measures both). */
  readonly threads: number;
  /** Milliseconds per batch in each phase of a step (on the main thread). */
  readonly ms_per_batch: Readonly<Record<string, number>>;
}

/** Trains for warmup + batches steps at the reference size and measures the steady state. */
export async function measureTraining(dataset: Dataset, batches: number, warmup: number, threads: 1 | 2 = 1): Promise<TrainBenchResult> {
  let warmTime = NaN;
  let warmCpu: NodeJS.CpuUsage | undefined;
  let lastTime = NaN;
  let stepsSeen = 0;
  let cpuUsed = 0;
  const onProgress = (p: TrainProgress): void => {
    stepsSeen++;
    if (stepsSeen === warmup) {
      warmTime = p.elapsedSeconds;
      warmCpu = process.cpuUsage();
    }
    lastTime = p.elapsedSeconds;
    if (stepsSeen === warmup + batches && warmCpu !== undefined) {
      const c = process.cpuUsage(warmCpu);
      cpuUsed = (c.user + c.system) / 1e6;
    }
  };
  const result = await trainCandidateGen(dataset, {
    holdout: "test",
    epochs: 1000,
    maxSteps: warmup + batches,
    model: { embeddingDim: REFERENCE_SIZE.embeddingDim, tower: [...REFERENCE_SIZE.tower] },
    negatives: REFERENCE_SIZE.negatives,
    batchSize: REFERENCE_SIZE.batchSize,
    onProgress,
    progressEvery: 0,
    threads,
  });
  result.model.dispose();
  if (stepsSeen < warmup + batches) throw new Error(`bench: ${dataset.spec} has only ${stepsSeen} batches; fewer than warmup + batches`);
  const examples = batches * REFERENCE_SIZE.batchSize;
  const ms: Record<string, number> = {};
  for (const [k, v] of Object.entries(result.stats.profileMs)) ms[k] = round(v / result.stats.steps, 2);
  return {
    spec: dataset.spec,
    items: dataset.items.ids.length,
    examples_per_second: Math.round(examples / (lastTime - warmTime)),
    examples_per_cpu_second: Math.round(examples / cpuUsed),
    batches,
    threads: result.stats.threads,
    ms_per_batch: ms,
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function intArg(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} needs a positive integer`);
  return v;
}

export async function run(argv: string[]): Promise<number> {
  const known = new Set(["--json", "--batches", "--warmup", "--users", "--no-baseline"]);
  for (let i = 0; i < argv.length; i++) {
    if (!known.has(argv[i]!)) throw new Error(`bench train: unknown argument '${argv[i]}' (accepted: ${[...known].join(", ")})`);
    if (argv[i] === "--batches" || argv[i] === "--warmup" || argv[i] === "--users") i++;
  }
  const json = argv.includes("--json");
  const batches = intArg(argv, "batches", 200);
  const warmup = intArg(argv, "warmup", 5);
  const users = intArg(argv, "users", 5000);
  const say = (line: string): void => {
    if (!json) process.stdout.write(`${line}\n`);
  };

  const backend = await initBackend({ log: json ? null : undefined });
  say(`backend: ${backend.name}${backend.simd === undefined ? "" : ` (simd ${backend.simd}, threads ${backend.threads})`}`);
  say(`reference size: tower ${REFERENCE_SIZE.tower.join("-")}, dim ${REFERENCE_SIZE.embeddingDim}, ${REFERENCE_SIZE.negatives} negatives, batch ${REFERENCE_SIZE.batchSize}; ${warmup} warm-up + ${batches} measured batches`);
  const load0 = loadavg()[0]!;

  const ml = await loadDataset(`ml100k:${ml100kDir()}`);
  const mlResult = await measureTraining(ml, batches, warmup, 1);
  say(`ml-100k: ${mlResult.examples_per_second} examples/s with 1 thread, the default (${mlResult.examples_per_cpu_second} per CPU-second); ms/batch ${JSON.stringify(mlResult.ms_per_batch)}`);
  const mlTwo = await measureTraining(ml, batches, warmup, 2);
  say(`ml-100k, 2 threads: ${mlTwo.examples_per_second} examples/s (${mlTwo.examples_per_cpu_second} per CPU-second); ms/batch ${JSON.stringify(mlTwo.ms_per_batch)}`);

  const synSpec = `synthetic:items=100000,users=${users},seed=1`;
  const syn = await loadDataset(synSpec);
  const synResult = await measureTraining(syn, batches, warmup, 1);
  say(`${synSpec}: ${synResult.examples_per_second} examples/s with 1 thread (${synResult.examples_per_cpu_second} per CPU-second); ms/batch ${JSON.stringify(synResult.ms_per_batch)}`);
  const synTwo = await measureTraining(syn, batches, warmup, 2);
  say(`${synSpec}, 2 threads: ${synTwo.examples_per_second} examples/s (${synTwo.examples_per_cpu_second} per CPU-second); ms/batch ${JSON.stringify(synTwo.ms_per_batch)}`);

  let naive: { examples_per_second: number; batches: number } | null = null;
  if (!argv.includes("--no-baseline")) {
    const nb = Math.max(3, Math.min(10, Math.floor(batches / 6)));
    const r = naiveDenseExamplesPerSecond(ml, {
      batches: nb,
      warmup: 2,
      batchSize: REFERENCE_SIZE.batchSize,
      negatives: REFERENCE_SIZE.negatives,
      dim: REFERENCE_SIZE.embeddingDim,
      tower: REFERENCE_SIZE.tower,
      // The same tower input width as the sparse trainer's default model.
      inputDim: REFERENCE_SIZE.embeddingDim + DEFAULT_MODEL_CONFIG.searchDim + NUM_CATEGORICAL * DEFAULT_MODEL_CONFIG.categoricalDim + NUM_CONTINUOUS,
    });
    naive = { examples_per_second: Math.round(r.examplesPerSecond), batches: r.batches };
    say(`naive dense tfjs baseline (ml-100k): ${naive.examples_per_second} examples/s → sparse trainer is ${(mlResult.examples_per_second / naive.examples_per_second).toFixed(1)}x faster`);
  }
  const ratio = mlResult.examples_per_second / PYTORCH_REFERENCE_EXAMPLES_PER_SECOND;
  const load1 = loadavg()[0]!;
  say(`ratio to PyTorch 1.13 (${PYTORCH_REFERENCE_EXAMPLES_PER_SECOND} examples/s): ${ratio.toFixed(2)}`);
  say(`1-minute load average: ${load0.toFixed(2)} at start, ${load1.toFixed(2)} at end (2 cores; other work on the machine slows these figures)`);
  if (json) {
    process.stdout.write(
      `${JSON.stringify({
        backend: backend.name,
        reference_size: REFERENCE_SIZE,
        ml100k: mlResult,
        ml100k_two_threads: mlTwo,
        synthetic_100k_items: synResult,
        synthetic_100k_items_two_threads: synTwo,
        naive_dense_ml100k: naive,
        pytorch_reference_examples_per_second: PYTORCH_REFERENCE_EXAMPLES_PER_SECOND,
        ratio_to_pytorch: round(ratio, 3),
        loadavg_1m: [round(load0, 2), round(load1, 2)],
      })}\n`,
    );
  }
  return 0;
}
