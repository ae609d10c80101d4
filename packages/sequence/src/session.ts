import { SasRecEncoder } from "./encoders.js";
import type { SequenceModel } from "./model.js";
import { SasRecInference } from "./sasrec-inference.js";

export interface SessionEncoderOptions {
  /**
   * How a session is encoded: "js" (default) SASRec's state in plain JS over the session's own
   * positions (sasrec-inference.ts; other encoders use "tensors"), "tensors" the model's
   * `encodeLast` (the encoder's tensor ops over all maxLength positions). Equal to float rounding.
   */
  readonly inference?: "js" | "tensors";
}

/**
 * A trained sequence model as the session source's encoder (@recsys/sources `SessionEncoder`,
 * matched structurally so that neither package depends on the other): the state after the
 * session's items, and the item vectors (for "because"). Item indices outside the model's
 * catalogue are dropped from the session; a session with none left has no state. The "js"
 * inference copies the encoder's weights when the encoder is made: a model trained further
 * afterwards needs a new one.
 */
export function sessionEncoder(
  model: SequenceModel,
  options: SessionEncoderOptions = {},
): {
  readonly maxLength: number;
  encode(items: ArrayLike<number>): Float32Array | null;
  itemVector(item: number): Float32Array | null;
} {
  const d = model.dim;
  const inference = options.inference ?? "js";
  if (inference !== "js" && inference !== "tensors")
    throw new Error(`sessionEncoder: inference "${String(inference)}" is not js or tensors`);
  const js = inference === "js" && model.encoder instanceof SasRecEncoder ? new SasRecInference(model.encoder.weights()) : null;
  return {
    maxLength: model.maxLength,
    encode(items) {
      const known: number[] = [];
      for (let k = 0; k < items.length; k++) {
        const item = items[k]!;
        if (Number.isInteger(item) && item >= 0 && item < model.numItems) known.push(item);
      }
      if (known.length === 0) return null;
      if (js === null) return model.encodeLast([known]);
      // Table rows are item index + 1 (row 0 is the padding).
      const start = Math.max(0, known.length - model.maxLength);
      const ids = new Int32Array(known.length - start);
      for (let k = 0; k < ids.length; k++) ids[k] = known[start + k]! + 1;
      return js.lastState(ids, model.items.data);
    },
    itemVector(item) {
      if (!Number.isInteger(item) || item < 0 || item >= model.numItems) return null;
      return model.items.data.subarray((item + 1) * d, (item + 2) * d);
    },
  };
}
