/**
 * `recsys train-session --dataset SPEC --model DIR [--encoder sasrec|gru4rec|narm|stamp] [--epochs N] [--batch N] [--lr X] [--seed S]
 *   [--protocol lastout|lastout-shuffled] [--tie-seed S]`
 *
 * Trains the session (sequence) model behind the candidate-gen bundle in DIR and writes it to
 * DIR/session/ (@recsys/sequence saveSequenceModel). It trains on the same rows as the bundle
 * (the bundle's holdout, as train-ranker does): with holdout "test" no test event is read; with
 * "val" neither the validation nor the test events are. The orchestrator serves it as the
 * "session" source (logged-in users' recent watches and anonymous sessions). Each item's count as a
 * training target is saved beside the weights (item-counts.u32): the orchestrator nominates only
 * items counted at least SESSION_MIN_ITEM_COUNT times.
 * `--protocol` / `--tie-seed` (as for `recsys train` and `train-ranker`): the dataset in that
 * protocol's event order; a bundle trained with `--protocol lastout-shuffled` needs the same flags
 * here (its held-out events and dataset fingerprint follow that order).
 * Progress goes to stderr; the last stdout line is a one-line summary.
 */
import { join } from "node:path";
import { loadBundle } from "@recsys/candidate-gen";
import { lastoutSplit, loadDataset, trainingRows } from "@recsys/data";
import {
  DEFAULT_SEQUENCE_CONFIG,
  ENCODER_KINDS,
  type EncoderKind,
  saveSequenceModel,
  trainSequenceModel,
  trainingTargetCounts,
  userSequences,
} from "@recsys/sequence";
import { initBackend } from "@recsys/tf";
import { describeTieOrder } from "@recsys/eval";
import { parseArgs, UsageError } from "../args.js";
import { inProtocolOrder, PROTOCOL_OPTIONS, PROTOCOL_USAGE, protocolOptions } from "../protocol-dataset.js";
import { formatDuration } from "../train-progress.js";

/** Epochs when --epochs is not given (a fixed count: no validation-based stopping here). */
export const DEFAULT_SESSION_EPOCHS = 20;

const USAGE = `usage: recsys train-session --dataset SPEC --model DIR [--encoder ${ENCODER_KINDS.join("|")}] [--epochs N] [--batch N] [--lr X] [--seed S] [--out DIR] ${PROTOCOL_USAGE}`;

/** Where a bundle's session model lives. */
export function sessionDir(modelDir: string): string {
  return join(modelDir, "session");
}

function log(message: string): void {
  process.stderr.write(`recsys train-session: ${message}\n`);
}

function usageError(message: string): number {
  process.stderr.write(`recsys train-session: ${message}\n${USAGE}\n`);
  return 2;
}

export async function run(argv: string[]): Promise<number> {
  let args;
  let protocol;
  try {
    args = parseArgs(argv, {
      dataset: { type: "string", required: true },
      model: { type: "string", required: true },
      out: { type: "string" },
      encoder: { type: "string", default: DEFAULT_SEQUENCE_CONFIG.encoder.kind },
      epochs: { type: "number", default: DEFAULT_SESSION_EPOCHS },
      batch: { type: "number", default: DEFAULT_SEQUENCE_CONFIG.batchSize },
      lr: { type: "number", default: DEFAULT_SEQUENCE_CONFIG.learningRate },
      seed: { type: "number", default: DEFAULT_SEQUENCE_CONFIG.seed },
      ...PROTOCOL_OPTIONS,
    });
    protocol = protocolOptions(args);
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    throw err;
  }
  const spec = String(args["dataset"]);
  const modelDir = String(args["model"]);
  const out = typeof args["out"] === "string" ? args["out"] : sessionDir(modelDir);
  const kind = String(args["encoder"]);
  if (!(ENCODER_KINDS as readonly string[]).includes(kind))
    return usageError(`--encoder must be one of ${ENCODER_KINDS.join(", ")}, got '${kind}'`);
  const epochs = Number(args["epochs"]);
  const seed = Number(args["seed"]);
  if (!Number.isInteger(epochs) || epochs < 1) return usageError(`--epochs must be a positive integer, got ${String(args["epochs"])}`);
  if (!Number.isSafeInteger(seed)) return usageError(`--seed must be an integer, got ${String(args["seed"])}`);
  const batchSize = Number(args["batch"]);
  const learningRate = Number(args["lr"]);
  if (!Number.isInteger(batchSize) || batchSize < 1) return usageError(`--batch must be a positive integer, got ${String(args["batch"])}`);
  if (!(Number.isFinite(learningRate) && learningRate > 0)) return usageError(`--lr must be a positive number, got ${String(args["lr"])}`);

  const started = performance.now();
  await initBackend();
  const ordered = inProtocolOrder(await loadDataset(spec), protocol.protocol, protocol.tieSeed);
  const dataset = ordered.dataset;
  if (protocol.protocol !== "lastout")
    log(`protocol ${describeTieOrder(ordered.order)}: same-second events ordered by the seeded permutation`);
  log(`loaded ${dataset.spec}: ${dataset.users.ids.length} users, ${dataset.items.ids.length} items, ${dataset.events.user.length} events`);
  const bundle = await loadBundle(modelDir);
  let holdout;
  let bundleVersion;
  try {
    const m = bundle.manifest;
    if (m.datasetFingerprint !== dataset.fingerprint) {
      process.stderr.write(
        `recsys train-session: the bundle in ${modelDir} was trained on "${m.datasetSpec}" (fingerprint ${m.datasetFingerprint.slice(0, 12)}…), not on "${spec}" (${dataset.fingerprint.slice(0, 12)}…) in ${describeTieOrder(ordered.order)} order (a bundle trained with --protocol lastout-shuffled needs the same --protocol and --tie-seed here)\n`,
      );
      return 1;
    }
    holdout = m.holdout;
    bundleVersion = m.modelVersion;
  } finally {
    bundle.dispose();
  }
  const split = lastoutSplit(dataset.events, dataset.users.ids.length);
  const rows = trainingRows(split, holdout);
  const sequences = userSequences(dataset, rows);
  log(
    `holdout ${holdout} (from the bundle ${bundleVersion}): ${rows.length} training rows; encoder ${kind}, ${epochs} epochs, batch ${batchSize}, lr ${learningRate}, seed ${seed}`,
  );
  const config = {
    ...DEFAULT_SEQUENCE_CONFIG,
    encoder: { ...DEFAULT_SEQUENCE_CONFIG.encoder, kind: kind as EncoderKind },
    maxEpochs: epochs,
    batchSize,
    learningRate,
    seed,
  };
  // Each item's count as a training target, saved beside the weights: the orchestrator nominates
  // only items trained as a target (SESSION_MIN_ITEM_COUNT).
  const itemCounts = trainingTargetCounts(sequences, dataset.items.ids.length, config);
  const targets = itemCounts.reduce((n, c) => n + (c > 0 ? 1 : 0), 0);
  log(`${targets} of ${dataset.items.ids.length} items are training targets (item-counts.u32)`);
  const result = trainSequenceModel(sequences, dataset.items.ids.length, config, {
    onEpoch: (p) => log(`epoch ${p.epoch}/${epochs}: loss ${p.loss.toFixed(4)} (${formatDuration((performance.now() - started) / 1000)})`),
  });
  try {
    await saveSequenceModel(
      out,
      result.model,
      dataset.items.ids,
      {
        datasetSpec: spec,
        datasetFingerprint: dataset.fingerprint,
        holdout,
        candidateGenVersion: bundleVersion,
        epochs: result.epochs,
        batchSize,
        learningRate,
        seed,
        examples: result.examples,
      },
      itemCounts,
    );
  } finally {
    result.model.dispose();
  }
  process.stdout.write(
    `wrote a ${kind} session model to ${out} (${result.examples} examples, ${result.epochs} epochs, ${result.trainSeconds.toFixed(1)} s training, total ${formatDuration((performance.now() - started) / 1000)})\n`,
  );
  return 0;
}
