import { lastoutSplit, trainingRows } from "@recsys/data";
import { describe, expect, it } from "vitest";
import { createStandardSources, datasetRequest, observeRows } from "./dataset-sources.js";
import { replayExamples } from "./replay.js";
import { randomEvents, tinyDataset } from "./test-helpers.js";

const HOUR = 3600;

function randomDataset(seed: number) {
  const events = randomEvents(seed, 600, 20, 40, 200 * HOUR).map((e) => [e.user, e.item, Math.floor(e.timestamp / 600) * 600] as const);
  const upload = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? i * 5 * HOUR : Number.NaN));
  const geo = Array.from({ length: 20 }, (_, u) => (u % 4 === 0 ? undefined : String(u % 3)));
  return tinyDataset(events, { numUsers: 20, numItems: 40, upload, geo });
}

const options = { trendingHalfLifeSeconds: 24 * HOUR, freshWindowSeconds: 50 * HOUR, mergedSize: 15 } as const;

describe("replayExamples", () => {
  it("gives each example exactly what sources rebuilt from the events strictly before it give", () => {
    const dataset = randomDataset(1);
    const split = lastoutSplit(dataset.events, dataset.users.ids.length);
    const rows = trainingRows(split, "test");
    let examples = 0;
    for (const ex of replayExamples(dataset, createStandardSources(dataset, options), { rows, budget: 8 })) {
      examples++;
      // Reference: new sources fed only with the rows before the example's time.
      const before = Array.from(rows).filter((r) => dataset.events.timestamp[r]! < ex.asOf);
      const reference = createStandardSources(dataset, options);
      observeRows(reference, dataset, before);
      // History: the user's earlier rows (same-second earlier rows included).
      const history = Array.from(rows)
        .filter((r) => dataset.events.user[r] === ex.user && r < ex.row)
        .map((r) => dataset.events.item[r]!);
      expect(Array.from(ex.history)).toEqual(history);
      const run = reference.run(datasetRequest(dataset, ex.user, history, ex.asOf, 8));
      expect(ex.results).toEqual(run.results);
      expect(ex.candidates).toEqual(run.merged);
      expect(ex.positive).toBe(dataset.events.item[ex.row]);
      expect(ex.positiveIndex).toBe(run.merged.findIndex((c) => c.item === ex.positive));
      for (const c of ex.candidates) expect(history.includes(c.item)).toBe(false);
    }
    // Every training row except each user's first one is an example.
    const users = new Set(Array.from(rows, (r) => dataset.events.user[r]!));
    expect(examples).toBe(rows.length - users.size);
  });

  it("caps examples per user (their last ones) and skips short histories", () => {
    const dataset = randomDataset(2);
    const split = lastoutSplit(dataset.events, dataset.users.ids.length);
    const rows = trainingRows(split, "test");
    const got = [
      ...replayExamples(dataset, createStandardSources(dataset, options), { rows, budget: 5, maxExamplesPerUser: 3, minHistory: 2 }),
    ];
    const perUser = new Map<number, number[]>();
    for (const ex of got) perUser.set(ex.user, [...(perUser.get(ex.user) ?? []), ex.row]);
    for (let u = 0; u < dataset.users.ids.length; u++) {
      const own = Array.from(rows).filter((r) => dataset.events.user[r] === u);
      const expected = own.slice(2).slice(-3);
      expect((perUser.get(u) ?? []).sort((a, b) => a - b)).toEqual(expected);
    }
    const used = createStandardSources(dataset, options);
    used.run({ history: [], asOf: 0, budget: 1 });
    expect(() => replayExamples(dataset, used, { rows, budget: 5 }).next()).toThrow(/new source set/);
    // Global time order.
    for (let k = 1; k < got.length; k++) expect(got[k]!.asOf).toBeGreaterThanOrEqual(got[k - 1]!.asOf);
  });
});
