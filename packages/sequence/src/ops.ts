/**
 * tfjs building blocks with gradients that stay on fast kernels.
 *
 * Matmuls (`mm`, `bmm`, `bmmT`, `dense` and the logits of `fullSoftmaxLoss`) run on the native
 * BLAS (`nativeBlas()` of @recsys/tf, OpenBLAS through the optional package nblas) when it is
 * installed and the backend is not native TensorFlow: the operands are copied out of the backend
 * once (dataSync), multiplied with sgemm's transpose flags, and the products and gradients handed
 * back as new tensors. tfjs-wasm's BatchMatMul is single-threaded 128-bit SIMD without FMA, and
 * batched products of small matrices (attention, [B, L, L]·[B, L, d]) do not take its fast path.
 * `layerNorm` is one JS op with a hand-written gradient on that backend (the tfjs composition is
 * ~10 kernels forward and ~20 backward, each saving copies of its inputs for the tape).
 *
 * With `setSequenceKernels("tfjs")` (or without the BLAS: not installed, RECSYS_BLAS=off, for
 * the matmuls) the same ops run on tfjs kernels. tfjs-wasm's matmul with a transposed operand is
 * about 10x slower than with plain operands (see candidate-gen's train-step.ts), and tfjs's own
 * matMul gradient multiplies by transposed operands, so the tfjs path has custom gradients that
 * transpose explicitly and then multiply untransposed operands.
 */
import { type Blas, nativeBlas, tf } from "@recsys/tf";

export type SequenceKernels = "auto" | "tfjs";

let kernelMode: SequenceKernels = "auto";

/**
 * Which kernels the ops use: "auto" (default) the native BLAS and JS ops where available (see the
 * module comment), "tfjs" always tfjs kernels. For tests and A/B timing; the results agree to
 * float rounding.
 */
export function setSequenceKernels(mode: SequenceKernels): void {
  if (mode !== "auto" && mode !== "tfjs") throw new Error(`setSequenceKernels: "${String(mode)}" is not auto or tfjs`);
  kernelMode = mode;
}

/** Whether the JS ops are used now (not "tfjs" mode, not native TensorFlow). */
function jsKernels(): boolean {
  return kernelMode === "auto" && tf.getBackend() !== "tensorflow";
}

/** The BLAS the ops' matmuls use now, or null for tfjs kernels. */
export function sequenceBlas(): Blas | null {
  return jsKernels() ? nativeBlas() : null;
}

function floats(t: tf.Tensor): Float32Array {
  if (t.dtype !== "float32") throw new Error(`sequence ops: expected a float32 tensor, got ${t.dtype}`);
  return t.dataSync() as Float32Array; // read-only: the cpu backend may return its own memory
}

/** An op whose value and gradients are computed in JS (no tensors saved on the tape). */
function jsOp<T extends tf.Tensor>(
  inputs: tf.Tensor[],
  forward: (xs: tf.Tensor[]) => { value: T; grad: (dy: tf.Tensor) => tf.Tensor[] },
): T {
  const op = tf.customGrad(((...args: tf.Tensor[]) => {
    const { value, grad } = forward(args.slice(0, inputs.length));
    return { value, gradFunc: (dy: tf.Tensor) => grad(dy) };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...xs: tf.Tensor[]) => T;
  return op(...inputs);
}

/**
 * Batched C_i = op(A_i)·op(B_i) (i < batch, row-major blocks one after the other) with sgemm:
 * A_i is [m, k] (transA: stored [k, m]), B_i is [k, n] (transB: stored [n, k]).
 */
function batchedSgemm(
  blas: Blas,
  batch: number,
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
): void {
  const lda = transA ? m : k;
  const ldb = transB ? k : n;
  for (let i = 0; i < batch; i++)
    blas.sgemm(
      transA,
      transB,
      m,
      n,
      k,
      1,
      a.subarray(i * m * k, (i + 1) * m * k),
      lda,
      b.subarray(i * k * n, (i + 1) * k * n),
      ldb,
      0,
      c.subarray(i * m * n, (i + 1) * m * n),
      n,
    );
}

/** a [m, k] · b [k, n] with gradients ∂a = ∂y·bᵀ, ∂b = aᵀ·∂y. */
export function mm(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const blas = sequenceBlas();
  if (blas === null) return mmTfjs(a, b);
  const [m, k] = a.shape;
  const n = b.shape[1];
  if (b.shape[0] !== k) throw new Error(`mm: [${a.shape}] · [${b.shape}]`);
  return jsOp([a, b], ([x, y]) => {
    const A = floats(x!);
    const B = floats(y!);
    const C = new Float32Array(m * n);
    batchedSgemm(blas, 1, false, false, m, n, k, A, B, C);
    return {
      value: tf.tensor2d(C, [m, n]),
      grad: (dy) => {
        const G = floats(dy);
        const dA = new Float32Array(m * k);
        const dB = new Float32Array(k * n);
        batchedSgemm(blas, 1, false, true, m, k, n, G, B, dA);
        batchedSgemm(blas, 1, true, false, k, n, m, A, G, dB);
        return [tf.tensor2d(dA, [m, k]), tf.tensor2d(dB, [k, n])];
      },
    };
  });
}

/** Batched a [B, m, k] · b [B, k, n]. */
export function bmm(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const blas = sequenceBlas();
  if (blas === null) return bmmTfjs(a, b);
  const [batch, m, k] = a.shape;
  const n = b.shape[2];
  if (b.shape[0] !== batch || b.shape[1] !== k) throw new Error(`bmm: [${a.shape}] · [${b.shape}]`);
  return jsOp([a, b], ([x, y]) => {
    const A = floats(x!);
    const B = floats(y!);
    const C = new Float32Array(batch * m * n);
    batchedSgemm(blas, batch, false, false, m, n, k, A, B, C);
    return {
      value: tf.tensor3d(C, [batch, m, n]),
      grad: (dy) => {
        const G = floats(dy);
        const dA = new Float32Array(batch * m * k);
        const dB = new Float32Array(batch * k * n);
        batchedSgemm(blas, batch, false, true, m, k, n, G, B, dA); // ∂a = ∂y·bᵀ
        batchedSgemm(blas, batch, true, false, k, n, m, A, G, dB); // ∂b = aᵀ·∂y
        return [tf.tensor3d(dA, [batch, m, k]), tf.tensor3d(dB, [batch, k, n])];
      },
    };
  });
}

/** Batched a [B, m, k] · b [B, n, k]ᵀ (attention scores Q·Kᵀ without a transposed copy of K on the BLAS path). */
export function bmmT(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const blas = sequenceBlas();
  if (blas === null) return bmmTfjs(a, tf.transpose(b, [0, 2, 1]));
  const [batch, m, k] = a.shape;
  const n = b.shape[1];
  if (b.shape[0] !== batch || b.shape[2] !== k) throw new Error(`bmmT: [${a.shape}] · [${b.shape}]ᵀ`);
  return jsOp([a, b], ([x, y]) => {
    const A = floats(x!);
    const B = floats(y!);
    const C = new Float32Array(batch * m * n);
    batchedSgemm(blas, batch, false, true, m, n, k, A, B, C);
    return {
      value: tf.tensor3d(C, [batch, m, n]),
      grad: (dy) => {
        const G = floats(dy);
        const dA = new Float32Array(batch * m * k);
        const dB = new Float32Array(batch * n * k);
        batchedSgemm(blas, batch, false, false, m, k, n, G, B, dA); // ∂a = ∂y·b
        batchedSgemm(blas, batch, true, false, n, k, m, G, A, dB); // ∂b = ∂yᵀ·a
        return [tf.tensor3d(dA, [batch, m, k]), tf.tensor3d(dB, [batch, n, k])];
      },
    };
  });
}

/** tfjs path of `mm`: explicitly transposed gradients. */
const mmTfjs = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/** tfjs path of `bmm`: explicitly transposed gradients. */
const bmmTfjs = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor3D, tf.Tensor3D];
      return [tf.matMul(dy as tf.Tensor3D, tf.transpose(sb, [0, 2, 1])), tf.matMul(tf.transpose(sa, [0, 2, 1]), dy as tf.Tensor3D)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D;

/** x [n, in] · w [in, out] + b. */
export function dense(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Tensor2D {
  const blas = sequenceBlas();
  if (blas === null) return tf.add(mm(x, w), b);
  const [n, k] = x.shape;
  const m = w.shape[1];
  if (w.shape[0] !== k || b.shape[0] !== m) throw new Error(`dense: [${x.shape}] · [${w.shape}] + [${b.shape}]`);
  return jsOp([x, w, b], ([xt, wt, bt]) => {
    const X = floats(xt!);
    const W = floats(wt!);
    const bias = floats(bt!);
    const Y = new Float32Array(n * m);
    repeatRows(bias, n, Y);
    blas.sgemm(false, false, n, m, k, 1, X, k, W, m, 1, Y, m);
    return {
      value: tf.tensor2d(Y, [n, m]),
      grad: (dy) => {
        const G = floats(dy);
        const dX = new Float32Array(n * k);
        const dW = new Float32Array(k * m);
        const dB = new Float32Array(m);
        blas.sgemm(false, true, n, k, m, 1, G, m, W, m, 0, dX, k); // ∂x = ∂y·wᵀ
        blas.sgemm(true, false, k, m, n, 1, X, k, G, m, 0, dW, m); // ∂w = xᵀ·∂y
        blas.sgemm(false, false, 1, m, n, 1, onesOf(n), n, G, m, 0, dB, m); // ∂b = 1ᵀ·∂y (column sums)
        return [tf.tensor2d(dX, [n, k]), tf.tensor2d(dW, [k, m]), tf.tensor1d(dB)];
      },
    };
  });
}

/** The LayerNorm epsilon of the sequence encoders (`layerNorm`'s default). */
export const LAYER_NORM_EPSILON = 1e-8;

/** Layer normalisation over the last axis of x [n, d] with gain g and bias b. */
export function layerNorm(x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D, epsilon = LAYER_NORM_EPSILON): tf.Tensor2D {
  if (!jsKernels()) return layerNormTfjs(x, g, b, epsilon);
  const [n, d] = x.shape;
  if (g.shape[0] !== d || b.shape[0] !== d) throw new Error(`layerNorm: x [${x.shape}], g [${g.shape}], b [${b.shape}]`);
  return jsOp([x, g, b], ([xt, gt, bt]) => {
    const X = floats(xt!);
    const G = floats(gt!);
    const B = floats(bt!);
    const xhat = new Float32Array(n * d);
    const invStd = new Float64Array(n);
    const Y = new Float32Array(n * d);
    layerNormForward(X, G, B, n, d, epsilon, xhat, invStd, Y);
    return {
      value: tf.tensor2d(Y, [n, d]),
      grad: (dy) => {
        const D = floats(dy);
        const dX = new Float32Array(n * d);
        const dG = new Float64Array(d);
        const dB = new Float64Array(d);
        layerNormBackward(D, G, xhat, invStd, n, d, dX, dG, dB);
        return [tf.tensor2d(dX, [n, d]), tf.tensor1d(Float32Array.from(dG)), tf.tensor1d(Float32Array.from(dB))];
      },
    };
  });
}

/** tfjs path of `layerNorm`. */
function layerNormTfjs(x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D, epsilon: number): tf.Tensor2D {
  const mean = tf.mean(x, -1, true);
  const centred = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centred), -1, true);
  return tf.add(tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, epsilon))), g), b);
}

/**
 * Rows `index` of x [n, d] (distinct indices). A JS copy both ways on the fast path (tfjs-wasm's
 * GatherV2 checks every index through a closure); on the tfjs path the gradient scatters ∂y
 * back with ScatterNd: tf.gather's own gradient needs UnsortedSegmentSum, which tfjs-wasm does
 * not implement.
 */
export function gatherRows(x: tf.Tensor2D, index: Int32Array): tf.Tensor2D {
  const [n, d] = x.shape;
  if (jsKernels()) {
    for (const i of index) if (!(i >= 0 && i < n)) throw new RangeError(`gatherRows: index ${i} outside 0..${n - 1}`);
    return jsOp([x], ([xt]) => {
      const X = floats(xt!);
      const Y = new Float32Array(index.length * d);
      copyRows(X, index, d, Y, false);
      return {
        value: tf.tensor2d(Y, [index.length, d]),
        grad: (dy) => {
          const dX = new Float32Array(n * d);
          copyRows(dX, index, d, floats(dy), true);
          return [tf.tensor2d(dX, [n, d])];
        },
      };
    });
  }
  const op = tf.customGrad(((a: tf.Tensor, save: tf.GradSaveFunc) => {
    const idx = tf.tensor1d(index, "int32");
    save([idx]);
    return {
      value: tf.gather(a, idx),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.scatterND(tf.reshape(saved[0]!, [index.length, 1]), dy, [n, d])],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (a: tf.Tensor2D) => tf.Tensor2D;
  return op(x);
}

/**
 * Mean cross-entropy over the whole catalogue of the rows of h [V, d] against item embeddings
 * Eᵀ [d, N]: logits = h·Eᵀ, loss = −(1/V) Σ_v log softmax(logits_v)[target_v].
 *
 * One fused op with a hand-written gradient: ∂logits = (p − e_target)/V is formed once, and the
 * backward pass is two plain matmuls (∂h = ∂logits·E, ∂Eᵀ = hᵀ·∂logits). Autograd through
 * logSoftmax and a one-hot mask would make ~10 passes over the V × N logits instead. The softmax
 * is one tfjs kernel either way (tfjs-wasm's is vectorised: about 4x faster than a JS loop with
 * a polynomial exp). On the BLAS path the three matmuls are sgemm calls, the probabilities P go
 * into them as they are (scaled by 1/V through sgemm's α) and the one-hot part of ∂logits is
 * applied as V row updates of ∂h and ∂Eᵀ; on the tfjs path JS forms ∂logits from P in one pass.
 */
export function fullSoftmaxLoss(h: tf.Tensor2D, eT: tf.Tensor2D, targets: Int32Array): tf.Scalar {
  const [v, d] = h.shape;
  const n = eT.shape[1];
  if (targets.length !== v) throw new Error(`fullSoftmaxLoss: ${targets.length} targets for ${v} rows`);
  if (eT.shape[0] !== d) throw new Error(`fullSoftmaxLoss: h [${h.shape}] against Eᵀ [${eT.shape}]`);
  for (const t of targets) if (!(t >= 0 && t < n)) throw new RangeError(`fullSoftmaxLoss: target ${t} outside 0..${n - 1}`);
  const blas = sequenceBlas();
  if (blas === null) return fullSoftmaxLossTfjs(h, eT, targets);
  return jsOp([h, eT], ([x, y]) => {
    const H = floats(x!);
    const ET = floats(y!);
    const logits = new Float32Array(v * n);
    blas.sgemm(false, false, v, n, d, 1, H, d, ET, n, 0, logits, n);
    const probs = tf.tidy(() => tf.softmax(tf.tensor2d(logits, [v, n])));
    const P = floats(probs);
    probs.dispose();
    const loss = targetNll(P, n, targets);
    return {
      value: tf.scalar(loss / v),
      grad: (dy) => {
        // ∂logits = s·(P − onehot)/V: the matmuls take s·P/V, the one-hot part is V row updates.
        const alpha = floats(dy)[0]! / v;
        const dH = new Float32Array(v * d);
        const dET = new Float32Array(d * n);
        blas.sgemm(false, true, v, d, n, alpha, P, n, ET, n, 0, dH, d); // ∂h = ∂logits·E
        blas.sgemm(true, false, d, n, v, alpha, H, d, P, n, 0, dET, n); // ∂Eᵀ = hᵀ·∂logits
        subtractTargetRows(H, ET, targets, d, n, alpha, dH, dET);
        return [tf.tensor2d(dH, [v, d]), tf.tensor2d(dET, [d, n])];
      },
    };
  });
}

/** tfjs path of `fullSoftmaxLoss`. */
function fullSoftmaxLossTfjs(h: tf.Tensor2D, eT: tf.Tensor2D, targets: Int32Array): tf.Scalar {
  const [v] = h.shape;
  const n = eT.shape[1];
  const op = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const p = tf.tidy(() => tf.softmax(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D)));
    const probs = p.dataSync() as Float32Array;
    p.dispose();
    const grad = new Float32Array(probs); // dataSync may return the backend's own memory: copy
    let loss = 0;
    const inv = 1 / v;
    for (let r = 0; r < v; r++) {
      const o = r * n + targets[r]!;
      loss -= Math.log(Math.max(grad[o]!, 1e-30));
      grad[o]! -= 1;
    }
    for (let i = 0; i < grad.length; i++) grad[i]! *= inv;
    const dLogits = tf.tensor2d(grad, [v, n]);
    save([a, b, dLogits]);
    return {
      value: tf.scalar(loss * inv),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb, dl] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        const g = tf.mul(dl, dy) as tf.Tensor2D;
        return [tf.matMul(g, tf.transpose(sb)), tf.matMul(tf.transpose(sa), g)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Scalar;
  return op(h, eT);
}

/** Each of the rows of out [rows, row.length] set to row. */
function repeatRows(row: Float32Array, rows: number, out: Float32Array): void {
  for (let r = 0; r < rows; r++) out.set(row, r * row.length);
}

let ones = new Float32Array(0);

/** n ones (a shared array that only grows; never written elsewhere). */
function onesOf(n: number): Float32Array {
  if (ones.length < n) ones = new Float32Array(n).fill(1);
  return ones;
}

/**
 * y = x̂·g + b per row of x [n, d], x̂ = (x − mean)/σ, σ = √(var + ε); keeps x̂ and 1/σ for the
 * backward pass when given (training), not at inference (sasrec-inference.ts). y may be x.
 */
export function layerNormForward(
  x: Float32Array,
  g: Float32Array,
  b: Float32Array,
  n: number,
  d: number,
  epsilon: number,
  xhat: Float32Array | null,
  invStd: Float64Array | null,
  y: Float32Array,
): void {
  for (let r = 0; r < n; r++) {
    const o = r * d;
    let mean = 0;
    for (let c = 0; c < d; c++) mean += x[o + c]!;
    mean /= d;
    let variance = 0;
    for (let c = 0; c < d; c++) {
      const u = x[o + c]! - mean;
      variance += u * u;
    }
    const inv = 1 / Math.sqrt(variance / d + epsilon);
    if (invStd !== null) invStd[r] = inv;
    for (let c = 0; c < d; c++) {
      const z = (x[o + c]! - mean) * inv;
      if (xhat !== null) xhat[o + c] = z;
      y[o + c] = z * g[c]! + b[c]!;
    }
  }
}

/** ∂x = (1/σ)·(∂x̂ − mean(∂x̂) − x̂·mean(∂x̂·x̂)) with ∂x̂ = ∂y·g; ∂g += Σ ∂y·x̂, ∂b += Σ ∂y. */
function layerNormBackward(
  dy: Float32Array,
  g: Float32Array,
  xhat: Float32Array,
  invStd: Float64Array,
  n: number,
  d: number,
  dx: Float32Array,
  dg: Float64Array,
  db: Float64Array,
): void {
  for (let r = 0; r < n; r++) {
    const o = r * d;
    let sum = 0;
    let dot = 0;
    for (let c = 0; c < d; c++) {
      const dz = dy[o + c]! * g[c]!;
      sum += dz;
      dot += dz * xhat[o + c]!;
      dg[c]! += dy[o + c]! * xhat[o + c]!;
      db[c]! += dy[o + c]!;
    }
    const inv = invStd[r]!;
    sum /= d;
    dot /= d;
    for (let c = 0; c < d; c++) dx[o + c] = inv * (dy[o + c]! * g[c]! - sum - xhat[o + c]! * dot);
  }
}

/** −Σ_r log p[r, target_r] of probabilities p [targets.length, cols] (each clamped at 1e-30). */
function targetNll(p: Float32Array, cols: number, targets: Int32Array): number {
  let loss = 0;
  for (let r = 0; r < targets.length; r++) loss -= Math.log(Math.max(p[r * cols + targets[r]!]!, 1e-30));
  return loss;
}

/**
 * The one-hot part of fullSoftmaxLoss's gradient: ∂h[r] −= α·E[target_r] and
 * ∂Eᵀ[:, target_r] −= α·h[r] for h [V, d], Eᵀ [d, N].
 */
function subtractTargetRows(
  h: Float32Array,
  eT: Float32Array,
  targets: Int32Array,
  d: number,
  n: number,
  alpha: number,
  dH: Float32Array,
  dET: Float32Array,
): void {
  for (let r = 0; r < targets.length; r++) {
    const t = targets[r]!;
    for (let c = 0; c < d; c++) {
      dH[r * d + c]! -= alpha * eT[c * n + t]!;
      dET[c * n + t]! -= alpha * h[r * d + c]!;
    }
  }
}

/** rows[k] = x[index[k]] for rows [index.length, d] (toX: x[index[k]] = rows[k] instead). */
function copyRows(x: Float32Array, index: Int32Array, d: number, rows: Float32Array, toX: boolean): void {
  for (let k = 0; k < index.length; k++) {
    const src = index[k]! * d;
    if (toX) x.set(rows.subarray(k * d, (k + 1) * d), src);
    else rows.set(x.subarray(src, src + d), k * d);
  }
}
