/**
 * The session model of a bundle `recsys retrain` publishes (`<bundle>/session/`, which the
 * orchestrator serves as the "session" source and for anonymous Recommend calls). Without it a
 * publication would drop that source. When the serving bundle has one:
 *
 * - `train` (the default): a new one trained on the candidate generator's training window (every
 *   watch before the gate's cut-off), with the serving model's encoder (kind, dimension, context
 *   length, blocks) and epoch count (or `sessionEpochs`), the rest `DEFAULT_SEQUENCE_CONFIG`, as
 *   `recsys train-session` trains; it knows the items of that window.
 * - `carry`: the serving model copied as it is (trained on an older window: items uploaded since
 *   are unknown to it until a run trains one); for catalogues where training it does not fit the
 *   CronJob's deadline.
 *
 * A serving bundle without a session model gives a published bundle without one.
 */
import { access, cp, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Dataset } from "@recsys/data";
import {
  DEFAULT_SEQUENCE_CONFIG,
  type SequenceManifest,
  saveSequenceModel,
  trainSequenceModel,
  trainingTargetCounts,
  userSequences,
} from "@recsys/sequence";
import { sessionDir } from "./commands/train-session.js";
import { formatDuration } from "./train-progress.js";

export const SESSION_MODES = ["train", "carry"] as const;
export type SessionMode = (typeof SESSION_MODES)[number];

/** Epochs when the serving session model does not say how many it was trained for (train-session's default). */
const FALLBACK_SESSION_EPOCHS = 20;

async function readSessionManifest(bundleDir: string): Promise<SequenceManifest | undefined> {
  const path = join(sessionDir(bundleDir), "manifest.json");
  try {
    await access(path);
  } catch {
    return undefined;
  }
  return JSON.parse(await readFile(path, "utf8")) as SequenceManifest;
}

/**
 * Writes the new bundle's session model into `stagingDir/session/` from the serving bundle's (see
 * the module comment); returns what it did, one line, or undefined when the serving bundle has none.
 */
export async function sessionModelForCandidate(options: {
  readonly servingDir: string | undefined;
  readonly stagingDir: string;
  /** The candidate generator's training window. */
  readonly train: Dataset;
  readonly candidateVersion: string;
  readonly mode: SessionMode;
  readonly epochs?: number;
  readonly seed: number;
  readonly log: (message: string) => void;
}): Promise<string | undefined> {
  const { servingDir, stagingDir, train, log } = options;
  if (servingDir === undefined) return undefined;
  const serving = await readSessionManifest(servingDir);
  if (serving === undefined) return undefined;
  const servingFrom = String(serving.training?.["datasetSpec"] ?? "an unknown dataset");
  if (options.mode === "carry") {
    await cp(sessionDir(servingDir), sessionDir(stagingDir), { recursive: true });
    return `session model: the serving bundle's ${serving.encoder.kind} model carried forward unchanged (--session carry; trained on ${servingFrom}, it does not know the items uploaded since)`;
  }
  const trainedEpochs = serving.training?.["epochs"];
  const epochs =
    options.epochs ??
    (typeof trainedEpochs === "number" && Number.isInteger(trainedEpochs) && trainedEpochs >= 1 ? trainedEpochs : FALLBACK_SESSION_EPOCHS);
  const rows = Int32Array.from({ length: train.events.user.length }, (_, r) => r);
  const started = performance.now();
  log(`session model: training a ${serving.encoder.kind} model (the serving one's encoder) for ${epochs} epochs on the training window`);
  const sequences = userSequences(train, rows);
  const config = { ...DEFAULT_SEQUENCE_CONFIG, encoder: serving.encoder, maxEpochs: epochs, seed: options.seed };
  const itemCounts = trainingTargetCounts(sequences, train.items.ids.length, config);
  const result = trainSequenceModel(sequences, train.items.ids.length, config, {
    onEpoch: (p) => log(`session model: epoch ${p.epoch}/${epochs}: loss ${p.loss.toFixed(4)}`),
  });
  try {
    await saveSequenceModel(
      sessionDir(stagingDir),
      result.model,
      train.items.ids,
      {
        datasetSpec: train.spec,
        datasetFingerprint: train.fingerprint,
        holdout: "none",
        candidateGenVersion: options.candidateVersion,
        epochs: result.epochs,
        seed: options.seed,
        examples: result.examples,
      },
      itemCounts,
    );
  } finally {
    result.model.dispose();
  }
  return `session model: ${serving.encoder.kind} trained on the training window (${result.examples} examples, ${result.epochs} epochs) in ${formatDuration((performance.now() - started) / 1000)}`;
}
