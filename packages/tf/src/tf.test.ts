import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { assignFrom, initBackend, parseBackendChoice, parseWasmThreads, tf, variableFrom } from "./index.js";

describe("backend selection", () => {
  it("parses RECSYS_TF_BACKEND values and names the accepted ones on error", () => {
    expect(parseBackendChoice("wasm")).toBe("wasm");
    expect(parseBackendChoice(" CPU ")).toBe("cpu");
    expect(parseBackendChoice("tensorflow")).toBe("node");
    expect(() => parseBackendChoice("webgpu")).toThrow(/node-gpu, node, wasm, cpu/);
  });

  it("fails clearly when a forced backend is not installed, then picks the fastest available", async () => {
    await expect(initBackend({ backend: "node", log: null })).rejects.toThrow(/tfjs-node/);
    const lines: Record<string, unknown>[] = [];
    const info = await initBackend({ log: (l) => lines.push(l) });
    // Neither native package can be installed here, so wasm (with SIMD on Node 20) wins.
    expect(info.name).toBe("wasm");
    expect(info.simd).toBe(true);
    expect(tf.getBackend()).toBe("wasm");
    expect(lines[0]).toMatchObject({ msg: "tfjs backend selected", backend: "wasm" });
    // Later calls return the same choice.
    expect(await initBackend()).toBe(info);
    const y = tf.tidy(() => tf.matMul(tf.tensor2d([1, 2], [1, 2]), tf.tensor2d([3, 4], [2, 1])).dataSync()[0]);
    expect(y).toBe(11);
  });
});

describe("multi-threaded wasm kernels", () => {
  it("parses RECSYS_TF_WASM_THREADS and names the accepted range on error", () => {
    expect(parseWasmThreads(" 2 ")).toBe(2);
    expect(() => parseWasmThreads("0")).toThrow(/from 1 to 8/);
    expect(() => parseWasmThreads("two")).toThrow(/RECSYS_TF_WASM_THREADS="two"/);
  });

  it("loads the threaded SIMD build under Node with 2 pool threads, computes the same matmul, and lets the process exit", () => {
    // A fresh process (the backend is chosen once per process), on the built module.
    const dist = fileURLToPath(new URL("../dist/index.js", import.meta.url));
    const script = `
      const { initBackend, tf } = await import(${JSON.stringify(dist)});
      const info = await initBackend({ log: null });
      const a = tf.tensor2d(Array.from({ length: 300 * 70 }, (_, i) => (i % 13) - 6), [300, 70]);
      const b = tf.tensor2d(Array.from({ length: 70 * 90 }, (_, i) => (i % 7) - 3), [70, 90]);
      const c = tf.matMul(a, b).dataSync();
      let sum = 0;
      for (const v of c) sum += v;
      process.stdout.write(JSON.stringify({ ...info, sum }));`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      env: { ...process.env, RECSYS_TF_WASM_THREADS: "2", RECSYS_TF_BACKEND: "wasm" },
      timeout: 60_000,
    }).toString();
    const r = JSON.parse(out) as { threads: boolean; wasmThreads: number; sum: number };
    expect(r.threads).toBe(true);
    expect(r.wasmThreads).toBe(2);
    // The same product in plain JS.
    let expected = 0;
    for (let i = 0; i < 300; i++)
      for (let j = 0; j < 90; j++) for (let k = 0; k < 70; k++) expected += (((i * 70 + k) % 13) - 6) * (((k * 90 + j) % 7) - 3);
    expect(r.sum).toBe(expected);
  });
});

describe("variableFrom / assignFrom", () => {
  it("leave no tensor or data behind once the variable is disposed (plain tf.variable and assign do)", async () => {
    await initBackend({ log: null });
    const start = tf.memory();
    // What they replace: the initial and the assigned tensors outlive the variable.
    const leaky = tf.variable(tf.zeros([4, 4]));
    leaky.assign(tf.ones([4, 4]));
    leaky.dispose();
    const leaked = tf.memory();
    expect(leaked.numTensors - start.numTensors).toBe(2);
    expect(leaked.numBytes).toBeGreaterThan(start.numBytes);
    const v = variableFrom(tf.zeros([4, 4]), "t/v");
    assignFrom(v, tf.ones([4, 4]));
    expect(Array.from(v.dataSync())).toEqual(new Array(16).fill(1));
    v.dispose();
    expect(tf.memory().numTensors).toBe(leaked.numTensors);
    expect(tf.memory().numBytes).toBe(leaked.numBytes);
  });
});
