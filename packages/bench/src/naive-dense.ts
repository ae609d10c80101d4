/**
 * The naive baseline the sparse trainer is compared with: the same tower and sampled softmax,
 * but everything — including both 64-dim item embedding tables — as dense tfjs variables trained
 * by tfjs autograd and a dense Adam over the WHOLE tables at every step. (tf.gather's gradient
 * needs the UnsortedSegmentSum kernel, which the wasm backend lacks, so rows are selected with
 * dense one-hot / bag-of-items matrices; on wasm that is the only dense formulation that runs.)
 * Only the watch history feeds the tower (other feature blocks are zeros): the dominant costs —
 * dense table gradients and updates — are all there.
 */
import type { Dataset } from "@recsys/data";
import { lastoutSplit, Rng, trainingRows } from "@recsys/data";
import { AliasSampler, buildExamples } from "@recsys/candidate-gen";
import { EncodedBatch, encodeResolved, fitFeatureSpace } from "@recsys/features";
import { tf } from "@recsys/tf";

export interface NaiveOptions {
  readonly batches: number;
  readonly warmup: number;
  readonly batchSize: number;
  readonly negatives: number;
  readonly dim: number;
  readonly tower: readonly number[];
  readonly inputDim: number;
}

export function naiveDenseExamplesPerSecond(dataset: Dataset, o: NaiveOptions): { examplesPerSecond: number; batches: number } {
  const split = lastoutSplit(dataset.events, dataset.users.ids.length);
  const rows = trainingRows(split, "test");
  const space = fitFeatureSpace(dataset, rows);
  const ex = buildExamples(dataset, space, rows, { maxExamplesPerUser: 1000, minHistory: 1 });
  const v = space.items.size;
  const weights = new Float64Array(v - 1);
  for (let id = 1; id < v; id++) weights[id - 1] = Math.pow(ex.labelCounts[id]!, 0.75);
  const sampler = new AliasSampler(weights);
  const rng = new Rng(1, 7);
  const init = (n: number, scale: number): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
    return a;
  };
  const vars: tf.Variable[] = [];
  const watch = tf.variable(tf.tensor2d(init(v * o.dim, 0.05), [v, o.dim]));
  const output = tf.variable(tf.tensor2d(init(v * o.dim, 0.05), [v, o.dim]));
  vars.push(watch, output);
  const layers: { w: tf.Variable; b: tf.Variable }[] = [];
  let inDim = o.inputDim;
  for (const outDim of o.tower) {
    const w = tf.variable(tf.tensor2d(init(inDim * outDim, Math.sqrt(2 / inDim)), [inDim, outDim]));
    const b = tf.variable(tf.zeros([outDim]));
    layers.push({ w, b });
    vars.push(w, b);
    inDim = outDim;
  }
  const optimizer = tf.train.adam(1e-3);
  const batch = EncodedBatch.forSpace(space, o.batchSize);
  const bag = new Float32Array(o.batchSize * v);
  const posSel = new Float32Array(o.batchSize * v);
  const negSel = new Float32Array(o.negatives * v);
  const offsets = new Float32Array(o.batchSize * (o.negatives + 1));
  const rest = new Float32Array(o.batchSize * (o.inputDim - o.dim));
  const n = space.config.historyLength;

  let measuredStart = 0;
  const total = o.warmup + o.batches;
  for (let step = 0; step < total; step++) {
    if (step === o.warmup) measuredStart = performance.now();
    bag.fill(0);
    posSel.fill(0);
    negSel.fill(0);
    for (let i = 0; i < o.batchSize; i++) {
      const e = rng.int(ex.user.length);
      const user = ex.users[ex.user[e]!]!;
      const t = ex.pos[e]!;
      encodeResolved(space, user, t, user.watchTimes[t]!, user.watchTimes[t]!, batch, i);
      const c = batch.watchCount[i]!;
      for (let k = 0; k < c; k++) bag[i * v + batch.watchIds[i * n + k]!]! += 1 / c;
      const label = user.watchIds[t]!;
      posSel[i * v + label] = 1;
      offsets[i * (o.negatives + 1)] = -Math.log(o.negatives * sampler.prob(label - 1));
    }
    for (let j = 0; j < o.negatives; j++) {
      const id = sampler.sample(rng) + 1;
      negSel[j * v + id] = 1;
      for (let i = 0; i < o.batchSize; i++) offsets[i * (o.negatives + 1) + 1 + j] = -Math.log(o.negatives * sampler.prob(id - 1));
    }
    tf.tidy(() => {
      const bagT = tf.tensor2d(bag, [o.batchSize, v]);
      const posT = tf.tensor2d(posSel, [o.batchSize, v]);
      const negT = tf.tensor2d(negSel, [o.negatives, v]);
      const offT = tf.tensor2d(offsets, [o.batchSize, o.negatives + 1]);
      const restT = tf.tensor2d(rest, [o.batchSize, o.inputDim - o.dim]);
      const { grads } = tf.variableGrads(() => {
        let h: tf.Tensor = tf.concat([tf.matMul(bagT, watch), restT], 1);
        for (const l of layers) h = tf.relu(tf.add(tf.matMul(h as tf.Tensor2D, l.w), l.b));
        const pos = tf.sum(tf.mul(h, tf.matMul(posT, output)), 1, true);
        const neg = tf.matMul(h as tf.Tensor2D, tf.matMul(negT, output), false, true);
        const logits = tf.add(tf.concat([pos, neg], 1), offT);
        return tf.neg(tf.mean(tf.sub(tf.slice(logits, [0, 0], [o.batchSize, 1]), tf.logSumExp(logits, 1, true)))) as tf.Scalar;
      }, vars);
      optimizer.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
    });
  }
  const seconds = (performance.now() - measuredStart) / 1000;
  optimizer.dispose();
  tf.dispose(vars);
  return { examplesPerSecond: (o.batches * o.batchSize) / seconds, batches: o.batches };
}
