/** Small datasets and reference implementations for this package's tests. */
import { datasetFromEvents, type Dataset } from "@recsys/data";

/**
 * A dataset whose user and item indices equal the numbers given: users "0".."numUsers-1" and
 * items "0".."numItems-1" (numeric ids sort numerically).
 */
export function tinyDataset(
  events: readonly (readonly [user: number, item: number, timestamp: number])[],
  options: { numUsers: number; numItems: number; upload?: readonly number[]; geo?: readonly (string | undefined)[] },
): Dataset {
  const items = Array.from({ length: options.numItems }, (_, i) => {
    const up = options.upload?.[i];
    return up === undefined || Number.isNaN(up) ? { id: String(i) } : { id: String(i), uploadTimestamp: up };
  });
  const users = Array.from({ length: options.numUsers }, (_, u) => {
    const geo = options.geo?.[u];
    return geo === undefined ? { id: String(u) } : { id: String(u), geo };
  });
  return datasetFromEvents(
    events.map(([u, i, t]) => ({ user: String(u), item: String(i), timestamp: t })),
    { users, items },
  );
}

/** A deterministic pseudo-random generator (mulberry32) for property tests. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random events: `n` events of `numUsers` users over `numItems` items at integer times in [0, span). */
export function randomEvents(
  seed: number,
  n: number,
  numUsers: number,
  numItems: number,
  span: number,
): { user: number; item: number; timestamp: number }[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => ({
    user: Math.floor(r() * numUsers),
    // Skewed popularity so that rankings are not all ties.
    item: Math.floor(Math.pow(r(), 2) * numItems),
    timestamp: Math.floor(r() * span),
  }));
}
