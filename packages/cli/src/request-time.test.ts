/**
 * Issue 16, item 1: nothing of a test event may inform what a model uses — not even its
 * timestamp. Moving every user's test event 30 days later (nothing else changes) must leave every
 * ranked list unchanged: the candidate generator's, the baselines', and the pipeline's (sources,
 * merge, ranker), with every model trained again on the moved dataset.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDatasetScorer, loadBundle, saveBundle, trainCandidateGen } from "@recsys/candidate-gen";
import { type Dataset, lastoutSplit, loadDataset, trainingRows, type UserScorer } from "@recsys/data";
import { evaluateLastout, itemKnnScorer, mostPopularScorer } from "@recsys/eval";
import { loadRanker, runPipeline, saveRanker, trainRanker } from "@recsys/ranking";
import { initBackend } from "@recsys/tf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPipelineSources } from "./pipeline-setup.js";

const SPEC = "synthetic:users=120,items=100,events=10,seed=3";
const PIPELINE = { budget: 15, mergedSize: 30 };
let root = "";

/** The dataset with each user's test event (the last kept one) `shift` seconds later; still the last event. */
function moveTestEvents(dataset: Dataset, shift: number): Dataset {
  const split = lastoutSplit(dataset.events, dataset.users.ids.length);
  const timestamp = Float64Array.from(dataset.events.timestamp);
  for (const row of split.testRow) if (row >= 0) timestamp[row]! += shift;
  return { ...dataset, events: { ...dataset.events, timestamp } };
}

/** A scorer that records every score vector it hands to the evaluator, per user. */
function recording(scorer: UserScorer, into: Map<string, number[]>): UserScorer {
  return {
    name: scorer.name,
    score(user, history, asOf, out) {
      scorer.score(user, history, asOf, out);
      into.set(`${scorer.name}/${user}`, Array.from(out));
    },
  };
}

/** Trains the candidate generator and the ranker on `dataset` (holdout test) and returns every scored vector and ranked list. */
async function everything(
  dataset: Dataset,
  dir: string,
): Promise<{ scores: Map<string, number[]>; lists: Map<string, (number[] | null)[]>; ranks: Map<string, number[]> }> {
  await saveBundle(dir, await trainCandidateGen(dataset, { holdout: "test", maxSteps: 5, seed: 2 }));
  const bundle = await loadBundle(dir);
  const split = lastoutSplit(dataset.events, dataset.users.ids.length);
  const rows = trainingRows(split, "test");
  const trained = await trainRanker(dataset, {
    rows,
    sources: createPipelineSources(dataset, bundle, PIPELINE),
    budget: PIPELINE.budget,
    train: { epochs: 1, maxExamplesPerUser: 3, seed: 2 },
  });
  await saveRanker(join(dir, "ranker"), trained, {
    datasetSpec: SPEC,
    datasetFingerprint: dataset.fingerprint,
    holdout: "test",
    candidateGenVersion: bundle.manifest.modelVersion,
    pipeline: PIPELINE,
  });
  trained.model.dispose();
  const ranker = await loadRanker(join(dir, "ranker"));
  try {
    const scores = new Map<string, number[]>();
    const scorers = [createDatasetScorer(bundle, dataset), mostPopularScorer(dataset, rows), itemKnnScorer(dataset, rows)].map((s) =>
      recording(s, scores),
    );
    const result = evaluateLastout({ dataset, split, scorers, target: "test" });
    const ranks = new Map<string, number[]>();
    // Ranks of the targets, from the metrics (the same items are targets in both datasets).
    for (const r of result.results)
      ranks.set(r.name, [r.metrics["hr@10"]!, r.metrics["ndcg@10"]!, r.metrics["mrr"]!, r.metrics["coverage@10"]!]);
    const run = runPipeline(dataset, {
      split,
      target: "test",
      sources: createPipelineSources(dataset, bundle, PIPELINE),
      budget: PIPELINE.budget,
      mergedSize: PIPELINE.mergedSize,
      rankers: [{ name: "pipeline", ranker }],
    });
    const lists = new Map<string, (number[] | null)[]>();
    for (const [name, l] of run.lists)
      lists.set(
        name,
        l.map((x) => (x === null ? null : Array.from(x))),
      );
    return { scores, lists, ranks };
  } finally {
    ranker.dispose();
    bundle.dispose();
  }
}

beforeAll(async () => {
  await initBackend({ log: null });
  root = await mkdtemp(join(tmpdir(), "recsys-request-time-"));
});

afterAll(async () => {
  if (root !== "") await rm(root, { recursive: true, force: true });
});

describe("offline requests do not depend on the test event's time", () => {
  it("moving every test event 30 days later leaves every score vector and ranked list unchanged", async () => {
    const base = await loadDataset(SPEC);
    const moved = moveTestEvents(base, 30 * 86_400);
    const a = await everything(base, join(root, "base"));
    const b = await everything(moved, join(root, "moved"));
    expect(a.scores.size).toBeGreaterThan(200);
    expect([...a.lists.keys()].sort()).toEqual(["merged-order", "pipeline"]);
    for (const [key, v] of a.scores) expect(b.scores.get(key), key).toEqual(v);
    for (const [name, l] of a.lists) expect(b.lists.get(name), name).toEqual(l);
    expect(b.ranks).toEqual(a.ranks);
  }, 120_000);
});
