import { describe, expect, it } from "vitest";
import { buildReport, formatTable, refusalReason, type ManifestForEvaluation } from "./evaluate-report.js";

const manifest = (over: Partial<ManifestForEvaluation>): ManifestForEvaluation => ({
  modelVersion: "cg-1",
  datasetSpec: "synthetic:",
  datasetFingerprint: "f".repeat(64),
  holdout: "test",
  train: { examplesPerSecond: 1000, seconds: 12, epochs: 2 },
  ...over,
});

describe("refusalReason", () => {
  const fp = "f".repeat(64);
  it("accepts a model trained on this dataset without the target", () => {
    expect(refusalReason(manifest({}), "m", "synthetic:", fp, "test")).toBeNull();
    expect(refusalReason(manifest({ holdout: "val" }), "m", "synthetic:", fp, "val")).toBeNull();
    expect(refusalReason(manifest({ holdout: "val" }), "m", "synthetic:", fp, "test")).toBeNull();
  });

  it("refuses another dataset, naming both and how to retrain", () => {
    const why = refusalReason(manifest({ datasetSpec: "ml100k:x", datasetFingerprint: "a".repeat(64) }), "models/m", "synthetic:", fp, "test");
    expect(why).toMatch(/trained on dataset "ml100k:x" \(fingerprint aaaaaaaaaaaa…\), which differs from "synthetic:" \(fingerprint ffffffffffff…\)/);
    expect(why).toMatch(/retrain it with: recsys train --dataset synthetic: --out models\/m$/);
  });

  it("refuses models whose training saw the target events", () => {
    expect(refusalReason(manifest({ holdout: "none" }), "m", "synthetic:", fp, "test")).toMatch(/--holdout none .* leak .* recsys train --dataset synthetic: --out m$/);
    expect(refusalReason(manifest({ holdout: "none" }), "m", "synthetic:", fp, "val")).toMatch(/--out m --holdout val$/);
    expect(refusalReason(manifest({ holdout: "test" }), "m", "synthetic:", fp, "val")).toMatch(/includes the validation events.*--out m --holdout val$/);
  });
});

describe("report", () => {
  const metrics = (x: number): Record<string, number> => ({ "hr@10": x, "ndcg@10": x / 2, "hr@50": x * 2, "ndcg@50": x, mrr: x / 3, "coverage@10": 0.5 });
  const report = buildReport(
    "ml100k:d",
    "test",
    943,
    { name: "youtube-dnn", users: 943, metrics: metrics(0.1), seconds: 1 },
    [
      { name: "most-popular", users: 943, metrics: metrics(0.05), seconds: 1 },
      { name: "item-knn", users: 943, metrics: metrics(0.06), seconds: 1 },
    ],
    { examplesPerSecond: 12345.6, seconds: 61.5 },
  );

  it("has the JSON shape of the README", () => {
    expect(JSON.parse(JSON.stringify(report))).toEqual({
      dataset: "ml100k:d",
      protocol: "lastout",
      split: "test",
      users: 943,
      model: metrics(0.1),
      baselines: { "most-popular": metrics(0.05), "item-knn": metrics(0.06) },
      train: { examples_per_second: 12345.6, seconds: 61.5 },
    });
  });

  it("prints a table with every metric for the model and both baselines", () => {
    const text = formatTable(report, ["hr@10", "ndcg@10", "hr@50", "ndcg@50", "mrr", "coverage@10"], "cg-1");
    expect(text).toContain("model     cg-1");
    expect(text).toContain("dataset   ml100k:d");
    expect(text).toContain("users     943 evaluated");
    expect(text).toMatch(/metric\s+model\s+most-popular\s+item-knn/);
    expect(text).toMatch(/hr@10\s+0\.1000\s+0\.0500\s+0\.0600/);
    expect(text).toMatch(/coverage@10\s+0\.5000\s+0\.5000\s+0\.5000/);
  });
});
