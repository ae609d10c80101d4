import { describe, expect, it } from "vitest";
import { randomEvents } from "./test-helpers.js";
import { TrendingSource } from "./trending.js";
import type { WatchEvent } from "./types.js";

const ev = (user: number, item: number, timestamp: number): WatchEvent => ({ user, item, timestamp });

describe("TrendingSource", () => {
  it("decays: an item watched long ago loses to one watched recently", () => {
    const t = new TrendingSource({ halfLifeSeconds: 100 });
    for (let k = 0; k < 4; k++) t.observe(ev(k, 1, 0));
    t.observe(ev(9, 2, 300));
    const before = t.candidates({ history: [], asOf: 150, budget: 5 }).candidates;
    expect(before.map((c) => c.item)).toEqual([1]);
    expect(before[0]!.score).toBeCloseTo(4 * Math.pow(2, -1.5), 12);
    const after = t.candidates({ history: [], asOf: 400, budget: 5 }).candidates;
    expect(after.map((c) => c.item)).toEqual([2, 1]);
    expect(after[0]!.score).toBeCloseTo(0.5, 12);
    expect(after[1]!.score).toBeCloseTo(4 * Math.pow(2, -4), 12);
  });

  it("forgets old counts when a new event comes more than ~1074 half-lives later", () => {
    // ml-100k's 1998 events followed by a 2025 wall-clock event at a 7-day half-life.
    const t = new TrendingSource({ halfLifeSeconds: 7 * 86400 });
    t.observe(ev(0, 1, 890_000_000));
    t.observe(ev(1, 1, 890_000_100));
    t.observe(ev(2, 2, 1_750_000_000));
    const top = t.candidates({ history: [], asOf: 1_750_000_001, budget: 5 }).candidates;
    expect(top.map((c) => c.item)).toEqual([2]);
    expect(top[0]!.score).toBeCloseTo(Math.pow(2, -1 / (7 * 86400)), 12);
    expect(t.scoreAt(1, 1_750_000_001)).toBe(0);
  });

  it("halves a score every half-life", () => {
    const t = new TrendingSource({ halfLifeSeconds: 3600 });
    t.observe(ev(0, 3, 1000));
    t.observe(ev(1, 3, 2000));
    const a = t.scoreAt(3, 5000);
    const b = t.scoreAt(3, 5000 + 3600);
    expect(b / a).toBeCloseTo(0.5, 12);
    expect(a).toBeCloseTo(Math.pow(2, -4000 / 3600) + Math.pow(2, -3000 / 3600), 12);
  });

  it("never uses events at or after the request time", () => {
    const past = [ev(0, 1, 10), ev(1, 2, 11), ev(2, 1, 12)];
    const plain = new TrendingSource({ halfLifeSeconds: 50 });
    const leaky = new TrendingSource({ halfLifeSeconds: 50 });
    for (const e of past) {
      plain.observe(e);
      leaky.observe(e);
    }
    // Future events that would change the ranking if they were visible.
    for (let k = 0; k < 5; k++) leaky.observe(ev(3, 7, 20 + k));
    const request = { history: [], asOf: 20, budget: 5 };
    expect(leaky.candidates(request)).toEqual(plain.candidates(request));
    expect(leaky.candidates({ ...request, asOf: 30 }).candidates[0]!.item).toBe(7);
  });

  it("counts per geography for trending in your area", () => {
    const geoOf = [0, 0, 1, -1];
    const t = new TrendingSource({ halfLifeSeconds: 100, userGeo: (u) => geoOf[u]! });
    expect(t.name).toBe("trending-geo");
    t.observe(ev(0, 1, 0));
    t.observe(ev(1, 1, 1));
    t.observe(ev(2, 2, 2));
    t.observe(ev(3, 3, 3)); // unknown geo: not counted anywhere
    expect(t.candidates({ history: [], asOf: 10, budget: 5, geo: 0 }).candidates.map((c) => c.item)).toEqual([1]);
    expect(t.candidates({ history: [], asOf: 10, budget: 5, geo: 1 }).candidates.map((c) => c.item)).toEqual([2]);
    expect(t.candidates({ history: [], asOf: 10, budget: 5, geo: 5 }).candidates).toEqual([]);
    expect(t.candidates({ history: [], asOf: 10, budget: 5 }).candidates).toEqual([]);
  });

  it("matches a brute-force decayed count over many half-lives (rescaling path)", () => {
    const halfLife = 2;
    const events = randomEvents(11, 3000, 30, 50, 2000).sort((a, b) => a.timestamp - b.timestamp); // ~1000 half-lives
    const t = new TrendingSource({ halfLifeSeconds: halfLife });
    let fed = 0;
    for (let asOf = 1; asOf <= 2000; asOf += 97) {
      while (fed < events.length && events[fed]!.timestamp < asOf + 10) t.observe(events[fed++]!);
      const score = new Map<number, number>();
      for (const e of events) {
        if (e.timestamp >= asOf) break;
        score.set(e.item, (score.get(e.item) ?? 0) + Math.pow(2, -(asOf - e.timestamp) / halfLife));
      }
      const history = [0, 1];
      const expected = [...score.entries()].filter(([i, s]) => !history.includes(i) && s > 0).sort((a, b) => b[1] - a[1] || a[0] - b[0]);
      const got = t.candidates({ history, asOf, budget: 8 }).candidates;
      expect(got.map((c) => c.item)).toEqual(expected.slice(0, 8).map(([i]) => i));
      got.forEach((c, k) => expect(c.score / expected[k]![1]).toBeCloseTo(1, 9));
    }
  });

  it("rejects a bad half-life", () => {
    expect(() => new TrendingSource({ halfLifeSeconds: 0 })).toThrow(/halfLifeSeconds/);
  });
});
