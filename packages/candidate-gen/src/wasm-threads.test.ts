import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * Training with tfjs-wasm's kernels on two threads (RECSYS_TF_WASM_THREADS=2) must give the very
 * same model as on one: XNNPACK splits a matmul's output tiles between threads, each element is
 * still summed by one thread in the same order. Each run is a fresh process (the backend is chosen
 * once per process) on the built modules.
 */
function trainInChild(threads: number): { wasmThreads: number; loss: number; tower: number[]; output: number[] } {
  const dist = (pkg: string): string => fileURLToPath(new URL(`../../${pkg}/dist/index.js`, import.meta.url));
  const script = `
    const { initBackend } = await import(${JSON.stringify(dist("tf"))});
    const { trainCandidateGen } = await import(${JSON.stringify(dist("candidate-gen"))});
    const { loadDataset } = await import(${JSON.stringify(dist("data"))});
    const info = await initBackend({ log: null });
    const r = await trainCandidateGen(await loadDataset("synthetic:users=300,items=2000,seed=3"), { maxSteps: 12, batchSize: 64, negatives: 100 });
    const w = r.model.weights();
    process.stdout.write(JSON.stringify({ wasmThreads: info.wasmThreads, loss: r.stats.finalLoss, tower: Array.from(w.tower[0].w.subarray(0, 50)), output: Array.from(w.output.subarray(0, 50)) }));`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, RECSYS_TF_BACKEND: "wasm", RECSYS_TF_WASM_THREADS: String(threads) },
    timeout: 120_000,
  }).toString();
  return JSON.parse(out) as { wasmThreads: number; loss: number; tower: number[]; output: number[] };
}

describe("training on multi-threaded wasm kernels", () => {
  it("gives the same model as one thread for a seed", () => {
    const one = trainInChild(1);
    const two = trainInChild(2);
    expect(one.wasmThreads).toBe(1);
    expect(two.wasmThreads).toBe(2);
    expect(two.loss).toBe(one.loss);
    expect(two.tower).toEqual(one.tower);
    expect(two.output).toEqual(one.output);
  }, 240_000);
});
