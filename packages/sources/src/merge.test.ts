import { describe, expect, it } from "vitest";
import { mergeCandidates } from "./merge.js";
import { rng } from "./test-helpers.js";
import type { SourceResult } from "./types.js";

const list = (source: string, items: number[], because?: number): SourceResult => ({
  source,
  candidates: items.map((item, k) => (because === undefined ? { item, score: 10 - k } : { item, score: 10 - k, because })),
});

describe("mergeCandidates", () => {
  it("interleaves sources round-robin in SOURCE_ORDER and keeps every source's provenance", () => {
    const results = [list("popular", [1, 2, 3, 4]), list("co-watch", [2, 5, 6], 99), list("dnn", [7, 2, 8])];
    const merged = mergeCandidates(results, { size: 100, watched: new Set() });
    // Round 1: dnn 7, co-watch 2, popular 1. Round 2: dnn 8 (2 taken), co-watch 5, popular 3. ...
    expect(merged.map((m) => m.item)).toEqual([7, 2, 1, 8, 5, 3, 6, 4]);
    const two = merged.find((m) => m.item === 2)!;
    expect(two.provenance).toEqual([
      { source: "dnn", rank: 1, score: 9 },
      { source: "co-watch", rank: 0, score: 10, because: 99 },
      { source: "popular", rank: 1, score: 9 },
    ]);
  });

  it("keeps provenance from sources the round-robin stopped reading", () => {
    const merged = mergeCandidates([list("dnn", [1, 2]), list("popular", [3, 4, 5, 6, 1])], { size: 2, watched: new Set() });
    expect(merged.map((m) => m.item)).toEqual([1, 3]);
    expect(merged[0]!.provenance.map((p) => [p.source, p.rank])).toEqual([
      ["dnn", 0],
      ["popular", 4],
    ]);
  });

  it("never returns a watched or excluded item and fills from the other sources", () => {
    const merged = mergeCandidates([list("dnn", [1, 2, 3]), list("popular", [1, 4, 5])], {
      size: 3,
      watched: new Set([1]),
      exclude: new Set([4]),
    });
    expect(merged.map((m) => m.item)).toEqual([2, 5, 3]);
    for (const m of merged) expect(m.provenance.every((p) => p.source === "dnn" || p.source === "popular")).toBe(true);
  });

  it("gives every source its share and the leftovers to sources with longer lists", () => {
    const merged = mergeCandidates([list("dnn", [1, 2, 3, 4, 5, 6]), list("fresh", [10]), list("co-watch", [20, 21, 22, 23, 24, 25])], {
      size: 9,
      watched: new Set(),
    });
    expect(merged.map((m) => m.item)).toEqual([1, 20, 10, 2, 21, 3, 22, 4, 23]);
  });

  it("applies per-source weights", () => {
    const merged = mergeCandidates([list("dnn", [1, 2, 3, 4]), list("popular", [10, 11, 12])], {
      size: 6,
      watched: new Set(),
      weights: { dnn: 2 },
    });
    expect(merged.map((m) => m.item)).toEqual([1, 2, 10, 3, 4, 11]);
    expect(() => mergeCandidates([list("dnn", [1])], { size: 1, watched: new Set(), weights: { dnn: 0 } })).toThrow(/positive integer/);
  });

  it("is deterministic whatever the order of the results, and sorts unknown sources after known ones", () => {
    const a = [list("zeta", [1, 2]), list("alpha", [3, 1]), list("trending", [4, 2])];
    const m1 = mergeCandidates(a, { size: 10, watched: new Set() });
    const m2 = mergeCandidates([...a].reverse(), { size: 10, watched: new Set() });
    expect(m1).toEqual(m2);
    expect(m1.map((m) => m.item)).toEqual([4, 3, 1, 2]);
    expect(m1.find((m) => m.item === 1)!.provenance.map((p) => p.source)).toEqual(["alpha", "zeta"]);
  });

  it("keeps a source's best rank when it lists an item twice, and rejects duplicate sources", () => {
    const merged = mergeCandidates([list("dnn", [5, 6, 5])], { size: 5, watched: new Set() });
    expect(merged.map((m) => m.item)).toEqual([5, 6]);
    expect(merged[0]!.provenance).toEqual([{ source: "dnn", rank: 0, score: 10 }]);
    expect(() => mergeCandidates([list("dnn", [1]), list("dnn", [2])], { size: 5, watched: new Set() })).toThrow(/appears twice/);
  });

  it("on random inputs: no duplicates, nothing watched, size respected, provenance complete", () => {
    const r = rng(4);
    const names = ["dnn", "co-watch", "popular", "trending", "fresh"];
    for (let trial = 0; trial < 100; trial++) {
      const results = names.map((source) => {
        const items = Array.from({ length: Math.floor(r() * 30) }, () => Math.floor(r() * 50));
        return list(source, items);
      });
      const watched = new Set(Array.from({ length: 10 }, () => Math.floor(r() * 50)));
      const exclude = new Set([Math.floor(r() * 50)]);
      const size = Math.floor(r() * 60);
      const merged = mergeCandidates(results, { size, watched, exclude });
      const allowed = new Set(results.flatMap((x) => x.candidates.map((c) => c.item)).filter((i) => !watched.has(i) && !exclude.has(i)));
      expect(merged.length).toBe(Math.min(size, allowed.size));
      expect(new Set(merged.map((m) => m.item)).size).toBe(merged.length);
      for (const m of merged) {
        expect(allowed.has(m.item)).toBe(true);
        const expected = results
          .filter((x) => x.candidates.some((c) => c.item === m.item))
          .map((x) => ({ source: x.source, rank: x.candidates.findIndex((c) => c.item === m.item) }));
        expect(m.provenance.map((p) => ({ source: p.source, rank: p.rank }))).toEqual(expected);
      }
    }
  });
});
