import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BruteForceIndex, loadBruteForceIndex } from "./brute-force-index.js";
import { InvalidArgumentError, ModelVersionMismatchError } from "./errors.js";
import { loadIndex } from "./load-index.js";
import { clusteredData } from "./synthetic.js";
import { row, tempDir } from "./test-helpers.js";
import { compareHits } from "./vector-index.js";

const DIM = 16;

/** Reference: score every item, sort everything. */
function naive(ids: string[], vectors: Float32Array, q: Float32Array, k: number, exclude = new Set<string>()) {
  const all = ids
    .map((id, i) => {
      let s = 0;
      for (let j = 0; j < DIM; j++) s += q[j]! * vectors[i * DIM + j]!;
      return { id, score: s };
    })
    .filter((h) => !exclude.has(h.id));
  return all.sort(compareHits).slice(0, k);
}

describe("BruteForceIndex", () => {
  const n = 1500;
  const data = clusteredData({ items: n, queries: 20, dim: DIM, seed: 11 });
  const ids = Array.from({ length: n }, (_, i) => `i${i}`);

  it("returns the exact top k, sorted by score then id", () => {
    const index = BruteForceIndex.build({ ids, vectors: data.items, dim: DIM }, { modelVersion: "m" });
    for (let i = 0; i < 20; i++) {
      const q = row(data.queries, DIM, i);
      expect(index.search(q, 37)).toEqual(naive(ids, data.items, q, 37));
    }
    const exclude = new Set(naive(ids, data.items, row(data.queries, DIM, 0), 10).map((h) => h.id));
    const q0 = row(data.queries, DIM, 0);
    expect(index.search(q0, 25, exclude)).toEqual(naive(ids, data.items, q0, 25, exclude));
  });

  it("breaks score ties by id under compareIds (numeric ids in numeric order)", () => {
    const index = new BruteForceIndex({ dim: 2, modelVersion: "m" });
    for (const id of ["10", "9", "100", "2", "b", "a"]) index.upsert(id, [1, 1]);
    index.upsert("top", [2, 2]);
    expect(index.search([1, 1], 5).map((h) => h.id)).toEqual(["top", "2", "9", "10", "100"]);
    expect(index.search([1, 1], 7).map((h) => h.id)).toEqual(["top", "2", "9", "10", "100", "a", "b"]);
  });

  it("removes immediately and keeps the remaining items exact", () => {
    const index = BruteForceIndex.build({ ids, vectors: data.items, dim: DIM }, { modelVersion: "m" });
    const q = row(data.queries, DIM, 4);
    const top = index.search(q, 10).map((h) => h.id);
    for (const id of top) expect(index.remove(id)).toBe(true);
    expect(index.remove(top[0]!)).toBe(false);
    expect(index.size()).toBe(n - 10);
    const removed = new Set(top);
    expect(index.search(q, 50)).toEqual(naive(ids, data.items, q, 50, removed));
    expect(index.vectorOf(top[0]!)).toBeUndefined();
  });

  it("replaces the vector of an existing id on upsert", () => {
    const index = new BruteForceIndex({ dim: 2, modelVersion: "m", capacity: 1 });
    index.upsert("a", [1, 0]);
    index.upsert("b", [0, 1]);
    index.upsert("a", [0, 3]);
    expect(index.size()).toBe(2);
    expect(index.search([0, 1], 2)).toEqual([
      { id: "a", score: 3 },
      { id: "b", score: 1 },
    ]);
  });

  it("round-trips through save and load, including after removals", async () => {
    const tmp = tempDir("bf");
    try {
      const index = BruteForceIndex.build({ ids, vectors: data.items, dim: DIM }, { modelVersion: "m7", annotations: { run: "x" } });
      index.remove("i3");
      index.remove("i1499");
      expect(index.savedAt).toBeUndefined();
      await index.save(tmp.dir);
      const loaded = await loadBruteForceIndex(tmp.dir, { expectedModelVersion: "m7" });
      // savedAt: index.json's, after the save and after the load.
      const meta = JSON.parse(readFileSync(join(tmp.dir, "index.json"), "utf8")) as { savedAt: string };
      expect(index.savedAt).toBe(meta.savedAt);
      expect(loaded.savedAt).toBe(meta.savedAt);
      expect(loaded.size()).toBe(n - 2);
      expect(loaded.annotations).toEqual({ run: "x" });
      for (let i = 0; i < 5; i++) {
        const q = row(data.queries, DIM, i);
        expect(loaded.search(q, 100)).toEqual(index.search(q, 100));
      }
      expect((await loadIndex(tmp.dir)).kind).toBe("brute-force");
      await expect(loadBruteForceIndex(tmp.dir, { expectedModelVersion: "m8" })).rejects.toBeInstanceOf(ModelVersionMismatchError);
    } finally {
      tmp.cleanup();
    }
  });

  it("validates its inputs", () => {
    const index = new BruteForceIndex({ dim: 3, modelVersion: "m" });
    expect(() => index.upsert("a", [1, 2])).toThrow(/dimension 2, expected 3/);
    expect(() => index.upsert("a", [1, NaN, 2])).toThrow(InvalidArgumentError);
    expect(() => index.search([1, 2, 3], 0)).toThrow(/k must be an integer in 1\.\.1000/);
    expect(() => index.search([1, 2, -Infinity], 1)).toThrow(/query\[2\]/);
    expect(() => new BruteForceIndex({ dim: 5000, modelVersion: "m" })).toThrow(/dimension/);
  });
});
