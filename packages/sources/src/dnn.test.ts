import { describe, expect, it } from "vitest";
import { DnnSource } from "./dnn.js";
import { BruteForceIndex } from "./item-index.js";
import { rng } from "./test-helpers.js";
import type { SourceRequest } from "./types.js";

describe("BruteForceIndex", () => {
  it("returns the exact top-k by dot product, ties by item index, honouring exclude", () => {
    const r = rng(9);
    const dim = 4;
    const n = 200;
    // Quantised values: some exact ties.
    const emb = Float32Array.from({ length: n * dim }, () => Math.round(r() * 4) / 4);
    const index = new BruteForceIndex(emb, dim);
    const q = Float32Array.from([0.5, -1, 0.25, 1]);
    const exclude = (i: number): boolean => i % 7 === 0;
    const expected = Array.from({ length: n }, (_, i) => {
      let s = 0;
      for (let d = 0; d < dim; d++) s += emb[i * dim + d]! * q[d]!;
      return { item: i, score: s };
    })
      .filter((c) => !exclude(c.item))
      .sort((a, b) => b.score - a.score || a.item - b.item)
      .slice(0, 25);
    expect(index.search(q, 25, exclude)).toEqual(expected);
    expect(index.search(q, 0)).toEqual([]);
  });

  it("checks dimensions", () => {
    expect(() => new BruteForceIndex(new Float32Array(10), 3)).toThrow(/whole number of rows/);
    expect(() => new BruteForceIndex(new Float32Array(9), 3).search(new Float32Array(2), 1)).toThrow(/dimension 2/);
  });
});

describe("DnnSource", () => {
  // Items 0..4 on a line: item i has embedding [i]; a positive user vector prefers larger i.
  const index = new BruteForceIndex(Float32Array.from([0, 1, 2, 3, 4]), 1);

  it("nominates the nearest items, skipping history, excluded and not-yet-uploaded items", () => {
    const seen: SourceRequest[] = [];
    const dnn = new DnnSource({
      index,
      userVector: (request) => {
        seen.push(request);
        return Float32Array.from([1]);
      },
      uploadTimestamp: [0, 0, 0, 0, 500], // item 4 appears at t = 500
    });
    const request = { user: 3, history: [3], asOf: 500, budget: 2, exclude: new Set([2]) };
    expect(dnn.candidates(request)).toEqual({
      source: "dnn",
      candidates: [
        { item: 1, score: 1 },
        { item: 0, score: 0 },
      ],
    });
    expect(seen[0]!.user).toBe(3);
    expect(dnn.candidates({ ...request, asOf: 501 }).candidates.map((c) => c.item)).toEqual([4, 1]);
  });

  it("returns nothing when the provider has no vector", () => {
    const dnn = new DnnSource({ index, userVector: () => null });
    expect(dnn.candidates({ history: [], asOf: 0, budget: 3 }).candidates).toEqual([]);
  });
});
