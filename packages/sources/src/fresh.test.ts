import { describe, expect, it } from "vitest";
import { FreshSource } from "./fresh.js";
import { rng } from "./test-helpers.js";
import { TrendingSource } from "./trending.js";

describe("FreshSource", () => {
  it("nominates exactly the items uploaded in [asOf - window, asOf), never one not yet uploaded", () => {
    const r = rng(2);
    const upload = Array.from({ length: 300 }, () => (r() < 0.1 ? Number.NaN : Math.floor(r() * 10_000)));
    const window = 700;
    const fresh = new FreshSource({ uploadTimestamp: Float64Array.from(upload), windowSeconds: window });
    for (let asOf = -100; asOf <= 10_500; asOf += 123) {
      const history = [1, 2, 3, 4, 5];
      const got = fresh.candidates({ history, asOf, budget: 1000 }).candidates.map((c) => c.item);
      const expected = upload
        .map((u, item) => ({ u, item }))
        .filter(({ u, item }) => u < asOf && u >= asOf - window && !history.includes(item))
        .map(({ item }) => item);
      expect([...got].sort((a, b) => a - b)).toEqual(expected);
      for (const item of got) expect(upload[item]!).toBeLessThan(asOf);
    }
  });

  it("excludes an item uploaded exactly at the request time and ranks by recency", () => {
    const fresh = new FreshSource({ uploadTimestamp: [100, 90, 50, 95, 95], windowSeconds: 100 });
    const got = fresh.candidates({ history: [], asOf: 100, budget: 10 }).candidates;
    expect(got.map((c) => c.item)).toEqual([3, 4, 1, 2]);
    expect(got[0]!.score).toBeCloseTo(0.95, 12);
    expect(fresh.candidates({ history: [], asOf: 100, budget: 2, exclude: new Set([3]) }).candidates.map((c) => c.item)).toEqual([4, 1]);
  });

  it("ranks by recent popularity when given one", () => {
    const trending = new TrendingSource({ halfLifeSeconds: 1000 });
    trending.observe({ user: 0, item: 2, timestamp: 60 });
    trending.observe({ user: 1, item: 2, timestamp: 61 });
    trending.observe({ user: 2, item: 1, timestamp: 62 });
    trending.observe({ user: 3, item: 0, timestamp: 100 }); // at the request time: not counted
    const fresh = new FreshSource({ uploadTimestamp: [99, 80, 50, 70], windowSeconds: 100, popularity: trending });
    const got = fresh.candidates({ history: [], asOf: 100, budget: 10 }).candidates;
    expect(got.map((c) => c.item)).toEqual([2, 1, 0, 3]); // 0 and 3 unwatched: more recent first
    expect(got[2]!.score).toBe(0);
  });

  it("is a no-op when no item has an upload time", () => {
    const fresh = new FreshSource({ uploadTimestamp: new Float64Array(10).fill(Number.NaN), windowSeconds: 1e9 });
    expect(fresh.knownUploads).toBe(0);
    expect(fresh.candidates({ history: [], asOf: 1e9, budget: 10 }).candidates).toEqual([]);
  });
});
