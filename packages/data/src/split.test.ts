import { describe, expect, it } from "vitest";
import { datasetFromEvents } from "./in-memory.js";
import { lastoutSplit, trainingRows } from "./split.js";

describe("lastoutSplit", () => {
  const d = datasetFromEvents([
    { user: "a", item: "1", timestamp: 1 },
    { user: "a", item: "2", timestamp: 2 },
    { user: "a", item: "1", timestamp: 3 }, // duplicate: the first occurrence is kept
    { user: "a", item: "10", timestamp: 4 },
    { user: "a", item: "9", timestamp: 4 }, // same second: item id order puts 9 before 10
    { user: "b", item: "1", timestamp: 1 },
    { user: "b", item: "2", timestamp: 2 }, // only 2 events: training-only
  ]);
  const split = lastoutSplit(d.events, d.users.ids.length);
  const items = (rows: Int32Array): string[] => Array.from(rows, (r) => d.items.ids[d.events.item[r]!]!);

  it("keeps first occurrences and takes the last two kept events as val and test", () => {
    expect(split.duplicates).toBe(1);
    expect(split.evaluatedUsers).toBe(1);
    expect(items(split.keptRows)).toEqual(["1", "2", "9", "10", "1", "2"]);
    expect(d.items.ids[d.events.item[split.testRow[0]!]!]).toBe("10");
    expect(d.items.ids[d.events.item[split.valRow[0]!]!]).toBe("9");
    expect(split.testRow[1]).toBe(-1);
    expect(split.valRow[1]).toBe(-1);
  });

  it("drops held-out rows according to the holdout", () => {
    expect(items(trainingRows(split, "test"))).toEqual(["1", "2", "9", "1", "2"]);
    expect(items(trainingRows(split, "val"))).toEqual(["1", "2", "1", "2"]);
    expect(items(trainingRows(split, "none"))).toEqual(["1", "2", "9", "10", "1", "2"]);
  });
});
