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
