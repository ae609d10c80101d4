import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lastoutSplit, Rng, trainingRows } from "@recsys/data";
import { NUM_CATEGORICAL } from "@recsys/features";
import { createStandardSources } from "@recsys/sources";
import { initBackend, tf } from "@recsys/tf";
import { beforeAll, describe, expect, it } from "vitest";
import { loadRanker, rankerFromTraining, saveRanker } from "./bundle.js";
import { encodeCandidates, RankingBatch, resolveRankingUser } from "./encode.js";
import { exampleCandidates, exampleContext } from "./examples.js";
import { DEFAULT_RANKER_MODEL_CONFIG, RankerModel, type RankerModelConfig, RankerTrainStep } from "./model.js";
import type { RankingSpace } from "./space.js";
import { synthetic } from "./test-helpers.js";
import { trainRanker } from "./trainer.js";
import { hashCross, WIDE_MAX_TAGS, WIDE_SLOTS, wideCrosses } from "./wide.js";

beforeAll(async () => {
  await initBackend();
});

describe("wide crosses", () => {
  it("hashes (cross, a, b) deterministically into 31 bits and separates the arguments' order", () => {
    expect(hashCross(1, 5, 7)).toBe(hashCross(1, 5, 7));
    expect(hashCross(1, 5, 7)).not.toBe(hashCross(1, 7, 5));
    expect(hashCross(1, 5, 7)).not.toBe(hashCross(2, 5, 7));
    for (let a = 0; a < 100; a++) expect(hashCross(3, a, -1)).toBeGreaterThanOrEqual(0);
  });

  it("fills the item, tag, source and position slots and leaves the others empty", () => {
    const out = new Int32Array(WIDE_SLOTS + 2).fill(99);
    // Candidate: catalogue index 1 with tags [4, 2]; nominated by sources 0 and 3.
    const tagOffsets = [0, 1, 3];
    const tagCodes = [9, 4, 2];
    wideCrosses(
      { lastItem: 12, lastChannel: -1, topTag: 4 },
      {
        item: 3,
        catalogIndex: 1,
        channel: 5,
        sources: [
          { source: 0, rank: 0 },
          { source: 3, rank: 10 },
        ],
        position: 2,
      },
      tagCodes,
      tagOffsets,
      out,
      1,
    );
    expect(out[0]).toBe(99);
    expect(out[WIDE_SLOTS + 1]).toBe(99);
    const slots = Array.from(out.subarray(1, 1 + WIDE_SLOTS));
    expect(slots[0]).toBe(hashCross(1, 3, 12));
    expect(slots[1]).toBe(-1); // the last watch has no channel
    expect(slots.slice(2, 4)).toEqual([hashCross(3, 4, 4), hashCross(3, 2, 4)]);
    expect(slots.slice(4, 2 + WIDE_MAX_TAGS).every((v) => v === -1)).toBe(true);
    const src = slots.slice(2 + WIDE_MAX_TAGS, WIDE_SLOTS - 1);
    expect(src.filter((v) => v >= 0)).toHaveLength(2);
    expect(slots[WIDE_SLOTS - 1]).toBe(hashCross(5, 1, 2));
  });

  it("encodes the user's last item and top tag from watches at or before t only", () => {
    const space = {
      config: { historyLength: 50 },
      catalog: { indexOf: () => -1, channel: [], tagOffsets: [0], tagCodes: [] },
      features: { items: { id: (id: string) => Number(id.replace(/\D/g, "")) + 1 }, categorical: () => ({ id: () => 0 }) },
    };
    const user = resolveRankingUser(
      space as unknown as RankingSpace,
      {
        watches: [
          { itemId: "i5", timestamp: 10 },
          { itemId: "i7", timestamp: 30 },
          { itemId: "i2", timestamp: 20 },
        ],
        searches: [],
        requestTime: 25,
      },
      25,
    );
    expect(user.lastItem).toBe(3); // i2 at 20: the latest at or before 25 (i7 is later)
    expect(user.topTag).toBe(-1);
  });

  it("takes the last channel from the latest watch at or before t, -1 when that item is not in the catalogue", () => {
    // Catalogue: i5 → channel 4, i2 → channel 6, i7 → channel 8; i9 is not in it.
    const index: Record<string, number> = { i5: 0, i2: 1, i7: 2 };
    const space = {
      config: { historyLength: 50 },
      catalog: { indexOf: (id: string) => index[id] ?? -1, channel: [4, 6, 8], tagOffsets: [0, 0, 0, 0], tagCodes: [] },
      features: { items: { id: (id: string) => Number(id.replace(/\D/g, "")) + 1 }, categorical: () => ({ id: () => 0 }) },
    };
    const resolve = (watches: { itemId: string; timestamp: number }[], t: number) =>
      resolveRankingUser(space as unknown as RankingSpace, { watches, searches: [], requestTime: t }, t);
    const watches = [
      { itemId: "i2", timestamp: 20 },
      { itemId: "i5", timestamp: 10 },
      { itemId: "i7", timestamp: 30 },
    ];
    expect(resolve(watches, 25).lastChannel).toBe(6); // i2 at 20 (i7 is later than t)
    expect(resolve(watches, 35).lastChannel).toBe(8); // i7 at 30
    expect(resolve([...watches, { itemId: "i9", timestamp: 40 }], 45).lastChannel).toBe(-1);
    expect(resolve([], 45).lastChannel).toBe(-1);
  });
});

/**
 * A planted cross: the watched item is a fixed permutation of the user's last item, and every item
 * is watched equally often. A model additive in the item and the history (the deep part without
 * hidden layers nor the item ⊙ history product) cannot rank it; the wide part's item × last-item
 * cross can.
 */
describe("wide part", () => {
  const items = 40;
  const negatives = 5;
  const next = (last: number): number => 1 + ((7 * (last - 1) + 3) % items);
  const fakeSpace = { features: { items: { size: items + 1 }, categorical: () => ({ size: 2 }) }, width: 1 } as unknown as RankingSpace;

  function fill(batch: RankingBatch, rng: Rng, examples: number, labels: Float32Array, weights: Float32Array): void {
    batch.size = 0;
    for (let e = 0; e < examples; e++) {
      const last = 1 + rng.int(items);
      const pos = next(last);
      const cands = [pos];
      while (cands.length < 1 + negatives) {
        const c = 1 + rng.int(items);
        if (!cands.includes(c)) cands.push(c);
      }
      const first = batch.size;
      cands.forEach((item, k) => {
        const r = batch.size++;
        batch.item[r] = item;
        batch.history[r] = last;
        batch.historyCount[r] = 1;
        batch.group[r] = first;
        batch.categorical.fill(0, r * NUM_CATEGORICAL, (r + 1) * NUM_CATEGORICAL);
        batch.continuous[r] = 0;
        wideCrosses(
          { lastItem: last, lastChannel: -1, topTag: -1 },
          { item, catalogIndex: -1, channel: -1, sources: [], position: -1 },
          [],
          [0],
          batch.wide,
          r * WIDE_SLOTS,
        );
        labels[r] = k === 0 ? 1 : 0;
        weights[r] = k === 0 ? 3 : 1;
      });
    }
  }

  /** Share of fresh examples whose positive gets the highest logit of its candidates. */
  function trainAndTest(config: RankerModelConfig): number {
    const model = RankerModel.create(fakeSpace, config, new Rng(1, 1), 0.05);
    const perBatch = 16;
    const capacity = perBatch * (1 + negatives);
    const step = new RankerTrainStep(
      model,
      {
        learningRate: 1e-2,
        l2: 0,
        embeddings: { optimizer: "adam", learningRate: 1e-2, l2: 0, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
        wide: { optimizer: "adam", learningRate: 5e-2, l2: 0, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
      },
      capacity,
    );
    const batch = new RankingBatch(capacity, 1, 1);
    const labels = new Float32Array(capacity);
    const weights = new Float32Array(capacity);
    const rng = new Rng(2, 2);
    for (let s = 0; s < 400; s++) {
      fill(batch, rng, perBatch, labels, weights);
      step.run(batch, labels, weights);
    }
    step.dispose();
    let top = 0;
    const tests = 200;
    const testRng = new Rng(3, 3);
    for (let t = 0; t < tests; t++) {
      fill(batch, testRng, 1, labels, weights);
      const z = model.score(batch);
      if (z.every((v, r) => r === 0 || v < z[0]!)) top++;
    }
    model.dispose();
    return top / tests;
  }

  it("learns an item × last-item rule that the same model without the cross cannot fit", () => {
    const additive = { ...DEFAULT_RANKER_MODEL_CONFIG, itemDim: 8, categoricalDim: 2, tower: [], interaction: false };
    const withoutCross = trainAndTest({ ...additive, kind: "weighted-lr" });
    const withCross = trainAndTest({ ...additive, kind: "wide-deep", wideBuckets: 1 << 12 });
    // Chance is 1 / (1 + negatives) ≈ 0.17.
    expect(withoutCross).toBeLessThan(0.4);
    expect(withCross).toBeGreaterThan(0.9);
  });

  it("a model leaves no tensor behind once disposed (a ranking stage loads one per rollout)", () => {
    const before = tf.memory();
    const model = RankerModel.create(
      fakeSpace,
      { ...DEFAULT_RANKER_MODEL_CONFIG, itemDim: 8, categoricalDim: 2, tower: [16, 8] },
      new Rng(1, 1),
      0.05,
    );
    model.dispose();
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numBytes).toBe(before.numBytes);
  });
});

describe("trainRanker --model-kind wide-deep", () => {
  it("trains, carries its kind in the manifest and scores the same after a save/load round trip", async () => {
    const dataset = synthetic("users=200,items=150,events=20,impressions=40,seed=5");
    const split = lastoutSplit(dataset.events, dataset.users.ids.length);
    const rows = trainingRows(split, "val");
    const settings = { budget: 30, mergedSize: 60 };
    const result = await trainRanker(dataset, {
      rows,
      sources: createStandardSources(dataset, { mergedSize: settings.mergedSize }),
      budget: settings.budget,
      train: { epochs: 1, maxExamplesPerUser: 10, negatives: 10, seed: 1 },
      model: { kind: "wide-deep", wideBuckets: 1 << 14 },
    });
    expect(result.model.wide).not.toBeNull();
    expect(result.model.wide!.data.some((v) => v !== 0)).toBe(true);
    const about = {
      datasetSpec: dataset.spec,
      datasetFingerprint: dataset.fingerprint,
      holdout: "val" as const,
      candidateGenVersion: "none",
      pipeline: settings,
    };
    const ranker = rankerFromTraining(result, about);
    const dir = await mkdtemp(join(tmpdir(), "ranker-wd-"));
    try {
      await saveRanker(dir, result, about);
      const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
      expect(manifest.model.kind).toBe("wide-deep");
      expect(manifest.files.wide).toEqual({ file: "wide.f32", rows: 1 << 14 });
      const loaded = await loadRanker(dir);
      const e = 3;
      const ctx = exampleContext(dataset, result.examples, e);
      const cands = exampleCandidates(dataset, result.examples, e);
      const t = result.examples.asOf[e]!;
      const a = loaded.score(ctx, cands, t);
      expect(a).toEqual(ranker.score(ctx, cands, t));
      // The wide part contributes: the same candidates without it score differently.
      const batch = encodeCandidates(ranker.space, ctx, cands, t);
      const wideOnly = new Float32Array(batch.size);
      ranker.model.addWide(batch, wideOnly);
      expect(wideOnly.some((v) => v !== 0)).toBe(true);
      loaded.dispose();
    } finally {
      ranker.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
