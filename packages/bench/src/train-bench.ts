/**
 * `npm run bench -- train [--json] [--batches N] [--warmup N] [--users N] [--no-baseline]
 *                        [--no-reference] [--reference-threads N] [--data-dir DIR] [--tf-threads N]`
 *
 * Steady-state training throughput of the candidate generator at the fixed reference size
 * (tower 256-128-64, 64-dim embeddings, 500 sampled negatives with logQ, batch 256) on
 *   - ml-100k (../shared/data/ml-100k next to the repository root, or $RECSYS_ML100K_DIR), and
 *   - a synthetic dataset with a 100,000-item catalogue (the project's generator), written to an
 *     `events:` directory (a temporary one, or --data-dir) and read back from it,
 * each time between two runs of the PyTorch reference (reference/youtube_dnn.py, Debian's
 * python3-torch) on the same file: the ratio is ours over the mean of PyTorch before and after,
 * and is not printed when the reference could not run. Then the naive dense tfjs baseline on
 * ml-100k (see naive-dense.ts). The first `warmup` batches are excluded. Figures are printed,
 * never asserted: the machine may be shared, so the 1-minute load average is printed with them.
 * --tf-threads N runs tfjs-wasm's kernels on N threads (default $RECSYS_TF_WASM_THREADS or 1).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_MODEL_CONFIG, trainCandidateGen, type TrainProgress } from "@recsys/candidate-gen";
import { NUM_CATEGORICAL, NUM_CONTINUOUS } from "@recsys/features";
import { type Dataset, loadDataset } from "@recsys/data";
import { initBackend, nativeBlas } from "@recsys/tf";
import { exportEventsDir } from "./export-events.js";
import { naiveDenseExamplesPerSecond } from "./naive-dense.js";
import { type ReferenceOutcome, runReference } from "./pytorch-reference.js";
import { ml100kDir } from "./paths.js";

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
    // Mean pooling: the network of the PyTorch reference (the default pools with attention).
    model: { embeddingDim: REFERENCE_SIZE.embeddingDim, tower: [...REFERENCE_SIZE.tower], historyPooling: "mean" },
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

/** The positive integer after `--name` in argv, or `fallback` when the option is absent. */
export function intArg(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} needs a positive integer`);
  return v;
}

/** PyTorch's figures before and after ours: their mean, or why they are missing. */
interface ReferencePair {
  readonly before: ReferenceOutcome;
  readonly after: ReferenceOutcome;
}

function referenceMean(p: ReferencePair): number | null {
  if (!p.before.ok || !p.after.ok) return null;
  return (p.before.result.examples_per_second + p.after.result.examples_per_second) / 2;
}

function describeReference(o: ReferenceOutcome): string {
  if (!o.ok) return `not run (${o.reason})`;
  const r = o.result;
  return `${r.examples_per_second} examples/s (${r.examples_per_cpu_second ?? "?"} per CPU-second, ${r.ms_per_batch} ms/batch, ${r.threads} thread${r.threads === 1 ? "" : "s"}, ${r.items} items, loss ${r.first_loss} → ${r.last_loss})`;
}

export async function run(argv: string[]): Promise<number> {
  const known = new Set([
    "--json",
    "--batches",
    "--warmup",
    "--users",
    "--no-baseline",
    "--no-reference",
    "--reference-threads",
    "--data-dir",
    "--tf-threads",
  ]);
  const valued = new Set(["--batches", "--warmup", "--users", "--reference-threads", "--data-dir", "--tf-threads"]);
  for (let i = 0; i < argv.length; i++) {
    if (!known.has(argv[i]!)) throw new Error(`bench train: unknown argument '${argv[i]}' (accepted: ${[...known].join(", ")})`);
    if (valued.has(argv[i]!)) i++;
  }
  const json = argv.includes("--json");
  const batches = intArg(argv, "batches", 200);
  const warmup = intArg(argv, "warmup", 5);
  const users = intArg(argv, "users", 5000);
  let referenceThreads = intArg(argv, "reference-threads", 1);
  const withReference = !argv.includes("--no-reference");
  const dataDirArg = argv.indexOf("--data-dir");
  const say = (line: string): void => {
    if (!json) process.stdout.write(`${line}\n`);
  };

  const tfThreads = argv.includes("--tf-threads") ? intArg(argv, "tf-threads", 1) : undefined;
  const backend = await initBackend({ log: json ? null : undefined, ...(tfThreads === undefined ? {} : { wasmThreads: tfThreads }) });
  say(
    `backend: ${backend.name}${backend.simd === undefined ? "" : ` (simd ${backend.simd}, threads ${backend.threads}${backend.wasmThreads === undefined ? "" : `, ${backend.wasmThreads} kernel threads`})`}`,
  );
  const blas = nativeBlas();
  say(
    `matmuls of the 1-thread step: ${blas === null ? `tfjs (${backend.name}${backend.wasmThreads === undefined ? "" : `, ${backend.wasmThreads} kernel thread(s)`}; RECSYS_BLAS=off or no native BLAS installed)` : `native BLAS (${blas.name}: the system's libblas, ${blas.threads} thread(s)); the 2-thread data-parallel step stays on tfjs`}`,
  );
  say(
    `reference size: tower ${REFERENCE_SIZE.tower.join("-")}, dim ${REFERENCE_SIZE.embeddingDim}, ${REFERENCE_SIZE.negatives} negatives, batch ${REFERENCE_SIZE.batchSize}; ${warmup} warm-up + ${batches} measured batches`,
  );
  // Like with like: PyTorch gets as many threads as our matmuls have, unless told otherwise.
  const ourThreads = blas === null ? (backend.wasmThreads ?? 1) : blas.threads;
  if (!argv.includes("--reference-threads")) referenceThreads = ourThreads;
  say(
    `PyTorch reference: ${withReference ? `${referenceThreads} thread${referenceThreads === 1 ? "" : "s"} (torch.set_num_threads), before and after ours on the same file` : "off (--no-reference)"}`,
  );
  const load0 = loadavg()[0]!;
  const reference = async (data: string): Promise<ReferenceOutcome> =>
    withReference
      ? runReference({
          data,
          batches,
          warmup,
          batchSize: REFERENCE_SIZE.batchSize,
          negatives: REFERENCE_SIZE.negatives,
          threads: referenceThreads,
        })
      : { ok: false, reason: "--no-reference" };

  // --- ml-100k: PyTorch, ours (1 and 2 threads), PyTorch again; all read u.data.
  const mlDir = ml100kDir();
  const mlSpec = `ml100k:${mlDir}`;
  const mlBefore = await reference(mlSpec);
  say(`PyTorch reference (ml-100k), before: ${describeReference(mlBefore)}`);
  const ml = await loadDataset(mlSpec);
  const mlResult = await measureTraining(ml, batches, warmup, 1);
  say(
    `ml-100k: ${mlResult.examples_per_second} examples/s with 1 thread, the default (${mlResult.examples_per_cpu_second} per CPU-second); ms/batch ${JSON.stringify(mlResult.ms_per_batch)}`,
  );
  const mlTwo = await measureTraining(ml, batches, warmup, 2);
  say(
    `ml-100k, 2 threads: ${mlTwo.examples_per_second} examples/s (${mlTwo.examples_per_cpu_second} per CPU-second); ms/batch ${JSON.stringify(mlTwo.ms_per_batch)}`,
  );
  const mlAfter = await reference(mlSpec);
  say(`PyTorch reference (ml-100k), after: ${describeReference(mlAfter)}`);
  const mlRef = referenceMean({ before: mlBefore, after: mlAfter });
  const mlRatio = mlRef === null ? null : mlResult.examples_per_second / mlRef;
  say(
    mlRatio === null
      ? "ratio to PyTorch (ml-100k): none (the reference did not run both times)"
      : `ratio to PyTorch (ml-100k, ours with ${ourThreads} matmul thread(s) against PyTorch with ${referenceThreads}, mean of before and after = ${Math.round(mlRef!)} examples/s): ${mlRatio.toFixed(2)}`,
  );

  // --- 100,000-item synthetic catalogue, exported to events:DIR so that both read the same file.
  const synSpec = `synthetic:items=100000,users=${users},seed=1`;
  const exportDir = dataDirArg >= 0 ? argv[dataDirArg + 1]! : await mkdtemp(join(tmpdir(), "recsys-train-bench-"));
  await exportEventsDir(await loadDataset(synSpec), exportDir);
  const eventsSpec = `events:${exportDir}`;
  say(`${synSpec} exported to ${eventsSpec}`);
  const synBefore = await reference(eventsSpec);
  say(`PyTorch reference (100k items), before: ${describeReference(synBefore)}`);
  const syn = await loadDataset(eventsSpec);
  const synResult = await measureTraining(syn, batches, warmup, 1);
  say(
    `100k items (${eventsSpec}): ${synResult.examples_per_second} examples/s with 1 thread (${synResult.examples_per_cpu_second} per CPU-second); ms/batch ${JSON.stringify(synResult.ms_per_batch)}`,
  );
  const synTwo = await measureTraining(syn, batches, warmup, 2);
  say(
    `100k items, 2 threads: ${synTwo.examples_per_second} examples/s (${synTwo.examples_per_cpu_second} per CPU-second); ms/batch ${JSON.stringify(synTwo.ms_per_batch)}`,
  );
  const synAfter = await reference(eventsSpec);
  say(`PyTorch reference (100k items), after: ${describeReference(synAfter)}`);
  const synRef = referenceMean({ before: synBefore, after: synAfter });
  const synRatio = synRef === null ? null : synResult.examples_per_second / synRef;
  say(
    synRatio === null
      ? "ratio to PyTorch (100k items): none (the reference did not run both times)"
      : `ratio to PyTorch (100k items, ours with ${ourThreads} matmul thread(s) against PyTorch with ${referenceThreads}, mean of before and after = ${Math.round(synRef!)} examples/s): ${synRatio.toFixed(2)}`,
  );
  if (dataDirArg < 0) await rm(exportDir, { recursive: true, force: true });

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
      inputDim:
        REFERENCE_SIZE.embeddingDim +
        DEFAULT_MODEL_CONFIG.searchDim +
        NUM_CATEGORICAL * DEFAULT_MODEL_CONFIG.categoricalDim +
        NUM_CONTINUOUS,
    });
    naive = { examples_per_second: Math.round(r.examplesPerSecond), batches: r.batches };
    say(
      `naive dense tfjs baseline (ml-100k): ${naive.examples_per_second} examples/s → sparse trainer is ${(mlResult.examples_per_second / naive.examples_per_second).toFixed(1)}x faster`,
    );
  }
  const load1 = loadavg()[0]!;
  say(
    `1-minute load average: ${load0.toFixed(2)} at start, ${load1.toFixed(2)} at end (2 cores; other work on the machine slows these figures)`,
  );
  if (json) {
    process.stdout.write(
      `${JSON.stringify({
        backend: backend.name,
        matmul: blas === null ? "tfjs" : blas.name,
        wasm_kernel_threads: backend.wasmThreads ?? null,
        reference_size: REFERENCE_SIZE,
        ml100k: mlResult,
        ml100k_two_threads: mlTwo,
        ml100k_pytorch: { before: mlBefore, after: mlAfter },
        ratio_to_pytorch_ml100k: mlRatio === null ? null : round(mlRatio, 3),
        synthetic_100k_items: synResult,
        synthetic_100k_items_two_threads: synTwo,
        synthetic_100k_items_pytorch: { before: synBefore, after: synAfter },
        ratio_to_pytorch_100k_items: synRatio === null ? null : round(synRatio, 3),
        naive_dense_ml100k: naive,
        loadavg_1m: [round(load0, 2), round(load1, 2)],
      })}\n`,
    );
  }
  return 0;
}
