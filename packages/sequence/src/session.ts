import type { SequenceModel } from "./model.js";

/**
 * A trained sequence model as the session source's encoder (@recsys/sources `SessionEncoder`,
 * matched structurally so that neither package depends on the other): the state after the
 * session's items, and the item vectors (for "because"). Item indices outside the model's
 * catalogue are dropped from the session; a session with none left has no state.
 */
export function sessionEncoder(model: SequenceModel): {
  readonly maxLength: number;
  encode(items: ArrayLike<number>): Float32Array | null;
  itemVector(item: number): Float32Array | null;
} {
  const d = model.dim;
  return {
    maxLength: model.maxLength,
    encode(items) {
      const known: number[] = [];
      for (let k = 0; k < items.length; k++) {
        const item = items[k]!;
        if (Number.isInteger(item) && item >= 0 && item < model.numItems) known.push(item);
      }
      if (known.length === 0) return null;
      return model.encodeLast([known]);
    },
    itemVector(item) {
      if (!Number.isInteger(item) || item < 0 || item >= model.numItems) return null;
      return model.items.data.subarray((item + 1) * d, (item + 2) * d);
    },
  };
}
