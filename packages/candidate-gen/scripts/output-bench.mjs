#!/usr/bin/env node
// Training throughput of the sampled and the hierarchical softmax (train config output) on the
// same data with the same settings (the default configuration: batch 256, 500 shared negatives
// for "sampled", round(√items) clusters for "hierarchical"):
//   flock /work/heavy.lock node packages/candidate-gen/scripts/output-bench.mjs [--batches N] [--rounds R] [SPEC...]
// SPEC defaults to ml100k:../shared/data/ml-100k. For each spec, R rounds (default 2) of
// sampled then hierarchical, each 5 warm-up + N (default 200) measured batches, holdout test.
// Prints examples/s (wall clock), examples per CPU-second of this process and ms per batch by
// phase, with the 1-minute load average: the machine may be shared. Run after `npx tsc --build`.
import { loadavg } from "node:os";
import { trainCandidateGen } from "@recsys/candidate-gen";
import { loadDataset } from "@recsys/data";
import { initBackend } from "@recsys/tf";

const argv = process.argv.slice(2);
const take = (name, fallback) => {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(argv[i + 1]);
  argv.splice(i, 2);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} needs a positive integer`);
  return v;
};
const batches = take("--batches", 200);
const rounds = take("--rounds", 2);
const warmup = 5;
const specs = argv.length > 0 ? argv : ["ml100k:../shared/data/ml-100k"];

async function measure(dataset, output) {
  let stepsSeen = 0;
  let warmTime = Number.NaN;
  let lastTime = Number.NaN;
  let warmCpu;
  let cpu = Number.NaN;
  const result = await trainCandidateGen(dataset, {
    holdout: "test",
    epochs: 1000,
    maxSteps: warmup + batches,
    output,
    progressEvery: 0,
    onProgress: (p) => {
      stepsSeen++;
      if (stepsSeen === warmup) {
        warmTime = p.elapsedSeconds;
        warmCpu = process.cpuUsage();
      }
      lastTime = p.elapsedSeconds;
      if (stepsSeen === warmup + batches) {
        const c = process.cpuUsage(warmCpu);
        cpu = (c.user + c.system) / 1e6;
      }
    },
  });
  const examples = batches * result.trainConfig.batchSize;
  const ms = Object.entries(result.stats.profileMs)
    .map(([k, v]) => `${k} ${(v / result.stats.steps).toFixed(2)}`)
    .join(", ");
  const clusters = result.hierarchy === null ? "" : ` (${result.hierarchy.tree.clusters} clusters)`;
  result.model.dispose();
  return {
    line: `${output}${clusters}: ${Math.round(examples / (lastTime - warmTime))} examples/s, ${Math.round(examples / cpu)} per CPU-second, setup ${result.stats.setupSeconds.toFixed(1)} s; ms/batch: ${ms}`,
  };
}

await initBackend({ log: null });
for (const spec of specs) {
  const dataset = await loadDataset(spec);
  console.log(
    `${spec}: ${dataset.items.ids.length} items, ${dataset.events.user.length} events; ${warmup} warm-up + ${batches} batches per run`,
  );
  for (let r = 0; r < rounds; r++) {
    for (const output of ["sampled", "hierarchical"]) {
      const before = loadavg()[0].toFixed(1);
      const { line } = await measure(dataset, output);
      console.log(`  round ${r + 1}, ${line} [load ${before} → ${loadavg()[0].toFixed(1)}]`);
    }
  }
}
