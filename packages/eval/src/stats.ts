/**
 * Figures derived from per-user ranks (0-based rank of each user's target; see `evaluateLastout`):
 * HR@K / NDCG@K curves, paired confidence intervals between two scorers evaluated on the same
 * users, and the popularity profile of the recommended lists.
 */

/** Per-user value of a metric: "hr@K" = [rank < K], "ndcg@K" = [rank < K] / log2(rank + 2), "mrr" = 1 / (rank + 1). */
export function perUserValues(ranks: Int32Array, metric: string): Float64Array {
  const out = new Float64Array(ranks.length);
  const m = /^(hr|ndcg)@(\d+)$/.exec(metric);
  if (metric === "mrr") {
    for (let u = 0; u < ranks.length; u++) out[u] = 1 / (ranks[u]! + 1);
    return out;
  }
  if (m === null) throw new Error(`perUserValues: unknown metric '${metric}' (hr@K, ndcg@K or mrr)`);
  const k = Number(m[2]);
  for (let u = 0; u < ranks.length; u++) {
    const r = ranks[u]!;
    if (r < k) out[u] = m[1] === "hr" ? 1 : 1 / Math.log2(r + 2);
  }
  return out;
}

export interface Curves {
  /** hr[K-1] = HR@K for K = 1..maxK. */
  readonly hr: number[];
  readonly ndcg: number[];
}

/** HR@K and NDCG@K for K = 1..maxK. */
export function curves(ranks: Int32Array, maxK = 100): Curves {
  const at = new Float64Array(maxK);
  for (const r of ranks) if (r < maxK) at[r]! += 1;
  const n = ranks.length;
  const hr: number[] = [];
  const ndcg: number[] = [];
  let h = 0;
  let g = 0;
  for (let k = 0; k < maxK; k++) {
    h += at[k]!;
    g += at[k]! / Math.log2(k + 2);
    hr.push(n > 0 ? h / n : NaN);
    ndcg.push(n > 0 ? g / n : NaN);
  }
  return { hr, ndcg };
}

export interface PairedInterval {
  readonly metric: string;
  /** Mean of a − b over users. */
  readonly diff: number;
  /** 95 % interval of the mean difference (paired t, normal approximation: diff ± 1.96 · SE). */
  readonly lo: number;
  readonly hi: number;
  readonly se: number;
  readonly users: number;
}

/** Paired 95 % interval of metric(a) − metric(b) over the same users (ranks in the same user order). */
export function pairedInterval(a: Int32Array, b: Int32Array, metric: string): PairedInterval {
  if (a.length !== b.length)
    throw new Error(`pairedInterval: ${a.length} vs ${b.length} users; the scorers must be evaluated on the same users`);
  const va = perUserValues(a, metric);
  const vb = perUserValues(b, metric);
  const n = a.length;
  let sum = 0;
  for (let u = 0; u < n; u++) sum += va[u]! - vb[u]!;
  const mean = n > 0 ? sum / n : NaN;
  let ss = 0;
  for (let u = 0; u < n; u++) ss += (va[u]! - vb[u]! - mean) ** 2;
  const se = n > 1 ? Math.sqrt(ss / (n - 1) / n) : NaN;
  return { metric, diff: mean, lo: mean - 1.96 * se, hi: mean + 1.96 * se, se, users: n };
}

/**
 * Share of all recommended slots (the top-k counts of `evaluateLastout`) that fall in each
 * item-popularity decile: decile 0 = the 10 % most popular items by `popularity` (training-event
 * count; ties by item index), decile 9 = the least popular 10 %.
 */
export function popularityDeciles(topCounts: Int32Array, popularity: ArrayLike<number>): number[] {
  const n = topCounts.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => popularity[b]! - popularity[a]! || a - b);
  const shares = new Array<number>(10).fill(0);
  let total = 0;
  order.forEach((item, p) => {
    const decile = Math.min(9, Math.floor((p * 10) / n));
    shares[decile]! += topCounts[item]!;
    total += topCounts[item]!;
  });
  return shares.map((s) => (total > 0 ? s / total : 0));
}
