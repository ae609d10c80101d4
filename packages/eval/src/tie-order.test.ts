import { datasetFromEvents, lastoutSplit } from "@recsys/data";
import { describe, expect, it } from "vitest";
import { nextIdScorer } from "./baselines.js";
import { evaluateLastout } from "./lastout.js";
import { idTieOrder, shuffledTieOrder, tiedEvents, withTieOrder } from "./tie-order.js";

// u: items 1, then 2,3,4 in one second; v: 5,6,7 in one second.
const dataset = datasetFromEvents([
  { user: "u", item: "1", timestamp: 5 },
  { user: "u", item: "4", timestamp: 9 },
  { user: "u", item: "2", timestamp: 9 },
  { user: "u", item: "3", timestamp: 9 },
  { user: "v", item: "7", timestamp: 1 },
  { user: "v", item: "5", timestamp: 1 },
  { user: "v", item: "6", timestamp: 1 },
  { user: "v", item: "1", timestamp: 2 },
]);
const items = (d: typeof dataset): string[][] =>
  d.users.ids.map((_, u) =>
    Array.from(d.events.item.subarray(d.events.userOffsets[u]!, d.events.userOffsets[u + 1]!), (i) => d.items.ids[i]!),
  );

describe("tie orders", () => {
  it("a seeded permutation of the catalogue, the same for the same seed", () => {
    const a = shuffledTieOrder(1000, 3);
    expect(Array.from(a.rank).sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(Array.from(shuffledTieOrder(1000, 3).rank)).toEqual(Array.from(a.rank));
    expect(Array.from(shuffledTieOrder(1000, 4).rank)).not.toEqual(Array.from(a.rank));
    expect(Array.from(idTieOrder(4).rank)).toEqual([0, 1, 2, 3]);
  });

  it("re-sorts only same-timestamp events, by the permutation, and renames the fingerprint", () => {
    expect(withTieOrder(dataset, idTieOrder(7))).toBe(dataset);
    expect(items(dataset)).toEqual([
      ["1", "2", "3", "4"],
      ["5", "6", "7", "1"],
    ]);
    const order = shuffledTieOrder(7, 11);
    const shuffled = withTieOrder(dataset, order);
    expect(shuffled.fingerprint).not.toBe(dataset.fingerprint);
    const byRank = (ids: string[]): string[] =>
      [...ids].sort((a, b) => order.rank[dataset.items.ids.indexOf(a)]! - order.rank[dataset.items.ids.indexOf(b)]!);
    expect(items(shuffled)).toEqual([
      ["1", ...byRank(["2", "3", "4"])],
      [...byRank(["5", "6", "7"]), "1"],
    ]);
    expect(Array.from(shuffled.events.timestamp)).toEqual([5, 9, 9, 9, 1, 1, 1, 2]);
    expect(tiedEvents(dataset.events)).toBe(6);
  });

  it("next-id scores the items after the last visible one, nearest first, and hits the id-ordered bursts", () => {
    const out = new Float32Array(7);
    const split = lastoutSplit(dataset.events, 2);
    // u's visible history for the test target: 1, 2, 3 (item indices 0..2): 4 scores highest, then 5, 6, 7.
    nextIdScorer(dataset).score(0, split.keptRows.subarray(0, 3), 0, out);
    expect(Array.from(out)).toEqual([0, 0, 0, 7, 6, 5, 4]);
    // Under lastout, u's test item is 4, the next id after the validation item 3: a hit at rank 0.
    const r = evaluateLastout({ dataset, split, scorers: [nextIdScorer(dataset)], target: "test", ks: [1] }).results[0]!;
    expect(r.ranks[0]).toBe(0);
  });
});
