import { describe, expect, it } from "vitest";
import { RankedScores } from "./ranked-scores.js";

describe("RankedScores.entries", () => {
  it("lists every item best first, ties by item index, zero scores included", () => {
    const ranked = new RankedScores();
    ranked.add(5, 1);
    ranked.add(2, 3);
    ranked.add(9, 0);
    ranked.add(1, 1);
    ranked.add(5, 2.5);
    ranked.add(7, 1);
    const { items, scores } = ranked.entries();
    expect([...items]).toEqual([5, 2, 1, 7, 9]);
    expect([...scores]).toEqual([3.5, 3, 1, 1, 0]);
    for (const [p, item] of items.entries()) expect(ranked.get(item)).toBe(scores[p]);
  });
});
