import type { Dataset } from "@recsys/data";
import { describe, expect, it } from "vitest";
import { contextFromDataset } from "./context.js";
import { QuantileNormalizer } from "./quantile.js";
import {
  EncodedBatch,
  encodedRow,
  encodeResolved,
  encodeUser,
  FeatureSpace,
  fitFeatureSpace,
  NUM_CONTINUOUS,
  resolveDatasetUser,
} from "./space.js";
import { queryTokens } from "./tokens.js";
import { Vocabulary } from "./vocabulary.js";

/** A tiny in-memory dataset: 3 users, 6 items, searches for user 0. */
function tinyDataset(): Dataset {
  // user 0: items 0,1,2,3,4 at t=100..500 (two at t=300); user 1: 1,2,5; user 2: 0 (one event).
  const user = Int32Array.from([0, 0, 0, 0, 0, 1, 1, 1, 2]);
  const item = Int32Array.from([0, 1, 2, 3, 4, 1, 2, 5, 0]);
  const timestamp = Float64Array.from([100, 200, 300, 300, 500, 150, 250, 350, 120]);
  const n = user.length;
  return {
    spec: "test:tiny",
    fingerprint: "0",
    users: {
      ids: ["u0", "u1", "u2"],
      age: Float32Array.from([25, NaN, 40]),
      gender: { codes: Int32Array.from([0, 1, -1]), values: ["F", "M"] },
      occupation: { codes: Int32Array.from([0, 1, 0]), values: ["artist", "doctor"] },
      geo: { codes: Int32Array.from([0, 0, 1]), values: ["100", "900"] },
    },
    items: {
      ids: ["10", "11", "12", "13", "14", "15"],
      titles: ["", "", "", "", "", ""],
      tagOffsets: new Int32Array(7),
      tagCodes: new Int32Array(0),
      tagValues: [],
      channel: { codes: new Int32Array(6).fill(-1), values: [] },
      uploadTimestamp: new Float64Array(6).fill(NaN),
      durationSeconds: new Float32Array(6).fill(NaN),
    },
    events: { user, item, timestamp, weight: new Float32Array(n).fill(1), userOffsets: Int32Array.from([0, 5, 8, 9]) },
    searches: {
      user: Int32Array.from([0, 0, 0]),
      timestamp: Float64Array.from([90, 250, 500]),
      query: ["Cat Videos", "funny cat", "dogs"],
      userOffsets: Int32Array.from([0, 3, 3, 3]),
    },
    impressions: {
      user: new Int32Array(0),
      item: new Int32Array(0),
      timestamp: new Float64Array(0),
      clicked: new Uint8Array(0),
      watchSeconds: new Float32Array(0),
      userOffsets: new Int32Array(4),
    },
    report: { counts: {}, warnings: [] },
  };
}

const ALL_ROWS = Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8]);

describe("Vocabulary", () => {
  it("maps unknown and rare tokens to the OOV bucket, known ones to stable ids", () => {
    const v = Vocabulary.fromCounts(
      new Map([
        ["b", 3],
        ["a", 2],
        ["rare", 1],
      ]),
      2,
    );
    expect(v.size).toBe(3);
    expect(v.id("a")).toBe(1);
    expect(v.id("b")).toBe(2);
    expect(v.id("rare")).toBe(Vocabulary.OOV);
    expect(v.id("never-seen")).toBe(Vocabulary.OOV);
    expect(v.id(undefined)).toBe(Vocabulary.OOV);
    expect(v.token(2)).toBe("b");
    expect(v.token(0)).toBeUndefined();
    const back = Vocabulary.fromJSON(JSON.parse(JSON.stringify(v.toJSON())));
    expect(back.id("b")).toBe(2);
    expect(back.id("rare")).toBe(Vocabulary.OOV);
  });

  it("loads in slices what fromJSON loads, and refuses a duplicate token the same way", async () => {
    const tokens = Array.from({ length: 120_000 }, (_, i) => `t${i}`);
    const sliced = await Vocabulary.fromJSONInSlices({ minCount: 2, tokens });
    const plain = Vocabulary.fromJSON({ minCount: 2, tokens });
    expect(sliced.size).toBe(plain.size);
    for (const t of ["t0", "t49999", "t50000", "t119999", "nope"]) expect(sliced.id(t), t).toBe(plain.id(t));
    expect(sliced.minCount).toBe(2);
    await expect(Vocabulary.fromJSONInSlices({ minCount: 1, tokens: [...tokens, "t70000"] })).rejects.toThrow('duplicate token "t70000"');
  });

  it("orders numeric ids numerically (as the dataset orders items)", () => {
    const v = Vocabulary.fromCounts(
      new Map([
        ["10", 1],
        ["9", 1],
        ["100", 1],
      ]),
      1,
    );
    expect(v.tokens).toEqual(["9", "10", "100"]);
  });
});

describe("QuantileNormalizer", () => {
  const values = Array.from({ length: 1000 }, (_, i) => Math.pow(i, 1.7));
  const q = QuantileNormalizer.fit(values, 100);

  it("maps monotonically into [0, 1)", () => {
    let prev = -Infinity;
    for (let x = -10; x < 2e5; x += 397) {
      const t = q.transform(x);
      expect(t).toBeGreaterThanOrEqual(0);
      expect(t).toBeLessThan(1);
      expect(t).toBeGreaterThanOrEqual(prev);
      prev = t;
    }
    expect(q.transform(-1)).toBe(0);
    expect(q.transform(1e12)).toBeLessThan(1);
  });

  it("follows the training CDF (the median maps to about 0.5)", () => {
    const median = values[500]!;
    expect(q.transform(median)).toBeCloseTo(0.5, 1);
  });

  it("appends x² and √x", () => {
    const out = new Float32Array(3);
    q.features(values[250]!, out, 0);
    const t = q.transform(values[250]!);
    expect(out[0]).toBeCloseTo(t, 6);
    expect(out[1]).toBeCloseTo(t * t, 6);
    expect(out[2]).toBeCloseTo(Math.sqrt(t), 6);
  });

  it("round-trips through JSON", () => {
    const back = QuantileNormalizer.fromJSON(JSON.parse(JSON.stringify(q.toJSON())));
    for (const x of [0, 5, 1234.5, 99999]) expect(back.transform(x)).toBe(q.transform(x));
  });

  it("handles ties and constant samples", () => {
    const c = QuantileNormalizer.fit([5, 5, 5, 5]);
    expect(c.transform(5)).toBeLessThan(1);
    expect(c.transform(4)).toBe(0);
    expect(Number.isNaN(c.transform(NaN))).toBe(true);
  });
});

describe("search tokens", () => {
  it("lower-cases unigrams and adds bigrams", () => {
    expect(queryTokens("Funny  CAT-videos!")).toEqual(["funny", "cat", "videos", "funny cat", "cat videos"]);
    expect(queryTokens("")).toEqual([]);
  });
});

describe("FeatureSpace and encoding", () => {
  const ds = tinyDataset();
  const space = fitFeatureSpace(ds, ALL_ROWS, { historyLength: 3, searchLength: 4, tokenMinCount: 1, geoMinCount: 1 });

  it("computes example age relative to the end of the training window, 0 at serving", () => {
    expect(space.windowEnd).toBe(500);
    const ctx = contextFromDataset(ds, 0, [0, 1], 300);
    const atTraining = encodeUser(space, ctx, 300);
    expect(atTraining.continuous[0]).toBeCloseTo(space.exampleAge.transform(200), 6);
    expect(atTraining.continuous[0]).toBeGreaterThan(0);
    const serving = encodeUser(space, ctx);
    expect(serving.continuous[0]).toBe(space.exampleAge.transform(0));
    expect(serving.continuous[0]).toBe(0); // 0 is the smallest training example age
    // A serving time after the window also gives age 0 (clamped).
    expect(encodeUser(space, ctx, 900).continuous[0]).toBe(0);
  });

  it("never puts the label or anything after it into the history window", () => {
    const rows = Int32Array.from([0, 1, 2, 3, 4]);
    const resolved = resolveDatasetUser(space, ds, 0, rows, 500);
    const batch = EncodedBatch.forSpace(space, 1);
    for (let t = 0; t < rows.length; t++) {
      encodeResolved(space, resolved, t, resolved.watchTimes[t]!, resolved.watchTimes[t]!, batch, 0);
      const enc = encodedRow(batch, 0);
      const label = resolved.watchIds[t]!;
      expect(enc.watchIds.length).toBe(Math.min(t, 3));
      expect(Array.from(enc.watchIds)).toEqual(Array.from(resolved.watchIds.subarray(Math.max(0, t - 3), t)));
      expect(Array.from(enc.watchIds)).not.toContain(label);
      for (let k = t; k < rows.length; k++) expect(Array.from(enc.watchIds)).not.toContain(resolved.watchIds[k]);
    }
    // Serving: watches after the request time are not visible either.
    const ctx = contextFromDataset(ds, 0, rows, 250);
    const enc = encodeUser(space, ctx);
    expect(Array.from(enc.watchIds)).toEqual([space.items.id("10"), space.items.id("11")]);
  });

  it("uses only searches strictly before the request, most recent tokens last", () => {
    const ctx = contextFromDataset(ds, 0, [0, 1, 2], 300);
    expect(ctx.searches.map((s) => s.query)).toEqual(["Cat Videos", "funny cat"]);
    const enc = encodeUser(space, ctx);
    // Tokens: cat, videos, cat videos | funny, cat, funny cat → last 4.
    expect(Array.from(enc.searchIds)).toEqual(["cat videos", "funny", "cat", "funny cat"].map((t) => space.tokens.id(t)));
    const early = encodeUser(space, contextFromDataset(ds, 0, [], 90));
    expect(early.searchIds.length).toBe(0);
  });

  it("maps unknown items, tokens and categories to OOV", () => {
    const enc = encodeUser(space, {
      watches: [
        { itemId: "999", timestamp: 1 },
        { itemId: "12", timestamp: 2 },
      ],
      searches: [{ query: "zebra", timestamp: 1 }],
      gender: "X",
      occupation: "astronaut",
      geo: "000",
      requestTime: 10,
    });
    expect(Array.from(enc.watchIds)).toEqual([Vocabulary.OOV, space.items.id("12")]);
    expect(Array.from(enc.searchIds)).toEqual([Vocabulary.OOV]);
    expect(Array.from(enc.categorical)).toEqual([0, 0, 0]);
    // Unknown age: three zeros and the missing flag.
    expect(Array.from(enc.continuous.subarray(3))).toEqual([0, 0, 0, 1]);
  });

  it("encodes a training example exactly as serving encodes the same context", () => {
    for (const u of [0, 1]) {
      const lo = ds.events.userOffsets[u]!;
      const hi = ds.events.userOffsets[u + 1]!;
      const rows = ALL_ROWS.subarray(lo, hi);
      const resolved = resolveDatasetUser(space, ds, u, rows, ds.events.timestamp[hi - 1]!);
      const batch = EncodedBatch.forSpace(space, 4);
      for (let t = 0; t < rows.length; t++) {
        const time = ds.events.timestamp[rows[t]!]!;
        encodeResolved(space, resolved, t, time, time, batch, 2); // the trainer's path
        const serving = encodeUser(space, contextFromDataset(ds, u, rows.subarray(0, t), time), time); // the service's path
        expect(encodedRow(batch, 2)).toEqual(serving);
      }
    }
  });

  it("round-trips the feature space through JSON", () => {
    const back = FeatureSpace.fromJSON(JSON.parse(JSON.stringify(space.toJSON())));
    const ctx = contextFromDataset(ds, 1, [5, 6], 350);
    expect(encodeUser(back, ctx, 350)).toEqual(encodeUser(space, ctx, 350));
    expect(encodeUser(back, ctx).continuous.length).toBe(NUM_CONTINUOUS);
  });

  it("builds vocabularies from training rows only", () => {
    // Without user 1's rows, item "15" is never watched and becomes OOV; u1's gender "M" too.
    const s = fitFeatureSpace(ds, Int32Array.from([0, 1, 2, 3, 4, 8]), { geoMinCount: 1 });
    expect(s.items.id("15")).toBe(Vocabulary.OOV);
    expect(s.gender.id("M")).toBe(Vocabulary.OOV);
    expect(s.gender.id("F")).not.toBe(Vocabulary.OOV);
  });
});
