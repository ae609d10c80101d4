/**
 * How often each item was a training target of a sequence model: the next-item positions of the
 * windows trainSequenceModel trains on (buildWindows with the same maxLength and windows), per
 * epoch. An item never a target keeps its random initial output embedding (the full softmax only
 * pushes it down, the sampled one rarely touches it), so its dot product with a session state is
 * noise: the serving session source nominates only items counted at least once (see
 * docs/sequence-models.md).
 */
import { PAD } from "./model.js";
import { buildWindows, type SequenceTrainConfig } from "./trainer.js";

/** The file beside weights.f32 holding the counts (little-endian uint32, one per item index). */
export const ITEM_COUNTS_FILE = "item-counts.u32";

/**
 * Target count of each item index 0..numItems-1 in the training windows of `sequences`: the
 * targets of buildWindows with the trainer's maxLength and windows.
 */
export function trainingTargetCounts(
  sequences: readonly ArrayLike<number>[],
  numItems: number,
  config: Pick<SequenceTrainConfig, "encoder" | "windows">,
): Uint32Array {
  const { targets } = buildWindows(sequences, config.encoder.maxLength, config.windows);
  const counts = new Uint32Array(numItems);
  for (const target of targets) {
    if (target === PAD) continue; // targets are item index + 1
    const item = target - 1;
    if (!(item >= 0 && item < numItems)) throw new RangeError(`trainingTargetCounts: item ${item} outside 0..${numItems - 1}`);
    counts[item]!++;
  }
  return counts;
}
