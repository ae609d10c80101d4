/** 2^k for k in [-1074, 1023], by table (exact powers of two). */
const POW2_MIN = -1074;
const POW2 = (() => {
  const t = new Float64Array(1023 - POW2_MIN + 1);
  for (let k = POW2_MIN; k <= 1023; k++) t[k - POW2_MIN] = Math.pow(2, k);
  return t;
})();

/**
 * e^x for x ≤ 0 (softmax terms after subtracting the row maximum), about twice as fast as
 * Math.exp in V8, relative error < 1e-6 (below float32 resolution of the stored results):
 * e^x = 2^k · 2^f with k = ⌊x·log₂e⌋ and 2^f (0 ≤ f < 1) from a degree-7 polynomial.
 * Returns 0 below the smallest double (x < −744).
 */
export function expNonPositive(x: number): number {
  const t = x * 1.4426950408889634;
  const k = Math.floor(t);
  if (k < POW2_MIN) return 0;
  const f = t - k;
  const p =
    1 +
    f *
      (0.6931471805599453 +
        f *
          (0.2402265069591007 +
            f *
              (0.05550410866482158 +
                f * (0.009618129107628477 + f * (0.0013333558146428443 + f * (0.00015403530393381606 + f * 0.000015252733804059841))))));
  return p * POW2[k - POW2_MIN]!;
}
