/**
 * tfjs building blocks with gradients that stay on fast tfjs-wasm kernels.
 *
 * tfjs-wasm's matmul with a transposed operand is about 10x slower than with plain operands (see
 * candidate-gen's train-step.ts), and tfjs's own matMul gradient multiplies by transposed
 * operands. `mm` and `bmm` therefore have custom gradients that transpose explicitly and then
 * multiply untransposed operands.
 */
import { tf } from "@recsys/tf";

/** a [m, k] · b [k, n] with gradients ∂a = ∂y·bᵀ, ∂b = aᵀ·∂y (explicit transposes). */
export const mm = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/** Batched a [B, m, k] · b [B, k, n] with explicitly transposed gradients. */
export const bmm = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
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
  return tf.add(mm(x, w), b);
}

/** Layer normalisation over the last axis of x [n, d] with gain g and bias b. */
export function layerNorm(x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D, epsilon = 1e-8): tf.Tensor2D {
  const mean = tf.mean(x, -1, true);
  const centred = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centred), -1, true);
  return tf.add(tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, epsilon))), g), b);
}

/**
 * Rows `index` of x [n, d] (distinct indices). Its gradient scatters ∂y back with ScatterNd:
 * tf.gather's own gradient needs UnsortedSegmentSum, which tfjs-wasm does not implement.
 */
export function gatherRows(x: tf.Tensor2D, index: Int32Array): tf.Tensor2D {
  const [n, d] = x.shape;
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
 * One fused op with a hand-written gradient: the softmax is one tfjs kernel, then JS reads the
 * probabilities once to take the loss and form ∂logits = (p − e_target)/V in place, and the
 * backward pass is two plain matmuls (∂h = ∂logits·E, ∂Eᵀ = hᵀ·∂logits). Autograd through
 * logSoftmax and a one-hot mask would make ~10 passes over the V × N logits instead.
 */
export function fullSoftmaxLoss(h: tf.Tensor2D, eT: tf.Tensor2D, targets: Int32Array): tf.Scalar {
  const [v] = h.shape;
  const n = eT.shape[1];
  if (targets.length !== v) throw new Error(`fullSoftmaxLoss: ${targets.length} targets for ${v} rows`);
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
