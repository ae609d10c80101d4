import { describe, expect, it } from "vitest";
import { CoWatchSource } from "./co-watch.js";
import { randomEvents } from "./test-helpers.js";
import type { WatchEvent } from "./types.js";

const ev = (user: number, item: number, timestamp: number): WatchEvent => ({ user, item, timestamp });

describe("CoWatchSource", () => {
  it("counts pairs of watches at most `window` watches apart, per user, symmetric", () => {
    const s = new CoWatchSource({ window: 2 });
    [1, 2, 3, 4].forEach((item, k) => s.observe(ev(0, item, k)));
    s.observe(ev(1, 1, 10));
    s.observe(ev(1, 4, 11));
    s.observe(ev(1, 4, 12)); // a re-watch is not a pair with itself
    const at = 100;
    expect(s.coCountAt(1, 2, at)).toBe(1);
    expect(s.coCountAt(1, 3, at)).toBe(1);
    expect(s.coCountAt(2, 4, at)).toBe(1);
    expect(s.coCountAt(4, 1, at)).toBe(2); // user 0 three apart: no; user 1 twice (4 watched twice)
    expect(s.coCountAt(1, 4, at)).toBe(2);
    expect(s.coCountAt(4, 4, at)).toBe(0);
    expect(s.watchCountAt(4, at)).toBe(3);
  });

  it("respects maxGapSeconds", () => {
    const s = new CoWatchSource({ maxGapSeconds: 60 });
    s.observe(ev(0, 1, 0));
    s.observe(ev(0, 2, 30));
    s.observe(ev(0, 3, 1000));
    expect(s.coCountAt(1, 2, 2000)).toBe(1);
    expect(s.coCountAt(2, 3, 2000)).toBe(0);
  });

  it("reports the history item that contributed most", () => {
    const s = new CoWatchSource({ recencyDecay: 0.5 });
    let t = 0;
    // 10 (watched long ago by the requester) is co-watched with 20 by three users;
    // 11 (watched last) is co-watched with 21 by three users and with 20 by one.
    for (const u of [1, 2, 3]) [10, 20].forEach((i) => s.observe(ev(u, i, t++)));
    for (const u of [4, 5, 6]) [11, 21].forEach((i) => s.observe(ev(u, i, t++)));
    [11, 20].forEach((i) => s.observe(ev(7, i, t++)));
    const result = s.candidates({ history: [10, 11], asOf: t, budget: 5 });
    expect(result.source).toBe("co-watch");
    const byItem = new Map(result.candidates.map((c) => [c.item, c]));
    expect(byItem.get(21)!.because).toBe(11);
    // 20: from 10 (weight 0.5): 0.5 * 3 / sqrt(3 * 4); from 11 (weight 1): 1 / sqrt(4 * 4)
    expect(byItem.get(20)!.because).toBe(10);
    expect(byItem.get(20)!.score).toBeCloseTo((0.5 * 3) / Math.sqrt(12) + 1 / 4, 12);
    expect(byItem.has(10) || byItem.has(11)).toBe(false);
  });

  it("never uses events at or after the request time", () => {
    const past = [ev(0, 1, 1), ev(0, 2, 2), ev(1, 1, 3), ev(1, 3, 4)];
    const plain = new CoWatchSource();
    const leaky = new CoWatchSource();
    for (const e of past) {
      plain.observe(e);
      leaky.observe(e);
    }
    for (let u = 2; u < 6; u++) {
      leaky.observe(ev(u, 1, 10));
      leaky.observe(ev(u, 9, 10 + u)); // after the request time: must not make 9 a neighbour of 1
    }
    const request = { history: [1], asOf: 10, budget: 5 };
    expect(leaky.candidates(request)).toEqual(plain.candidates(request));
    expect(leaky.candidates({ ...request, asOf: 100 }).candidates[0]!.item).toBe(9);
  });

  it("matches a brute-force item-to-item score on a random stream", () => {
    const window = 3;
    const decay = 0.8;
    const events = randomEvents(5, 1500, 25, 40, 1000).sort((a, b) => a.timestamp - b.timestamp);
    for (const normalization of ["cosine", "conditional"] as const) {
      const s = new CoWatchSource({ window, recencyDecay: decay, historyLength: 4, normalization, maxNeighbors: Infinity });
      let fed = 0;
      for (let asOf = 50; asOf <= 1000; asOf += 150) {
        while (fed < events.length && events[fed]!.timestamp < asOf + 20) s.observe(events[fed++]!);
        // Brute force from the events before asOf.
        const pair = new Map<string, number>();
        const count = new Map<number, number>();
        const recent = new Map<number, number[]>();
        for (const e of events) {
          if (e.timestamp >= asOf) break;
          count.set(e.item, (count.get(e.item) ?? 0) + 1);
          const last = recent.get(e.user) ?? [];
          for (const o of last.slice(-window)) {
            if (o === e.item) continue;
            pair.set(`${e.item},${o}`, (pair.get(`${e.item},${o}`) ?? 0) + 1);
            pair.set(`${o},${e.item}`, (pair.get(`${o},${e.item}`) ?? 0) + 1);
          }
          recent.set(e.user, [...last, e.item]);
        }
        const history = [3, 7, 3, 12, 0, 5]; // 3 repeated: counted once, at its latest position
        const used = [5, 0, 12, 3]; // last 4 distinct, latest first
        const score = new Map<number, number>();
        const best = new Map<number, [number, number]>();
        used.forEach((h, k) => {
          for (let j = 0; j < 40; j++) {
            const c = pair.get(`${h},${j}`) ?? 0;
            if (c === 0) continue;
            const sim = normalization === "cosine" ? c / Math.sqrt(count.get(h)! * count.get(j)!) : c / count.get(h)!;
            const term = Math.pow(decay, k) * sim;
            score.set(j, (score.get(j) ?? 0) + term);
            if (term > (best.get(j)?.[0] ?? 0)) best.set(j, [term, h]);
          }
        });
        const expected = [...score.entries()]
          .filter(([j]) => !history.includes(j))
          .sort((a, b) => b[1] - a[1] || a[0] - b[0])
          .slice(0, 10);
        const got = s.candidates({ history, asOf, budget: 10 }).candidates;
        expect(got.map((c) => c.item)).toEqual(expected.map(([j]) => j));
        for (let a = 0; a < 40; a++) {
          for (let b = 0; b < 40; b++) expect(s.coCountAt(a, b, asOf)).toBe(pair.get(`${a},${b}`) ?? 0);
          // Each neighbour list stays sorted by count, which maxNeighbors relies on.
          const list = (s as unknown as { neighbors: ({ counts: Int32Array; size: number } | undefined)[] }).neighbors[a];
          for (let k = 1; k < (list?.size ?? 0); k++) expect(list!.counts[k - 1]!).toBeGreaterThanOrEqual(list!.counts[k]!);
        }
        got.forEach((c, k) => {
          expect(c.score).toBeCloseTo(expected[k]![1], 10);
          expect(c.because).toBe(best.get(c.item)![1]);
        });
      }
    }
  });

  it("scores only the most co-watched neighbours when maxNeighbors is set", () => {
    const s = new CoWatchSource({ maxNeighbors: 1 });
    let t = 0;
    for (const u of [1, 2, 3]) [1, 2].forEach((i) => s.observe(ev(u, i, t++)));
    s.observe(ev(4, 1, t++));
    s.observe(ev(4, 3, t++));
    expect(s.candidates({ history: [1], asOf: t, budget: 5 }).candidates.map((c) => c.item)).toEqual([2]);
  });

  it("rejects bad settings", () => {
    expect(() => new CoWatchSource({ window: 0 })).toThrow(/window/);
    expect(() => new CoWatchSource({ recencyDecay: 0 })).toThrow(/recencyDecay/);
    expect(() => new CoWatchSource({ historyLength: 0 })).toThrow(/historyLength/);
  });
});
