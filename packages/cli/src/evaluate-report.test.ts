import { describe, expect, it } from "vitest";
import type { ScorerResult } from "@recsys/eval";
import {
  buildSection,
  comparisonPairs,
  type EvaluationReport,
  formatTable,
  refusalReason,
  type ManifestForEvaluation,
} from "./evaluate-report.js";

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
    const why = refusalReason(
      manifest({ datasetSpec: "ml100k:x", datasetFingerprint: "a".repeat(64) }),
      "models/m",
      "synthetic:",
      fp,
      "test",
    );
    expect(why).toMatch(
      /trained on dataset "ml100k:x" \(fingerprint aaaaaaaaaaaa…\), which differs from "synthetic:" \(fingerprint ffffffffffff…\)/,
    );
    expect(why).toMatch(/retrain it with: recsys train --dataset synthetic: --out models\/m$/);
  });

  it("refuses models whose training saw the target events", () => {
    expect(refusalReason(manifest({ holdout: "none" }), "m", "synthetic:", fp, "test")).toMatch(
      /--holdout none .* leak .* recsys train --dataset synthetic: --out m$/,
    );
    expect(refusalReason(manifest({ holdout: "none" }), "m", "synthetic:", fp, "val")).toMatch(/--out m --holdout val$/);
    expect(refusalReason(manifest({ holdout: "test" }), "m", "synthetic:", fp, "val")).toMatch(
      /includes the validation events.*--out m --holdout val$/,
    );
  });
});

describe("report", () => {
  // 4 users; ranks per scorer; 3 items with popularity 5, 1, 3.
  const result = (name: string, ranks: number[], topCounts: number[]): ScorerResult => ({
    name,
    users: ranks.length,
    metrics: { "hr@10": ranks.filter((r) => r < 10).length / ranks.length },
    seconds: 0,
    ranks: Int32Array.from(ranks),
    topCounts: Int32Array.from(topCounts),
  });
  const section = buildSection({
    protocol: "lastout",
    tieSeed: null,
    users: 4,
    modelVersion: "cg-1",
    modelsSkipped: null,
    models: [result("pipeline", [0, 1, 2, 50], [4, 0, 4]), result("youtube-dnn", [0, 20, 30, 50], [4, 4, 0])],
    baselines: [result("most-popular", [40, 20, 30, 50], [4, 0, 4])],
    popularity: [5, 1, 3],
    watch: Float64Array.from([2, 1, 1, 1]),
  });

  it("keeps models in report order, adds watch_dcg@10, curves and popularity deciles", () => {
    expect(Object.keys(section.models)).toEqual(["youtube-dnn", "pipeline"]);
    const p = section.models["pipeline"]!;
    expect(p.metrics["watch_dcg@10"]).toBeCloseTo((2 + 1 / Math.log2(3) + 1 / Math.log2(4)) / 4, 12);
    expect(p.curves.hr).toHaveLength(100);
    expect(p.curves.hr.slice(0, 3)).toEqual([0.25, 0.5, 0.75]);
    expect(p.curves.hr[99]).toBe(1);
    // Items by popularity: 0 (5), 2 (3), 1 (1) → deciles 0-3 hold item 0, 3-6 item 2, 6-9 item 1.
    expect(p.popularity_deciles[0]).toBeCloseTo(0.5, 12);
    expect(p.popularity_deciles.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  it("pairs pipeline vs DNN and every model vs every baseline, with paired intervals", () => {
    expect(comparisonPairs(["youtube-dnn", "pipeline", "pipeline_without_provenance"], ["most-popular"])).toEqual([
      ["pipeline", "youtube-dnn"],
      ["pipeline", "pipeline_without_provenance"],
      ["youtube-dnn", "most-popular"],
      ["pipeline", "most-popular"],
    ]);
    const c = section.comparisons.find((x) => x.a === "pipeline" && x.b === "youtube-dnn" && x.metric === "hr@10")!;
    // Per-user differences 0, 1, 1, 0: mean 0.5, sd 0.5774, se 0.2887.
    expect(c.diff).toBeCloseTo(0.5, 12);
    expect(c.se).toBeCloseTo(Math.sqrt(1 / 3 / 4), 12);
    expect(c.lo).toBeCloseTo(0.5 - 1.96 * c.se, 12);
    expect(section.comparisons).toHaveLength(6);
  });

  it("prints both protocols side by side, the intervals and the notes", () => {
    const report: EvaluationReport = {
      dataset: "ml100k:d",
      split: "test",
      users: 4,
      tie_seed: 7,
      model_info: { lastout: { version: "cg-1", seed: 1, epochs: 10, train: { examples_per_second: 1000, seconds: 12 } } },
      protocols: {
        lastout: section,
        "lastout-shuffled": {
          ...section,
          protocol: "lastout-shuffled",
          tie_seed: 7,
          models: {},
          comparisons: [],
          models_skipped: "no model",
        },
      },
    };
    const text = formatTable(report);
    expect(text).toContain("dataset   ml100k:d");
    expect(text).toContain("lastout-shuffled (ties by a permutation of the catalogue, seed 7)");
    expect(text).toMatch(/model {5}lastout: cg-1 \(seed 1, 10 epochs/);
    expect(text).toMatch(/note {6}lastout-shuffled: no model/);
    expect(text).toMatch(/\| lastout +\| lastout-shuffled/);
    expect(text).toMatch(/pipeline +\| +0\.7500 .*\| +–/);
    expect(text).toMatch(/most-popular +\| +0\.0000 .*\| +0\.0000/);
    expect(text).toMatch(/pipeline − youtube-dnn +hr@10 +\+0\.5000 +\[-?0\.\d+, 1\.\d+\] +within noise/);
  });
});
