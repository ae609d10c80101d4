/** `recsys train`: the --output / --clusters / --self-normalization flags of the candidate generator. */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { run } from "./commands/train.js";

const SPEC = "synthetic:users=60,items=50,events=8,seed=2";
let root = "";

/** Runs `recsys train` capturing stdout and stderr. */
async function train(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await run(argv);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "recsys-train-"));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("recsys train --output", () => {
  it("trains the hierarchical softmax and records it in the bundle", async () => {
    const dir = join(root, "hsm");
    const r = await train(["--dataset", SPEC, "--out", dir, "--epochs", "1", "--output", "hierarchical", "--clusters", "4"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/hierarchical softmax over 4 co-watch clusters/);
    const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
    expect(manifest.trainConfig.output).toBe("hierarchical");
    expect(manifest.trainConfig.clusters).toBe(4);
    expect(manifest.trainConfig.selfNormalization).toBe(0.1);
    expect(manifest.files.hierarchy.clusterEmbeddings.rows).toBe(4);
  });

  it("keeps the sampled softmax by default", async () => {
    const dir = join(root, "sampled");
    const r = await train(["--dataset", SPEC, "--out", dir, "--epochs", "1"]);
    expect(r.code).toBe(0);
    const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
    expect(manifest.trainConfig.output).toBe("sampled");
    expect(manifest.files.hierarchy).toBeUndefined();
  });

  it("refuses unknown values before loading anything", async () => {
    const out = join(root, "never");
    for (const [flags, message] of [
      [["--output", "tree"], /--output must be sampled or hierarchical/],
      [["--output", "hierarchical", "--threads", "2"], /--output hierarchical trains with --threads 1 only/],
      [["--clusters", "-3"], /--clusters must be an integer >= 0/],
      [["--self-normalization", "-1"], /--self-normalization must be a number >= 0/],
    ] as const) {
      const r = await train(["--dataset", "ml100k:/nonexistent", "--out", out, ...flags]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});
