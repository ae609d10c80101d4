/**
 * The session source in the orchestrator (the bundle's session/ model) and anonymous sessions:
 * a Recommend with session_item_ids and no user id is answered with "Because you just watched …"
 * reasons and never reads or writes the user store (every method of the very store instance the
 * orchestrator uses is wrapped and counted; a logged-in request in the same process is the
 * control that the counting sees the store's use).
 */
import { join } from "node:path";
import { generateSynthetic, lastoutSplit, parseSyntheticSpec, trainingRows } from "@recsys/data";
import { MAX_SESSION_ITEMS, type RecommendResponse } from "@recsys/gen";
import { isServiceError, statusName } from "@recsys/runtime";
import { DEFAULT_SEQUENCE_CONFIG, saveSequenceModel, trainSequenceModel, userSequences } from "@recsys/sequence";
import type { UserStore } from "@recsys/user-store";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANONYMOUS_RANK_USER_ID } from "./anonymous.js";
import { SESSION_MODEL_DIR } from "./session-model.js";
import {
  TEST_DATASET,
  TEST_SPEC,
  closedAddress,
  removeDir,
  startFakeRanker,
  startOrchestrator,
  tempDir,
  writeTinyBundle,
  type FakeRanker,
  type RunningOrchestrator,
} from "./test-helpers.js";

const dataset = generateSynthetic(TEST_DATASET, parseSyntheticSpec(TEST_SPEC));
let root: string;
let ranker: FakeRanker;
let o: RunningOrchestrator;
/** Calls of each user-store method since the orchestrator started serving. */
const calls = new Map<string, number>();
/** Methods that touch one user's data (reads, writes, the served log's appends). */
const USER_METHODS = ["get", "getMany", "watchedAmong", "append", "setProfile", "putUsers", "logEvents"];

function userCalls(): number {
  let n = 0;
  for (const m of USER_METHODS) n += calls.get(m) ?? 0;
  return n;
}

/** Counts every call of every method of `store` (the instance the orchestrator holds). */
function countCalls(store: UserStore): void {
  const target = store as unknown as Record<string, unknown>;
  let proto: object | null = Object.getPrototypeOf(store);
  const names = new Set<string>(Object.keys(target));
  while (proto !== null && proto !== Object.prototype) {
    for (const name of Object.getOwnPropertyNames(proto)) names.add(name);
    proto = Object.getPrototypeOf(proto);
  }
  for (const name of names) {
    const original = target[name];
    if (name === "constructor" || typeof original !== "function") continue;
    target[name] = (...args: unknown[]) => {
      calls.set(name, (calls.get(name) ?? 0) + 1);
      return (original as (...a: unknown[]) => unknown).apply(store, args);
    };
  }
}

async function failure(call: Promise<unknown>): Promise<{ code: string; details: string }> {
  try {
    await call;
  } catch (error) {
    if (isServiceError(error)) return { code: statusName(error.code), details: error.details };
    throw error;
  }
  throw new Error("expected the call to fail");
}

const sessionReasons = (r: RecommendResponse): string[] =>
  r.items.flatMap((i) => i.reasons.filter((s) => s.startsWith("Because you just watched ")));
const fromSession = (r: RecommendResponse): number => r.items.filter((i) => i.provenance.some((p) => p.sourceName === "session")).length;

beforeAll(async () => {
  root = await tempDir("anonymous");
  const bundle = join(root, "bundle");
  await writeTinyBundle(bundle, 1);
  // A tiny session model trained on the bundle's rows (holdout "test"), where train-session puts it.
  const split = lastoutSplit(dataset.events, dataset.users.ids.length);
  const trained = trainSequenceModel(userSequences(dataset, trainingRows(split, "test")), dataset.items.ids.length, {
    ...DEFAULT_SEQUENCE_CONFIG,
    encoder: { kind: "gru4rec", dim: 8, maxLength: 10, numBlocks: 1 },
    maxEpochs: 2,
    batchSize: 32,
  });
  await saveSequenceModel(join(bundle, SESSION_MODEL_DIR), trained.model, dataset.items.ids);
  trained.model.dispose();
  ranker = await startFakeRanker();
  const down = await closedAddress();
  o = await startOrchestrator({
    MODEL_PATH: bundle,
    CANDIDATE_GENERATION_ADDRESS: down,
    RETRIEVAL_ADDRESSES: down,
    RANKING_ADDRESS: ranker.address,
    USER_STORE: "embedded",
    USER_STORE_PATH: join(root, "store"),
    SERVED_LOG: "true",
  });
  countCalls(o.orchestrator.store);
}, 120_000);

afterAll(async () => {
  await o?.stop();
  await ranker?.stop();
  if (root !== undefined) await removeDir(root);
});

describe("anonymous sessions", () => {
  it("are answered from the session, with 'Because you just watched' reasons, and never touch the user store", async () => {
    const session = dataset.items.ids.slice(3, 8);
    const titles = new Set(session.map((id) => dataset.items.titles[dataset.items.ids.indexOf(id)] || `"${id}"`));
    const before = userCalls();
    const ranked = ranker.requests.length;
    const response = await o.client.recommend({ sessionItemIds: session, count: 20 });
    expect(response.items.length).toBe(20);
    expect(response.items.some((i) => session.includes(i.itemId))).toBe(false);
    expect(fromSession(response)).toBeGreaterThan(0);
    const reasons = sessionReasons(response);
    expect(reasons.length).toBeGreaterThan(0);
    for (const r of reasons) expect(titles.has(r.slice("Because you just watched ".length))).toBe(true);
    // Co-watch and popular/trending answer too.
    const sources = new Set(response.items.flatMap((i) => i.provenance.map((p) => p.sourceName)));
    expect(sources.has("co-watch") || sources.has("popular") || sources.has("trending")).toBe(true);
    // Ranked, under the reserved id (the ranker requires one), with the session as the history.
    const request = ranker.requests[ranked]!;
    expect(request.context?.userId).toBe(ANONYMOUS_RANK_USER_ID);
    expect(request.context?.watchHistory.map((w) => w.itemId)).toEqual(session);
    // No DNN call was attempted: candidate generation is down, yet the answer is not degraded.
    expect(response.degraded).toBe(false);
    await o.orchestrator.servedLog!.flush();
    expect(userCalls() - before).toBe(0);
  });

  it("the control: a logged-in user's request reads the store and is logged, and gets session candidates too", async () => {
    const before = userCalls();
    const response = await o.client.recommend({ userId: dataset.users.ids[0]!, count: 20 });
    await o.orchestrator.servedLog!.flush();
    expect(calls.get("get") ?? 0).toBeGreaterThan(0);
    expect(userCalls() - before).toBeGreaterThanOrEqual(2); // the read and the served log's append
    expect(fromSession(response)).toBeGreaterThan(0);
    expect(sessionReasons(response).length).toBeGreaterThan(0);
  });

  it("rejects a session with a user id or a context, too many items or a blank id", async () => {
    const items = dataset.items.ids.slice(0, 3);
    expect((await failure(o.client.recommend({ userId: "u1", sessionItemIds: items, count: 5 }))).code).toBe("INVALID_ARGUMENT");
    expect((await failure(o.client.recommend({ context: { userId: "u1" }, sessionItemIds: items, count: 5 }))).code).toBe(
      "INVALID_ARGUMENT",
    );
    const long = Array.from({ length: MAX_SESSION_ITEMS + 1 }, (_, i) => dataset.items.ids[i % dataset.items.ids.length]!);
    expect((await failure(o.client.recommend({ sessionItemIds: long, count: 5 }))).details).toContain("session_item_ids");
    expect((await failure(o.client.recommend({ sessionItemIds: ["1", " "], count: 5 }))).code).toBe("INVALID_ARGUMENT");
    expect((await failure(o.client.recommend({ count: 5 }))).code).toBe("INVALID_ARGUMENT");
  });

  it("unknown session items give a popular answer without session reasons", async () => {
    const response = await o.client.recommend({ sessionItemIds: ["no-such-item"], count: 5 });
    expect(response.items.length).toBe(5);
    expect(fromSession(response)).toBe(0);
  });
});
