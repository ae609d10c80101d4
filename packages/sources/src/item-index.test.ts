import { describe, expect, it } from "vitest";
import { BruteForceIndex, BruteForceSubsetIndex } from "./item-index.js";

describe("BruteForceSubsetIndex", () => {
  // Row r's vector is [r, 1]: with the query [1, 0] the best rows are the highest.
  const rows = 8;
  const embeddings = Float32Array.from({ length: rows * 2 }, (_, i) => (i % 2 === 0 ? i / 2 : 1));
  const query = Float32Array.from([1, 0]);

  it("searches only the kept rows and answers in the full matrix's rows, with the full index's scores", () => {
    const subset = new BruteForceSubsetIndex(embeddings, 2, [0, 2, 5, 6]);
    expect(subset.numItems).toBe(4);
    expect(subset.search(query, 3)).toEqual([
      { item: 6, score: 6 },
      { item: 5, score: 5 },
      { item: 2, score: 2 },
    ]);
    const full = new BruteForceIndex(embeddings, 2).search(query, rows);
    const kept = full.filter((c) => [0, 2, 5, 6].includes(c.item));
    expect(subset.search(query, rows)).toEqual(kept);
  });

  it("asks exclude in the full matrix's rows", () => {
    const subset = new BruteForceSubsetIndex(embeddings, 2, [1, 3, 7]);
    const asked: number[] = [];
    const found = subset.search(query, 2, (row) => {
      asked.push(row);
      return row === 7;
    });
    expect(found.map((c) => c.item)).toEqual([3, 1]);
    expect(asked.sort()).toEqual([1, 3, 7]);
  });

  it("keeps nothing for no rows and refuses rows out of range or out of order", () => {
    expect(new BruteForceSubsetIndex(embeddings, 2, []).search(query, 5)).toEqual([]);
    expect(() => new BruteForceSubsetIndex(embeddings, 2, [0, 8])).toThrow(RangeError);
    expect(() => new BruteForceSubsetIndex(embeddings, 2, [3, 3])).toThrow(/strictly increasing/);
    expect(() => new BruteForceSubsetIndex(embeddings, 3, [0])).toThrow(/whole number of rows/);
  });
});

describe("BruteForceIndex", () => {
  /** The exact top k, one row at a time (the dot product summed over the dimensions in order). */
  function reference(e: Float32Array, dim: number, q: Float32Array, k: number, exclude: (i: number) => boolean) {
    const all: { item: number; score: number }[] = [];
    for (let i = 0; i < e.length / dim; i++) {
      if (exclude(i)) continue;
      let s = 0;
      for (let d = 0; d < dim; d++) s += e[i * dim + d]! * q[d]!;
      all.push({ item: i, score: s });
    }
    return all.sort((a, b) => b.score - a.score || a.item - b.item).slice(0, k);
  }

  it.each([1, 3, 4, 7, 64, 1001])("gives exactly the one-row-at-a-time top k and scores over %i rows (ties by item)", (rows) => {
    let seed = rows;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed / 2 ** 32 - 0.5;
    };
    const dim = 13;
    const e = Float32Array.from({ length: rows * dim }, random);
    // Two exact ties: rows 1 and 2 equal to row 0 (when present).
    for (let r = 1; r < Math.min(rows, 3); r++) e.copyWithin(r * dim, 0, dim);
    const q = Float32Array.from({ length: dim }, random);
    const index = new BruteForceIndex(e, dim);
    const exclude = (i: number): boolean => i % 5 === 4;
    for (const k of [1, 10, rows]) expect(index.search(q, k, exclude)).toEqual(reference(e, dim, q, k, exclude));
    expect(index.search(q, 0)).toEqual([]);
  });
});
