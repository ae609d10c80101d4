import { mkdtemp, rm, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Dataset, lastoutSplit, Rng, trainingRows } from "@recsys/data";
import { contextFromDataset, EncodedBatch, encodeResolved, fitFeatureSpace } from "@recsys/features";
import { initBackend, nativeBlas, tf } from "@recsys/tf";
import { beforeAll, describe, expect, it } from "vitest";
import { bundleFromTraining, createDatasetScorer, loadBundle, loadUserTower, saveBundle, UNKNOWN_ITEM_SCORE } from "./bundle.js";
import { DEFAULT_MODEL_CONFIG, type ModelConfig } from "./config.js";
import { CandidateGenModel } from "./model.js";
import { expNonPositive } from "./fast-exp.js";
import { AliasSampler } from "./sampler.js";
import { READ_AHEAD_MIN_FLOATS, SparseTable } from "./sparse.js";
import { sequentialDataset } from "./test-helpers.js";
import { type StepInputs, TrainStep } from "./train-step.js";
import { buildExamples, trainCandidateGen } from "./trainer.js";

beforeAll(async () => {
  await initBackend({ log: null });
});

/** Rank of the target among non-history items (protocol lastout: ties by lower index first). */
function hitRate(dataset: Dataset, score: (user: number, history: Int32Array, asOf: number, out: Float32Array) => void, k: number): number {
  const split = lastoutSplit(dataset.events, dataset.users.ids.length);
  const scores = new Float32Array(dataset.items.ids.length);
  let hits = 0;
  let users = 0;
  for (let u = 0; u < dataset.users.ids.length; u++) {
    if (split.testRow[u] === -1) continue;
    const history = split.keptRows.subarray(split.keptOffsets[u]!, split.keptOffsets[u + 1]! - 1);
    const target = dataset.events.item[split.testRow[u]!]!;
    score(u, history, dataset.events.timestamp[split.testRow[u]!]!, scores);
    const excluded = new Set(Array.from(history, (r) => dataset.events.item[r]!));
    let rank = 0;
    for (let i = 0; i < scores.length; i++) {
      if (excluded.has(i)) continue;
      if (scores[i]! > scores[target]! || (scores[i] === scores[target] && i < target)) rank++;
    }
    if (rank < k) hits++;
    users++;
  }
  return hits / users;
}

describe("SparseTable", () => {
  it("sums duplicate rows and updates only touched rows", () => {
    const t = new SparseTable("t", 10, 3);
    t.initNormal(new Rng(1), 0.1);
    const before = t.data.slice();
    const g = Float32Array.from([1, 2, 3]);
    t.addGrad(4, g, 0, 1);
    t.addGrad(4, g, 0, 0.5);
    t.addGrad(7, g, 0, -1);
    expect(Array.from(t.gradOf(4))).toEqual([1.5, 3, 4.5]);
    expect(t.touchedCount).toBe(2);
    t.apply({ optimizer: "adam", learningRate: 0.1, l2: 0, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
    for (let r = 0; r < 10; r++) {
      const changed = [0, 1, 2].some((c) => t.data[r * 3 + c] !== before[r * 3 + c]);
      expect(changed).toBe(r === 4 || r === 7);
    }
    // First Adam step moves each coordinate by ≈ lr against the gradient's sign.
    expect(t.data[4 * 3]! - before[4 * 3]!).toBeCloseTo(-0.1, 4);
    expect(t.data[7 * 3]! - before[7 * 3]!).toBeCloseTo(0.1, 4);
    expect(t.touchedCount).toBe(0);
  });

  it.each([
    ["a small table", 500, 4],
    ["a table large enough for the read-ahead", READ_AHEAD_MIN_FLOATS / 4, 4],
    // apply() updates four coordinates at a time, then the rest one by one.
    ["a small table, dim 7 (unrolled part and remainder)", 500, 7],
    ["a table large enough for the read-ahead, dim 64", READ_AHEAD_MIN_FLOATS / 64, 64],
  ])("takes the same lazy Adam steps as the per-coordinate formula, over many touched rows of %s", (_, rows, dim) => {
    // More touched rows than apply() reads ahead at a time, and a count that is not a multiple of it.
    const cfg = { optimizer: "adam" as const, learningRate: 0.05, l2: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };
    const t = new SparseTable("t", rows, dim);
    t.initNormal(new Rng(3), 0.1);
    const w = t.data.slice();
    const m = new Float32Array(rows * dim);
    const v = new Float32Array(rows * dim);
    const rng = new Rng(4);
    const g = new Float32Array(dim);
    for (let step = 1; step <= 4; step++) {
      const sums = new Map<number, Float32Array>();
      for (let i = 0; i < 300; i++) {
        const r = rng.int(i % 2 === 0 ? 400 : rows); // some rows touched again in later steps
        for (let c = 0; c < dim; c++) g[c] = rng.normal();
        t.addGrad(r, g, 0, 0.5);
        const sum = sums.get(r) ?? new Float32Array(dim);
        for (let c = 0; c < dim; c++) sum[c]! += 0.5 * g[c]!;
        sums.set(r, sum);
      }
      t.apply(cfg);
      const lrT = (cfg.learningRate * Math.sqrt(1 - cfg.beta2 ** step)) / (1 - cfg.beta1 ** step);
      for (const [r, sum] of sums) {
        for (let c = 0; c < dim; c++) {
          const k = r * dim + c;
          const gk = sum[c]! + cfg.l2 * w[k]!;
          const mk = cfg.beta1 * m[k]! + (1 - cfg.beta1) * gk;
          const vk = cfg.beta2 * v[k]! + (1 - cfg.beta2) * gk * gk;
          m[k] = mk;
          v[k] = vk;
          w[k] = w[k]! - (lrT * mk) / (Math.sqrt(vk) + cfg.epsilon);
        }
      }
    }
    let differing = 0;
    for (let k = 0; k < w.length; k++) if (t.data[k] !== w[k]) differing++;
    expect(differing).toBe(0);
  });

  it("two partitions with exchanged gradients update like one table", () => {
    const cfg = { optimizer: "adam" as const, learningRate: 0.1, l2: 0, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 };
    const whole = new SparseTable("w", 6, 2);
    const data = new Float32Array(12);
    const [ms, vs] = SparseTable.stateSizes("adam", 6, 2);
    const m = new Float32Array(ms);
    const v = new Float32Array(vs);
    const a = new SparseTable("a", 6, 2, data);
    const b = new SparseTable("b", 6, 2, data);
    a.attachState("adam", m, v);
    b.attachState("adam", m, v);
    const ga = [
      [1, [1, 2]],
      [2, [3, 1]],
      [5, [-1, 1]],
    ] as const;
    const gb = [
      [2, [1, 1]],
      [3, [2, 2]],
      [5, [4, 0]],
    ] as const;
    for (const [r, g] of ga) {
      whole.addGrad(r, Float32Array.from(g), 0, 1);
      a.addGrad(r, Float32Array.from(g), 0, 1);
    }
    for (const [r, g] of gb) {
      whole.addGrad(r, Float32Array.from(g), 0, 1);
      b.addGrad(r, Float32Array.from(g), 0, 1);
    }
    const rowsA = new Int32Array(6);
    const gradsA = new Float32Array(12);
    const rowsB = new Int32Array(6);
    const gradsB = new Float32Array(12);
    const na = a.exportGrads(rowsA, gradsA);
    const nb = b.exportGrads(rowsB, gradsB);
    a.importGrads(rowsB, gradsB, nb, { parts: 2, part: 0 });
    b.importGrads(rowsA, gradsA, na, { parts: 2, part: 1 });
    a.apply(cfg, { parts: 2, part: 0 });
    b.apply(cfg, { parts: 2, part: 1 });
    whole.apply(cfg);
    expect(Array.from(data)).toEqual(Array.from(whole.data));
    expect(a.touchedCount + b.touchedCount).toBe(0);
  });

  it("row-wise Adagrad keeps one accumulator per row", () => {
    const t = new SparseTable("r", 4, 2);
    const g = Float32Array.from([3, 4]);
    t.addGrad(1, g, 0, 1);
    t.apply({ optimizer: "rowwise-adagrad", learningRate: 0.5, l2: 0, beta1: 0.9, beta2: 0.999, epsilon: 0 });
    // acc = mean(g²) = 12.5; step = 0.5 / √12.5 per unit of gradient.
    const step = 0.5 / Math.sqrt(12.5);
    expect(t.data[2]).toBeCloseTo(-3 * step, 6);
    expect(t.data[3]).toBeCloseTo(-4 * step, 6);
    expect(Array.from(t.data.subarray(0, 2))).toEqual([0, 0]);
    t.addGrad(1, g, 0, 1);
    t.apply({ optimizer: "rowwise-adagrad", learningRate: 0.5, l2: 0, beta1: 0.9, beta2: 0.999, epsilon: 0 });
    expect(t.data[2]).toBeCloseTo(-3 * step - 3 * (0.5 / Math.sqrt(25)), 6);
  });

  it("grows its gradient buffer past the initial capacity", () => {
    const t = new SparseTable("big", 5000, 2);
    const g = Float32Array.from([1, 1]);
    for (let r = 0; r < 5000; r++) t.addGrad(r, g, 0, r);
    expect(t.touchedCount).toBe(5000);
    expect(Array.from(t.gradOf(4321))).toEqual([4321, 4321]);
  });
});

describe("expNonPositive", () => {
  it("matches Math.exp to 1e-7 relative on x <= 0", () => {
    const rng = new Rng(9);
    let worst = 0;
    for (let i = 0; i < 20_000; i++) {
      const x = -rng.next() * (i % 2 === 0 ? 30 : 700);
      worst = Math.max(worst, Math.abs(expNonPositive(x) / Math.exp(x) - 1));
    }
    expect(worst).toBeLessThan(1e-7);
    expect(expNonPositive(0)).toBe(1);
    expect(expNonPositive(-1e9)).toBe(0);
  });
});

describe("AliasSampler", () => {
  it("samples in proportion to the weights", () => {
    const s = new AliasSampler([1, 0, 3, 6]);
    expect(s.prob(3)).toBeCloseTo(0.6, 12);
    const counts = [0, 0, 0, 0];
    const rng = new Rng(3);
    for (let i = 0; i < 100_000; i++) counts[s.sample(rng)]!++;
    expect(counts[1]).toBe(0);
    expect(counts[0]! / 1e5).toBeCloseTo(0.1, 2);
    expect(counts[3]! / 1e5).toBeCloseTo(0.6, 2);
  });
});

describe("training step", () => {
  const dataset = sequentialDataset({ users: 30, items: 40, eventsPerUser: 8, follow: 0.8, seed: 5 });
  const rows = trainingRows(lastoutSplit(dataset.events, dataset.users.ids.length), "test");
  const space = fitFeatureSpace(dataset, rows, { historyLength: 4, geoMinCount: 1 });
  const examples = buildExamples(dataset, space, rows, { maxExamplesPerUser: 100, minHistory: 1 });
  // The mean-pooling step (attention pooling's step: attention-pooling.test.ts).
  const config: ModelConfig = {
    ...DEFAULT_MODEL_CONFIG,
    embeddingDim: 4,
    searchDim: 2,
    categoricalDim: 2,
    tower: [8, 4],
    finalActivation: "relu",
    historyPooling: "mean",
  };
  const negatives = 6;

  function setup(
    seed: number,
    negs: number[],
    towerOptimizer: "js" | "tfjs" = "js",
    matmul: "auto" | "blas" | "tfjs" = "auto",
    l2 = 0,
  ): { model: CandidateGenModel; step: TrainStep; inputs: StepInputs } {
    const model = CandidateGenModel.create(space, config, new Rng(seed), 0.5);
    const step = new TrainStep(model, {
      towerOptimizer,
      matmul,
      batchSize: 8,
      negatives,
      learningRate: 0.01,
      l2,
      embeddings: { optimizer: "adam", learningRate: 0.01, l2: 0, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
    });
    const batch = EncodedBatch.forSpace(space, 8);
    const labels = new Int32Array(8);
    const labelOffsets = new Float32Array(8);
    for (let i = 0; i < 5; i++) {
      const e = i * 7;
      const user = examples.users[examples.user[e]!]!;
      const t = examples.pos[e]!;
      encodeResolved(space, user, t, user.watchTimes[t]!, user.watchTimes[t]!, batch, i);
      labels[i] = user.watchIds[t]!;
      labelOffsets[i] = -0.1 * i; // arbitrary logQ offsets: the gradient must account for them
    }
    batch.size = 5;
    const negativeOffsets = Float32Array.from(negs, (_, j) => 0.2 * j - 0.5);
    return { model, step, inputs: { batch, labels, labelOffsets, negatives: Int32Array.from(negs), negativeOffsets } };
  }

  it("matches numerical gradients (embedding rows, output rows and tower weights)", () => {
    const probe = setup(11, [1, 3, 9, 17, 25, 33]);
    const label0 = probe.inputs.labels[0]!;
    probe.step.dispose();
    probe.model.dispose();
    const { model, step, inputs } = setup(11, [label0, 3, 9, 17, 25, 33]); // includes an accidental hit
    const { batch, labels } = inputs;
    const lossOf = (): number => {
      const r = step.forwardBackward(inputs);
      tf.dispose(r.towerGrads);
      step.clearSparseGrads();
      return r.lossSum / batch.size;
    };
    const { towerGrads } = step.forwardBackward(inputs);
    const watchRow = batch.watchIds[0]!;
    const analytic = {
      watch: model.watch.gradOf(watchRow),
      outPos: model.output.gradOf(labels[1]!),
      outNeg: model.output.gradOf(17),
      occupation: model.categorical[1]!.gradOf(batch.categorical[1]!),
      w0: towerGrads[0]!.dataSync().slice(),
      b1: towerGrads[3]!.dataSync().slice(),
    };
    tf.dispose(towerGrads);
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
    const d = config.embeddingDim;
    const check = (a: number, n: number): void => {
      expect(Math.abs(a - n)).toBeLessThan(2e-3 + 0.03 * Math.abs(n));
    };
    for (let c = 0; c < d; c++) {
      check(analytic.watch[c]!, numeric(model.watch.data, watchRow * d + c));
      check(analytic.outPos[c]!, numeric(model.output.data, labels[1]! * d + c));
      check(analytic.outNeg[c]!, numeric(model.output.data, 17 * d + c));
    }
    for (let c = 0; c < config.categoricalDim; c++) {
      check(analytic.occupation[c]!, numeric(model.categorical[1]!.data, batch.categorical[1]! * config.categoricalDim + c));
    }
    // Tower weights: perturb through the variables.
    const perturb = (variable: tf.Variable, values: Float32Array, shape: number[], idx: number): number => {
      const v = values[idx]!;
      values[idx] = v + eps;
      variable.assign(tf.tensor(values, shape));
      const up = lossOf();
      values[idx] = v - eps;
      variable.assign(tf.tensor(values, shape));
      const down = lossOf();
      values[idx] = v;
      variable.assign(tf.tensor(values, shape));
      return (up - down) / (2 * eps);
    };
    const layer0 = model.layers[0]!;
    const w0 = layer0.w.dataSync().slice() as Float32Array;
    for (const idx of [0, 5, 17, 40]) check(analytic.w0[idx]!, perturb(layer0.w, w0, [layer0.inDim, layer0.outDim], idx));
    const layer1 = model.layers[1]!;
    const b1 = layer1.b.dataSync().slice() as Float32Array;
    for (let idx = 0; idx < b1.length; idx++) check(analytic.b1[idx]!, perturb(layer1.b, b1, [layer1.outDim], idx));
    step.dispose();
    model.dispose();
  });

  it("splits a batch into row ranges whose gradients add up to the whole batch's", () => {
    const negs = [2, 3, 9, 17, 25, 33];
    const a = setup(13, negs);
    const whole = a.step.forwardBackward(a.inputs);
    const wholeW = whole.towerGrads[0]!.dataSync().slice();
    const wholeOut = a.model.output.gradOf(17);
    tf.dispose(whole.towerGrads);
    a.step.clearSparseGrads();
    const first = a.step.forwardBackward(a.inputs, 0, 2, 5);
    const second = a.step.forwardBackward(a.inputs, 2, 5, 5);
    const sumW = first.towerGrads[0]!.dataSync().map((v, i) => v + second.towerGrads[0]!.dataSync()[i]!);
    expect(first.lossSum + second.lossSum).toBeCloseTo(whole.lossSum, 4);
    for (let i = 0; i < sumW.length; i++) expect(sumW[i]!).toBeCloseTo(wholeW[i]!, 5);
    const splitOut = a.model.output.gradOf(17);
    for (let c = 0; c < splitOut.length; c++) expect(splitOut[c]!).toBeCloseTo(wholeOut[c]!, 5);
    tf.dispose([...first.towerGrads, ...second.towerGrads]);
    a.step.dispose();
    a.model.dispose();
  });

  it("takes the same tower Adam step in JS as tf.train.adam", () => {
    const negs = [2, 3, 9, 17, 25, 33];
    const a = setup(14, negs, "js");
    const b = setup(14, negs, "tfjs");
    for (let i = 0; i < 3; i++) {
      a.step.run(a.inputs);
      b.step.run(b.inputs);
    }
    for (let l = 0; l < a.model.layers.length; l++) {
      const wa = a.model.layers[l]!.w.dataSync();
      const wb = b.model.layers[l]!.w.dataSync();
      for (let i = 0; i < wa.length; i++) expect(wa[i]!).toBeCloseTo(wb[i]!, 5);
    }
    for (const x of [a, b]) {
      x.step.dispose();
      x.model.dispose();
    }
  });

  it("takes the same steps with its matmuls on the native BLAS as on tfjs (loss, tower, every table)", () => {
    // The BLAS is an optional native package: .ci/run installs libopenblas-dev so that it builds.
    expect(nativeBlas(), "the native BLAS (nblas) is not installed").not.toBeNull();
    const negs = [2, 3, 9, 17, 25, 33];
    for (const l2 of [0, 0.01]) {
      const a = setup(15, negs, "js", "blas", l2);
      const b = setup(15, negs, "js", "tfjs", l2);
      expect(a.step.blas).not.toBeNull();
      expect(b.step.blas).toBeNull();
      for (let i = 0; i < 3; i++) expect(a.step.run(a.inputs)).toBeCloseTo(b.step.run(b.inputs), 5);
      for (let l = 0; l < a.model.layers.length; l++) {
        for (const key of ["w", "b"] as const) {
          const wa = a.model.layers[l]![key].dataSync();
          const wb = b.model.layers[l]![key].dataSync();
          for (let i = 0; i < wa.length; i++) expect(wa[i]!).toBeCloseTo(wb[i]!, 5);
        }
      }
      for (const table of ["watch", "search", "output"] as const) {
        const ta = a.model[table].data;
        const tb = b.model[table].data;
        for (let i = 0; i < ta.length; i++) expect(ta[i]!).toBeCloseTo(tb[i]!, 5);
      }
      for (let j = 0; j < a.model.categorical.length; j++) {
        const ta = a.model.categorical[j]!.data;
        const tb = b.model.categorical[j]!.data;
        for (let i = 0; i < ta.length; i++) expect(ta[i]!).toBeCloseTo(tb[i]!, 5);
      }
      for (const x of [a, b]) {
        x.step.dispose();
        x.model.dispose();
      }
    }
  });

  it("updates only the embedding rows a batch touched", () => {
    const { model, step, inputs } = setup(12, [2, 3, 9, 17, 25, 33]);
    const { batch, labels, negatives: negs } = inputs;
    const watchBefore = model.watch.data.slice();
    const outBefore = model.output.data.slice();
    step.run(inputs);
    const touchedWatch = new Set<number>();
    for (let b = 0; b < batch.size; b++)
      for (let k = 0; k < batch.watchCount[b]!; k++) touchedWatch.add(batch.watchIds[b * batch.historyLength + k]!);
    const touchedOut = new Set<number>([...Array.from(labels.subarray(0, batch.size)), ...Array.from(negs)]);
    const d = config.embeddingDim;
    const rowChanged = (a: Float32Array, b: Float32Array, r: number): boolean => {
      for (let c = 0; c < d; c++) if (a[r * d + c] !== b[r * d + c]) return true;
      return false;
    };
    for (let r = 0; r < space.items.size; r++) {
      expect(rowChanged(watchBefore, model.watch.data, r)).toBe(touchedWatch.has(r));
      expect(rowChanged(outBefore, model.output.data, r)).toBe(touchedOut.has(r));
    }
    step.dispose();
    model.dispose();
  });
});

describe("trainCandidateGen", () => {
  const small = {
    threads: 1,
    epochs: 2,
    batchSize: 64,
    negatives: 20,
    model: { embeddingDim: 8, searchDim: 4, categoricalDim: 4, tower: [16, 8] },
    features: { historyLength: 5 },
  };

  it("is deterministic for a seed", async () => {
    const ds = sequentialDataset({ users: 60, items: 50, eventsPerUser: 10, follow: 0.7, seed: 2 });
    const a = await trainCandidateGen(ds, { ...small, seed: 7 });
    const b = await trainCandidateGen(ds, { ...small, seed: 7 });
    const c = await trainCandidateGen(ds, { ...small, seed: 8 });
    expect(a.stats.finalLoss).toBe(b.stats.finalLoss);
    expect(Array.from(a.model.output.data)).toEqual(Array.from(b.model.output.data));
    expect(Array.from(a.model.layers[0]!.w.dataSync())).toEqual(Array.from(b.model.layers[0]!.w.dataSync()));
    expect(Array.from(a.model.output.data)).not.toEqual(Array.from(c.model.output.data));
    for (const r of [a, b, c]) r.model.dispose();
  });

  it("gives the same model with two threads on every run, close to the single-threaded one", async () => {
    const ds = sequentialDataset({ users: 60, items: 50, eventsPerUser: 10, follow: 0.7, seed: 2 });
    const a = await trainCandidateGen(ds, { ...small, seed: 7, threads: 2 });
    const b = await trainCandidateGen(ds, { ...small, seed: 7, threads: 2 });
    const single = await trainCandidateGen(ds, { ...small, seed: 7, threads: 1 });
    expect(Array.from(a.model.output.data)).toEqual(Array.from(b.model.output.data));
    expect(Array.from(a.model.layers[1]!.w.dataSync())).toEqual(Array.from(b.model.layers[1]!.w.dataSync()));
    expect(a.stats.epochLosses[0]!).toBeCloseTo(single.stats.epochLosses[0]!, 2);
    expect(Math.abs(a.stats.finalLoss - single.stats.finalLoss)).toBeLessThan(0.01 * single.stats.finalLoss);
    for (const r of [a, b, single]) r.model.dispose();
  });

  it("never trains on the held-out events", async () => {
    const ds = sequentialDataset({ users: 20, items: 400, eventsPerUser: 5, follow: 0, seed: 4 });
    // Items watched only as some user's test event must not get a vocabulary id.
    const split = lastoutSplit(ds.events, ds.users.ids.length);
    const trainItems = new Set(Array.from(trainingRows(split, "test"), (r) => ds.events.item[r]!));
    const testOnly = [
      ...new Set(
        Array.from(split.testRow)
          .filter((r) => r >= 0)
          .map((r) => ds.events.item[r]!),
      ),
    ].filter((i) => !trainItems.has(i));
    expect(testOnly.length).toBeGreaterThan(0);
    const r = await trainCandidateGen(ds, { ...small, epochs: 1 });
    for (const i of testOnly) expect(r.space.items.id(ds.items.ids[i])).toBe(0);
    // The bundle scores them with the finite "unknown" score.
    const scorer = createDatasetScorer(bundleFromTraining(r), ds);
    const out = new Float32Array(ds.items.ids.length);
    const u = ds.events.user[split.testRow.find((x) => x >= 0)!]!;
    scorer.score(u, split.keptRows.subarray(split.keptOffsets[u]!, split.keptOffsets[u]! + 2), 2e9, out);
    for (const i of testOnly) expect(out[i]).toBe(Math.fround(UNKNOWN_ITEM_SCORE));
    expect(out.every((s) => Number.isFinite(s))).toBe(true);
    r.model.dispose();
  });

  it("learns planted sequential structure and beats most-popular on held-out next watches", async () => {
    const ds = sequentialDataset({ users: 400, items: 200, eventsPerUser: 25, follow: 0.7, seed: 1 });
    const result = await trainCandidateGen(ds, {
      threads: 1,
      epochs: 3,
      batchSize: 128,
      negatives: 50,
      learningRate: 3e-3,
      embeddingLearningRate: 3e-3,
      finalLearningRateFraction: 1,
      model: { embeddingDim: 32, searchDim: 4, categoricalDim: 4, tower: [64, 32] },
      features: { historyLength: 5 },
    });
    const scorer = createDatasetScorer(bundleFromTraining(result), ds);
    const model = hitRate(ds, (u, h, t, out) => scorer.score(u, h, t, out), 10);
    // Most-popular from the training events.
    const counts = new Float32Array(ds.items.ids.length);
    for (const r of trainingRows(lastoutSplit(ds.events, ds.users.ids.length), "test")) counts[ds.events.item[r]!]!++;
    const popular = hitRate(ds, (_u, _h, _t, out) => out.set(counts), 10);
    expect(result.stats.epochLosses[2]!).toBeLessThan(result.stats.epochLosses[0]!);
    expect(model).toBeGreaterThan(popular + 0.2);
    expect(model).toBeGreaterThan(0.4);
    result.model.dispose();
  });
});

describe("bundle", () => {
  it("saves and loads: same manifest, item embeddings and user vectors", async () => {
    const ds = sequentialDataset({ users: 50, items: 60, eventsPerUser: 8, follow: 0.8, seed: 3 });
    const result = await trainCandidateGen(ds, {
      threads: 1,
      epochs: 1,
      batchSize: 32,
      negatives: 10,
      model: { embeddingDim: 8, searchDim: 4, categoricalDim: 4, tower: [16, 8] },
    });
    const inMemory = bundleFromTraining(result);
    const dir = await mkdtemp(join(tmpdir(), "cg-bundle-"));
    try {
      const manifest = await saveBundle(dir, result);
      expect(manifest.modelVersion).toMatch(/^cg-\d{14}-[0-9a-f]{8}$/);
      expect(manifest.holdout).toBe("test");
      const loaded = await loadBundle(dir);
      expect(loaded.manifest.modelVersion).toBe(manifest.modelVersion);
      expect(loaded.manifest.datasetFingerprint).toBe(ds.fingerprint);
      expect(loaded.itemIds).toEqual(inMemory.itemIds);
      expect(Array.from(loaded.itemEmbeddings)).toEqual(Array.from(inMemory.itemEmbeddings));
      // The output table holds the same rows (item i is vocabulary id i + 1; row 0 is OOV).
      const loadedModel = (loaded as unknown as { model: { itemVector(id: number): Float32Array } }).model;
      for (const i of [0, 17, loaded.itemIds.length - 1]) {
        expect(Array.from(loadedModel.itemVector(i + 1))).toEqual(
          Array.from(inMemory.itemEmbeddings.subarray(i * loaded.dim, (i + 1) * loaded.dim)),
        );
      }
      const ctxs = [0, 7, 13].map((u) => {
        const lo = ds.events.userOffsets[u]!;
        return contextFromDataset(ds, u, Int32Array.from([lo, lo + 1, lo + 2]), ds.events.timestamp[lo + 3]!);
      });
      ctxs.push({ watches: [{ itemId: "nope", timestamp: 1 }], searches: [], requestTime: 2 });
      const a = inMemory.userVectors(ctxs);
      const b = loaded.userVectors(ctxs);
      expect(b.map((v) => Array.from(v))).toEqual(a.map((v) => Array.from(v)));
      expect(Array.from(loaded.userVector(ctxs[1]!))).toEqual(Array.from(a[1]!));
      expect(a[0]!.length).toBe(loaded.dim);
      loaded.dispose();
      await expect(loadBundle(join(dir, "missing"))).rejects.toThrow(/manifest\.json/);
      await truncate(join(dir, "item_embeddings.f32"), 100);
      await expect(loadBundle(dir)).rejects.toThrow(/item_embeddings\.f32 has 100 bytes, expected \d+ \(\d+×8 float32\)/);
      // The user tower alone never reads the item side: same user vectors with it broken.
      const tower = await loadUserTower(dir);
      expect(tower.userVectors(ctxs).map((v) => Array.from(v))).toEqual(a.map((v) => Array.from(v)));
      expect(tower.manifest.modelVersion).toBe(manifest.modelVersion);
      tower.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
      result.model.dispose();
    }
  });
});
