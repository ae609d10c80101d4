import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "@recsys/runtime";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_MERGED_SIZE, DEFAULT_SOURCE_BUDGET } from "@recsys/sources";
import { resolveBudgets } from "./budgets.js";
import { configSchema } from "./config.js";

let dir: string | undefined;
afterEach(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

function config(modelPath: string, extra: Record<string, string> = {}) {
  return loadConfig(configSchema, {
    CANDIDATE_GENERATION_ADDRESS: "127.0.0.1:1",
    RETRIEVAL_ADDRESSES: "127.0.0.1:1",
    RANKING_ADDRESS: "127.0.0.1:1",
    MODEL_PATH: modelPath,
    USER_STORE_PATH: join(modelPath, "users"),
    ...extra,
  });
}

async function bundleWithRanker(pipeline: unknown, subdir = "ranker"): Promise<string> {
  dir = await mkdtemp(join(tmpdir(), "budgets-"));
  await mkdir(join(dir, subdir));
  await writeFile(join(dir, subdir, "manifest.json"), JSON.stringify({ format: "recsys-ranker/1", pipeline }));
  return dir;
}

describe("candidate budgets (no train/serve skew)", () => {
  it("take the ranker's training budgets when no variable is set", async () => {
    const b = await resolveBudgets(config(await bundleWithRanker({ budget: 37, mergedSize: 111 })));
    expect(b.sources).toEqual({ dnn: 37, "co-watch": 37, popular: 37, trending: 37, "trending-geo": 37, fresh: 37 });
    expect(b.merged).toBe(111);
    expect(b.from).toMatch(/ranker\/manifest\.json$/);
  });

  it("let a variable that is set win, per source", async () => {
    const b = await resolveBudgets(
      config(await bundleWithRanker({ budget: 37, mergedSize: 111 }), { CANDIDATES_FRESH: "0", MERGED_CANDIDATES: "90" }),
    );
    expect(b.sources.fresh).toBe(0);
    expect(b.sources.popular).toBe(37);
    expect(b.merged).toBe(90);
  });

  it("read the ranker in RANKER_SUBDIR", async () => {
    const b = await resolveBudgets(
      config(await bundleWithRanker({ budget: 12, mergedSize: 40 }, "ranker-noprov"), { RANKER_SUBDIR: "ranker-noprov" }),
    );
    expect(b.sources.dnn).toBe(12);
    expect(b.merged).toBe(40);
  });

  it("fall back to the training defaults without a ranker manifest", async () => {
    dir = await mkdtemp(join(tmpdir(), "budgets-"));
    const b = await resolveBudgets(config(dir));
    expect(b.sources.dnn).toBe(DEFAULT_SOURCE_BUDGET);
    expect(b.merged).toBe(DEFAULT_MERGED_SIZE);
    expect(b.from).toBe("defaults");
  });

  it("refuse a ranker manifest without valid pipeline settings", async () => {
    await expect(resolveBudgets(config(await bundleWithRanker({ budget: -1, mergedSize: 10 })))).rejects.toThrow(/"pipeline" must hold/);
  });
});
