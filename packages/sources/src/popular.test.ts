import { describe, expect, it } from "vitest";
import { PopularSource } from "./popular.js";
import { randomEvents } from "./test-helpers.js";
import type { WatchEvent } from "./types.js";

const ev = (user: number, item: number, timestamp: number): WatchEvent => ({ user, item, timestamp });

describe("PopularSource", () => {
  it("ranks by all-time count, ties by item index, skipping history and excluded items", () => {
    const p = new PopularSource();
    for (const e of [ev(0, 5, 1), ev(1, 5, 2), ev(2, 5, 3), ev(0, 3, 4), ev(1, 3, 5), ev(0, 9, 6), ev(1, 1, 7), ev(2, 2, 8)]) p.observe(e);
    const all = p.candidates({ history: [], asOf: 100, budget: 10 });
    expect(all.source).toBe("popular");
    expect(all.candidates).toEqual([
      { item: 5, score: 3 },
      { item: 3, score: 2 },
      { item: 1, score: 1 },
      { item: 2, score: 1 },
      { item: 9, score: 1 },
    ]);
    const some = p.candidates({ history: [3, 1], asOf: 100, budget: 2, exclude: new Set([2]) });
    expect(some.candidates.map((c) => c.item)).toEqual([5, 9]);
  });

  it("never uses events at or after the request time", () => {
    const p = new PopularSource();
    p.observe(ev(0, 1, 10));
    p.observe(ev(1, 2, 20)); // at the query time: invisible
    p.observe(ev(2, 2, 30)); // after it: invisible
    expect(p.candidates({ history: [], asOf: 20, budget: 5 }).candidates).toEqual([{ item: 1, score: 1 }]);
    expect(p.countAt(2, 20)).toBe(0);
    expect(p.candidates({ history: [], asOf: 30, budget: 5 }).candidates).toEqual([
      { item: 1, score: 1 },
      { item: 2, score: 1 },
    ]);
    expect(p.countAt(2, 31)).toBe(2);
  });

  it("matches a brute-force count at every step of a random stream", () => {
    const events = randomEvents(3, 2000, 40, 60, 1000).sort((a, b) => a.timestamp - b.timestamp);
    const p = new PopularSource({ numItems: 10 }); // grows past the hint
    const counts = new Map<number, number>();
    let counted = 0;
    let fed = 0;
    for (let t = 0; t <= 1000; t += 37) {
      while (counted < events.length && events[counted]!.timestamp < t) {
        const e = events[counted++]!;
        counts.set(e.item, (counts.get(e.item) ?? 0) + 1);
      }
      // Feed up to 50 s ahead of t: the source must not see what is not before t yet.
      while (fed < events.length && events[fed]!.timestamp < t + 50) p.observe(events[fed++]!);
      const history = [1, 2, 3];
      const expected = [...counts.entries()]
        .filter(([i]) => !history.includes(i))
        .sort((a, b) => b[1] - a[1] || a[0] - b[0])
        .slice(0, 15)
        .map(([item, score]) => ({ item, score }));
      expect(p.candidates({ history, asOf: t, budget: 15 }).candidates).toEqual(expected);
    }
  });
});
