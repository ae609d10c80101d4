/**
 * The session model of the serving benchmark's anonymous mode (`npm run bench -- serve
 * --anonymous`). The orchestrator answers an anonymous session (`Recommend` with
 * `session_item_ids`, no user id) with the bundle's session model as the "session" source
 * (MODEL_PATH/session/, packages/orchestrator/src/session-model.ts), so the served bundle needs
 * one, in the format `recsys train-session` writes (@recsys/sequence saveSequenceModel:
 * manifest.json + weights.f32).
 *
 * It is trained here as `recsys train-session` trains it (SASRec, d = 64, 50 items of context,
 * the bundle's training rows, the whole catalogue as its item space), with two differences that
 * a 1M-item catalogue forces: a **sampled** softmax (256 shared negatives, logQ-corrected; the
 * full softmax's logits are rows × 1M) and a few epochs (`SESSION_EPOCHS`), like the candidate
 * generator trained briefly on the benchmark's small watch log. Items nobody watched keep their
 * random initial embeddings (the model cannot learn them). Each item's count as a training target
 * is saved beside the weights (item-counts.u32), and the orchestrator nominates only items
 * counted at least once (SESSION_MIN_ITEM_COUNT): the session source scans those rows, not the
 * whole catalogue, per request. A kept model saved without counts is retrained.
 *
 * The logged-in benchmark serves the bundle without a session model (a session model makes the
 * orchestrator run the session source for logged-in users too, which would change its figures).
 * So the anonymous mode serves a sibling directory: every file of the bundle hard-linked, plus
 * `session/`. The session model is kept between runs while the bundle and the training settings
 * are the same.
 */
import { readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { BundleManifest } from "@recsys/candidate-gen";
import { type Dataset, lastoutSplit, trainingRows } from "@recsys/data";
import {
  DEFAULT_SEQUENCE_CONFIG,
  type SequenceManifest,
  saveSequenceModel,
  trainSequenceModel,
  trainingTargetCounts,
  userSequences,
} from "@recsys/sequence";
import { initBackend } from "@recsys/tf";
import { linkTree } from "./serve-bundle-rollout.js";

/** Epochs of the session model (a fixed count, no validation). */
export const SESSION_EPOCHS = 3;
/** The bundle's subdirectory holding its session model (the orchestrator's SESSION_MODEL_DIR). */
const SESSION_DIR = "session";
/** Recorded in the session model's manifest: a model trained another way is retrained. */
const METHOD = "bench-serve-sasrec-sampled-1";

export interface SessionBundle {
  /** The bundle with its session model: what the anonymous mode serves. */
  readonly dir: string;
  readonly reused: boolean;
  /** Seconds spent training (0 when reused). */
  readonly seconds: number;
  readonly epochs: number;
  /** Next-item examples seen in training, over all epochs. */
  readonly examples: number;
  readonly encoder: string;
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}

/**
 * Writes `dir`: the bundle in `bundleDir` (files hard-linked) with a session model for `dataset`
 * in `dir/session/`, trained `epochs` epochs, or the one `dir` already holds when it was trained
 * the same way behind the same bundle.
 */
export async function ensureSessionBundle(options: {
  readonly bundleDir: string;
  readonly dir: string;
  readonly dataset: Dataset;
  readonly epochs?: number;
  readonly seed?: number;
  readonly log: (message: string) => void;
}): Promise<SessionBundle> {
  const { bundleDir, dir, dataset, log } = options;
  const epochs = options.epochs ?? SESSION_EPOCHS;
  const seed = options.seed ?? 1;
  const bundle = await readJson<BundleManifest>(join(bundleDir, "manifest.json"));
  if (bundle === undefined) throw new Error(`no bundle in ${bundleDir}`);
  const existing = await readJson<SequenceManifest>(join(dir, SESSION_DIR, "manifest.json"));
  const t = existing?.training ?? {};
  const reusable =
    existing !== undefined &&
    t["method"] === METHOD &&
    t["candidateGenVersion"] === bundle.modelVersion &&
    t["datasetFingerprint"] === dataset.fingerprint &&
    t["epochs"] === epochs &&
    t["seed"] === seed &&
    existing.itemCounts !== undefined;

  const partial = `${dir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await linkTree(bundleDir, partial, new Set([SESSION_DIR]));
  let result: SessionBundle;
  if (reusable) {
    await linkTree(join(dir, SESSION_DIR), join(partial, SESSION_DIR), new Set());
    log(`session model: reusing the ${existing.encoder.kind} model in ${join(dir, SESSION_DIR)} (saved ${existing.savedAt})`);
    result = { dir, reused: true, seconds: 0, epochs, examples: Number(t["examples"] ?? 0), encoder: existing.encoder.kind };
  } else {
    const started = performance.now();
    await initBackend({ log: null });
    const rows = trainingRows(lastoutSplit(dataset.events, dataset.users.ids.length), bundle.holdout);
    const sequences = userSequences(dataset, rows);
    const config = { ...DEFAULT_SEQUENCE_CONFIG, softmax: "sampled" as const, maxEpochs: epochs, seed };
    log(
      `session model: training a ${config.encoder.kind} encoder over ${dataset.items.ids.length} items on ${rows.length} watches, ${epochs} epochs, sampled softmax (${config.negatives} negatives)`,
    );
    const itemCounts = trainingTargetCounts(sequences, dataset.items.ids.length, config);
    const targets = itemCounts.reduce((n, c) => n + (c > 0 ? 1 : 0), 0);
    log(`session model: ${targets} of ${dataset.items.ids.length} items are training targets (the session source's candidates)`);
    const trained = trainSequenceModel(sequences, dataset.items.ids.length, config, {
      onEpoch: (p) => log(`session model: epoch ${p.epoch}/${epochs}, loss ${p.loss.toFixed(4)}`),
    });
    try {
      await saveSequenceModel(
        join(partial, SESSION_DIR),
        trained.model,
        dataset.items.ids,
        {
          datasetSpec: dataset.spec,
          datasetFingerprint: dataset.fingerprint,
          holdout: bundle.holdout,
          candidateGenVersion: bundle.modelVersion,
          epochs: trained.epochs,
          seed,
          examples: trained.examples,
          softmax: config.softmax,
          method: METHOD,
        },
        itemCounts,
      );
    } finally {
      trained.model.dispose();
    }
    const seconds = (performance.now() - started) / 1000;
    log(`session model: ${trained.examples} examples in ${trained.epochs} epochs, ${seconds.toFixed(1)} s`);
    result = { dir, reused: false, seconds, epochs: trained.epochs, examples: trained.examples, encoder: config.encoder.kind };
  }
  await rm(dir, { recursive: true, force: true });
  await rename(partial, dir);
  return result;
}
