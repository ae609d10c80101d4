/**
 * `npm run bench -- sparse-update [--json] [--steps N] [--warmup N] [--items N] [--users N] [--dataset SPEC]`
 *
 * The lazy sparse Adam update of the candidate generator's embedding tables, alone: trains at the
 * reference size (see train-bench.ts; 1 thread, mean pooling) on the synthetic catalogue of
 * `--items` items (default 100,000; or `--dataset SPEC`) and times every SparseTable.apply call
 * of the measured steps, per table: rows touched per step, wall and CPU milliseconds per step,
 * nanoseconds per updated coordinate. The arithmetic bound printed with them is the
 * coordinates' count times the operations of one coordinate (about 10 flops, one square root and
 * one division in float64). Figures are printed, never asserted.
 */
import { loadavg } from "node:os";
import { SparseTable, trainCandidateGen } from "@recsys/candidate-gen";
import { loadDataset } from "@recsys/data";
import { initBackend } from "@recsys/tf";
import { intArg, REFERENCE_SIZE } from "./train-bench.js";

interface TableFigures {
  rows: number;
  dim: number;
  touched: number;
  wallMs: number;
  cpuMs: number;
  calls: number;
}

function cpuMs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
}

export async function run(argv: string[]): Promise<number> {
  const known = new Set(["--json", "--steps", "--warmup", "--items", "--users", "--dataset"]);
  const valued = new Set(["--steps", "--warmup", "--items", "--users", "--dataset"]);
  for (let i = 0; i < argv.length; i++) {
    if (!known.has(argv[i]!)) throw new Error(`bench sparse-update: unknown argument '${argv[i]}' (accepted: ${[...known].join(", ")})`);
    if (valued.has(argv[i]!)) i++;
  }
  const json = argv.includes("--json");
  const steps = intArg(argv, "steps", 100);
  const warmup = intArg(argv, "warmup", 5);
  const d = argv.indexOf("--dataset");
  const spec = d >= 0 ? argv[d + 1]! : `synthetic:items=${intArg(argv, "items", 100000)},users=${intArg(argv, "users", 5000)},seed=1`;
  await initBackend({ log: null });
  const dataset = await loadDataset(spec);
  const load0 = loadavg()[0]!;

  const figures = new Map<string, TableFigures>();
  let stepsSeen = 0;
  const apply = SparseTable.prototype.apply;
  SparseTable.prototype.apply = function (this: SparseTable, ...args: Parameters<SparseTable["apply"]>): void {
    const touched = this.touchedCount;
    const c0 = cpuMs();
    const t0 = performance.now();
    apply.apply(this, args);
    const wall = performance.now() - t0;
    const cpu = cpuMs() - c0;
    if (stepsSeen < warmup) return;
    const f = figures.get(this.name) ?? { rows: this.rows, dim: this.dim, touched: 0, wallMs: 0, cpuMs: 0, calls: 0 };
    f.touched += touched;
    f.wallMs += wall;
    f.cpuMs += cpu;
    f.calls++;
    figures.set(this.name, f);
  };
  try {
    const result = await trainCandidateGen(dataset, {
      holdout: "test",
      epochs: 1000,
      maxSteps: warmup + steps,
      model: { embeddingDim: REFERENCE_SIZE.embeddingDim, tower: [...REFERENCE_SIZE.tower], historyPooling: "mean" },
      negatives: REFERENCE_SIZE.negatives,
      batchSize: REFERENCE_SIZE.batchSize,
      progressEvery: 0,
      threads: 1,
      onProgress: () => {
        stepsSeen++;
      },
    });
    result.model.dispose();
  } finally {
    SparseTable.prototype.apply = apply;
  }
  const load1 = loadavg()[0]!;

  const tables = [...figures.entries()].map(([name, f]) => {
    const touched = f.touched / f.calls;
    const coords = touched * f.dim;
    return {
      name,
      rows: f.rows,
      dim: f.dim,
      touched_rows_per_step: Math.round(touched),
      wall_ms_per_step: round(f.wallMs / f.calls, 3),
      cpu_ms_per_step: round(f.cpuMs / f.calls, 3),
      ns_per_coordinate: coords > 0 ? round((1e6 * f.wallMs) / f.calls / coords, 2) : 0,
    };
  });
  const coords = tables.reduce((s, t) => s + t.touched_rows_per_step * t.dim, 0);
  const wall = tables.reduce((s, t) => s + t.wall_ms_per_step, 0);
  const cpu = tables.reduce((s, t) => s + t.cpu_ms_per_step, 0);
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ dataset: spec, steps, warmup, tables, coordinates_per_step: coords, wall_ms_per_step: round(wall, 3), cpu_ms_per_step: round(cpu, 3), loadavg_1m: [round(load0, 2), round(load1, 2)] })}\n`,
    );
    return 0;
  }
  process.stdout.write(
    `${spec}: lazy Adam of the touched rows, ${warmup} warm-up + ${steps} measured steps (reference size, batch ${REFERENCE_SIZE.batchSize}, ${REFERENCE_SIZE.negatives} negatives)\n`,
  );
  for (const t of tables)
    process.stdout.write(
      `  ${t.name.padEnd(12)} ${String(t.rows).padStart(7)} rows × ${String(t.dim).padStart(2)}: ${String(t.touched_rows_per_step).padStart(5)} touched/step, ${t.wall_ms_per_step.toFixed(3)} ms wall, ${t.cpu_ms_per_step.toFixed(3)} ms CPU, ${t.ns_per_coordinate} ns/coordinate\n`,
    );
  process.stdout.write(
    `  all tables: ${coords} coordinates/step, ${wall.toFixed(3)} ms wall, ${cpu.toFixed(3)} ms CPU per step; bound at ~10 flops + 1 sqrt + 1 division per coordinate: ${((coords * 10) / 1e6).toFixed(2)} MFLOP and ${coords} square roots and divisions\n`,
  );
  process.stdout.write(`1-minute load average: ${load0.toFixed(2)} at start, ${load1.toFixed(2)} at end (2 cores)\n`);
  return 0;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
