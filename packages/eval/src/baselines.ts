/**
 * The two reference baselines of ../shared/PROTOCOL.md, built only from the rows a model may
 * train on (`trainingRows(split, "test")` when the target is test, `trainingRows(split, "val")`
 * when it is val), so nothing from a held-out event informs them.
 */
import type { Dataset, UserScorer } from "@recsys/data";

/** most-popular: every user gets the training-event count of each item (ties: item id, by the evaluator). */
export function mostPopularScorer(dataset: Dataset, rows: Int32Array): UserScorer {
  const counts = new Float32Array(dataset.items.ids.length);
  for (let k = 0; k < rows.length; k++) counts[dataset.events.item[rows[k]!]!]! += 1;
  return {
    name: "most-popular",
    score(_user: number, _historyRows: Int32Array, _asOf: number, out: Float32Array): void {
      out.set(counts);
    },
  };
}

/**
 * next-id (a diagnostic, not a model): no learning; the items after the user's last visible item
 * in item id order, nearest first (the next-higher id scores highest), then everything else tied.
 * On a log whose same-second bursts are ordered by item id (protocol lastout), the test item is
 * often the next id after the validation item: this rule's score measures that artifact. Under
 * lastout-shuffled it should fall to chance.
 */
export function nextIdScorer(dataset: Dataset): UserScorer {
  const numItems = dataset.items.ids.length;
  const evItem = dataset.events.item;
  return {
    name: "next-id",
    score(_user: number, historyRows: Int32Array, _asOf: number, out: Float32Array): void {
      out.fill(0);
      if (historyRows.length === 0) return;
      const last = evItem[historyRows[historyRows.length - 1]!]!;
      for (let i = last + 1; i < numItems; i++) out[i] = numItems + 1 - (i - last);
    },
  };
}

export interface ItemKnnOptions {
  /**
   * Keep only each item's `maxNeighbors` most similar items (ties by item index). Default: all
   * neighbours (exact) when the catalogue has at most 20 000 items, else 200 — the exact lists
   * grow with the square of co-watches and do not fit at 100k+ items.
   */
  readonly maxNeighbors?: number;
  /** Scorer name (default "item-knn"). */
  readonly name?: string;
}

export interface ItemKnnScorer extends UserScorer {
  /** Neighbour cap in effect (Infinity = exact). */
  readonly maxNeighbors: number;
  /** Stored (item, neighbour) pairs. */
  readonly pairs: number;
}

/**
 * item-kNN: cosine similarity on the binary user×item matrix of `rows`,
 * sim(i, j) = |U(i) ∩ U(j)| / sqrt(|U(i)|·|U(j)|); a candidate's score is the sum of its
 * similarities to the user's history items. Sparse: co-occurrences are accumulated per item
 * through its users (cost Σ_u n_u²), scores per user cost Σ_{h ∈ history} |neighbours(h)|.
 * Repeated (user, item) rows count once.
 */
export function itemKnnScorer(dataset: Dataset, rows: Int32Array, options: ItemKnnOptions = {}): ItemKnnScorer {
  const numItems = dataset.items.ids.length;
  const numUsers = dataset.users.ids.length;
  const maxNeighbors = options.maxNeighbors ?? (numItems <= 20_000 ? Infinity : 200);
  const { user: evUser, item: evItem } = dataset.events;

  // Binary matrix as CSR both ways (deduplicated per user).
  const userCount = new Int32Array(numUsers + 1);
  const itemCount = new Int32Array(numItems + 1);
  const seenStamp = new Int32Array(numItems).fill(-1);
  const keep = new Uint8Array(rows.length);
  // Rows may come in any order: dedupe with a per-user stamp after grouping by user.
  const order = Int32Array.from(rows).sort((a, b) => evUser[a]! - evUser[b]! || a - b);
  for (let k = 0; k < order.length; k++) {
    const r = order[k]!;
    const u = evUser[r]!;
    const i = evItem[r]!;
    if (seenStamp[i] === u) continue;
    seenStamp[i] = u;
    keep[k] = 1;
    userCount[u + 1]!++;
    itemCount[i + 1]!++;
  }
  for (let u = 0; u < numUsers; u++) userCount[u + 1]! += userCount[u]!;
  for (let i = 0; i < numItems; i++) itemCount[i + 1]! += itemCount[i]!;
  const userItems = new Int32Array(userCount[numUsers]!);
  const itemUsers = new Int32Array(itemCount[numItems]!);
  {
    const uc = userCount.slice(0, numUsers);
    const ic = itemCount.slice(0, numItems);
    for (let k = 0; k < order.length; k++) {
      if (keep[k] === 0) continue;
      const r = order[k]!;
      const u = evUser[r]!;
      const i = evItem[r]!;
      userItems[uc[u]!++] = i;
      itemUsers[ic[i]!++] = u;
    }
  }
  const degree = (i: number): number => itemCount[i + 1]! - itemCount[i]!;

  // Neighbour lists (CSR), built one item at a time with a dense accumulator.
  const nbOffsets = new Int32Array(numItems + 1);
  let nbItems = new Int32Array(1 << 16);
  let nbSims = new Float64Array(1 << 16);
  let total = 0;
  const acc = new Int32Array(numItems);
  const touched = new Int32Array(numItems);
  const sims = new Float64Array(numItems);
  for (let i = 0; i < numItems; i++) {
    let nt = 0;
    for (let a = itemCount[i]!; a < itemCount[i + 1]!; a++) {
      const u = itemUsers[a]!;
      for (let b = userCount[u]!; b < userCount[u + 1]!; b++) {
        const j = userItems[b]!;
        if (j === i) continue;
        if (acc[j] === 0) touched[nt++] = j;
        acc[j]!++;
      }
    }
    let list = touched.subarray(0, nt);
    const di = degree(i);
    for (let k = 0; k < nt; k++) {
      const j = list[k]!;
      sims[j] = acc[j]! / Math.sqrt(di * degree(j));
      acc[j] = 0;
    }
    if (nt > maxNeighbors) {
      list.sort((a, b) => sims[b]! - sims[a]! || a - b);
      list = list.subarray(0, maxNeighbors);
    }
    if (total + list.length > nbItems.length) {
      let size = nbItems.length;
      while (size < total + list.length) size *= 2;
      const items2 = new Int32Array(size);
      items2.set(nbItems.subarray(0, total));
      const sims2 = new Float64Array(size);
      sims2.set(nbSims.subarray(0, total));
      nbItems = items2;
      nbSims = sims2;
    }
    for (let k = 0; k < list.length; k++) {
      nbItems[total] = list[k]!;
      nbSims[total] = sims[list[k]!]!;
      total++;
    }
    nbOffsets[i + 1] = total;
  }
  const neighborItems = nbItems.slice(0, total);
  const neighborSims = nbSims.slice(0, total);

  const sum = new Float64Array(numItems);
  return {
    name: options.name ?? "item-knn",
    maxNeighbors,
    pairs: total,
    score(_user: number, historyRows: Int32Array, _asOf: number, out: Float32Array): void {
      sum.fill(0);
      for (let k = 0; k < historyRows.length; k++) {
        const h = evItem[historyRows[k]!]!;
        for (let p = nbOffsets[h]!; p < nbOffsets[h + 1]!; p++) sum[neighborItems[p]!]! += neighborSims[p]!;
      }
      for (let i = 0; i < numItems; i++) out[i] = sum[i]!;
    },
  };
}
