import type { EventLog } from "./types.js";

/** Which held-out events a model must not see. */
export type Holdout = "test" | "val" | "none";

/**
 * Protocol `lastout` of ../shared/PROTOCOL.md, steps 1–2.
 *
 * The event log is already sorted by (user, timestamp, item id as written). Within each user the
 * first occurrence of each item is kept; the last kept event is the test event, the one before it
 * the validation event; users with fewer than 3 kept events are training-only.
 */
export interface LastoutSplit {
  /** Row (into the event log) of each user's test event, -1 for training-only users. */
  readonly testRow: Int32Array;
  /** Row of each user's validation event, -1 for training-only users. */
  readonly valRow: Int32Array;
  /** Rows kept after removing duplicate (user, item) events, in log order. */
  readonly keptRows: Int32Array;
  /** Offsets of each user's kept rows in `keptRows`. */
  readonly keptOffsets: Int32Array;
  /** Number of duplicate (user, item) events removed. */
  readonly duplicates: number;
  /** Number of users with a test event. */
  readonly evaluatedUsers: number;
}

export function lastoutSplit(events: EventLog, numUsers: number): LastoutSplit {
  const kept = new Int32Array(events.user.length);
  const keptOffsets = new Int32Array(numUsers + 1);
  const testRow = new Int32Array(numUsers).fill(-1);
  const valRow = new Int32Array(numUsers).fill(-1);
  let n = 0;
  let evaluated = 0;
  const seen = new Set<number>();
  for (let u = 0; u < numUsers; u++) {
    keptOffsets[u] = n;
    seen.clear();
    for (let r = events.userOffsets[u]!; r < events.userOffsets[u + 1]!; r++) {
      const item = events.item[r]!;
      if (seen.has(item)) continue;
      seen.add(item);
      kept[n++] = r;
    }
    const count = n - keptOffsets[u]!;
    if (count >= 3) {
      testRow[u] = kept[n - 1]!;
      valRow[u] = kept[n - 2]!;
      evaluated++;
    }
  }
  keptOffsets[numUsers] = n;
  return {
    testRow,
    valRow,
    keptRows: kept.slice(0, n),
    keptOffsets,
    duplicates: events.user.length - n,
    evaluatedUsers: evaluated,
  };
}

/**
 * The rows a model may train on under a holdout, in log order (per user chronological):
 * "test" drops test events (the model that is scored on test), "val" drops validation and test
 * events (models used to tune on validation), "none" keeps every deduplicated event (production).
 */
export function trainingRows(split: LastoutSplit, holdout: Holdout): Int32Array {
  if (holdout === "none") return split.keptRows;
  const out = new Int32Array(split.keptRows.length);
  let n = 0;
  const numUsers = split.testRow.length;
  for (let u = 0; u < numUsers; u++) {
    const test = split.testRow[u]!;
    const val = holdout === "val" ? split.valRow[u]! : -1;
    for (let k = split.keptOffsets[u]!; k < split.keptOffsets[u + 1]!; k++) {
      const r = split.keptRows[k]!;
      if (r === test || r === val) continue;
      out[n++] = r;
    }
  }
  return out.slice(0, n);
}
