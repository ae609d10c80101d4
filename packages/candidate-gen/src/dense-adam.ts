/**
 * Adam over a flat Float32Array of dense parameters, in JavaScript (same update as tf.train.adam:
 * m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², w ← w − lr·m̂/(√v̂ + ε)). For the tower's ~90k
 * parameters one pass over three arrays costs less than the ~20 tfjs kernel launches per variable
 * that tf.train.adam issues (see the benchmark's tower_update phase).
 */
export class DenseAdam {
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private step = 0;

  constructor(
    readonly size: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly epsilon = 1e-7,
  ) {
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }

  /** One step on `weights` with gradient `grad` and learning rate `lr`. */
  update(weights: Float32Array, grad: Float32Array, lr: number): void {
    if (weights.length !== this.size || grad.length < this.size) throw new Error(`DenseAdam: expected ${this.size} parameters`);
    this.step++;
    const b1 = this.beta1;
    const b2 = this.beta2;
    // Bias corrections as factors: one multiply instead of two divisions per parameter.
    const lrHat = lr / (1 - Math.pow(b1, this.step));
    const vHat = 1 / (1 - Math.pow(b2, this.step));
    const eps = this.epsilon;
    const a1 = 1 - b1;
    const a2 = 1 - b2;
    const m = this.m;
    const v = this.v;
    const n = this.size;
    for (let i = 0; i < n; i++) {
      const g = grad[i]!;
      const mi = b1 * m[i]! + a1 * g;
      const vi = b2 * v[i]! + a2 * g * g;
      m[i] = mi;
      v[i] = vi;
      weights[i]! -= (lrHat * mi) / (Math.sqrt(vi * vHat) + eps);
    }
  }
}
