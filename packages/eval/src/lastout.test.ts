import { datasetFromEvents, lastoutSplit, type UserScorer } from "@recsys/data";
import { describe, expect, it } from "vitest";
import { evaluateLastout, historyRows } from "./lastout.js";
import { idTieOrder, shuffledTieOrder } from "./tie-order.js";

/** Items "1".."6" (indices 0..5) with fixed scores: 1→5, 2→1, 3→3, 4→3, 5→3, 6→0. */
const SCORES = [5, 1, 3, 3, 3, 0];
function fixed(name = "fixed", scores: readonly number[] = SCORES): UserScorer {
  return { name, score: (_u, _h, _t, out) => out.set(scores) };
}

// a: 1,2,3,5 → test 5, val 3.   b: 4,6,1 → test 1, val 6.   c: 2 events, training-only.
// d: 2,2(dup),3,6 with 3 and 6 in the same second → test 6, val 3.
const dataset = datasetFromEvents(
  [
    { user: "a", item: "1", timestamp: 10 },
    { user: "a", item: "2", timestamp: 20 },
    { user: "a", item: "3", timestamp: 30 },
    { user: "a", item: "5", timestamp: 40 },
    { user: "b", item: "4", timestamp: 1 },
    { user: "b", item: "6", timestamp: 2 },
    { user: "b", item: "1", timestamp: 3 },
    { user: "c", item: "1", timestamp: 1 },
    { user: "c", item: "2", timestamp: 2 },
    { user: "d", item: "2", timestamp: 1 },
    { user: "d", item: "2", timestamp: 2 },
    { user: "d", item: "6", timestamp: 3 },
    { user: "d", item: "3", timestamp: 3 },
  ],
  { items: [{ id: "4" }] },
);
const split = lastoutSplit(dataset.events, dataset.users.ids.length);

describe("evaluateLastout", () => {
  it("computes ranks with history removal and the item-id tie-break (target test)", () => {
    // Ranks: a → target 5 (3), history {1,2,3}: item 4 ties and has a lower id → 1.
    //        b → target 1 (5), history {4,6} → 0.
    //        d → target 6 (0), history {2,3}: 1,4,5 score higher → 3.
    const r = evaluateLastout({ dataset, split, scorers: [fixed()], target: "test", ks: [1, 5], coverageK: 2 }).results[0]!;
    expect(r.users).toBe(3);
    expect(r.metrics["hr@1"]).toBeCloseTo(1 / 3, 12);
    expect(r.metrics["ndcg@1"]).toBeCloseTo(1 / 3, 12);
    expect(r.metrics["hr@5"]).toBeCloseTo(1, 12);
    expect(r.metrics["ndcg@5"]).toBeCloseTo((1 / Math.log2(3) + 1 + 1 / Math.log2(5)) / 3, 12);
    expect(r.metrics["mrr"]).toBeCloseTo((1 / 2 + 1 + 1 / 4) / 3, 12);
    // Top-2: a {4,5}; b {1,3}; d {1,4} → {1,3,4,5} of 6 items.
    expect(r.metrics["coverage@2"]).toBeCloseTo(4 / 6, 12);
  });

  it("uses only training events as history for target val", () => {
    // a → target 3 (3), history {1,2}: nothing remaining ranks above → 0.
    // b → target 6 (0), history {4}: 1,2,3,5 score higher → 4 (the test item 1 stays rankable).
    // d → target 3 (3), history {2}: 1 higher → 1.
    const r = evaluateLastout({ dataset, split, scorers: [fixed()], target: "val", ks: [1, 2], coverageK: 1 }).results[0]!;
    expect(r.users).toBe(3);
    expect(r.metrics["hr@1"]).toBeCloseTo(1 / 3, 12);
    expect(r.metrics["hr@2"]).toBeCloseTo(2 / 3, 12);
    expect(r.metrics["mrr"]).toBeCloseTo((1 + 1 / 5 + 1 / 2) / 3, 12);
    // Top-1: a → 3, b → 1, d → 1.
    expect(r.metrics["coverage@1"]).toBeCloseTo(2 / 6, 12);
  });

  it("passes the visible history and the time of the last visible event (never the target's) to the scorer", () => {
    const seen: { user: string; history: string[]; asOf: number }[] = [];
    const spy: UserScorer = {
      name: "spy",
      score(u, rows, asOf) {
        seen.push({ user: dataset.users.ids[u]!, history: Array.from(rows, (r) => dataset.items.ids[dataset.events.item[r]!]!), asOf });
      },
    };
    evaluateLastout({ dataset, split, scorers: [spy], target: "test" });
    expect(seen).toEqual([
      { user: "a", history: ["1", "2", "3"], asOf: 30 },
      { user: "b", history: ["4", "6"], asOf: 2 },
      { user: "d", history: ["2", "3"], asOf: 3 },
    ]);
    seen.length = 0;
    evaluateLastout({ dataset, split, scorers: [spy], target: "val" });
    expect(seen.map((s) => s.history)).toEqual([["1", "2"], ["4"], ["2"]]);
    expect(seen.map((s) => s.asOf)).toEqual([20, 1, 1]);
    expect(historyRows(split, 2, "test")).toBeNull();
  });

  it("rejects non-finite scores", () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const scores = [...SCORES];
      scores[5] = bad;
      expect(() => evaluateLastout({ dataset, split, scorers: [fixed("bad", scores)], target: "test" })).toThrow(
        new RegExp(`scorer "bad" returned a non-finite score \\(${String(bad)}\\) for item "6"`),
      );
    }
  });

  it.each(["lastout", "lastout-shuffled"])("matches a brute-force full sort on random data with many ties (%s)", (protocol) => {
    let state = 12345;
    const rand = (): number => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 4294967296;
    const events = [];
    for (let u = 0; u < 60; u++)
      for (let k = 0; k < 2 + Math.floor(rand() * 12); k++)
        events.push({ user: `u${u}`, item: String(1 + Math.floor(rand() * 40)), timestamp: Math.floor(rand() * 20) });
    const d = datasetFromEvents(events);
    const s = lastoutSplit(d.events, d.users.ids.length);
    const n = d.items.ids.length;
    const table = Array.from({ length: d.users.ids.length }, () => Array.from({ length: n }, () => Math.floor(rand() * 4)));
    const scorer: UserScorer = { name: "random", score: (u, _h, _t, out) => out.set(table[u]!) };
    const ks = [1, 3, 10];
    const tieOrder = protocol === "lastout" ? idTieOrder(n) : shuffledTieOrder(n, 7);
    const tie = tieOrder.rank;
    const got = evaluateLastout({ dataset: d, split: s, scorers: [scorer], target: "test", ks, coverageK: 3, tieOrder }).results[0]!;
    const ranks: number[] = [];
    const topCounts = new Array<number>(n).fill(0);

    const hits = ks.map(() => 0);
    const ndcg = ks.map(() => 0);
    let mrr = 0;
    let users = 0;
    const covered = new Set<number>();
    for (let u = 0; u < d.users.ids.length; u++) {
      const h = historyRows(s, u, "test");
      if (h === null) continue;
      users++;
      const excluded = new Set(Array.from(h, (r) => d.events.item[r]!));
      const ranking = [...Array(n).keys()]
        .filter((i) => !excluded.has(i))
        .sort((a, b) => table[u]![b]! - table[u]![a]! || tie[a]! - tie[b]!);
      const rank = ranking.indexOf(d.events.item[s.testRow[u]!]!);
      ranks.push(rank);
      ks.forEach((k, j) => {
        if (rank < k) {
          hits[j]!++;
          ndcg[j]! += 1 / Math.log2(rank + 2);
        }
      });
      mrr += 1 / (rank + 1);
      ranking.slice(0, 3).forEach((i) => {
        covered.add(i);
        topCounts[i]!++;
      });
    }
    expect(got.users).toBe(users);
    ks.forEach((k, j) => {
      expect(got.metrics[`hr@${k}`]).toBeCloseTo(hits[j]! / users, 12);
      expect(got.metrics[`ndcg@${k}`]).toBeCloseTo(ndcg[j]! / users, 12);
    });
    expect(got.metrics["mrr"]).toBeCloseTo(mrr / users, 12);
    expect(got.metrics["coverage@3"]).toBeCloseTo(covered.size / n, 12);
    expect(Array.from(got.ranks)).toEqual(ranks);
    expect(Array.from(got.topCounts)).toEqual(topCounts);
  });
});
