/**
 * The two protocols of ../shared/PROTOCOL.md differ only in how events of one user with the same
 * timestamp, and equal scores in a ranking, are ordered:
 *
 *   lastout           by item id as written (the dataset's item index order);
 *   lastout-shuffled  by one seeded random permutation of the catalogue (the seed is printed).
 *
 * A `TieOrder` carries that order as a rank per item index (`rank[i]`: smaller comes first).
 * `withTieOrder` re-sorts a dataset's event log by (user, timestamp, rank[item]), so that the
 * split, every model's training sequences (they follow the log) and the sources' replay see the
 * same order; the evaluator breaks score ties by the same rank.
 */
import { createHash } from "node:crypto";
import { type Dataset, type EventLog, Rng } from "@recsys/data";

export type Protocol = "lastout" | "lastout-shuffled";
export const PROTOCOLS: readonly Protocol[] = ["lastout", "lastout-shuffled"];

export interface TieOrder {
  readonly protocol: Protocol;
  /** Seed of the permutation (lastout-shuffled only). */
  readonly seed?: number;
  /** rank[item index]: position of the item in the tie order (a permutation of 0..n-1). */
  readonly rank: Int32Array;
}

/** Default seed of the lastout-shuffled permutation. */
export const DEFAULT_TIE_SEED = 1;

export function parseProtocol(value: string): Protocol {
  if (value === "lastout" || value === "lastout-shuffled") return value;
  throw new Error(`unknown protocol '${value}' (expected lastout or lastout-shuffled)`);
}

/** The id order: rank[i] = i. */
export function idTieOrder(numItems: number): TieOrder {
  return { protocol: "lastout", rank: Int32Array.from({ length: numItems }, (_, i) => i) };
}

/** One seeded uniform permutation of the catalogue (Fisher–Yates on the data package's Rng). */
export function shuffledTieOrder(numItems: number, seed: number): TieOrder {
  if (!Number.isSafeInteger(seed)) throw new Error(`tie seed must be an integer, got ${seed}`);
  const order = Int32Array.from({ length: numItems }, (_, i) => i);
  const rng = new Rng(seed, 0x71e5);
  for (let k = numItems - 1; k > 0; k--) {
    const j = rng.int(k + 1);
    const t = order[k]!;
    order[k] = order[j]!;
    order[j] = t;
  }
  const rank = new Int32Array(numItems);
  for (let p = 0; p < numItems; p++) rank[order[p]!] = p;
  return { protocol: "lastout-shuffled", seed, rank };
}

export function tieOrderFor(protocol: Protocol, numItems: number, seed = DEFAULT_TIE_SEED): TieOrder {
  return protocol === "lastout" ? idTieOrder(numItems) : shuffledTieOrder(numItems, seed);
}

/** "lastout" or "lastout-shuffled (seed S)". */
export function describeTieOrder(order: TieOrder): string {
  return order.protocol === "lastout" ? "lastout" : `lastout-shuffled (seed ${order.seed})`;
}

/**
 * The dataset with each user's events ordered by (timestamp, rank[item]) — the protocol's step 1
 * under `order`. For `lastout` the dataset itself (it is already in that order). Otherwise a copy
 * of the event log re-sorted, and a fingerprint that names the order (a model trained under one
 * tie order is refused under the other: its held-out items differ).
 */
export function withTieOrder(dataset: Dataset, order: TieOrder): Dataset {
  if (order.protocol === "lastout") return dataset;
  const ev = dataset.events;
  const numUsers = ev.userOffsets.length - 1;
  const n = ev.user.length;
  if (order.rank.length !== dataset.items.ids.length)
    throw new Error(`withTieOrder: the order has ${order.rank.length} items, the dataset ${dataset.items.ids.length}`);
  const rank = order.rank;
  const perm = Int32Array.from({ length: n }, (_, r) => r);
  const cmp = (a: number, b: number): number => ev.timestamp[a]! - ev.timestamp[b]! || rank[ev.item[a]!]! - rank[ev.item[b]!]! || a - b;
  for (let u = 0; u < numUsers; u++) perm.subarray(ev.userOffsets[u]!, ev.userOffsets[u + 1]!).sort(cmp);
  const events: EventLog = {
    user: Int32Array.from(perm, (r) => ev.user[r]!),
    item: Int32Array.from(perm, (r) => ev.item[r]!),
    timestamp: Float64Array.from(perm, (r) => ev.timestamp[r]!),
    weight: Float32Array.from(perm, (r) => ev.weight[r]!),
    userOffsets: ev.userOffsets,
  };
  const fingerprint = createHash("sha256").update(`${dataset.fingerprint}|ties:shuffled:${order.seed}`).digest("hex");
  return { ...dataset, events, fingerprint };
}

/** Events that share their timestamp with another event of the same user (what the tie order decides). */
export function tiedEvents(events: EventLog): number {
  let tied = 0;
  const numUsers = events.userOffsets.length - 1;
  for (let u = 0; u < numUsers; u++) {
    const lo = events.userOffsets[u]!;
    const hi = events.userOffsets[u + 1]!;
    for (let r = lo; r < hi; r++) {
      const t = events.timestamp[r]!;
      if ((r > lo && events.timestamp[r - 1] === t) || (r + 1 < hi && events.timestamp[r + 1] === t)) tied++;
    }
  }
  return tied;
}
