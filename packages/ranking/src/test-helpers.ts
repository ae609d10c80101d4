/** Small datasets and dataset edits for this package's tests. */
import { type Dataset, generateSynthetic, parseSyntheticSpec } from "@recsys/data";

/** The project's synthetic generator (impressions, watch seconds, channels, tags, uploads, geo). */
export function synthetic(params: string): Dataset {
  return generateSynthetic(`synthetic:${params}`, parseSyntheticSpec(params));
}

/** A copy of column `a` with `value` inserted at position `at`. */
function insertAt<T extends Int32Array | Float64Array | Float32Array | Uint8Array>(a: T, at: number, value: number): T {
  const out = new (a.constructor as new (n: number) => T)(a.length + 1);
  out.set(a.subarray(0, at), 0);
  out[at] = value;
  out.set(a.subarray(at), at + 1);
  return out;
}

/** Position after the rows of `user` with timestamp <= t (columns sorted by (user, timestamp)). */
function insertionPoint(timestamp: Float64Array, offsets: Int32Array, u: number, t: number): number {
  let p = offsets[u]!;
  while (p < offsets[u + 1]! && timestamp[p]! <= t) p++;
  return p;
}

/**
 * The dataset with one more watch event (user u, item i, time t, weight w) and one more
 * impression of the same item at the same time: what happens after a moment, for leakage tests.
 * Indices, catalogue and users are unchanged.
 */
export function withLaterActivity(dataset: Dataset, u: number, item: number, t: number, w: number): Dataset {
  const ev = dataset.events;
  const p = insertionPoint(ev.timestamp, ev.userOffsets, u, t);
  const events = {
    user: insertAt(ev.user, p, u),
    item: insertAt(ev.item, p, item),
    timestamp: insertAt(ev.timestamp, p, t),
    weight: insertAt(ev.weight, p, w),
    userOffsets: Int32Array.from(ev.userOffsets, (o, k) => (k > u ? o + 1 : o)),
  };
  const im = dataset.impressions;
  if (im.user.length === 0) return { ...dataset, events };
  const q = insertionPoint(im.timestamp, im.userOffsets, u, t);
  const impressions = {
    user: insertAt(im.user, q, u),
    item: insertAt(im.item, q, item),
    timestamp: insertAt(im.timestamp, q, t),
    clicked: insertAt(im.clicked, q, 1),
    watchSeconds: insertAt(im.watchSeconds, q, w),
    userOffsets: Int32Array.from(im.userOffsets, (o, k) => (k > u ? o + 1 : o)),
  };
  return { ...dataset, events, impressions };
}
