import { datasetFromEvents, lastoutSplit, trainingRows, type Dataset } from "@recsys/data";
import { describe, expect, it } from "vitest";
import { itemKnnScorer, mostPopularScorer } from "./baselines.js";
import { evaluateLastout } from "./lastout.js";

function scoresOf(
  d: Dataset,
  scorer: { score: (u: number, h: Int32Array, t: number, out: Float32Array) => void },
  history: number[] = [],
): number[] {
  const out = new Float32Array(d.items.ids.length);
  scorer.score(0, Int32Array.from(history), 0, out);
  return Array.from(out);
}

describe("baselines", () => {
  // Item "9" only ever appears as a test event, item "8" only as a validation event.
  const d = datasetFromEvents([
    { user: "a", item: "1", timestamp: 1 },
    { user: "a", item: "2", timestamp: 2 },
    { user: "a", item: "8", timestamp: 3 },
    { user: "a", item: "9", timestamp: 4 },
    { user: "b", item: "1", timestamp: 1 },
    { user: "b", item: "2", timestamp: 2 },
    { user: "b", item: "3", timestamp: 3 },
    { user: "b", item: "9", timestamp: 4 },
    { user: "c", item: "7", timestamp: 1 }, // a training-only user (2 events)
    { user: "c", item: "3", timestamp: 2 },
  ]);
  const split = lastoutSplit(d.events, d.users.ids.length);
  const index = (id: string): number => d.items.ids.indexOf(id);

  it("most-popular counts only the allowed training rows", () => {
    const forTest = scoresOf(d, mostPopularScorer(d, trainingRows(split, "test")));
    expect(forTest).toEqual([2, 2, 2, 1, 1, 0]); // items 1,2,3,7,8,9 — item 9 only has test events
    const forVal = scoresOf(d, mostPopularScorer(d, trainingRows(split, "val")));
    expect(forVal[index("8")]).toBe(0);
    expect(forVal[index("3")]).toBe(1); // b's 3 is its validation event
  });

  it("item-kNN sums cosine similarities of the binary training matrix", () => {
    // Training (target test): a {1,2,8}, b {1,2,3}, c {7,3}. Degrees: 1→2, 2→2, 3→2, 7→1, 8→1.
    const knn = itemKnnScorer(d, trainingRows(split, "test"));
    const s = scoresOf(d, knn, [0]); // history: a's row 0 = item 1
    expect(s[index("2")]).toBeCloseTo(2 / 2, 6);
    expect(s[index("3")]).toBeCloseTo(1 / 2, 6);
    expect(s[index("8")]).toBeCloseTo(1 / Math.sqrt(2), 6);
    expect(s[index("7")]).toBe(0); // 7 is only linked to 3
    expect(s[index("9")]).toBe(0); // 9 only has test events
    const both = scoresOf(d, knn, [0, 1]); // history items 1 and 2
    expect(both[index("3")]).toBeCloseTo(1 / 2 + 1 / 2, 6);
    expect(both[index("8")]).toBeCloseTo(2 / Math.sqrt(2), 6);
    expect(knn.maxNeighbors).toBe(Infinity);
  });

  it("item-kNN never links an item through a held-out event", () => {
    // With target test, a's 8→9 and b's 3→9 test events must not create similarities.
    const knn = itemKnnScorer(d, trainingRows(split, "test"));
    const row8 = d.events.userOffsets[0]! + 2;
    expect(scoresOf(d, knn, [row8])[index("9")]).toBe(0);
    // With target val, a's validation item 8 is unseen: no neighbours at all.
    const val = itemKnnScorer(d, trainingRows(split, "val"));
    expect(scoresOf(d, val, [row8]).every((x) => x === 0)).toBe(true);
  });

  it("caps neighbour lists by similarity, ties by item id", () => {
    const knn = itemKnnScorer(d, trainingRows(split, "test"), { maxNeighbors: 1 });
    const s = scoresOf(d, knn, [0]); // item 1's neighbours: 2 (1.0), 8 (0.71), 3 (0.5) → keep 2
    expect(s.filter((x) => x > 0)).toEqual([1]);
    expect(s[index("2")]).toBeCloseTo(1, 6);
  });

  it("scores a leak-free evaluation: the test-only item is ranked from popularity 0", () => {
    const res = evaluateLastout({
      dataset: d,
      split,
      scorers: [mostPopularScorer(d, trainingRows(split, "test"))],
      target: "test",
      ks: [1],
    });
    // a: history {1,2,8}, remaining 3 (2), 7 (1), 9 (0) → rank 2; b: history {1,2,3}, remaining 7 (1), 8 (1), 9 (0) → rank 2.
    expect(res.results[0]!.metrics["hr@1"]).toBe(0);
    expect(res.results[0]!.metrics["mrr"]).toBeCloseTo(1 / 3, 12);
  });
});
