/**
 * Candidate budgets: how many candidates each source nominates and how many the merge keeps.
 *
 * The ranker was trained behind one candidate stage (its manifest's `pipeline`: one per-source
 * budget and a merged size, see `recsys train-ranker`); serving with other budgets feeds it
 * candidate lists of another shape than it learnt from (train/serve skew). So a CANDIDATES_* or
 * MERGED_CANDIDATES variable that is not set takes the value from the ranker's manifest
 * (`<MODEL_PATH>/<RANKER_SUBDIR>/manifest.json`), and only without a ranker manifest the
 * training default (100 per source, 300 merged). A variable that is set always wins.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { DEFAULT_MERGED_SIZE, DEFAULT_SOURCE_BUDGET } from "@recsys/sources";
import type { OrchestratorConfig } from "./config.js";

/** The orchestrator's candidate sources. */
export type BudgetedSource = "dnn" | "co-watch" | "popular" | "trending" | "trending-geo" | "fresh";

export interface PipelineBudgets {
  /** Per-source budgets (0 = source off); "dnn" is the retrieval k. */
  readonly sources: Readonly<Record<BudgetedSource, number>>;
  /** Candidates kept after the merge (sent to the ranker). */
  readonly merged: number;
  /** Where the defaults came from: the ranker manifest's path, or "defaults". */
  readonly from: string;
}

/** The ranker's `pipeline` settings, or undefined when there is no ranker manifest at `dir`. */
export async function readRankerPipeline(dir: string): Promise<{ budget: number; mergedSize: number } | undefined> {
  const path = join(dir, "manifest.json");
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const pipeline = (JSON.parse(text) as { pipeline?: { budget?: unknown; mergedSize?: unknown } }).pipeline;
  const budget = pipeline?.budget;
  const mergedSize = pipeline?.mergedSize;
  if (
    typeof budget !== "number" ||
    !Number.isInteger(budget) ||
    budget < 0 ||
    typeof mergedSize !== "number" ||
    !Number.isInteger(mergedSize) ||
    mergedSize < 1
  ) {
    throw new Error(`${path}: "pipeline" must hold an integer budget >= 0 and mergedSize >= 1, got ${JSON.stringify(pipeline)}`);
  }
  return { budget, mergedSize };
}

/** The budgets of every source: the variables that are set, else the ranker's training budgets. */
export async function resolveBudgets(config: OrchestratorConfig): Promise<PipelineBudgets> {
  const rankerDir = join(config.MODEL_PATH, config.RANKER_SUBDIR);
  const trained = await readRankerPipeline(rankerDir);
  const budget = trained?.budget ?? DEFAULT_SOURCE_BUDGET;
  return {
    sources: {
      dnn: config.CANDIDATES_DNN ?? budget,
      "co-watch": config.CANDIDATES_CO_WATCH ?? budget,
      popular: config.CANDIDATES_POPULAR ?? budget,
      trending: config.CANDIDATES_TRENDING ?? budget,
      "trending-geo": config.CANDIDATES_TRENDING_GEO ?? budget,
      fresh: config.CANDIDATES_FRESH ?? budget,
    },
    merged: config.MERGED_CANDIDATES ?? trained?.mergedSize ?? DEFAULT_MERGED_SIZE,
    from: trained === undefined ? "defaults" : join(rankerDir, "manifest.json"),
  };
}
