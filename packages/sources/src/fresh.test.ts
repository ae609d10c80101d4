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

  it("finds the same top by one pass over the popularity as by one lookup per window item", () => {
    const r = rng(7);
    const items = 2000;
    const upload = Float64Array.from({ length: items }, () => (r() < 0.05 ? Number.NaN : Math.floor(r() * 5000)));
    // Duplicate upload times: ties between equal scores go to the position order.
    for (let i = 0; i < 200; i++) upload[Math.floor(r() * items)] = upload[Math.floor(r() * items)]!;
    const trending = new TrendingSource({ halfLifeSeconds: 400 });
    for (let e = 0; e < 3000; e++) {
      // Skewed items, and equal timestamps for equal scores.
      const item = Math.floor(Math.pow(r(), 3) * items);
      trending.observe({ user: e % 50, item, timestamp: Math.floor(r() * 50) * 100 });
    }
    // The same popularity without scoresAt: the per-item path.
    const lookups = { scoreAt: (item: number, asOf: number) => trending.scoreAt(item, asOf) };
    let passes = 0;
    const counting = {
      scoreAt: lookups.scoreAt,
      scoresAt: (asOf: number) => {
        passes += 1;
        return trending.scoresAt(asOf);
      },
    };
    const pairs = [50, 400, 5000].map((window) => ({
      onePass: new FreshSource({ uploadTimestamp: upload, windowSeconds: window, popularity: counting }),
      perItem: new FreshSource({ uploadTimestamp: upload, windowSeconds: window, popularity: lookups }),
    }));
    // Requests to the (stateful) trending source come in time order.
    for (let asOf = 0; asOf <= 5200; asOf += 260) {
      for (const { onePass, perItem } of pairs) {
        for (const budget of [1, 10, 100, 1000]) {
          const history = Array.from({ length: 20 }, () => Math.floor(r() * items));
          const exclude = new Set(Array.from({ length: 30 }, () => Math.floor(Math.pow(r(), 3) * items)));
          const request = { history, asOf, budget, exclude };
          expect(onePass.candidates(request)).toEqual(perItem.candidates(request));
        }
      }
    }
    expect(passes).toBeGreaterThan(0);
  });

  it("finds the same top by one pass as by lookups when request times go back and forth", () => {
    const r = rng(11);
    const items = 3000;
    const upload = Float64Array.from({ length: items }, () => (r() < 0.05 ? Number.NaN : Math.floor(r() * 10_000)));
    // A fixed popularity (no time dependence), so requests may come in any time order; a third of
    // the items have none, and equal scores are common.
    const score = Float64Array.from({ length: items }, () => (r() < 0.33 ? 0 : Math.floor(r() * 20)));
    const listed = Array.from({ length: items }, (_, i) => i).filter((i) => score[i]! > 0 || r() < 0.5);
    listed.sort((a, b) => score[b]! - score[a]! || a - b);
    const popularity = {
      scoreAt: (item: number) => score[item]!,
      scoresAt: () => ({ items: listed, sums: listed.map((i) => score[i]!), scale: 1 }),
    };
    const lookups = { scoreAt: popularity.scoreAt };
    for (const window of [300, 2000]) {
      const onePass = new FreshSource({ uploadTimestamp: upload, windowSeconds: window, popularity });
      const perItem = new FreshSource({ uploadTimestamp: upload, windowSeconds: window, popularity: lookups });
      for (let n = 0; n < 200; n++) {
        const asOf = Math.floor(r() * 11_000);
        const budget = [1, 5, 50, 400][n % 4]!;
        const exclude = new Set(Array.from({ length: 20 }, () => Math.floor(r() * items)));
        const request = { history: [Math.floor(r() * items)], asOf, budget, exclude };
        expect(onePass.candidates(request), `asOf ${asOf} budget ${budget}`).toEqual(perItem.candidates(request));
      }
    }
  });

  it("is a no-op when no item has an upload time", () => {
    const fresh = new FreshSource({ uploadTimestamp: new Float64Array(10).fill(Number.NaN), windowSeconds: 1e9 });
    expect(fresh.knownUploads).toBe(0);
    expect(fresh.candidates({ history: [], asOf: 1e9, budget: 10 }).candidates).toEqual([]);
  });
});

describe("FreshSource.addUpload (items uploaded after construction)", () => {
  it("nominates an added item within its window, before older uploads on a tie, and moves or drops it", () => {
    const fresh = new FreshSource({ uploadTimestamp: [100, 50, NaN], windowSeconds: 100 });
    expect(fresh.candidates({ history: [], asOf: 150, budget: 10 }).candidates.map((c) => c.item)).toEqual([0, 1]);
    fresh.addUpload(5, 149);
    fresh.addUpload(2, 120);
    expect(fresh.knownUploads).toBe(4);
    const got = fresh.candidates({ history: [], asOf: 150, budget: 10 }).candidates;
    expect(got.map((c) => c.item)).toEqual([5, 2, 0, 1]);
    // Not before its upload time, not after its window; excluded and watched items are skipped.
    expect(fresh.candidates({ history: [], asOf: 149, budget: 10 }).candidates.map((c) => c.item)).toEqual([2, 0, 1]);
    expect(fresh.candidates({ history: [], asOf: 240, budget: 10 }).candidates.map((c) => c.item)).toEqual([5]);
    expect(fresh.candidates({ history: [5], asOf: 150, budget: 10, exclude: new Set([2]) }).candidates.map((c) => c.item)).toEqual([0, 1]);
    // Only an empty base window: the added items alone.
    expect(fresh.candidates({ history: [], asOf: 245, budget: 1 }).candidates.map((c) => c.item)).toEqual([5]);
    fresh.addUpload(5, Number.NaN);
    expect(fresh.candidates({ history: [], asOf: 150, budget: 10 }).candidates.map((c) => c.item)).toEqual([2, 0, 1]);
    // Construction-time uploads keep theirs.
    fresh.addUpload(0, 10);
    expect(fresh.candidates({ history: [], asOf: 150, budget: 10 }).candidates.map((c) => c.item)).toEqual([2, 0, 1]);
  });
});
