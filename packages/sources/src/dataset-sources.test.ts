import { describe, expect, it } from "vitest";
import { buildStandardSources, createStandardSources, datasetRequest, timeOrder } from "./dataset-sources.js";
import { BruteForceIndex } from "./item-index.js";
import { tinyDataset } from "./test-helpers.js";

const DAY = 86_400;

describe("standard sources for a dataset", () => {
  const dataset = tinyDataset(
    [
      [0, 1, 10 * DAY],
      [0, 2, 10 * DAY + 60],
      [1, 1, 11 * DAY],
      [1, 3, 11 * DAY + 60],
      [2, 2, 12 * DAY],
      [2, 4, 12 * DAY],
    ],
    { numUsers: 4, numItems: 6, upload: [NaN, NaN, NaN, NaN, NaN, 12 * DAY], geo: ["100", "100", "200", undefined] },
  );

  it("orders rows by time, then row", () => {
    const rows = Int32Array.from({ length: dataset.events.user.length }, (_, r) => r);
    const order = timeOrder(dataset.events, rows);
    for (let k = 1; k < order.length; k++) {
      const a = dataset.events.timestamp[order[k - 1]!]!;
      const b = dataset.events.timestamp[order[k]!]!;
      expect(a < b || (a === b && order[k - 1]! < order[k]!)).toBe(true);
    }
  });

  it("builds co-watch, popular, trending, trending-geo and fresh (and dnn when given)", () => {
    const set = createStandardSources(dataset, {
      dnn: { index: new BruteForceIndex(new Float32Array(6), 1), userVector: () => Float32Array.from([1]) },
      budgets: { popular: 2 },
    });
    expect(set.names).toEqual(["dnn", "co-watch", "popular", "trending", "trending-geo", "fresh"]);
    expect(createStandardSources(dataset, { coWatch: false, trendingHalfLifeSeconds: false, freshWindowSeconds: false }).names).toEqual([
      "popular",
    ]);
  });

  it("adds the session source when given a session model", () => {
    const session = {
      index: new BruteForceIndex(Float32Array.from([0, 1, 2, 3, 4, 5]), 1),
      encoder: { maxLength: 5, encode: () => Float32Array.from([1]) },
    };
    const set = buildStandardSources(dataset, [0, 1, 2, 3], {
      session,
      coWatch: false,
      trendingHalfLifeSeconds: false,
      freshWindowSeconds: false,
    });
    expect(set.names).toEqual(["popular", "session"]);
    const run = set.run(datasetRequest(dataset, 3, [2], 13 * DAY, 2));
    expect(run.results.find((r) => r.source === "session")!.candidates.map((c) => c.item)).toEqual([5, 4]);
  });

  it("serves a user of the dataset from the rows it was built with", () => {
    const rows = Int32Array.from({ length: dataset.events.user.length }, (_, r) => r);
    const set = buildStandardSources(dataset, rows, { mergedSize: 4 });
    const request = datasetRequest(dataset, 3, [1], 13 * DAY, 5);
    expect(request.geo).toBeUndefined();
    const run = set.run(request);
    const byName = new Map(run.results.map((r) => [r.source, r.candidates.map((c) => c.item)]));
    expect(byName.get("co-watch")).toEqual([3, 2]); // 3 and 2 each co-watched once with 1: 1/sqrt(2*1) > 1/sqrt(2*2)
    expect(byName.get("popular")).toEqual([2, 3, 4]);
    expect(byName.get("fresh")).toEqual([5]); // uploaded on day 12, nobody watched it
    expect(byName.get("trending-geo")).toEqual([]); // user 3 has no geo
    const geoRequest = datasetRequest(dataset, 2, [], 13 * DAY, 5);
    expect(geoRequest.geo).toBe(dataset.users.geo.values.indexOf("200"));
    expect(
      set
        .run(geoRequest)
        .results.find((r) => r.source === "trending-geo")!
        .candidates.map((c) => c.item),
    ).toEqual([2, 4]);
    expect(run.merged).toHaveLength(4);
  });
});
