/**
 * `--protocol lastout|lastout-shuffled` and `--tie-seed S` of `recsys train`, `train-ranker` and
 * `evaluate`: the dataset in the protocol's event order (../shared/PROTOCOL.md). Under
 * lastout-shuffled, same-timestamp events of a user follow one seeded permutation of the
 * catalogue, so a model trained on it sees that order in its training sequences; the dataset's
 * fingerprint names the order, so a model trained under one order is refused under the other.
 */
import { type Dataset, loadDataset } from "@recsys/data";
import { DEFAULT_TIE_SEED, parseProtocol, type Protocol, type TieOrder, tieOrderFor, withTieOrder } from "@recsys/eval";
import { UsageError } from "./args.js";

export const PROTOCOL_OPTIONS = {
  protocol: { type: "string", default: "lastout" },
  "tie-seed": { type: "number", default: DEFAULT_TIE_SEED },
} as const;

export const PROTOCOL_USAGE = "[--protocol lastout|lastout-shuffled] [--tie-seed S]";

/** The protocol and tie seed of parsed options; throws UsageError on bad values. */
export function protocolOptions(args: Record<string, unknown>): { protocol: Protocol; tieSeed: number } {
  let protocol: Protocol;
  try {
    protocol = parseProtocol(String(args["protocol"] ?? "lastout"));
  } catch (err) {
    throw new UsageError(`--protocol: ${(err as Error).message}`);
  }
  const tieSeed = Number(args["tie-seed"] ?? DEFAULT_TIE_SEED);
  if (!Number.isSafeInteger(tieSeed)) throw new UsageError(`--tie-seed must be an integer, got ${String(args["tie-seed"])}`);
  return { protocol, tieSeed };
}

/** `dataset` in the event order of `protocol`, with the order used. */
export function inProtocolOrder(dataset: Dataset, protocol: Protocol, tieSeed: number): { dataset: Dataset; order: TieOrder } {
  const order = tieOrderFor(protocol, dataset.items.ids.length, tieSeed);
  return { dataset: withTieOrder(dataset, order), order };
}

/** Loads `spec` in the event order of `protocol`. */
export async function loadProtocolDataset(
  spec: string,
  protocol: Protocol,
  tieSeed: number,
): Promise<{ dataset: Dataset; order: TieOrder }> {
  return inProtocolOrder(await loadDataset(spec), protocol, tieSeed);
}
