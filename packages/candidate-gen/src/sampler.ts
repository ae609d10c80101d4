import type { Rng } from "@recsys/data";

/**
 * Walker's alias method: O(1) draws from a fixed discrete distribution over 0..n-1 given by
 * non-negative weights (here the label unigram counts raised to α). `prob(i)` is the exact
 * sampling probability, used for the logQ correction.
 */
export class AliasSampler {
  private readonly threshold: Float64Array;
  private readonly alias: Int32Array;
  private readonly p: Float64Array;

  constructor(weights: ArrayLike<number>) {
    const n = weights.length;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const w = weights[i]!;
      if (!(w >= 0) || !Number.isFinite(w)) throw new Error(`AliasSampler: weight ${i} is ${w}, must be finite and >= 0`);
      total += w;
    }
    if (!(total > 0)) throw new Error("AliasSampler: all weights are zero");
    this.p = new Float64Array(n);
    this.threshold = new Float64Array(n);
    this.alias = new Int32Array(n);
    const scaled = new Float64Array(n);
    const small: number[] = [];
    const large: number[] = [];
    for (let i = 0; i < n; i++) {
      this.p[i] = weights[i]! / total;
      scaled[i] = this.p[i]! * n;
      (scaled[i]! < 1 ? small : large).push(i);
    }
    while (small.length > 0 && large.length > 0) {
      const s = small.pop()!;
      const l = large.pop()!;
      this.threshold[s] = scaled[s]!;
      this.alias[s] = l;
      scaled[l] = scaled[l]! + scaled[s]! - 1;
      (scaled[l]! < 1 ? small : large).push(l);
    }
    for (const i of large) {
      this.threshold[i] = 1;
      this.alias[i] = i;
    }
    for (const i of small) {
      this.threshold[i] = 1;
      this.alias[i] = i;
    }
  }

  get size(): number {
    return this.p.length;
  }

  prob(i: number): number {
    return this.p[i]!;
  }

  sample(rng: Rng): number {
    const n = this.p.length;
    const x = rng.next() * n;
    const i = Math.min(n - 1, Math.floor(x));
    return x - i < this.threshold[i]! ? i : this.alias[i]!;
  }
}
