import type { Dataset, UserScorer } from "@recsys/data";
import type { SequenceModel } from "./model.js";

/**
 * Each user's chronological item sequence (item indices) over the event-log rows `rows` (in log
 * order, as `trainingRows` returns them: per user, chronological).
 */
export function userSequences(dataset: Dataset, rows: Int32Array): Int32Array[] {
  const numUsers = dataset.users.ids.length;
  const counts = new Int32Array(numUsers);
  for (let k = 0; k < rows.length; k++) counts[dataset.events.user[rows[k]!]!]!++;
  const out = Array.from(counts, (n) => new Int32Array(n));
  const fill = new Int32Array(numUsers);
  for (let k = 0; k < rows.length; k++) {
    const r = rows[k]!;
    const u = dataset.events.user[r]!;
    out[u]![fill[u]!++] = dataset.events.item[r]!;
  }
  return out;
}

/**
 * A UserScorer for the offline protocol: the model's state after the user's visible history
 * (its last maxLength items), dotted with every item's embedding. States are computed in batches
 * the first time a (user, history length) pair is asked for... simply: per call, one sequence.
 */
export function sequenceScorer(
  model: SequenceModel,
  dataset: Dataset,
  name = "sequence",
): UserScorer & { precompute(histories: readonly (Int32Array | null)[]): void } {
  const d = model.dim;
  let states: Float32Array | null = null;
  let lengths: Int32Array | null = null;
  const toItems = (rows: Int32Array): Int32Array => Int32Array.from(rows, (r) => dataset.events.item[r]!);
  return {
    name,
    /** Encodes every user's history (event-log rows, null = none) in batches ahead of `score`. */
    precompute(histories: readonly (Int32Array | null)[]): void {
      const seqs = histories.map((h) => (h === null ? new Int32Array(0) : toItems(h)));
      states = model.encodeLast(seqs);
      lengths = Int32Array.from(histories, (h) => (h === null ? -1 : h.length));
    },
    score(user: number, historyRows: Int32Array, _asOf: number, out: Float32Array): void {
      if (states !== null && lengths !== null && lengths[user] === historyRows.length) {
        model.scoreAll(states, user * d, out);
        return;
      }
      const state = model.encodeLast([toItems(historyRows)]);
      model.scoreAll(state, 0, out);
    },
  };
}
