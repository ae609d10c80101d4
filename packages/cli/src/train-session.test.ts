import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saveBundle, trainCandidateGen } from "@recsys/candidate-gen";
import { lastoutSplit, loadDataset, trainingRows } from "@recsys/data";
import { loadSequenceModel, userSequences } from "@recsys/sequence";
import { initBackend } from "@recsys/tf";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { run as evaluate } from "./commands/evaluate.js";
import { run as trainRanker } from "./commands/train-ranker.js";
import { run as trainSession } from "./commands/train-session.js";
import { inProtocolOrder } from "./protocol-dataset.js";

const SPEC = "synthetic:users=200,items=150,events=12,seed=4";
let root = "";

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
  root = await mkdtemp(join(tmpdir(), "recsys-session-"));
  const dataset = await loadDataset(SPEC);
  await saveBundle(join(root, "cg"), await trainCandidateGen(dataset, { holdout: "test", maxSteps: 5 }));
  // A bundle trained for lastout-shuffled with tie seed 3 (`recsys train --protocol lastout-shuffled --tie-seed 3`).
  const shuffled = inProtocolOrder(dataset, "lastout-shuffled", 3).dataset;
  await saveBundle(join(root, "shuffled"), await trainCandidateGen(shuffled, { holdout: "test", maxSteps: 5 }));
});

afterAll(async () => {
  if (root !== "") await rm(root, { recursive: true, force: true });
});

describe("recsys train-session and the pipeline with the session source in recsys evaluate", () => {
  it("rejects a bad encoder and a dataset the bundle was not trained on", async () => {
    const dir = join(root, "cg");
    expect((await capture(trainSession, ["--dataset", SPEC, "--model", dir, "--encoder", "lstm"])).code).toBe(2);
    const badLr = await capture(trainSession, ["--dataset", SPEC, "--model", dir, "--lr", "0"]);
    expect(badLr.code).toBe(2);
    expect(badLr.stderr).toContain("--lr must be a positive number, got 0");
    const other = await capture(trainSession, [
      "--dataset",
      "synthetic:users=50,items=40,events=5,seed=1",
      "--model",
      dir,
      "--epochs",
      "1",
    ]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/was trained on/);
  });

  it("trains on the bundle's holdout rows into DIR/session/, and evaluate reports pipeline_with_session", async () => {
    const dir = join(root, "cg");
    const trained = await capture(trainSession, [
      "--dataset",
      SPEC,
      "--model",
      dir,
      "--encoder",
      "stamp",
      "--epochs",
      "2",
      "--batch",
      "16",
      "--lr",
      "0.003",
      "--seed",
      "3",
    ]);
    expect(trained.code, trained.stderr).toBe(0);
    expect(trained.stdout).toMatch(/^wrote a stamp session model to .*session \(\d+ examples, 2 epochs/);
    const manifest = JSON.parse(await readFile(join(dir, "session", "manifest.json"), "utf8")) as {
      encoder: { kind: string };
      training: Record<string, unknown>;
    };
    expect(manifest.encoder.kind).toBe("stamp");
    expect(manifest.training["holdout"]).toBe("test");
    expect(manifest.training).toMatchObject({ batchSize: 16, learningRate: 0.003 });
    expect(trained.stderr).toContain("batch 16, lr 0.003");
    // Trained on exactly the non-test rows: every user's training sequence, next-item targets after the first.
    const dataset = await loadDataset(SPEC);
    const rows = trainingRows(lastoutSplit(dataset.events, dataset.users.ids.length), "test");
    expect(trained.stderr).toContain(`holdout test (from the bundle`);
    expect(trained.stderr).toContain(`${rows.length} training rows`);
    // Beside the weights: each item's count as a target of the training windows (the orchestrator
    // nominates only counted items). With windows "last" of 50 items, a user's last 51 items give
    // every item but the first of them as a target.
    const { itemCounts, manifest: loadedManifest, model } = await loadSequenceModel(join(dir, "session"));
    model.dispose();
    expect(loadedManifest.itemCounts).toEqual({ file: "item-counts.u32", of: "targets" });
    const expected = new Uint32Array(dataset.items.ids.length);
    for (const s of userSequences(dataset, rows)) for (let k = Math.max(1, s.length - 50); k < s.length; k++) expected[s[k]!]!++;
    expect(Array.from(itemCounts!)).toEqual(Array.from(expected));
    expect(expected.some((c) => c === 0)).toBe(true);
    expect(trained.stderr).toContain(`${expected.filter((c) => c > 0).length} of ${dataset.items.ids.length} items are training targets`);

    const small = ["--epochs", "1", "--max-examples", "4", "--budget", "20", "--merged-size", "40"];
    expect((await capture(trainRanker, ["--dataset", SPEC, "--model", dir, ...small])).code).toBe(0);
    const r = await capture(evaluate, ["--dataset", SPEC, "--model", dir, "--protocols", "lastout", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const section = JSON.parse(r.stdout).protocols.lastout as Record<string, any>;
    expect(Object.keys(section.models)).toContain("pipeline_with_session");
    const m = section.models.pipeline_with_session.metrics as Record<string, number>;
    expect(m["hr@10"]).toBeGreaterThanOrEqual(0);
    expect(m["hr@10"]).toBeLessThanOrEqual(1);
    expect(section.pipeline.sources.session.recall).toBeGreaterThan(0);
  });

  it("--protocol lastout-shuffled --tie-seed S trains for a bundle trained in that event order; the pipeline evaluates under it", async () => {
    const dir = join(root, "shuffled");
    const refused = await capture(trainSession, ["--dataset", SPEC, "--model", dir, "--epochs", "1"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/was trained on .* in lastout order .*--protocol lastout-shuffled/);
    const protocol = ["--protocol", "lastout-shuffled", "--tie-seed", "3"];
    const bad = await capture(trainSession, ["--dataset", SPEC, "--model", dir, "--protocol", "lastin"]);
    expect(bad.code).toBe(2);
    const trained = await capture(trainSession, ["--dataset", SPEC, "--model", dir, "--epochs", "1", "--batch", "16", ...protocol]);
    expect(trained.code, trained.stderr).toBe(0);
    expect(trained.stderr).toContain("protocol lastout-shuffled (seed 3)");
    const shuffled = inProtocolOrder(await loadDataset(SPEC), "lastout-shuffled", 3).dataset;
    const manifest = JSON.parse(await readFile(join(dir, "session", "manifest.json"), "utf8")) as { training: Record<string, unknown> };
    expect(manifest.training["datasetFingerprint"]).toBe(shuffled.fingerprint);
    // The session model counts the targets of the shuffled order's training sequences.
    const rows = trainingRows(lastoutSplit(shuffled.events, shuffled.users.ids.length), "test");
    const expected = new Uint32Array(shuffled.items.ids.length);
    for (const s of userSequences(shuffled, rows)) for (let k = Math.max(1, s.length - 50); k < s.length; k++) expected[s[k]!]!++;
    const { itemCounts, model } = await loadSequenceModel(join(dir, "session"));
    model.dispose();
    expect(Array.from(itemCounts!)).toEqual(Array.from(expected));

    const small = ["--epochs", "1", "--max-examples", "4", "--budget", "20", "--merged-size", "40"];
    const ranker = await capture(trainRanker, ["--dataset", SPEC, "--model", dir, ...small, ...protocol]);
    expect(ranker.code, ranker.stderr).toBe(0);
    const r = await capture(evaluate, [
      "--dataset",
      SPEC,
      "--model",
      dir,
      "--shuffled-model",
      dir,
      "--protocols",
      "lastout-shuffled",
      "--tie-seed",
      "3",
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const section = JSON.parse(r.stdout).protocols["lastout-shuffled"] as Record<string, any>;
    expect(Object.keys(section.models)).toEqual(expect.arrayContaining(["pipeline", "pipeline_with_session", "session_model"]));
  });
});
