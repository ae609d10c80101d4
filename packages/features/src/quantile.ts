/** JSON form of a {@link QuantileNormalizer}. */
export interface QuantileNormalizerJson {
  /** Sorted quantile boundaries of the training values. */
  readonly boundaries: readonly number[];
}

/**
 * Maps a continuous value to [0, 1) by its cumulative distribution in the training data (the
 * paper's normalisation of continuous features), monotonically (non-decreasing).
 *
 * Fitting keeps up to `maxBoundaries` evenly spaced order statistics b_0 ≤ … ≤ b_{K-1} of the
 * training values. A value x maps to (i + (x − b_i) / (b_{i+1} − b_i)) / K for b_i ≤ x < b_{i+1}
 * (the empirical CDF, linearly interpolated between boundaries), 0 below b_0 and (K − 1) / K at
 * or above b_{K−1}; so the result is always in [0, 1). `features(x)` appends x̃² and √x̃, as the
 * paper does to let the network form super- and sub-linear functions.
 */
export class QuantileNormalizer {
  readonly boundaries: Float64Array;

  constructor(boundaries: ArrayLike<number>) {
    if (boundaries.length === 0) throw new Error("QuantileNormalizer: needs at least one boundary");
    this.boundaries = Float64Array.from(boundaries);
    for (let i = 0; i < this.boundaries.length; i++) {
      if (!Number.isFinite(this.boundaries[i]!)) throw new Error(`QuantileNormalizer: boundary ${i} is not finite`);
      if (i > 0 && this.boundaries[i]! < this.boundaries[i - 1]!) throw new Error("QuantileNormalizer: boundaries must be sorted");
    }
  }

  /** Fits on the finite values (NaN and ±Infinity are ignored); an empty sample maps everything to 0. */
  static fit(values: ArrayLike<number>, maxBoundaries = 1000): QuantileNormalizer {
    const finite: number[] = [];
    for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i]!)) finite.push(values[i]!);
    if (finite.length === 0) return new QuantileNormalizer([0]);
    const sorted = Float64Array.from(finite).sort();
    const k = Math.min(maxBoundaries, sorted.length);
    const b = new Float64Array(k);
    for (let i = 0; i < k; i++) b[i] = sorted[Math.floor((i * sorted.length) / k)]!;
    return new QuantileNormalizer(b);
  }

  /** The normalised value in [0, 1); NaN for NaN. */
  transform(x: number): number {
    const b = this.boundaries;
    const k = b.length;
    if (Number.isNaN(x)) return NaN;
    if (x < b[0]!) return 0;
    if (x >= b[k - 1]!) return (k - 1) / k;
    // Largest i with b[i] <= x (binary search); then b[i] <= x < b[i+1].
    let lo = 0;
    let hi = k - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (b[mid]! <= x) lo = mid;
      else hi = mid;
    }
    const width = b[lo + 1]! - b[lo]!;
    const frac = width > 0 ? (x - b[lo]!) / width : 0;
    return (lo + frac) / k;
  }

  /** Writes [x̃, x̃², √x̃] at `out[offset..offset+3)`. */
  features(x: number, out: Float32Array, offset: number): void {
    const t = this.transform(x);
    out[offset] = t;
    out[offset + 1] = t * t;
    out[offset + 2] = Math.sqrt(t);
  }

  toJSON(): QuantileNormalizerJson {
    return { boundaries: Array.from(this.boundaries) };
  }

  static fromJSON(json: QuantileNormalizerJson): QuantileNormalizer {
    if (json === null || typeof json !== "object" || !Array.isArray(json.boundaries))
      throw new Error("QuantileNormalizer.fromJSON: expected { boundaries: number[] }");
    return new QuantileNormalizer(json.boundaries);
  }
}
