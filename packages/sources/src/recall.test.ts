import { lastoutSplit, trainingRows } from "@recsys/data";
import { describe, expect, it } from "vitest";
import { createStandardSources, datasetRequest, observeRows } from "./dataset-sources.js";
import { mergeCandidates } from "./merge.js";
import { candidateRecall } from "./recall.js";
import { randomEvents, tinyDataset } from "./test-helpers.js";

const HOUR = 3600;

describe("candidateRecall", () => {
  const events = randomEvents(8, 700, 25, 40, 300 * HOUR).map((e) => [e.user, e.item, Math.floor(e.timestamp / 900) * 900] as const);
  const dataset = tinyDataset(events, { numUsers: 25, numItems: 40, upload: Array.from({ length: 40 }, (_, i) => i * 7 * HOUR) });
  const options = { trendingHalfLifeSeconds: 48 * HOUR, freshWindowSeconds: 80 * HOUR, mergedSize: 10 } as const;
  const budgets = [2, 5];
  const sizes = [3, 8];

  for (const mode of ["replay", "static"] as const) {
    it(`matches a from-scratch computation (${mode})`, () => {
      const report = candidateRecall(dataset, {
        createSources: () => createStandardSources(dataset, options),
        budgets,
        mergedSizes: sizes,
        mode,
      });
      const split = lastoutSplit(dataset.events, dataset.users.ids.length);
      const fed = Array.from(trainingRows(split, "test"));
      const lastFed = Math.max(...fed.map((r) => dataset.events.timestamp[r]!));
      const hits = new Map<string, number>();
      const hit = (key: string): void => void hits.set(key, (hits.get(key) ?? 0) + 1);
      let users = 0;
      for (let u = 0; u < dataset.users.ids.length; u++) {
        const row = split.testRow[u]!;
        if (row < 0) continue;
        users++;
        const t = dataset.events.timestamp[row]!;
        const asOf = mode === "static" ? lastFed + 1 : t;
        const sources = createStandardSources(dataset, options);
        observeRows(
          sources,
          dataset,
          fed.filter((r) => dataset.events.timestamp[r]! < asOf),
        );
        const history: number[] = [];
        for (let k = split.keptOffsets[u]!; k < split.keptOffsets[u + 1]!; k++)
          if (split.keptRows[k] !== row) history.push(dataset.events.item[split.keptRows[k]!]!);
        const positive = dataset.events.item[row]!;
        for (const b of budgets) {
          const run = sources.run(datasetRequest(dataset, u, history, asOf, b), { mergedSize: 0 });
          for (const r of run.results) if (r.candidates.some((c) => c.item === positive)) hit(`${r.source}/${b}`);
          for (const size of sizes) {
            if (mergeCandidates(run.results, { size, watched: new Set(history) }).some((c) => c.item === positive))
              hit(`merged/${b}/${size}`);
          }
        }
      }
      expect(report.users).toBe(users);
      expect(report.users).toBeGreaterThan(10);
      for (const s of report.perSource) expect(s.recall).toBeCloseTo((hits.get(`${s.source}/${s.budget}`) ?? 0) / users, 12);
      for (const m of report.merged) expect(m.recall).toBeCloseTo((hits.get(`merged/${m.budget}/${m.size}`) ?? 0) / users, 12);
      // Something is retrieved at all, so the comparison is not vacuous.
      expect(report.merged.some((m) => m.recall > 0)).toBe(true);
    });
  }
});
