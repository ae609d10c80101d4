import { Rng } from "@recsys/data";
import { describe, expect, it } from "vitest";
import { allocateTableData, arenaOf, WASM_TABLE_MIN_FLOATS } from "./adam-wasm.js";
import { type SparseOptimizerConfig, SparseTable } from "./sparse.js";

describe("WebAssembly lazy Adam", () => {
  it("gives large tables an arena and small ones a plain Float32Array", () => {
    const big = allocateTableData(WASM_TABLE_MIN_FLOATS);
    expect(arenaOf(big)).not.toBeNull();
    expect(big.length).toBe(WASM_TABLE_MIN_FLOATS);
    expect(big.every((x) => x === 0)).toBe(true);
    const small = allocateTableData(1000);
    expect(arenaOf(small)).toBeNull();
    expect(arenaOf(new Float32Array(WASM_TABLE_MIN_FLOATS))).toBeNull();
  });

  it.each([
    ["dim 64", 64],
    ["dim 2", 2],
    ["dim 6", 6],
  ])("updates exactly like the JavaScript loop (%s)", (_, dim) => {
    const rows = Math.ceil(WASM_TABLE_MIN_FLOATS / dim);
    const cfg: SparseOptimizerConfig = { optimizer: "adam", learningRate: 0.05, l2: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };
    const wasm = new SparseTable("wasm", rows, dim); // storage from allocateTableData: the kernel
    expect(arenaOf(wasm.data)).not.toBeNull();
    wasm.initNormal(new Rng(5), 0.1);
    const js = new SparseTable("js", rows, dim, wasm.data.slice()); // a plain array: the JS loop
    expect(arenaOf(js.data)).toBeNull();
    const rng = new Rng(6);
    const g = new Float32Array(dim);
    for (let step = 1; step <= 5; step++) {
      // Not a multiple of the read-ahead block; rows drawn again across steps; gradients from
      // tiny to large so that the float32 roundings of m, v and w are exercised.
      const touches = 1000 + 37 * step;
      for (let i = 0; i < touches; i++) {
        const r = rng.int(i % 3 === 0 ? 300 : rows);
        const scale = [1e-30, 1e-6, 1, 1e3][i % 4]!;
        for (let c = 0; c < dim; c++) g[c] = rng.normal() * scale;
        wasm.addGrad(r, g, 0, 0.5);
        js.addGrad(r, g, 0, 0.5);
      }
      wasm.apply(cfg);
      js.apply(cfg);
    }
    let differing = 0;
    let changed = 0;
    const init = new SparseTable("init", rows, dim, new Float32Array(rows * dim));
    init.initNormal(new Rng(5), 0.1);
    for (let k = 0; k < js.data.length; k++) {
      if (!Object.is(wasm.data[k], js.data[k])) differing++;
      if (js.data[k] !== init.data[k]) changed++;
    }
    expect(changed).toBeGreaterThan(1000 * dim);
    expect(differing).toBe(0);
  });
});
