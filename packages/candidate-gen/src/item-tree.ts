import type { Rng } from "@recsys/data";

/**
 * A two-level item tree for the hierarchical softmax: every item of the vocabulary (ids
 * 1..size-1; id 0 is OOV and belongs to no cluster) in exactly one of `clusters` clusters.
 */
export interface ItemTree {
  readonly clusters: number;
  /** Cluster of each vocabulary id (length = vocabulary size; -1 for id 0). */
  readonly itemCluster: Int32Array;
  /** Members of cluster c: members[memberOffsets[c] .. memberOffsets[c + 1]), ascending ids. */
  readonly memberOffsets: Int32Array;
  readonly members: Int32Array;
  /** Index of each vocabulary id inside its cluster's member list (-1 for id 0). */
  readonly position: Int32Array;
}

/** Lloyd iterations of the balanced k-means (it stops earlier when no item moves). */
export const TREE_ITERATIONS = 10;

/** The default number of clusters for a vocabulary of `items` items (without OOV): round(√items), at least 1. */
export function defaultClusterCount(items: number): number {
  return Math.max(1, Math.round(Math.sqrt(items)));
}

/**
 * Builds the item tree from co-watches: balanced k-means with cosine similarity on the items'
 * binary user-incidence vectors (x_i[u] = 1/√deg_i when user u watched item i, deg_i the number
 * of such users), so two items are close when many users watched both (x_i · x_j = co-watch
 * count / √(deg_i·deg_j)).
 *
 *   - `histories[u]`: the vocabulary ids user u watched in the TRAINING events (null: no such
 *     events). Nothing else is read, so nothing from validation or test events informs the tree.
 *   - Initial centroids: `clusters` distinct items drawn by `rng` among the watched items.
 *   - Assignment, each iteration: items in order of decreasing deg (ties: lower id), each to the
 *     most similar centroid (ties: lower cluster) among those with fewer than ⌈n / clusters⌉
 *     members, so that every cluster has ⌈n / clusters⌉ or fewer items and a within-cluster
 *     softmax costs O(n / clusters). Items nobody watched (deg 0) fill the clusters with room.
 *   - Centroids: the sum of the members' x (cosine similarity divides by its norm).
 *
 * Cost per iteration: (number of distinct (user, item) pairs) × clusters.
 */
export function buildItemTree(
  histories: readonly (ArrayLike<number> | null)[],
  vocabularySize: number,
  clusters: number,
  rng: Rng,
  iterations = TREE_ITERATIONS,
): ItemTree {
  const n = vocabularySize - 1;
  if (n < 1) throw new Error("buildItemTree: the item vocabulary is empty");
  if (!Number.isInteger(clusters) || clusters < 1) throw new Error(`buildItemTree: clusters must be a positive integer, got ${clusters}`);
  const k = Math.min(clusters, n);
  const numUsers = histories.length;

  // Item → users (CSR), one entry per distinct (user, item): count, then fill.
  const seen = new Int32Array(vocabularySize);
  const forEachDistinct = (visit: (u: number, id: number) => void): void => {
    seen.fill(-1);
    for (let u = 0; u < numUsers; u++) {
      const h = histories[u];
      if (h === null || h === undefined) continue;
      for (let t = 0; t < h.length; t++) {
        const id = h[t]!;
        if (id <= 0 || id >= vocabularySize || seen[id] === u) continue;
        seen[id] = u;
        visit(u, id);
      }
    }
  };
  const deg = new Int32Array(vocabularySize);
  forEachDistinct((_u, id) => deg[id]!++);
  const userOffsets = new Int32Array(vocabularySize + 1);
  for (let id = 1; id < vocabularySize; id++) userOffsets[id + 1] = userOffsets[id]! + deg[id]!;
  const users = new Int32Array(userOffsets[vocabularySize]!);
  const fill = userOffsets.slice(0, vocabularySize);
  forEachDistinct((u, id) => {
    users[fill[id]!++] = u;
  });
  const weight = new Float64Array(vocabularySize);
  for (let id = 1; id < vocabularySize; id++) weight[id] = deg[id]! > 0 ? 1 / Math.sqrt(deg[id]!) : 0;

  // Assignment order: most watched first.
  const order = Array.from({ length: n }, (_, i) => i + 1).sort((a, b) => deg[b]! - deg[a]! || a - b);
  const watched = order.filter((id) => deg[id]! > 0);

  // Initial centroids: distinct random watched items (a partial Fisher–Yates shuffle).
  const centroid = new Float64Array(numUsers * k); // user-major: centroid[u * k + c]
  const pool = watched.slice();
  for (let c = 0; c < Math.min(k, pool.length); c++) {
    const j = c + rng.int(pool.length - c);
    const id = pool[j]!;
    pool[j] = pool[c]!;
    pool[c] = id;
    for (let e = userOffsets[id]!; e < userOffsets[id + 1]!; e++) centroid[users[e]! * k + c] = weight[id]!;
  }

  const cap = Math.ceil(n / k);
  const assign = new Int32Array(vocabularySize).fill(-1);
  const size = new Int32Array(k);
  const sims = new Float64Array(k);
  const norm = new Float64Array(k);
  for (let iter = 0; iter < iterations; iter++) {
    norm.fill(0);
    for (let i = 0; i < centroid.length; i++) norm[i % k]! += centroid[i]! * centroid[i]!;
    for (let c = 0; c < k; c++) norm[c] = norm[c]! > 0 ? 1 / Math.sqrt(norm[c]!) : 0;
    size.fill(0);
    let moved = 0;
    for (const id of order) {
      sims.fill(0);
      for (let e = userOffsets[id]!; e < userOffsets[id + 1]!; e++) {
        const o = users[e]! * k;
        for (let c = 0; c < k; c++) sims[c]! += centroid[o + c]!;
      }
      let best = -1;
      let bestSim = -Infinity;
      for (let c = 0; c < k; c++) {
        if (size[c]! >= cap) continue;
        const s = sims[c]! * norm[c]!;
        if (s > bestSim) {
          bestSim = s;
          best = c;
        }
      }
      if (assign[id] !== best) moved++;
      assign[id] = best;
      size[best]!++;
    }
    if (moved === 0) break;
    centroid.fill(0);
    for (const id of watched) {
      const c = assign[id]!;
      for (let e = userOffsets[id]!; e < userOffsets[id + 1]!; e++) centroid[users[e]! * k + c]! += weight[id]!;
    }
  }
  return treeFromAssignment(assign, k);
}

/** The tree of an assignment (assign[id] = cluster of vocabulary id id >= 1; assign[0] ignored). */
export function treeFromAssignment(assign: Int32Array, clusters: number): ItemTree {
  const size = assign.length;
  const itemCluster = new Int32Array(size);
  itemCluster[0] = -1;
  const memberOffsets = new Int32Array(clusters + 1);
  for (let id = 1; id < size; id++) {
    const c = assign[id]!;
    if (!(c >= 0 && c < clusters)) throw new Error(`item tree: vocabulary id ${id} has cluster ${c}, expected 0..${clusters - 1}`);
    itemCluster[id] = c;
    memberOffsets[c + 1]!++;
  }
  // (A cluster may be empty: no label ever falls in it, and it adds one logit to the top level.)
  for (let c = 0; c < clusters; c++) memberOffsets[c + 1]! += memberOffsets[c]!;
  const members = new Int32Array(size - 1);
  const position = new Int32Array(size);
  position[0] = -1;
  const next = memberOffsets.slice(0, clusters);
  for (let id = 1; id < size; id++) {
    const c = itemCluster[id]!;
    position[id] = next[c]! - memberOffsets[c]!;
    members[next[c]!++] = id;
  }
  return { clusters, itemCluster, memberOffsets, members, position };
}
