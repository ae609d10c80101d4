/**
 * Fixtures of the end-to-end tests: a tiny synthetic dataset, both models trained on it in a few
 * seconds (the same trainer `recsys start` uses, with tiny dimensions), and helpers to call the
 * stack through gRPC only.
 */
import { generateSynthetic, lastoutSplit, parseSyntheticSpec, trainingRows, type Dataset } from "@recsys/data";
import type { StackModelSettings } from "@recsys/cli";
import { isServiceError, statusName } from "@recsys/runtime";

export const E2E_SPEC = "users=150,items=120,events=15,impressions=30,seed=3";
export const E2E_DATASET = `synthetic:${E2E_SPEC}`;

export function e2eDataset(): Dataset {
  return generateSynthetic(E2E_DATASET, parseSyntheticSpec(E2E_SPEC));
}

/** Tiny models: dimension 8, one epoch each. */
export const E2E_MODEL_SETTINGS: StackModelSettings = {
  holdout: "test",
  candidateGen: {
    epochs: 1,
    batchSize: 64,
    negatives: 20,
    seed: 7,
    threads: 1,
    model: { embeddingDim: 8, searchDim: 4, categoricalDim: 4, tower: [16, 8], finalActivation: "linear" },
  },
  ranker: {
    pipeline: { budget: 20, mergedSize: 40 },
    train: { epochs: 1, maxExamplesPerUser: 4, negatives: 6, seed: 7 },
    model: { itemDim: 8, categoricalDim: 4, tower: [16, 8] },
    features: { quantiles: 50 },
  },
};

/** Item ids each user watched in the training rows (what the orchestrator's store was seeded with). */
export function trainingHistories(dataset: Dataset): Map<string, Set<string>> {
  const split = lastoutSplit(dataset.events, dataset.users.ids.length);
  const out = new Map<string, Set<string>>();
  for (const row of trainingRows(split, "test")) {
    const user = dataset.users.ids[dataset.events.user[row]!]!;
    const item = dataset.items.ids[dataset.events.item[row]!]!;
    let set = out.get(user);
    if (set === undefined) out.set(user, (set = new Set()));
    set.add(item);
  }
  return out;
}

/** The gRPC status name and details of a failed call (throws if the call succeeded). */
export async function rpcFailure(call: Promise<unknown>): Promise<{ code: string; details: string }> {
  try {
    await call;
  } catch (error) {
    if (isServiceError(error)) return { code: statusName(error.code), details: error.details };
    throw error;
  }
  throw new Error("expected the call to fail, it succeeded");
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}
