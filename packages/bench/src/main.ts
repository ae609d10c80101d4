#!/usr/bin/env node
/**
 * `npm run bench -- <name> [options]`: benchmarks, one module per name, loaded on demand. Each
 * exports `run(argv): Promise<number>` (the exit code). Benchmarks print figures; they never
 * assert them (the machine may be shared, so timings are noisy).
 */
const BENCHMARKS: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> }> = {
  train: {
    summary: "candidate-generation training throughput (ml-100k and a 100k-item synthetic catalogue) [--json]",
    load: () => import("./train-bench.js"),
  },
  "sparse-update": {
    summary:
      "the lazy sparse Adam update of the embedding tables alone, per table, in a training run (100k items) [--json] [--steps N] [--dataset SPEC]",
    load: () => import("./sparse-update-bench.js"),
  },
  burst: {
    summary:
      "bursts of concurrent Recommend calls: at which concurrency answers degrade, calls are shed, errors start [--json] [--levels L,L] [--rounds N]",
    load: () => import("./serve-burst.js"),
  },
  retrain: {
    summary:
      "a model retrained from a day of traffic logged through RecordEvents vs the one it replaces, on the next day (synthetic) [--seeds 1,2,3] [--json]",
    load: () => import("./retrain-bench.js"),
  },
  sequence: {
    summary:
      "session models (SASRec-style, GRU4Rec) vs a PyTorch SASRec in the same run, ml-100k lastout (+ shuffled ties) [--json] [--seeds 1,2,3]",
    load: () => import("./sequence-bench.js"),
  },
  serve: {
    summary: "the four stages under gRPC load on a 1M-item catalogue, vs in-process, and HNSW recall [--json] [--items N] [--anonymous]",
    load: () => import("./serve-bench.js"),
  },
};

function usage(): string {
  const lines = Object.entries(BENCHMARKS).map(([name, b]) => `  ${name.padEnd(8)} ${b.summary}`);
  return `usage: npm run bench -- <name> [options]\n\nbenchmarks:\n${lines.join("\n")}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const bench = BENCHMARKS[name];
  if (bench === undefined) {
    process.stderr.write(`bench: unknown benchmark '${name}'\n\n${usage()}`);
    return 2;
  }
  return (await bench.load()).run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
