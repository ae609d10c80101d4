import { Rng } from "@recsys/data";
import { initBackend, nativeBlas, tf } from "@recsys/tf";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { createEncoder } from "./encoders.js";
import { bmm, bmmT, dense, fullSoftmaxLoss, gatherRows, layerNorm, mm, sequenceBlas, setSequenceKernels } from "./ops.js";

beforeAll(async () => {
  await initBackend({ backend: "wasm", log: null });
});

afterEach(() => {
  setSequenceKernels("auto");
});

function random(rng: Rng, shape: number[], scale = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = (2 * rng.next() - 1) * scale;
  return tf.tensor(v, shape);
}

/** Value and gradients of f's scalar with respect to inputs, as plain arrays, on one matmul path. */
function run(mode: "auto" | "tfjs", inputs: tf.Tensor[], f: (...xs: tf.Tensor[]) => tf.Scalar): { value: number; grads: Float32Array[] } {
  setSequenceKernels(mode);
  const { value, grads } = tf.valueAndGrads(f)(inputs);
  const out = { value: value.dataSync()[0]!, grads: grads.map((g) => g.dataSync() as Float32Array) };
  tf.dispose([value, ...grads]);
  return out;
}

function expectClose(a: Float32Array, b: Float32Array, tolerance: number): void {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  expect(worst).toBeLessThan(tolerance);
}

const hasBlas = nativeBlas() !== null;

describe("fullSoftmaxLoss", () => {
  it("rejects a target outside the catalogue on either path", () => {
    const h = tf.zeros([2, 4]) as tf.Tensor2D;
    const eT = tf.zeros([4, 3]) as tf.Tensor2D;
    for (const mode of ["auto", "tfjs"] as const) {
      setSequenceKernels(mode);
      expect(() => fullSoftmaxLoss(h, eT, Int32Array.from([0, 3]))).toThrow(RangeError);
    }
    tf.dispose([h, eT]);
  });
});

describe("layerNorm: the JS op agrees with the tfjs composition", () => {
  it("values and gradients of x, gain and bias", () => {
    const rng = new Rng(6);
    const x = tf.add(random(rng, [23, 16], 2), random(rng, [23, 1], 5)); // rows with their own offsets
    const g = tf.add(random(rng, [16], 0.5), 1);
    const b = random(rng, [16], 0.5);
    const w = random(rng, [23, 16]);
    const f = (xs: tf.Tensor, gs: tf.Tensor, bs: tf.Tensor): tf.Scalar =>
      tf.sum(tf.mul(layerNorm(xs as tf.Tensor2D, gs as tf.Tensor1D, bs as tf.Tensor1D), w));
    const js = run("auto", [x, g, b], f);
    const ref = run("tfjs", [x, g, b], f);
    expect(Math.abs(js.value - ref.value)).toBeLessThan(1e-4);
    js.grads.forEach((grad, i) => expectClose(grad, ref.grads[i]!, 1e-5));
    expect(js.grads[1]!.some((v) => Math.abs(v) > 0.1)).toBe(true); // the gain's gradient is not trivially zero
    tf.dispose([x, g, b, w]);
  });
});

describe("gatherRows: the JS op agrees with tf.gather and its scatter gradient", () => {
  it("values and gradient", () => {
    const rng = new Rng(7);
    const x = random(rng, [9, 5]);
    const w = random(rng, [4, 5]);
    const index = Int32Array.from([7, 0, 3, 8]);
    const f = (xs: tf.Tensor): tf.Scalar => tf.sum(tf.mul(gatherRows(xs as tf.Tensor2D, index), w));
    const js = run("auto", [x], f);
    const ref = run("tfjs", [x], f);
    expect(Math.abs(js.value - ref.value)).toBeLessThan(1e-5);
    expectClose(js.grads[0]!, ref.grads[0]!, 1e-7);
    expect(js.grads[0]!.subarray(5, 10).every((v) => v === 0)).toBe(true); // row 1 was not gathered
    setSequenceKernels("auto");
    expect(() => gatherRows(x as tf.Tensor2D, Int32Array.from([9]))).toThrow(RangeError);
    tf.dispose([x, w]);
  });
});

describe.skipIf(!hasBlas)("BLAS path agrees with the tfjs path (nblas installed)", () => {
  it("uses the BLAS unless told otherwise", () => {
    expect(sequenceBlas()).not.toBeNull();
    setSequenceKernels("tfjs");
    expect(sequenceBlas()).toBeNull();
  });

  it("mm, dense, bmm and bmmT: values and gradients", () => {
    const rng = new Rng(1);
    const a = random(rng, [13, 9]);
    const b = random(rng, [9, 11]);
    const w = random(rng, [13, 11]); // a fixed random weighting makes every output count
    const a3 = random(rng, [3, 13, 9]);
    const b3 = random(rng, [3, 9, 11]);
    const c3 = random(rng, [3, 11, 9]);
    const w3 = random(rng, [3, 13, 11]);
    const bias = random(rng, [11]);
    const cases: [tf.Tensor[], (...xs: tf.Tensor[]) => tf.Scalar][] = [
      [[a, b, bias], (x, y, z) => tf.sum(tf.mul(dense(x as tf.Tensor2D, y as tf.Tensor2D, z as tf.Tensor1D), w))],
      [[a, b], (x, y) => tf.sum(tf.mul(mm(x as tf.Tensor2D, y as tf.Tensor2D), w))],
      [[a3, b3], (x, y) => tf.sum(tf.mul(bmm(x as tf.Tensor3D, y as tf.Tensor3D), w3))],
      [[a3, c3], (x, y) => tf.sum(tf.mul(bmmT(x as tf.Tensor3D, y as tf.Tensor3D), w3))],
    ];
    for (const [inputs, f] of cases) {
      const blas = run("auto", inputs, f);
      const ref = run("tfjs", inputs, f);
      expect(Math.abs(blas.value - ref.value)).toBeLessThan(1e-4);
      blas.grads.forEach((g, i) => expectClose(g, ref.grads[i]!, 1e-5));
    }
    // bmmT is bmm against the transpose
    const t = tf.tidy(() =>
      tf.sub(bmmT(a3 as tf.Tensor3D, c3 as tf.Tensor3D), bmm(a3 as tf.Tensor3D, tf.transpose(c3 as tf.Tensor3D, [0, 2, 1]))),
    );
    expect(tf.max(tf.abs(t)).dataSync()[0]).toBeLessThan(1e-5);
    tf.dispose([a, b, w, a3, b3, c3, w3, t, bias]);
  });

  it("fullSoftmaxLoss: loss and gradients", () => {
    const rng = new Rng(2);
    const h = random(rng, [37, 16]);
    const eT = random(rng, [16, 211], 0.5);
    const targets = Int32Array.from({ length: 37 }, () => rng.int(211));
    const f = (x: tf.Tensor, y: tf.Tensor): tf.Scalar =>
      tf.mul(fullSoftmaxLoss(x as tf.Tensor2D, y as tf.Tensor2D, targets), 3) as tf.Scalar;
    const blas = run("auto", [h, eT], f);
    const ref = run("tfjs", [h, eT], f);
    expect(blas.value).toBeGreaterThan(3); // ~3·log 211 at random
    expect(Math.abs(blas.value - ref.value)).toBeLessThan(1e-5 * blas.value);
    expectClose(blas.grads[0]!, ref.grads[0]!, 1e-5);
    expectClose(blas.grads[1]!, ref.grads[1]!, 1e-5);
    tf.dispose([h, eT]);
  });

  it("a SASRec step: loss and the gradients of every weight", () => {
    const rng = new Rng(4);
    const B = 3;
    const L = 6;
    const d = 8;
    const encoder = createEncoder({ kind: "sasrec", dim: d, maxLength: L, numBlocks: 2 }, new Rng(5));
    const x = random(rng, [B, L, d], 0.3) as tf.Tensor3D;
    const mask = new Float32Array(B * L).fill(1);
    mask.fill(0, 0, 2); // the first sequence is left-padded by two
    const attention = new Float32Array(B * L * L);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < L; t++) for (let s = 0; s < L; s++) attention[(b * L + t) * L + s] = s <= t && mask[b * L + s] === 1 ? 0 : -1e9;
    const rows = Int32Array.from({ length: B * L - 2 }, (_, i) => i + 2);
    const targets = Int32Array.from(rows, () => rng.int(29));
    const eT = tf.variable(random(rng, [d, 29], 0.5));
    const loss = (): tf.Scalar => {
      const h = encoder.encode({ x, mask: tf.tensor2d(mask, [B, L]), attentionMask: tf.tensor3d(attention, [B, L, L]) }, (t) => t);
      return fullSoftmaxLoss(gatherRows(h, rows), eT as tf.Tensor2D, targets);
    };
    const vars = [eT, ...encoder.variables];
    const grads = (mode: "auto" | "tfjs") => {
      setSequenceKernels(mode);
      const r = tf.variableGrads(loss, vars);
      const out = { value: r.value.dataSync()[0]!, grads: vars.map((v) => r.grads[v.name]!.dataSync() as Float32Array) };
      tf.dispose([r.value, ...Object.values(r.grads)]);
      return out;
    };
    const blas = grads("auto");
    const ref = grads("tfjs");
    expect(Math.abs(blas.value - ref.value)).toBeLessThan(1e-5 * ref.value);
    blas.grads.forEach((g, i) => expectClose(g, ref.grads[i]!, 1e-5));
    tf.dispose([x, eT, ...encoder.variables]);
  });
});
