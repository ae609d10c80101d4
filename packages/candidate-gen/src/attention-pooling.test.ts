/**
 * Attention pooling of the watch history (model config historyPooling "attention"): gradients,
 * padding, equivalence with the mean at initialisation, a planted pattern the mean cannot learn,
 * and the bundle round trip.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lastoutSplit, Rng, trainingRows } from "@recsys/data";
import { contextFromDataset, EncodedBatch, encodeResolved, fitFeatureSpace } from "@recsys/features";
import { initBackend, tf } from "@recsys/tf";
import { beforeAll, describe, expect, it } from "vitest";
import { bundleFromTraining, createDatasetScorer, loadBundle, loadUserTower, saveBundle } from "./bundle.js";
import { DEFAULT_MODEL_CONFIG, type ModelConfig } from "./config.js";
import { CandidateGenModel } from "./model.js";
import { lastWatchDataset, sequentialDataset } from "./test-helpers.js";
import { type StepInputs, TrainStep } from "./train-step.js";
import { buildExamples, trainCandidateGen, type TrainResult } from "./trainer.js";

beforeAll(async () => {
  await initBackend({ log: null });
});

describe("attention pooling: the step", () => {
  const dataset = sequentialDataset({ users: 30, items: 40, eventsPerUser: 10, follow: 0.8, seed: 5 });
  const rows = trainingRows(lastoutSplit(dataset.events, dataset.users.ids.length), "test");
  const space = fitFeatureSpace(dataset, rows, { historyLength: 5, geoMinCount: 1 });
  const examples = buildExamples(dataset, space, rows, { maxExamplesPerUser: 100, minHistory: 1 });
  const config: ModelConfig = {
    ...DEFAULT_MODEL_CONFIG,
    embeddingDim: 4,
    searchDim: 2,
    categoricalDim: 2,
    tower: [8, 4],
    finalActivation: "relu",
    historyPooling: "attention",
  };

  function setup(matmul: "blas" | "tfjs" | "auto" = "tfjs"): { model: CandidateGenModel; step: TrainStep; inputs: StepInputs } {
    const model = CandidateGenModel.create(space, config, new Rng(11), 0.5);
    // Non-zero attention parameters (they start at zero: uniform weights) so every term counts.
    const q = model.attnQuery!.data;
    const r = model.attnRecency!.data;
    const rng = new Rng(3);
    for (let c = 0; c < q.length; c++) q[c] = rng.normal();
    for (let k = 0; k < r.length; k++) r[k] = rng.normal();
    const step = new TrainStep(model, {
      towerOptimizer: "js",
      matmul,
      batchSize: 8,
      negatives: 6,
      learningRate: 0.01,
      l2: 0,
      embeddings: { optimizer: "adam", learningRate: 0.01, l2: 0, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
    });
    const batch = EncodedBatch.forSpace(space, 8);
    const labels = new Int32Array(8);
    const labelOffsets = new Float32Array(8);
    for (let i = 0; i < 6; i++) {
      const e = i * 9 + 4; // rows with 1..5 watches in the window
      const user = examples.users[examples.user[e]!]!;
      const t = examples.pos[e]!;
      encodeResolved(space, user, t, user.watchTimes[t]!, user.watchTimes[t]!, batch, i);
      labels[i] = user.watchIds[t]!;
    }
    batch.size = 6;
    const negs = [1, 3, 9, 17, 25, 33];
    return {
      model,
      step,
      inputs: { batch, labels, labelOffsets, negatives: Int32Array.from(negs), negativeOffsets: new Float32Array(negs.length) },
    };
  }

  it("matches numerical gradients of the watch rows, the query and the recency bias", () => {
    const { model, step, inputs } = setup();
    const { batch } = inputs;
    expect(new Set(Array.from(batch.watchCount.subarray(0, batch.size))).size).toBeGreaterThan(1);
    const lossOf = (): number => {
      const r = step.forwardBackward(inputs);
      tf.dispose(r.towerGrads);
      step.clearSparseGrads();
      return r.lossSum / batch.size;
    };
    const r = step.forwardBackward(inputs);
    tf.dispose(r.towerGrads);
    const n = batch.historyLength;
    const watchRows = [batch.watchIds[0]!, batch.watchIds[3 * n + 1]!];
    const analytic = {
      watch: watchRows.map((row) => model.watch.gradOf(row).slice()),
      query: model.attnQuery!.gradOf(0).slice(),
      recency: Array.from({ length: n }, (_, k) => model.attnRecency!.gradOf(k)[0]!),
    };
    step.clearSparseGrads();
    const eps = 1e-2;
    const numeric = (data: Float32Array, index: number): number => {
      const v = data[index]!;
      data[index] = v + eps;
      const up = lossOf();
      data[index] = v - eps;
      const down = lossOf();
      data[index] = v;
      return (up - down) / (2 * eps);
    };
    const check = (a: number, num: number): void => {
      expect(Math.abs(a - num)).toBeLessThan(2e-3 + 0.03 * Math.abs(num));
    };
    const d = config.embeddingDim;
    watchRows.forEach((row, i) => {
      for (let c = 0; c < d; c++) check(analytic.watch[i]![c]!, numeric(model.watch.data, row * d + c));
    });
    let nonZero = 0;
    for (let c = 0; c < d; c++) {
      const num = numeric(model.attnQuery!.data, c);
      if (Math.abs(num) > 1e-5) nonZero++;
      check(analytic.query[c]!, num);
    }
    for (let k = 0; k < n; k++) {
      const num = numeric(model.attnRecency!.data, k);
      if (Math.abs(num) > 1e-5) nonZero++;
      check(analytic.recency[k]!, num);
    }
    // Most of the attention parameters get a gradient (the check above is not vacuous).
    expect(nonZero).toBeGreaterThanOrEqual(d + 2);
    step.dispose();
    model.dispose();
  });

  it("takes the same step with its matmuls on the native BLAS as on tfjs", () => {
    const a = setup("tfjs");
    const b = setup("auto");
    if (b.step.blas === null) {
      // No native BLAS installed: both steps are the tfjs one; still compare them.
      expect(b.step.blas).toBeNull();
    }
    const la = a.step.run(a.inputs);
    const lb = b.step.run(b.inputs);
    expect(lb).toBeCloseTo(la, 4);
    for (const [x, y] of [
      [a.model.attnQuery!.data, b.model.attnQuery!.data],
      [a.model.attnRecency!.data, b.model.attnRecency!.data],
      [a.model.watch.data, b.model.watch.data],
    ] as const) {
      for (let i = 0; i < x.length; i++) expect(Math.abs(x[i]! - y[i]!)).toBeLessThan(1e-4);
    }
    for (const s of [a, b]) {
      s.step.dispose();
      s.model.dispose();
    }
  });

  it.each(["tfjs", "auto"] as const)("leaves no tensor behind after steps and dispose (%s matmuls)", (matmul) => {
    const before = tf.memory();
    const s = setup(matmul);
    for (let k = 0; k < 5; k++) s.step.run(s.inputs);
    s.step.dispose();
    s.model.dispose();
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numBytes).toBe(before.numBytes);
  });

  it("gives padding slots no weight, and equals mean pooling while the query and recency bias are zero", () => {
    const { model, step, inputs } = setup();
    const { batch } = inputs;
    const n = batch.historyLength;
    const row = Array.from(batch.watchCount.subarray(0, batch.size)).findIndex((c) => c > 0 && c < n);
    expect(row).toBeGreaterThanOrEqual(0);
    const before = model.userVectors(batch);
    for (let k = batch.watchCount[row]!; k < n; k++) batch.watchIds[row * n + k] = 7 + k; // garbage in the padding
    expect(Array.from(model.userVectors(batch))).toEqual(Array.from(before));
    const w = model.attentionWeights(batch, row);
    expect(w.length).toBe(batch.watchCount[row]);
    expect(w.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);

    model.attnQuery!.data.fill(0);
    model.attnRecency!.data.fill(0);
    const weights = model.weights();
    const { attention: _attention, ...rest } = weights;
    const mean = CandidateGenModel.fromWeights(space, { ...config, historyPooling: "mean" }, rest);
    const a = model.userVectors(batch);
    const m = mean.userVectors(batch);
    for (let i = 0; i < a.length; i++) expect(a[i]!).toBeCloseTo(m[i]!, 5);
    step.dispose();
    mean.dispose();
    model.dispose();
  });

  it("trains with two threads: the same model on every run, close to the single-threaded one", async () => {
    const small = {
      epochs: 2,
      batchSize: 64,
      negatives: 20,
      seed: 7,
      model: { embeddingDim: 8, searchDim: 4, categoricalDim: 4, tower: [16, 8], historyPooling: "attention" as const },
      features: { historyLength: 5 },
    };
    const a = await trainCandidateGen(dataset, { ...small, threads: 2 });
    const b = await trainCandidateGen(dataset, { ...small, threads: 2 });
    const single = await trainCandidateGen(dataset, { ...small, threads: 1 });
    expect(Array.from(a.model.attnRecency!.data)).toEqual(Array.from(b.model.attnRecency!.data));
    expect(Array.from(a.model.attnQuery!.data)).toEqual(Array.from(b.model.attnQuery!.data));
    expect(Array.from(a.model.output.data)).toEqual(Array.from(b.model.output.data));
    expect(Array.from(a.model.attnRecency!.data).some((v) => v !== 0)).toBe(true);
    for (let k = 0; k < 5; k++) expect(Math.abs(a.model.attnRecency!.data[k]! - single.model.attnRecency!.data[k]!)).toBeLessThan(0.02);
    expect(Math.abs(a.stats.finalLoss - single.stats.finalLoss)).toBeLessThan(0.01 * single.stats.finalLoss);
    for (const r of [a, b, single]) r.model.dispose();
  });

  it("is checked in the model config", async () => {
    await expect(trainCandidateGen(dataset, { model: { historyPooling: "max" as never } })).rejects.toThrow(
      /historyPooling must be "mean" or "attention"/,
    );
  });
});

/**
 * Top-1 accuracy on every user's held-out last event, ranking ALL items (the history is not
 * removed: removing it would let a bag-of-items model find the one trigger whose partner is
 * not yet watched).
 */
function top1(result: TrainResult, ds: ReturnType<typeof lastWatchDataset>): number {
  const scorer = createDatasetScorer(bundleFromTraining(result), ds);
  const split = lastoutSplit(ds.events, ds.users.ids.length);
  const scores = new Float32Array(ds.items.ids.length);
  let hits = 0;
  let users = 0;
  for (let u = 0; u < ds.users.ids.length; u++) {
    const test = split.testRow[u]!;
    if (test === -1) continue;
    const history = split.keptRows.subarray(split.keptOffsets[u]!, split.keptOffsets[u + 1]! - 1);
    scorer.score(u, history, ds.events.timestamp[test]!, scores);
    const target = ds.events.item[test]!;
    let best = 0;
    for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i;
    if (best === target) hits++;
    users++;
  }
  return hits / users;
}

describe("attention pooling: training", () => {
  it("learns that the next watch depends on the most recent one in long histories, which mean pooling cannot", async () => {
    const ds = lastWatchDataset({ users: 500, items: 200, eventsPerUser: 40, seed: 1 });
    const opts = {
      threads: 1,
      epochs: 4,
      batchSize: 128,
      negatives: 50,
      learningRate: 3e-3,
      embeddingLearningRate: 1e-2,
      finalLearningRateFraction: 1,
      seed: 3,
      features: { historyLength: 20 },
    } as const;
    const model = { embeddingDim: 32, searchDim: 4, categoricalDim: 4, tower: [64, 32] };
    const mean = await trainCandidateGen(ds, { ...opts, model: { ...model, historyPooling: "mean" } });
    const attention = await trainCandidateGen(ds, { ...opts, model: { ...model, historyPooling: "attention" } });
    const accMean = top1(mean, ds);
    const accAttention = top1(attention, ds);
    // The recency bias learned to favour the most recent watch.
    const r = attention.model.attnRecency!.data;
    expect(r[0]!).toBeGreaterThan(Math.max(...Array.from(r.subarray(1))));
    expect(accAttention).toBeGreaterThan(0.5);
    expect(accAttention).toBeGreaterThan(accMean + 0.3);
    console.log(`planted last-watch pattern, top-1 over all items: mean ${accMean.toFixed(3)}, attention ${accAttention.toFixed(3)}`);
    mean.model.dispose();
    attention.model.dispose();
  });
});

describe("attention pooling: bundle", () => {
  it("loads a bundle written before the option (no historyPooling in its manifest) as mean pooling", async () => {
    const ds = sequentialDataset({ users: 40, items: 50, eventsPerUser: 8, follow: 0.8, seed: 4 });
    const result = await trainCandidateGen(ds, {
      threads: 1,
      epochs: 1,
      batchSize: 32,
      negatives: 10,
      model: { embeddingDim: 8, searchDim: 4, categoricalDim: 4, tower: [16, 8], historyPooling: "mean" },
    });
    const dir = await mkdtemp(join(tmpdir(), "cg-old-bundle-"));
    try {
      await saveBundle(dir, result);
      const path = join(dir, "manifest.json");
      const manifest = JSON.parse(await readFile(path, "utf8")) as { model: Record<string, unknown> };
      delete manifest.model["historyPooling"];
      await writeFile(path, JSON.stringify(manifest));
      const lo = ds.events.userOffsets[3]!;
      const ctx = contextFromDataset(ds, 3, Int32Array.from([lo, lo + 1, lo + 2]), ds.events.timestamp[lo + 3]!);
      const tower = await loadUserTower(dir);
      expect(Array.from(tower.userVector(ctx))).toEqual(Array.from(bundleFromTraining(result).userVector(ctx)));
      tower.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
      result.model.dispose();
    }
  });

  it("records the pooling in the manifest and loads the same user vectors (full bundle and user tower)", async () => {
    const ds = sequentialDataset({ users: 50, items: 60, eventsPerUser: 12, follow: 0.8, seed: 3 });
    const result = await trainCandidateGen(ds, {
      threads: 1,
      epochs: 2,
      batchSize: 32,
      negatives: 10,
      model: { embeddingDim: 8, searchDim: 4, categoricalDim: 4, tower: [16, 8], historyPooling: "attention" },
      features: { historyLength: 6 },
    });
    expect(Array.from(result.model.attnRecency!.data).some((v) => v !== 0)).toBe(true);
    const inMemory = bundleFromTraining(result);
    const dir = await mkdtemp(join(tmpdir(), "cg-attn-bundle-"));
    try {
      const manifest = await saveBundle(dir, result);
      expect(manifest.model.historyPooling).toBe("attention");
      expect(manifest.files.attention).toEqual({ file: "attention.f32", queryDim: 8, recencyLength: 6 });
      const ctxs = [0, 7, 13].map((u) => {
        const lo = ds.events.userOffsets[u]!;
        return contextFromDataset(
          ds,
          u,
          Int32Array.from({ length: 8 }, (_, k) => lo + k),
          ds.events.timestamp[lo + 8]!,
        );
      });
      const a = inMemory.userVectors(ctxs);
      for (const load of [loadBundle, loadUserTower]) {
        const loaded = await load(dir);
        expect(loaded.manifest.model.historyPooling).toBe("attention");
        expect(loaded.userVectors(ctxs).map((v) => Array.from(v))).toEqual(a.map((v) => Array.from(v)));
        loaded.dispose();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
      result.model.dispose();
    }
  });
});
