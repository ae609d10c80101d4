/**
 * The hierarchical softmax option (train config output "hierarchical"): the co-watch item tree,
 * the two-level loss and its gradients, training on a planted pattern, the tree built from
 * training events only, and the bundle.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Dataset, lastoutSplit, Rng, trainingRows } from "@recsys/data";
import { EncodedBatch, encodeResolved, fitFeatureSpace } from "@recsys/features";
import { initBackend, nativeBlas } from "@recsys/tf";
import { beforeAll, describe, expect, it } from "vitest";
import { bundleFromTraining, createDatasetScorer, loadBundle, saveBundle } from "./bundle.js";
import { DEFAULT_MODEL_CONFIG, type ModelConfig } from "./config.js";
import { HierarchicalSoftmax } from "./hierarchical-softmax.js";
import { buildItemTree, treeFromAssignment } from "./item-tree.js";
import { CandidateGenModel } from "./model.js";
import { SparseTable } from "./sparse.js";
import { sequentialDataset } from "./test-helpers.js";
import { type StepInputs, TrainStep } from "./train-step.js";
import { buildExamples, trainCandidateGen } from "./trainer.js";

beforeAll(async () => {
  await initBackend({ log: null });
});

describe("buildItemTree", () => {
  // Two communities: users 0..29 watch only items 1..10, users 30..59 only items 11..20.
  const histories: number[][] = [];
  const rng = new Rng(1);
  for (let u = 0; u < 60; u++) {
    const base = u < 30 ? 1 : 11;
    const h = new Set<number>();
    while (h.size < 5) h.add(base + rng.int(10));
    histories.push([...h]);
  }

  it("puts co-watched items together, in balanced clusters, the same for a seed", () => {
    const tree = buildItemTree(histories, 21, 2, new Rng(3));
    const first = tree.itemCluster[1]!;
    for (let id = 1; id <= 10; id++) expect(tree.itemCluster[id]).toBe(first);
    for (let id = 11; id <= 20; id++) expect(tree.itemCluster[id]).toBe(1 - first);
    expect(tree.itemCluster[0]).toBe(-1);
    const again = buildItemTree(histories, 21, 2, new Rng(3));
    expect(Array.from(again.itemCluster)).toEqual(Array.from(tree.itemCluster));
    const four = buildItemTree(histories, 21, 4, new Rng(3));
    for (let c = 0; c < 4; c++) expect(four.memberOffsets[c + 1]! - four.memberOffsets[c]!).toBeLessThanOrEqual(5);
    // Every item once; members and positions agree.
    expect(Array.from(four.members).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    for (let id = 1; id <= 20; id++) {
      const c = four.itemCluster[id]!;
      expect(four.members[four.memberOffsets[c]! + four.position[id]!]).toBe(id);
    }
  });

  it("places items nobody watched in clusters with room", () => {
    const tree = buildItemTree([[1, 2], [2, 3], null], 6, 2, new Rng(1));
    for (let id = 1; id < 6; id++) expect(tree.itemCluster[id]!).toBeGreaterThanOrEqual(0);
    for (let c = 0; c < 2; c++) expect(tree.memberOffsets[c + 1]! - tree.memberOffsets[c]!).toBeLessThanOrEqual(3);
  });
});

describe("HierarchicalSoftmax", () => {
  const d = 3;
  const size = 8; // ids 1..7 in 3 clusters
  const tree = treeFromAssignment(Int32Array.from([0, 0, 1, 0, 2, 1, 2, 1]), 3);
  function setup(selfNormalization = 0): { hs: HierarchicalSoftmax; u: Float32Array } {
    const rng = new Rng(7);
    const output = new SparseTable("output", size, d);
    output.initNormal(rng, 0.8);
    const clusters = new SparseTable("clusters", 3, d);
    clusters.initNormal(rng, 0.8);
    const u = new Float32Array(2 * d);
    for (let i = 0; i < u.length; i++) u[i] = rng.normal();
    return { hs: new HierarchicalSoftmax(tree, clusters, output, selfNormalization), u };
  }
  const labels = Int32Array.from([5, 1]);

  it("has a loss equal to −log P(label | u) of the exact probabilities, which sum to 1", () => {
    const { hs, u } = setup();
    const dU = new Float32Array(2 * d);
    const loss = hs.lossAndGrad(u, labels, 0, 2, 2, dU);
    let expected = 0;
    for (let i = 0; i < 2; i++) {
      const lp = new Float64Array(size);
      hs.logProbabilities(u.subarray(i * d, (i + 1) * d), lp);
      let total = 0;
      for (let id = 1; id < size; id++) total += Math.exp(lp[id]!);
      expect(total).toBeCloseTo(1, 6);
      expected -= lp[labels[i]!]!;
    }
    expect(loss).toBeCloseTo(expected, 4);
    // Self-normalisation adds α · Z_c(u)² of the label's cluster to the loss.
    const withPenalty = setup(0.5).hs.lossAndGrad(u, labels, 0, 2, 2, dU);
    let penalty = 0;
    for (let i = 0; i < 2; i++) {
      const uu = u.subarray(i * d, (i + 1) * d);
      const c = tree.itemCluster[labels[i]!]!;
      let z = 0;
      for (let p = tree.memberOffsets[c]!; p < tree.memberOffsets[c + 1]!; p++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += uu[k]! * hs.output.data[tree.members[p]! * d + k]!;
        z += Math.exp(s);
      }
      penalty += 0.5 * Math.log(z) ** 2;
    }
    expect(penalty).toBeGreaterThan(0.01);
    expect(withPenalty).toBeCloseTo(expected + penalty, 4);
  });

  it.each([0, 0.5])("matches numerical gradients of u, the cluster vectors and the item vectors (self-normalisation %s)", (alpha) => {
    const { hs, u } = setup(alpha);
    const dU = new Float32Array(2 * d);
    const lossOf = (): number => {
      const r = hs.lossAndGrad(u, labels, 0, 2, 2, new Float32Array(2 * d)) / 2;
      hs.clusters.clearGrad();
      hs.output.clearGrad();
      return r;
    };
    hs.lossAndGrad(u, labels, 0, 2, 2, dU);
    const eps = 1e-2;
    const numeric = (a: Float32Array, k: number): number => {
      const keep = a[k]!;
      a[k] = keep + eps;
      const up = lossOf();
      a[k] = keep - eps;
      const down = lossOf();
      a[k] = keep;
      return (up - down) / (2 * eps);
    };
    const clusterGrad = [0, 1, 2].map((c) => hs.clusters.gradOf(c));
    const itemGrad = [1, 2, 3, 5, 7].map((id) => hs.output.gradOf(id));
    hs.clusters.clearGrad();
    hs.output.clearGrad();
    for (let k = 0; k < u.length; k++) expect(dU[k]!).toBeCloseTo(numeric(u, k), 3);
    for (let c = 0; c < 3; c++)
      for (let k = 0; k < d; k++) expect(clusterGrad[c]![k]!).toBeCloseTo(numeric(hs.clusters.data, c * d + k), 3);
    // Label 5 is in cluster 1 {2, 5, 7}, label 1 in cluster 0 {1, 3}: only those item rows have gradients.
    [1, 2, 3, 5, 7].forEach((id, n) => {
      for (let k = 0; k < d; k++) expect(itemGrad[n]![k]!).toBeCloseTo(numeric(hs.output.data, id * d + k), 3);
    });
    hs.lossAndGrad(u, labels, 0, 2, 2, dU);
    expect(Array.from(hs.output.gradOf(4))).toEqual([0, 0, 0]);
    expect(Array.from(hs.output.gradOf(6))).toEqual([0, 0, 0]);
  });

  it("serves w_c(j) + v_j: within a cluster the serving scores differ exactly as the log-probabilities", () => {
    const { hs, u } = setup();
    const serving = hs.servingItemVectors();
    const user = u.subarray(0, d);
    const score = (id: number): number => {
      let s = 0;
      for (let k = 0; k < d; k++) s += user[k]! * serving[(id - 1) * d + k]!;
      return s;
    };
    const lp = new Float64Array(size);
    hs.logProbabilities(user, lp);
    // Cluster 1 = {2, 5, 7}: the same within-cluster partition function.
    expect(score(5) - score(2)).toBeCloseTo(lp[5]! - lp[2]!, 5);
    expect(score(7) - score(2)).toBeCloseTo(lp[7]! - lp[2]!, 5);
  });
});

describe("TrainStep with the hierarchical softmax", () => {
  const dataset = sequentialDataset({ users: 30, items: 40, eventsPerUser: 8, follow: 0.8, seed: 5 });
  const rows = trainingRows(lastoutSplit(dataset.events, dataset.users.ids.length), "test");
  const space = fitFeatureSpace(dataset, rows, { historyLength: 4, geoMinCount: 1 });
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
  const histories = examples.users.map((u) => (u === null ? null : u.watchIds));

  function setup(matmul: "blas" | "tfjs"): { model: CandidateGenModel; hs: HierarchicalSoftmax; step: TrainStep; inputs: StepInputs } {
    const model = CandidateGenModel.create(space, config, new Rng(15), 0.5);
    const tree = buildItemTree(histories, space.items.size, 6, new Rng(2));
    const clusters = new SparseTable("clusters", tree.clusters, 4);
    clusters.initNormal(new Rng(4), 0.5);
    const hs = new HierarchicalSoftmax(tree, clusters, model.output);
    const step = new TrainStep(
      model,
      {
        towerOptimizer: "js",
        matmul,
        batchSize: 8,
        negatives: 6,
        learningRate: 0.01,
        l2: 0,
        embeddings: { optimizer: "adam", learningRate: 0.01, l2: 0, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
      },
      hs,
    );
    const batch = EncodedBatch.forSpace(space, 8);
    const labels = new Int32Array(8);
    for (let i = 0; i < 6; i++) {
      const e = i * 7;
      const user = examples.users[examples.user[e]!]!;
      const t = examples.pos[e]!;
      encodeResolved(space, user, t, user.watchTimes[t]!, user.watchTimes[t]!, batch, i);
      labels[i] = user.watchIds[t]!;
    }
    batch.size = 6;
    // Negatives are not read by the hierarchical step (empty arrays).
    const inputs = { batch, labels, labelOffsets: new Float32Array(8), negatives: new Int32Array(0), negativeOffsets: new Float32Array(0) };
    return { model, hs, step, inputs };
  }

  it("lowers the loss on a repeated batch and updates the cluster table", () => {
    const { model, hs, step, inputs } = setup("tfjs");
    const before = hs.clusters.data.slice();
    const first = step.run(inputs);
    for (let i = 0; i < 20; i++) step.run(inputs);
    expect(step.run(inputs)).toBeLessThan(first - 0.1);
    expect(Array.from(hs.clusters.data)).not.toEqual(Array.from(before));
    step.dispose();
    model.dispose();
  });

  it("takes the same steps with its matmuls on the native BLAS as on tfjs", () => {
    // The BLAS is an optional native package: .ci/run installs libopenblas-dev so that it builds.
    expect(nativeBlas(), "the native BLAS (nblas) is not installed").not.toBeNull();
    const a = setup("blas");
    const b = setup("tfjs");
    for (let i = 0; i < 3; i++) expect(a.step.run(a.inputs)).toBeCloseTo(b.step.run(b.inputs), 5);
    for (const [x, y] of [
      [a.model.watch.data, b.model.watch.data],
      [a.model.output.data, b.model.output.data],
      [a.hs.clusters.data, b.hs.clusters.data],
      [a.model.layers[0]!.w.dataSync(), b.model.layers[0]!.w.dataSync()],
    ] as const) {
      for (let i = 0; i < x.length; i++) expect(x[i]!).toBeCloseTo(y[i]!, 5);
    }
    for (const s of [a, b]) {
      s.step.dispose();
      s.model.dispose();
    }
  });
});

/** HR@10 on every user's held-out last event, ranking all items except the user's history. */
function hitRate(ds: Dataset, score: (u: number, history: Int32Array, asOf: number, out: Float32Array) => void): number {
  const split = lastoutSplit(ds.events, ds.users.ids.length);
  const out = new Float32Array(ds.items.ids.length);
  let hits = 0;
  let users = 0;
  for (let u = 0; u < ds.users.ids.length; u++) {
    const test = split.testRow[u]!;
    if (test === -1) continue;
    const history = split.keptRows.subarray(split.keptOffsets[u]!, split.keptOffsets[u + 1]! - 1);
    score(u, history, ds.events.timestamp[test]!, out);
    for (const r of history) out[ds.events.item[r]!] = -Infinity;
    const target = ds.events.item[test]!;
    let better = 0;
    for (let i = 0; i < out.length; i++) if (out[i]! > out[target]! || (out[i] === out[target] && i < target)) better++;
    if (better < 10) hits++;
    users++;
  }
  return hits / users;
}

describe("trainCandidateGen with output hierarchical", () => {
  const small = {
    threads: 1,
    output: "hierarchical",
    epochs: 2,
    batchSize: 64,
    model: { embeddingDim: 8, searchDim: 4, categoricalDim: 4, tower: [16, 8] },
    features: { historyLength: 5 },
  } as const;

  it("learns planted sequential structure and beats most-popular on held-out next watches", async () => {
    const ds = sequentialDataset({ users: 400, items: 200, eventsPerUser: 25, follow: 0.7, seed: 1 });
    const result = await trainCandidateGen(ds, {
      threads: 1,
      output: "hierarchical",
      epochs: 3,
      batchSize: 128,
      learningRate: 3e-3,
      embeddingLearningRate: 3e-3,
      finalLearningRateFraction: 1,
      model: { embeddingDim: 32, searchDim: 4, categoricalDim: 4, tower: [64, 32] },
      features: { historyLength: 5 },
    });
    expect(result.hierarchy).not.toBeNull();
    expect(result.hierarchy!.tree.clusters).toBe(14); // round(√200)
    const scorer = createDatasetScorer(bundleFromTraining(result), ds);
    const model = hitRate(ds, (u, h, t, out) => scorer.score(u, h, t, out));
    const counts = new Float32Array(ds.items.ids.length);
    for (const r of trainingRows(lastoutSplit(ds.events, ds.users.ids.length), "test")) counts[ds.events.item[r]!]!++;
    const popular = hitRate(ds, (_u, _h, _t, out) => out.set(counts));
    console.log(`planted sequence, HR@10: hierarchical softmax ${model.toFixed(3)}, most-popular ${popular.toFixed(3)}`);
    expect(result.stats.epochLosses[2]!).toBeLessThan(result.stats.epochLosses[0]!);
    expect(model).toBeGreaterThan(popular + 0.2);
    expect(model).toBeGreaterThan(0.4);
    result.model.dispose();
  });

  it("builds the item tree from the training events only", async () => {
    const ds = sequentialDataset({ users: 80, items: 49, eventsPerUser: 6, follow: 0.5, seed: 3 });
    // The same dataset with every user's last (test) event moved to item 0.
    const item = ds.events.item.slice();
    const split = lastoutSplit(ds.events, ds.users.ids.length);
    for (let u = 0; u < ds.users.ids.length; u++) {
      const r = split.testRow[u]!;
      const history = new Set(Array.from(split.keptRows.subarray(split.keptOffsets[u]!, split.keptOffsets[u + 1]!), (k) => item[k]!));
      if (r >= 0 && !history.has(0)) item[r] = 0;
    }
    const moved: Dataset = { ...ds, events: { ...ds.events, item }, fingerprint: `${ds.fingerprint}-moved` };
    const treeOf = async (d: Dataset, holdout: "test" | "none"): Promise<number[]> => {
      const r = await trainCandidateGen(d, { ...small, epochs: 1, holdout });
      const ids = r.space.items;
      // Clusters by external item id (the vocabularies may number the items differently).
      const out = d.items.ids.map((id) => r.hierarchy!.tree.itemCluster[ids.id(id)]!);
      r.model.dispose();
      return out;
    };
    // Holdout test: the test events are not seen, so moving them changes nothing.
    expect(await treeOf(moved, "test")).toEqual(await treeOf(ds, "test"));
    // The check can fail: when the same events are training events (holdout none), the tree changes.
    expect(await treeOf(moved, "none")).not.toEqual(await treeOf(ds, "none"));
  });

  it("is checked in the train config", async () => {
    const ds = sequentialDataset({ users: 20, items: 20, eventsPerUser: 5, follow: 0.5, seed: 1 });
    await expect(trainCandidateGen(ds, { ...small, threads: 2 })).rejects.toThrow(/threads 1 only/);
    await expect(trainCandidateGen(ds, { ...small, output: "tree" as never })).rejects.toThrow(
      /output must be "sampled" or "hierarchical"/,
    );
    await expect(trainCandidateGen(ds, { ...small, clusters: -1 })).rejects.toThrow(/clusters must be an integer >= 0/);
  });

  it("writes a bundle that records the option and serves the cluster + item vectors", async () => {
    const ds = sequentialDataset({ users: 60, items: 50, eventsPerUser: 10, follow: 0.7, seed: 2 });
    const result = await trainCandidateGen(ds, { ...small, clusters: 5 });
    const dir = await mkdtemp(join(tmpdir(), "cg-hsm-"));
    try {
      const manifest = await saveBundle(dir, result);
      expect(manifest.trainConfig.output).toBe("hierarchical");
      expect(manifest.files.hierarchy?.clusterEmbeddings.rows).toBe(5);
      const loaded = await loadBundle(dir);
      const serving = result.hierarchy!.servingItemVectors();
      expect(Array.from(loaded.itemEmbeddings)).toEqual(Array.from(serving));
      expect(Array.from(bundleFromTraining(result).itemEmbeddings)).toEqual(Array.from(serving));
      // Not the within-cluster vectors alone.
      expect(Array.from(serving)).not.toEqual(Array.from(result.model.output.data.subarray(8)));
      const bytesOf = async (f: string): Promise<ArrayBuffer> => {
        const b = await readFile(join(dir, f));
        return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
      };
      const clusters = new Int32Array(await bytesOf("item_clusters.i32"));
      expect(Array.from(clusters)).toEqual(Array.from(result.hierarchy!.tree.itemCluster.subarray(1)));
      const cl = new Float32Array(await bytesOf("cluster_embeddings.f32"));
      expect(Array.from(cl)).toEqual(Array.from(result.hierarchy!.clusters.data));
      loaded.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
      result.model.dispose();
    }
  });
});
