import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saveBundle, trainCandidateGen } from "@recsys/candidate-gen";
import { loadDataset } from "@recsys/data";
import { initBackend } from "@recsys/tf";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { run } from "./commands/evaluate.js";

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
});

afterAll(async () => {
  if (root !== "") await rm(root, { recursive: true, force: true });
});

describe("recsys evaluate", () => {
  it("--json prints exactly one JSON object with the model and both baselines", async () => {
    const r = await evaluate(["--dataset", SPEC, "--model", join(root, "test"), "--json"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    const report = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(Object.keys(report).sort()).toEqual(["baselines", "dataset", "model", "protocol", "split", "train", "users"]);
    expect(report["dataset"]).toBe(SPEC);
    expect(report["protocol"]).toBe("lastout");
    expect(report["users"]).toBeGreaterThan(100);
    const names = ["hr@10", "ndcg@10", "hr@50", "ndcg@50", "mrr", "coverage@10"];
    const baselines = report["baselines"] as Record<string, Record<string, number>>;
    for (const metrics of [report["model"] as Record<string, number>, baselines["most-popular"]!, baselines["item-knn"]!]) {
      expect(Object.keys(metrics)).toEqual(names);
      for (const m of names) expect(metrics[m]).toBeGreaterThanOrEqual(0);
    }
    expect(Object.keys(report["train"] as object)).toEqual(["examples_per_second", "seconds"]);
    expect(r.stderr).toMatch(/evaluating \d+ users on their test events/);
  });

  it("prints a table by default", async () => {
    const r = await evaluate(["--dataset", SPEC, "--model", join(root, "test")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/metric\s+model\s+most-popular\s+item-knn/);
    expect(r.stdout).toMatch(/users\s+\d+ evaluated/);
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
  });

  it("reports usage errors with exit code 2", async () => {
    expect((await evaluate(["--dataset", SPEC])).code).toBe(2);
    expect((await evaluate(["--dataset", SPEC, "--model", "m", "--split", "train"])).code).toBe(2);
  });
});
