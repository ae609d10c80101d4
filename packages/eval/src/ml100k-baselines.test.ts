import { join } from "node:path";
import { lastoutSplit, loadDataset, trainingRows } from "@recsys/data";
import { describe, expect, it } from "vitest";
import { itemKnnScorer, mostPopularScorer } from "./baselines.js";
import { evaluateLastout } from "./lastout.js";

const REAL = join(import.meta.dirname, "../../../../shared/data/ml-100k");

describe("baselines on MovieLens 100K (protocol lastout, target test)", () => {
  it("reproduces the reference hit counts", async () => {
    const d = await loadDataset(`ml100k:${REAL}`);
    const split = lastoutSplit(d.events, d.users.ids.length);
    const rows = trainingRows(split, "test");
    const res = evaluateLastout({ dataset: d, split, scorers: [mostPopularScorer(d, rows), itemKnnScorer(d, rows)], target: "test" });
    const [pop, knn] = res.results;
    expect(pop!.users).toBe(943);
    // 47 and 56 of 943 users have their test item in the top 10 (exact item-kNN, no neighbour cap).
    expect(Math.round(pop!.metrics["hr@10"]! * 943)).toBe(47);
    expect(Math.round(knn!.metrics["hr@10"]! * 943)).toBe(56);
  });
});
