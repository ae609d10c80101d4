import { datasetFromEvents } from "@recsys/data";
import { Device } from "@recsys/gen";
import { describe, expect, it } from "vitest";
import { Catalogue } from "./catalogue.js";
import { contextFromState, itemFilter } from "./context.js";
import { Exclusion } from "./exclusion.js";

const dataset = datasetFromEvents([{ user: "u", item: "1", timestamp: 1 }], {
  items: [
    { id: "1", tags: ["comedy"], channel: "a", uploadTimestamp: 100, durationSeconds: 60 },
    { id: "2", tags: ["drama", "comedy"], channel: "b", uploadTimestamp: 200, durationSeconds: 600 },
    { id: "3" },
  ],
});
const catalogue = new Catalogue(dataset);
const at = (id: string): number => catalogue.indexOf(id)!;

describe("itemFilter", () => {
  const keep = (filters: Parameters<typeof itemFilter>[1]) => ["1", "2", "3"].filter((id) => itemFilter(catalogue, filters)!(at(id)));
  const none = { includeTags: [], excludeTags: [], channels: [] } as unknown as NonNullable<Parameters<typeof itemFilter>[1]>;
  it("keeps what every filter allows; unknown metadata passes no filter that needs it", () => {
    expect(itemFilter(catalogue, undefined)).toBeUndefined();
    expect(keep({ ...none, includeTags: ["comedy"] })).toEqual(["1", "2"]);
    expect(keep({ ...none, excludeTags: ["drama"] })).toEqual(["1", "3"]);
    expect(keep({ ...none, channels: ["b"] })).toEqual(["2"]);
    expect(keep({ ...none, uploadedAfter: { seconds: 150n, nanos: 0 } as never })).toEqual(["2"]);
    expect(keep({ ...none, maxDurationSeconds: 100 })).toEqual(["1"]);
  });
});

describe("Exclusion", () => {
  it("is the union of its sets and the predicate", () => {
    const e = new Exclusion([new Set([0]), new Set([2])], (i) => i === 3, 5);
    expect([0, 1, 2, 3, 4].map((i) => e.has(i))).toEqual([true, false, true, true, false]);
    expect([...e]).toEqual([0, 2, 3]);
    expect(e.size).toBe(3);
  });
});

describe("contextFromState", () => {
  it("builds the downstream context from the stored user, most recent history kept", () => {
    const watches = Array.from({ length: 1200 }, (_, k) => ({ userId: "u", itemId: `${k}`, timestamp: 1000 + k }));
    const ctx = contextFromState(
      "u",
      {
        userId: "u",
        profile: { age: 31, gender: "F", geo: "94", device: "mobile" },
        watches,
        searches: [],
        impressions: [],
        impressionCounts: new Map(),
        hasEarlierWatches: false,
      },
      5000,
    );
    expect(ctx.watchHistory).toHaveLength(1000);
    expect(ctx.watchHistory.at(-1)!.itemId).toBe("1199");
    expect(ctx.demographics?.age).toBe(31);
    expect(ctx.geo).toBe("94");
    expect(ctx.device).toBe(Device.MOBILE);
    expect(Number(ctx.requestTime!.seconds)).toBe(5000);
    const unknown = contextFromState("x", undefined, 5000);
    expect(unknown.userId).toBe("x");
    expect(unknown.watchHistory).toEqual([]);
  });
});
