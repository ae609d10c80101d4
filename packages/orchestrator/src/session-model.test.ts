/**
 * The session source nominates only the session model's rows trained as a target at least
 * SESSION_MIN_ITEM_COUNT times (its saved item counts); a model saved without counts nominates
 * every row. History items are read whatever their count.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { generateSynthetic, parseSyntheticSpec } from "@recsys/data";
import { SequenceModel, saveSequenceModel, sessionEncoder } from "@recsys/sequence";
import { initBackend } from "@recsys/tf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SESSION_MODEL_DIR, loadServingSessionModel, sessionCandidateRows, type ServingSessionModel } from "./session-model.js";
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

const encoder = { kind: "gru4rec" as const, dim: 8, maxLength: 5, numBlocks: 1 };
let root: string;

beforeAll(async () => {
  await initBackend({ log: null });
  root = await tempDir("session-model");
});

afterAll(async () => {
  if (root !== undefined) await removeDir(root);
});

describe("sessionCandidateRows", () => {
  it("keeps the rows counted at least the minimum; every row without counts", () => {
    const counts = Uint32Array.from([0, 1, 2, 3, 5, 0]);
    expect(Array.from(sessionCandidateRows(6, { itemCounts: counts }))).toEqual([1, 2, 3, 4]);
    expect(Array.from(sessionCandidateRows(6, { itemCounts: counts, minItemCount: 3 }))).toEqual([3, 4]);
    expect(Array.from(sessionCandidateRows(6, { itemCounts: counts, minItemCount: 0 }))).toEqual([0, 1, 2, 3, 4, 5]);
    expect(Array.from(sessionCandidateRows(4, {}))).toEqual([0, 1, 2, 3]);
    expect(() => sessionCandidateRows(5, { itemCounts: counts })).toThrow(/6 item counts for 5 items/);
    expect(() => sessionCandidateRows(6, { itemCounts: counts, minItemCount: -1 })).toThrow(RangeError);
  });
});

describe("ServingSessionModel nominates trained items only", () => {
  const N = 30;
  const ids = Array.from({ length: N }, (_, i) => `m${i}`);
  const catalogue = { indexOf: (id: string) => ids.indexOf(id), intern: (id: string) => ids.indexOf(id) };
  const history = ["m1", "m2", "m3"];
  const query = { historyIds: history, asOf: 0, budget: N, skip: () => false };
  // Rows 7 and 9 were never a training target; row 7's vector is planted on the session's state,
  // so by dot product it is the best match of the session (what an untrained row can be by chance).
  const counts = Uint32Array.from({ length: N }, (_, i) => (i === 7 || i === 9 ? 0 : 1 + (i % 3)));
  const served: ServingSessionModel[] = [];
  const logged: { obj: Record<string, unknown>; msg: string }[] = [];
  const logger = { info: (obj: Record<string, unknown>, msg: string) => logged.push({ obj, msg }) } as never;

  async function load(name: string, withCounts: boolean, minItemCount?: number): Promise<ServingSessionModel> {
    const bundle = join(root, name);
    const model = new SequenceModel(N, encoder, 3);
    const state = sessionEncoder(model).encode([1, 2, 3])!;
    model.items.data.set(
      state.map((x) => x * 100),
      (7 + 1) * encoder.dim,
    );
    await mkdir(bundle, { recursive: true });
    await saveSequenceModel(join(bundle, SESSION_MODEL_DIR), model, ids, undefined, withCounts ? counts : undefined);
    model.dispose();
    const s = (await loadServingSessionModel(bundle, { ...(minItemCount === undefined ? {} : { minItemCount }), logger }))!;
    served.push(s);
    return s;
  }

  afterAll(() => {
    for (const s of served) s.dispose();
  });

  it("an item with count 0 is never nominated, the trained ones are (with 'because' among the session)", async () => {
    const s = await load("counted", true);
    expect(s.numItems).toBe(N);
    expect(s.candidateRows.length).toBe(N - 2);
    const found = s.candidates(catalogue, query).candidates;
    const items = found.map((c) => c.item);
    expect(items).not.toContain(7);
    expect(items).not.toContain(9);
    // Every other row but the history is nominated.
    expect(new Set(items)).toEqual(new Set(Array.from({ length: N }, (_, i) => i).filter((i) => ![1, 2, 3, 7, 9].includes(i))));
    for (const c of found) expect([1, 2, 3]).toContain(c.because);
    expect(logged.at(-1)!.obj).toMatchObject({ candidates: N - 2, items: N, minItemCount: 1 });
    expect(logged.at(-1)!.msg).toContain(`${N - 2} of ${N} items are candidates`);
  });

  it("a history item with count 0 is still read", async () => {
    const s = await load("counted-history", true);
    const without = s.candidates(catalogue, { ...query, historyIds: ["m1", "m2"] }).candidates;
    const withUntrained = s.candidates(catalogue, { ...query, historyIds: ["m1", "m2", "m9"] }).candidates;
    expect(withUntrained.map((c) => c.item)).not.toEqual(without.map((c) => c.item));
  });

  it("a model saved without counts (or SESSION_MIN_ITEM_COUNT=0) nominates every row, the planted untrained one first", async () => {
    const old = await load("no-counts", false);
    expect(old.candidateRows.length).toBe(N);
    expect(logged.at(-1)!.msg).toContain("no item counts");
    const found = old.candidates(catalogue, query).candidates;
    expect(found[0]!.item).toBe(7);
    expect(found.length).toBe(N - 3);
    const all = await load("min-zero", true, 0);
    expect(all.candidates(catalogue, query).candidates[0]!.item).toBe(7);
  });

  it("answers in each catalogue's own indices, and nominates an id once the catalogue has it", async () => {
    const s = await load("catalogues", true);
    // Row r is item r + offset in the catalogue (`missing` not in it).
    const offsetCatalogue = (offset: number, missing?: string) => {
      const index = new Map(ids.filter((id) => id !== missing).map((id) => [id, ids.indexOf(id) + offset]));
      return { index, indexOf: (id: string) => index.get(id), intern: (id: string) => index.get(id)! };
    };
    const nominated = (skipped: number[], offset: number) =>
      new Set(
        Array.from({ length: N }, (_, r) => r)
          .filter((r) => ![1, 2, 3, 7, 9, ...skipped].includes(r))
          .map((r) => r + offset),
      );
    const a = offsetCatalogue(100, "m10");
    expect(new Set(s.candidates(a, query).candidates.map((c) => c.item))).toEqual(nominated([10], 100));
    a.index.set("m10", 500);
    const later = s.candidates(a, query).candidates;
    expect(new Set(later.map((c) => c.item))).toEqual(new Set([...nominated([10], 100), 500]));
    for (const c of later) expect([101, 102, 103]).toContain(c.because);
    const b = offsetCatalogue(1000);
    const other = s.candidates(b, query).candidates;
    expect(new Set(other.map((c) => c.item))).toEqual(nominated([], 1000));
    for (const c of other) expect([1001, 1002, 1003]).toContain(c.because);
  });

  it("keeps the rows counted at least minItemCount", async () => {
    const s = await load("min-three", true, 3);
    const expected = Array.from({ length: N }, (_, i) => i).filter((i) => counts[i]! >= 3);
    expect(Array.from(s.candidateRows)).toEqual(expected);
    const items = s.candidates(catalogue, query).candidates.map((c) => c.item);
    expect(items.sort((a, b) => a - b)).toEqual(expected.filter((i) => ![1, 2, 3].includes(i)));
  });
});

describe("the orchestrator's session source at load", () => {
  const dataset = generateSynthetic(TEST_DATASET, parseSyntheticSpec(TEST_SPEC));
  const N = dataset.items.ids.length;
  // Some items with every count from 0 to 4.
  const counts = Uint32Array.from({ length: N }, (_, i) => (i * 7) % 5);
  let ranker: FakeRanker;
  let o: RunningOrchestrator;

  beforeAll(async () => {
    const bundle = join(root, "bundle");
    await writeTinyBundle(bundle, 1);
    const model = new SequenceModel(N, encoder, 2);
    await saveSequenceModel(join(bundle, SESSION_MODEL_DIR), model, dataset.items.ids, undefined, counts);
    model.dispose();
    ranker = await startFakeRanker();
    const down = await closedAddress();
    o = await startOrchestrator({
      MODEL_PATH: bundle,
      CANDIDATE_GENERATION_ADDRESS: down,
      RETRIEVAL_ADDRESSES: down,
      RANKING_ADDRESS: ranker.address,
      USER_STORE: "embedded",
      USER_STORE_PATH: join(root, "store"),
      SESSION_MIN_ITEM_COUNT: "3",
    });
  }, 120_000);

  afterAll(async () => {
    await o?.stop();
    await ranker?.stop();
  });

  it("keeps exactly the rows counted at least SESSION_MIN_ITEM_COUNT, says so in the log and nominates nothing else", async () => {
    const session = o.orchestrator.bundle.current().session!;
    const expected = Array.from({ length: N }, (_, i) => i).filter((i) => counts[i]! >= 3);
    expect(expected.length).toBeGreaterThan(0);
    expect(expected.length).toBeLessThan(N);
    expect(Array.from(session.candidateRows)).toEqual(expected);
    const line = o.logs.lines.find((l) => typeof l["msg"] === "string" && (l["msg"] as string).startsWith("session model:"));
    expect(line).toMatchObject({ candidates: expected.length, items: N, minItemCount: 3 });
    const kept = new Set(expected.map((i) => dataset.items.ids[i]!));
    const response = await o.client.recommend({ sessionItemIds: dataset.items.ids.slice(3, 8), count: 50 });
    const fromSession = response.items.filter((i) => i.provenance.some((p) => p.sourceName === "session"));
    expect(fromSession.length).toBeGreaterThan(0);
    for (const item of fromSession) expect(kept.has(item.itemId)).toBe(true);
  });
});
