import { describe, expect, it } from "vitest";
import { BruteForceIndex, BruteForceSubsetIndex } from "./item-index.js";
import { SessionSource, sessionReason, type SessionEncoder } from "./session.js";

// Items 0..5 on the unit circle pairs; the "model" maps a session to the vector of the item after
// its last one (a planted next-item rule), and counts what it was asked.
const vectors = [
  [1, 0],
  [0, 1],
  [-1, 0],
  [0, -1],
  [0.7, 0.7],
  [-0.7, 0.7],
];
const index = new BruteForceIndex(Float32Array.from(vectors.flat()), 2);

function encoder(seen: number[][]): SessionEncoder {
  return {
    maxLength: 3,
    encode(items) {
      seen.push(Array.from(items));
      const last = items[items.length - 1]!;
      return Float32Array.from(vectors[(last + 1) % vectors.length]!);
    },
    itemVector: (item) => (item < vectors.length ? Float32Array.from(vectors[item]!) : null),
  };
}

describe("SessionSource", () => {
  it("nominates the items nearest the state after the most recent items, skipping the history", () => {
    const seen: number[][] = [];
    const source = new SessionSource({ index, encoder: encoder(seen) });
    const result = source.candidates({ history: [5, 3, 2, 0], asOf: 100, budget: 2 });
    expect(seen).toEqual([[3, 2, 0]]); // only the last maxLength items
    expect(result.source).toBe("session");
    // state = vector of item 1 = [0, 1]: item 1 (1.0), then items 4/5 (0.7) minus history 5.
    expect(result.candidates.map((c) => c.item)).toEqual([1, 4]);
    expect(result.candidates[0]!.score).toBeCloseTo(1);
  });

  it("serves an anonymous session (no user) and answers nothing for an empty one", () => {
    const source = new SessionSource({ index, encoder: encoder([]) });
    expect(source.candidates({ history: [3], asOf: 1, budget: 1 }).candidates.map((c) => c.item)).toEqual([4]);
    expect(source.candidates({ history: [], asOf: 1, budget: 5 }).candidates).toEqual([]);
  });

  it("gives as 'because' the recent session item closest to the candidate, and honours exclude and uploads", () => {
    const source = new SessionSource({ index, encoder: encoder([]), uploadTimestamp: [0, 0, 0, 0, 50, 0] });
    const result = source.candidates({ history: [2, 3, 0], asOf: 10, budget: 3, exclude: new Set([1]) });
    // state [0, 1]; item 1 excluded, item 4 not uploaded yet: item 5 (0.7), then... item 5 is nearest to item 2 ([-1, 0]) among 2, 3, 0.
    expect(result.candidates[0]).toMatchObject({ item: 5, because: 2 });
    expect(result.candidates.some((c) => c.item === 4 || c.item === 1)).toBe(false);
  });

  it("over a subset of the rows: nominates only kept rows (in model rows), reads any history item, keeps 'because'", () => {
    // Row 1, the best match of state [0, 1], is left out (as an item never trained as a target).
    const subset = new BruteForceSubsetIndex(Float32Array.from(vectors.flat()), 2, [0, 2, 3, 4, 5]);
    const seen: number[][] = [];
    const source = new SessionSource({ index: subset, encoder: encoder(seen) });
    const result = source.candidates({ history: [2, 3, 0], asOf: 10, budget: 6 });
    expect(seen).toEqual([[2, 3, 0]]);
    expect(result.candidates.map((c) => c.item)).toEqual([4, 5]); // 0, 2, 3 watched; 1 not a candidate
    expect(result.candidates[1]).toMatchObject({ item: 5, because: 2 });
    expect(result.candidates[0]!.score).toBeCloseTo(0.7);
    // Exclusion is in model rows too.
    expect(source.candidates({ history: [2, 3, 0], asOf: 10, budget: 6, exclude: new Set([4]) }).candidates.map((c) => c.item)).toEqual([
      5,
    ]);
  });

  it("words its reason", () => {
    expect(sessionReason("Toy Story (1995)")).toBe("Because you just watched Toy Story (1995)");
    expect(sessionReason(undefined)).toBe("Picked for this session");
  });
});
