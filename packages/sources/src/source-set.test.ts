import { describe, expect, it } from "vitest";
import { PopularSource } from "./popular.js";
import { SourceSet } from "./source-set.js";
import type { CandidateSource, SourceRequest } from "./types.js";

const fixed = (name: string, items: number[]): CandidateSource => ({
  name,
  candidates: (request: SourceRequest) => ({
    source: name,
    candidates: items.filter((i) => !request.watched!.has(i)).map((item, k) => ({ item, score: -k })),
  }),
});

describe("SourceSet", () => {
  it("runs every source with its budget, merges, and reports timings", () => {
    const popular = new PopularSource();
    const set = new SourceSet([{ source: fixed("dnn", [1, 2, 3, 4]), budget: 2 }, popular], { mergedSize: 10 });
    expect(set.names).toEqual(["dnn", "popular"]);
    for (const [item, t] of [
      [7, 1],
      [7, 2],
      [8, 3],
      [9, 4],
    ] as const)
      set.observe({ user: 0, item, timestamp: t });
    const run = set.run({ history: [1], asOf: 4, budget: 3 });
    expect(run.results.map((r) => [r.source, r.candidates.map((c) => c.item)])).toEqual([
      ["dnn", [2, 3]], // budget 2, history removed
      ["popular", [7, 8]], // the event at t = 4 is not visible yet
    ]);
    expect(run.merged.map((m) => m.item)).toEqual([2, 7, 3, 8]);
    expect(run.timings.map((t) => [t.source, t.count])).toEqual([
      ["dnn", 2],
      ["popular", 2],
    ]);
    for (const t of run.timings) expect(t.ms).toBeGreaterThanOrEqual(0);
    expect(set.run({ history: [], asOf: 5, budget: 3 }, { mergedSize: 1 }).merged).toHaveLength(1);
  });

  it("throws on a failing source by default, or skips it and reports the error", () => {
    const broken: CandidateSource = {
      name: "trending",
      candidates: () => {
        throw new Error("boom");
      },
    };
    const strict = new SourceSet([fixed("dnn", [1]), broken], { mergedSize: 5 });
    expect(() => strict.run({ history: [], asOf: 0, budget: 5 })).toThrow(/boom/);
    const lenient = new SourceSet([fixed("dnn", [1]), broken], { mergedSize: 5, onSourceError: "skip" });
    const run = lenient.run({ history: [], asOf: 0, budget: 5 });
    expect(run.merged.map((m) => m.item)).toEqual([1]);
    expect(run.errors.map((e) => e.source)).toEqual(["trending"]);
  });

  it("refuses requests before its clock, or clamps them to it online", () => {
    const strict = new SourceSet([new PopularSource()], { mergedSize: 5 });
    strict.observe({ user: 0, item: 3, timestamp: 50 });
    strict.run({ history: [], asOf: 100, budget: 5 });
    expect(strict.clock).toBe(100);
    expect(() => strict.run({ history: [], asOf: 99, budget: 5 })).toThrow(/non-decreasing time order/);
    const online = new SourceSet([new PopularSource()], { mergedSize: 5, pastRequests: "clamp" });
    online.observe({ user: 0, item: 3, timestamp: 50 });
    online.run({ history: [], asOf: 100, budget: 5 });
    const late = online.run({ history: [], asOf: 99, budget: 5 });
    expect(late.asOf).toBe(100);
    expect(late.merged.map((m) => m.item)).toEqual([3]);
  });

  it("validates its configuration and requests", () => {
    expect(() => new SourceSet([fixed("dnn", []), fixed("dnn", [])], { mergedSize: 1 })).toThrow(/two sources are named "dnn"/);
    expect(() => new SourceSet([{ source: fixed("dnn", []), budget: -1 }], { mergedSize: 1 })).toThrow(/budget/);
    expect(() => new SourceSet([{ source: fixed("dnn", []), weight: 0 }], { mergedSize: 1 })).toThrow(/weight/);
    const set = new SourceSet([fixed("dnn", [])], { mergedSize: 1 });
    expect(() => set.run({ history: [], asOf: Number.NaN, budget: 1 })).toThrow(/asOf/);
    expect(() => set.run({ history: [], asOf: 0, budget: 1.5 })).toThrow(/budget/);
  });
});
