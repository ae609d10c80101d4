import { access, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saveBundle, trainCandidateGen } from "@recsys/candidate-gen";
import { loadDataset } from "@recsys/data";
import { initBackend } from "@recsys/tf";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { run as evaluate } from "./commands/evaluate.js";
import { run as trainRanker } from "./commands/train-ranker.js";

const SPEC = "synthetic:users=200,items=150,events=12,seed=4";
let root = "";

/** Runs a command capturing stdout and stderr. */
async function capture(
  command: (argv: string[]) => Promise<number>,
  argv: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => ((stdout += String(chunk)), true));
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => ((stderr += String(chunk)), true));
  try {
    const code = await command(argv);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

beforeAll(async () => {
  await initBackend({ log: null });
  root = await mkdtemp(join(tmpdir(), "recsys-ranker-"));
  const dataset = await loadDataset(SPEC);
  await saveBundle(join(root, "cg"), await trainCandidateGen(dataset, { holdout: "test", maxSteps: 5 }));
});

afterAll(async () => {
  if (root !== "") await rm(root, { recursive: true, force: true });
});

describe("recsys train-ranker and the pipeline in recsys evaluate", () => {
  it("trains the ranker and its ablation into the bundle, and evaluate reports the pipeline", async () => {
    const dir = join(root, "cg");
    const small = ["--epochs", "1", "--max-examples", "4", "--budget", "20", "--merged-size", "40"];
    const main = await capture(trainRanker, ["--dataset", SPEC, "--model", dir, ...small]);
    expect(main.stderr).toMatch(/examples .* built in/);
    expect(main.code).toBe(0);
    expect(main.stdout).toMatch(/^wrote rk-\d{14}-[0-9a-f]{8} to /);
    const manifest = JSON.parse(await readFile(join(dir, "ranker", "manifest.json"), "utf8")) as Record<string, unknown>;
    expect(manifest["pipeline"]).toEqual({ budget: 20, mergedSize: 40 });
    expect(manifest["holdout"]).toBe("test");
    expect((await capture(trainRanker, ["--dataset", SPEC, "--model", dir, "--no-provenance", ...small])).code).toBe(0);
    await access(join(dir, "ranker-noprov", "manifest.json"));

    const r = await capture(evaluate, ["--dataset", SPEC, "--model", dir, "--protocols", "lastout", "--json"]);
    expect(r.code).toBe(0);
    const section = JSON.parse(r.stdout).protocols.lastout as Record<string, any>;
    expect(Object.keys(section.models)).toEqual(["youtube-dnn", "pipeline", "pipeline_without_provenance", "merged_order"]);
    const pipeline = section.models.pipeline.metrics as Record<string, number>;
    expect(Object.keys(pipeline)).toEqual(["hr@10", "ndcg@10", "hr@50", "ndcg@50", "mrr", "coverage@10", "watch_dcg@10"]);
    const sources = section.pipeline.sources as Record<string, { recall: number; budget: number; size?: number }>;
    expect(Object.keys(sources)).toEqual(["dnn", "co-watch", "popular", "trending", "trending-geo", "fresh", "merged"]);
    expect(sources["merged"]!.size).toBe(40);
    expect(sources["dnn"]!.budget).toBe(20);
    for (const s of Object.values(sources)) expect(s.recall).toBeGreaterThanOrEqual(0);
    expect(sources["merged"]!.recall).toBeGreaterThan(0);
    // Recall against budget: non-decreasing, ending at the recall at the full budget.
    const curve = section.pipeline.recall_by_budget["dnn"] as { budget: number; recall: number }[];
    expect(curve.map((p) => p.budget)).toEqual([1, 2, 5, 10, 20]);
    for (let k = 1; k < curve.length; k++) expect(curve[k]!.recall).toBeGreaterThanOrEqual(curve[k - 1]!.recall);
    expect(curve[curve.length - 1]!.recall).toBeCloseTo(sources["dnn"]!.recall, 12);
    expect(Object.keys(section.pipeline.calibration)).toEqual(["pipeline", "pipeline_without_provenance"]);
    // The 40 merged candidates are ranked first, so a retrieved test item is always in the top 50.
    expect(pipeline["hr@50"]).toBeGreaterThanOrEqual(sources["merged"]!.recall - 1e-12);
    const names = section.comparisons.map((c: any) => `${c.a} − ${c.b}`);
    for (const pair of ["pipeline − youtube-dnn", "pipeline − pipeline_without_provenance", "pipeline − item-knn"])
      expect(names).toContain(pair);

    const table = await capture(evaluate, ["--dataset", SPEC, "--model", dir]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^pipeline_without_provenance +\| +\d\.\d{4}/m);
    expect(table.stdout).toMatch(/pipeline − pipeline_without_provenance +hr@10/);
    expect(table.stdout).toMatch(/candidate recall of the target/);
  });

  it("refuses a bundle of another dataset and bad options", async () => {
    const other = await capture(trainRanker, ["--dataset", SPEC.replace("seed=4", "seed=5"), "--model", join(root, "cg"), "--epochs", "1"]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/was trained on/);
    const bad = await capture(trainRanker, ["--dataset", SPEC, "--model", join(root, "cg"), "--missed", "sometimes"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--missed must be drop or keep/);
    const kind = await capture(trainRanker, ["--dataset", SPEC, "--model", join(root, "cg"), "--model-kind", "deep-cross"]);
    expect(kind.code).toBe(2);
    expect(kind.stderr).toMatch(/--model-kind must be one of weighted-lr, wide-deep/);
  });
});
