import { describe, expect, it } from "vitest";
import { rng } from "./test-helpers.js";
import { TopK, compareCandidates } from "./top-k.js";

describe("TopK", () => {
  it("keeps the k best by score, ties by item index, like a full sort", () => {
    const r = rng(7);
    for (let trial = 0; trial < 50; trial++) {
      const n = 1 + Math.floor(r() * 200);
      const k = Math.floor(r() * 30);
      // Few distinct scores: many ties.
      const pairs = Array.from({ length: n }, (_, item) => ({ item, score: Math.floor(r() * 8) }));
      const shuffled = [...pairs].sort(() => r() - 0.5);
      const top = new TopK(k);
      for (const p of shuffled) top.push(p.item, p.score);
      expect(top.sorted()).toEqual([...pairs].sort(compareCandidates).slice(0, k));
    }
  });

  it("ignores NaN scores and rejects a bad size", () => {
    const top = new TopK(2);
    top.push(1, Number.NaN);
    top.push(2, 1);
    expect(top.sorted()).toEqual([{ item: 2, score: 1 }]);
    expect(() => new TopK(-1)).toThrow(/non-negative integer/);
  });
});
