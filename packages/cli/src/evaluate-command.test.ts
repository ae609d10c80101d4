import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saveBundle, trainCandidateGen } from "@recsys/candidate-gen";
import { loadDataset } from "@recsys/data";
import { initBackend } from "@recsys/tf";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { run } from "./commands/evaluate.js";
import { inProtocolOrder } from "./protocol-dataset.js";

const SPEC = "synthetic:users=200,items=150,events=12,seed=4";
let root = "";

/** Runs `recsys evaluate` capturing stdout and stderr. */
async function evaluate(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => ((stdout += String(chunk)), true));
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => ((stderr += String(chunk)), true));
  try {
    const code = await run(argv);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

beforeAll(async () => {
  await initBackend({ log: null });
  root = await mkdtemp(join(tmpdir(), "recsys-evaluate-"));
  const dataset = await loadDataset(SPEC);
  for (const holdout of ["test", "none"] as const) {
    await saveBundle(join(root, holdout), await trainCandidateGen(dataset, { holdout, maxSteps: 5 }));
  }
  // A model trained for lastout-shuffled with tie seed 3 (what `recsys train --protocol lastout-shuffled --tie-seed 3` does).
  const shuffled = inProtocolOrder(dataset, "lastout-shuffled", 3).dataset;
  await saveBundle(join(root, "shuffled"), await trainCandidateGen(shuffled, { holdout: "test", maxSteps: 5 }));
});

afterAll(async () => {
  if (root !== "") await rm(root, { recursive: true, force: true });
});

describe("recsys evaluate", () => {
  const NAMES = ["hr@10", "ndcg@10", "hr@50", "ndcg@50", "mrr", "coverage@10", "watch_dcg@10"];
  const BASELINES = ["most-popular", "item-knn", "item-knn@100", "next-id"];

  it("--json prints one JSON object with both protocols, every scorer's metrics, curves, deciles and intervals", async () => {
    const r = await evaluate([
      "--dataset",
      SPEC,
      "--model",
      join(root, "test"),
      "--shuffled-model",
      join(root, "shuffled"),
      "--tie-seed",
      "3",
      "--json",
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    const report = JSON.parse(r.stdout) as Record<string, any>;
    expect(Object.keys(report).sort()).toEqual(["dataset", "model_info", "protocols", "split", "tie_seed", "users"]);
    expect(report["dataset"]).toBe(SPEC);
    expect(report["tie_seed"]).toBe(3);
    expect(report["users"]).toBeGreaterThan(100);
    expect(Object.keys(report["protocols"])).toEqual(["lastout", "lastout-shuffled"]);
    expect(Object.keys(report["model_info"])).toEqual(["lastout", "lastout-shuffled"]);
    expect(report["model_info"]["lastout"].version).not.toBe(report["model_info"]["lastout-shuffled"].version);
    for (const [protocol, section] of Object.entries(report["protocols"] as Record<string, any>)) {
      expect(section.protocol).toBe(protocol);
      expect(section.tie_seed).toBe(protocol === "lastout" ? null : 3);
      expect(section.users).toBe(report["users"]);
      expect(Object.keys(section.models)).toEqual(["youtube-dnn"]);
      expect(Object.keys(section.baselines)).toEqual(BASELINES);
      for (const e of [...Object.values(section.models), ...Object.values(section.baselines)] as any[]) {
        expect(Object.keys(e.metrics)).toEqual(NAMES);
        for (const m of NAMES) expect(e.metrics[m]).toBeGreaterThanOrEqual(0);
        expect(e.curves.hr).toHaveLength(100);
        expect(e.curves.hr[9]).toBeCloseTo(e.metrics["hr@10"], 12);
        expect(e.curves.ndcg[49]).toBeCloseTo(e.metrics["ndcg@50"], 12);
        expect(e.popularity_deciles).toHaveLength(10);
      }
      // most-popular recommends the most popular items (the next decile only when history removes some).
      expect(section.baselines["most-popular"].popularity_deciles[0]).toBeGreaterThan(0.9);
      expect(section.comparisons.map((c: any) => `${c.a}-${c.b}-${c.metric}`)).toContain("youtube-dnn-item-knn-hr@10");
      for (const c of section.comparisons) expect(c.lo).toBeLessThanOrEqual(c.hi);
    }
    expect(r.stderr).toMatch(/lastout-shuffled \(seed 3\): evaluating \d+ users on their test events/);
  });

  it("prints both protocols side by side; without a shuffled model its column holds the baselines only", async () => {
    const r = await evaluate(["--dataset", SPEC, "--model", join(root, "test")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\| lastout +\| lastout-shuffled/);
    expect(r.stdout).toMatch(/youtube-dnn +\| +\d\.\d{4} .*\| +–/);
    expect(r.stdout).toMatch(/next-id +\| +\d\.\d{4} .*\| +\d\.\d{4}/);
    expect(r.stdout).toMatch(/note +lastout-shuffled: no model trained for this event order/);
    expect(r.stdout).toMatch(/users\s+\d+ evaluated/);
    const one = await evaluate(["--dataset", SPEC, "--model", join(root, "test"), "--protocols", "lastout", "--json"]);
    expect(Object.keys(JSON.parse(one.stdout).protocols)).toEqual(["lastout"]);
  });

  it("refuses leaking or mismatched models with exit code 1", async () => {
    const none = await evaluate(["--dataset", SPEC, "--model", join(root, "none"), "--json"]);
    expect(none.code).toBe(1);
    expect(none.stdout).toBe("");
    expect(none.stderr).toMatch(/--holdout none .* recsys train --dataset synthetic:\S+ --out /);
    const val = await evaluate(["--dataset", SPEC, "--model", join(root, "test"), "--split", "val"]);
    expect(val.code).toBe(1);
    expect(val.stderr).toMatch(/--holdout val/);
    const other = await evaluate(["--dataset", SPEC.replace("seed=4", "seed=5"), "--model", join(root, "test")]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/which differs from/);
    // A model trained in one event order is refused in the other (its held-out items differ).
    const swapped = await evaluate(["--dataset", SPEC, "--model", join(root, "shuffled")]);
    expect(swapped.code).toBe(1);
    const seed = await evaluate([
      "--dataset",
      SPEC,
      "--model",
      join(root, "test"),
      "--shuffled-model",
      join(root, "shuffled"),
      "--tie-seed",
      "4",
    ]);
    expect(seed.code).toBe(1);
    expect(seed.stderr).toMatch(/under lastout-shuffled \(seed 4\).*--protocol lastout-shuffled --tie-seed 4/);
  });

  it("reports usage errors with exit code 2", async () => {
    expect((await evaluate(["--dataset", SPEC])).code).toBe(2);
    expect((await evaluate(["--dataset", SPEC, "--model", "m", "--split", "train"])).code).toBe(2);
    expect((await evaluate(["--dataset", SPEC, "--model", "m", "--protocols", "lastout,random"])).code).toBe(2);
  });
});
