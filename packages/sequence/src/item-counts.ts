/**
 * How often each item was a training target of a sequence model: the next-item positions of the
 * windows trainSequenceModel trains on (buildWindows with the same maxLength and windows), per
 * epoch. An item never a target keeps its random initial output embedding (the full softmax only
 * pushes it down, the sampled one rarely touches it), so its dot product with a session state is
 * noise: the serving session source nominates only items counted at least once (see
 * docs/sequence-models.md).
 */
import type { SequenceTrainConfig } from "./trainer.js";

/** The file beside weights.f32 holding the counts (little-endian uint32, one per item index). */
export const ITEM_COUNTS_FILE = "item-counts.u32";

/**
 * Target count of each item index 0..numItems-1 in the training windows of `sequences` (the
 * windows of buildWindows: "last" keeps each sequence's last maxLength + 1 items, "all" cuts it
 * into such windows from the end; every item of a window but its first is a target).
 */
export function trainingTargetCounts(
  sequences: readonly ArrayLike<number>[],
  numItems: number,
  config: Pick<SequenceTrainConfig, "encoder" | "windows">,
): Uint32Array {
  const L = config.encoder.maxLength;
  const counts = new Uint32Array(numItems);
  for (const s of sequences) {
    for (let end = s.length; end >= 2; end -= L) {
      const start = Math.max(0, end - L - 1);
      for (let k = start + 1; k < end; k++) {
        const item = s[k]!;
        if (!(Number.isInteger(item) && item >= 0 && item < numItems))
          throw new RangeError(`trainingTargetCounts: item ${item} outside 0..${numItems - 1}`);
        counts[item]!++;
      }
      if (config.windows === "last") break;
    }
  }
  return counts;
}
