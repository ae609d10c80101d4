import { describe, expect, it } from "vitest";
import { initBackend, parseBackendChoice, tf } from "./index.js";

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
