import { lastoutSplit, loadDataset, trainingRows } from "@recsys/data";
import { describe, expect, it } from "vitest";
import { itemKnnScorer, mostPopularScorer } from "./baselines.js";
import { evaluateLastout } from "./lastout.js";

describe("baselines on the synthetic generator", () => {
  it("a history-based model (item-kNN) clearly beats popularity", async () => {
    const d = await loadDataset("synthetic:users=1500,items=800,events=25,seed=5");
    const split = lastoutSplit(d.events, d.users.ids.length);
    const rows = trainingRows(split, "val");
    const res = evaluateLastout({ dataset: d, split, scorers: [mostPopularScorer(d, rows), itemKnnScorer(d, rows)], target: "val" });
    const [pop, knn] = res.results;
    expect(pop!.users).toBeGreaterThan(1200);
    expect(pop!.metrics["hr@10"]!).toBeGreaterThan(0.02); // popularity carries signal too
    expect(knn!.metrics["hr@10"]!).toBeGreaterThan(2 * pop!.metrics["hr@10"]!);
    expect(knn!.metrics["coverage@10"]!).toBeGreaterThan(pop!.metrics["coverage@10"]!);
  });
});
