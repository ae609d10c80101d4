/**
 * `recsys train-ranker --dataset SPEC --model DIR [--epochs N] [--seed S] [--no-provenance] [--no-session] [...]`
 *
 * Trains the ranking model behind the candidate-gen bundle in DIR and writes it to DIR/ranker/
 * (DIR/ranker-noprov/ with --no-provenance, the ablation `recsys evaluate` reports as
 * "pipeline_without_provenance"). The ranker trains on the same rows as the bundle (the bundle's
 * holdout), by replaying the candidate sources, the bundle's "dnn" source included, over them.
 * When DIR holds a session model of the same dataset and holdout (`recsys train-session`, run
 * before), the replay includes the "session" source as the orchestrator serves it (the model's
 * state after each example's earlier rows only), so the ranker learns its provenance; its
 * manifest records the sources and the session model. `--no-session` trains without it (the
 * behaviour before session models, written to DIR/ranker-nosession/ for comparison).
 * With a `store:` dataset whose served log has answers (or `--examples served`), the examples are
 * what the system really served instead (@recsys/ranking buildServedExamples): a shown item
 * watched within `--watch-window` seconds (default 6 h) is a positive weighted by its watch time,
 * a shown unwatched item a negative, with the provenance it was served with.
 * Progress goes to stderr; the last stdout line is a one-line summary.
 */
import { loadBundle } from "@recsys/candidate-gen";
import { lastoutSplit, loadDataset, trainingRows } from "@recsys/data";
import {
  DEFAULT_WATCH_WINDOW_SECONDS,
  DEFAULT_RANKER_MODEL_CONFIG,
  DEFAULT_RANKER_TRAIN_CONFIG,
  RANKER_MODEL_KINDS,
  type RankerModelKind,
  saveRanker,
  trainRanker,
} from "@recsys/ranking";
import { initBackend } from "@recsys/tf";
import { parseArgs, UsageError } from "../args.js";
import { describeTieOrder } from "@recsys/eval";
import { inProtocolOrder, PROTOCOL_OPTIONS, PROTOCOL_USAGE, protocolOptions } from "../protocol-dataset.js";
import { createPipelineSources, DEFAULT_PIPELINE, noSessionRankerDir, rankerDir } from "../pipeline-setup.js";
import { type BundleSessionModel, createSessionPipelineSources, loadBundleSession } from "../session-pipeline.js";
import { formatDuration } from "../train-progress.js";

const USAGE =
  "usage: recsys train-ranker --dataset SPEC --model DIR [--epochs N] [--seed S] [--no-provenance] [--no-session] [--out DIR]\n" +
  "         [--negatives N] [--max-examples N] [--missed drop|keep] [--slate-negatives true|false]\n" +
  "         [--budget N] [--merged-size N] [--tower W,W] [--dim D] [--lr X] [--embedding-lr X] [--l2 X]\n" +
  "         [--examples auto|served|replay] [--watch-window SECONDS]\n" +
  "         [--model-kind weighted-lr|wide-deep] [--wide-lr X] [--wide-buckets N]\n" +
  `         ${PROTOCOL_USAGE}`;

function log(message: string): void {
  process.stderr.write(`recsys train-ranker: ${message}\n`);
}

function usageError(message: string): number {
  process.stderr.write(`recsys train-ranker: ${message}\n${USAGE}\n`);
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
      epochs: { type: "number", default: DEFAULT_RANKER_TRAIN_CONFIG.epochs },
      seed: { type: "number", default: DEFAULT_RANKER_TRAIN_CONFIG.seed },
      "no-provenance": { type: "boolean", default: false },
      "no-session": { type: "boolean", default: false },
      negatives: { type: "number", default: DEFAULT_RANKER_TRAIN_CONFIG.negatives },
      "max-examples": { type: "number", default: DEFAULT_RANKER_TRAIN_CONFIG.maxExamplesPerUser },
      missed: { type: "string", default: DEFAULT_RANKER_TRAIN_CONFIG.missedPositives },
      "slate-negatives": { type: "string", default: String(DEFAULT_RANKER_TRAIN_CONFIG.slateNegatives) },
      budget: { type: "number", default: DEFAULT_PIPELINE.budget },
      "merged-size": { type: "number", default: DEFAULT_PIPELINE.mergedSize },
      tower: { type: "string", default: DEFAULT_RANKER_MODEL_CONFIG.tower.join(",") },
      dim: { type: "number", default: DEFAULT_RANKER_MODEL_CONFIG.itemDim },
      lr: { type: "number", default: DEFAULT_RANKER_TRAIN_CONFIG.learningRate },
      "embedding-lr": { type: "number", default: DEFAULT_RANKER_TRAIN_CONFIG.embeddingLearningRate },
      l2: { type: "number", default: DEFAULT_RANKER_TRAIN_CONFIG.l2 },
      "model-kind": { type: "string", default: DEFAULT_RANKER_MODEL_CONFIG.kind },
      "wide-lr": { type: "number", default: DEFAULT_RANKER_TRAIN_CONFIG.wideLearningRate },
      "wide-buckets": { type: "number", default: DEFAULT_RANKER_MODEL_CONFIG.wideBuckets },
      examples: { type: "string", default: "auto" },
      "watch-window": { type: "number", default: DEFAULT_WATCH_WINDOW_SECONDS },
      ...PROTOCOL_OPTIONS,
    });
    protocol = protocolOptions(args);
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    throw err;
  }
  const spec = String(args["dataset"]);
  const modelDir = String(args["model"]);
  const provenance = args["no-provenance"] !== true;
  const withSession = args["no-session"] !== true;
  if (!provenance && !withSession && typeof args["out"] !== "string")
    return usageError("--no-provenance with --no-session needs --out DIR (each alone has its own directory)");
  const out = typeof args["out"] === "string" ? args["out"] : withSession ? rankerDir(modelDir, provenance) : noSessionRankerDir(modelDir);
  const epochs = Number(args["epochs"]);
  const seed = Number(args["seed"]);
  const missed = String(args["missed"]);
  const slate = String(args["slate-negatives"]);
  const tower = String(args["tower"])
    .split(",")
    .filter((s) => s.trim() !== "")
    .map(Number);
  for (const [name, v] of [
    ["epochs", epochs],
    ["negatives", args["negatives"]],
    ["max-examples", args["max-examples"]],
    ["budget", args["budget"]],
    ["merged-size", args["merged-size"]],
    ["dim", args["dim"]],
  ] as const) {
    const n = Number(v);
    if (!Number.isInteger(n) || n < (name === "negatives" ? 0 : 1))
      return usageError(`--${name} must be a ${name === "negatives" ? "non-negative" : "positive"} integer, got ${String(v)}`);
  }
  if (!Number.isSafeInteger(seed)) return usageError(`--seed must be an integer, got ${seed}`);
  if (missed !== "drop" && missed !== "keep") return usageError(`--missed must be drop or keep, got '${missed}'`);
  if (slate !== "true" && slate !== "false") return usageError(`--slate-negatives must be true or false, got '${slate}'`);
  if (tower.some((w) => !Number.isInteger(w) || w < 1))
    return usageError(`--tower must be comma-separated positive integers, got '${String(args["tower"])}'`);
  const kind = String(args["model-kind"]);
  if (!(RANKER_MODEL_KINDS as readonly string[]).includes(kind))
    return usageError(`--model-kind must be one of ${RANKER_MODEL_KINDS.join(", ")}, got '${kind}'`);
  const wideBuckets = Number(args["wide-buckets"]);
  if (!Number.isInteger(wideBuckets) || wideBuckets < 1)
    return usageError(`--wide-buckets must be a positive integer, got ${String(args["wide-buckets"])}`);
  const examplesFrom = String(args["examples"]);
  if (examplesFrom !== "auto" && examplesFrom !== "served" && examplesFrom !== "replay")
    return usageError(`--examples must be auto, served or replay, got '${examplesFrom}'`);
  const watchWindow = Number(args["watch-window"]);
  if (!(watchWindow > 0) || !Number.isFinite(watchWindow))
    return usageError(`--watch-window must be a positive number of seconds, got ${String(args["watch-window"])}`);

  const started = performance.now();
  await initBackend();
  const ordered = inProtocolOrder(await loadDataset(spec), protocol.protocol, protocol.tieSeed);
  const dataset = ordered.dataset;
  if (protocol.protocol !== "lastout")
    log(`protocol ${describeTieOrder(ordered.order)}: same-second events ordered by the seeded permutation`);
  log(`loaded ${dataset.spec}: ${dataset.users.ids.length} users, ${dataset.items.ids.length} items, ${dataset.events.user.length} events`);
  const bundle = await loadBundle(modelDir);
  try {
    const m = bundle.manifest;
    if (m.datasetFingerprint !== dataset.fingerprint) {
      const live =
        spec.startsWith("store:") && !spec.includes("until=")
          ? " (a live store grows between commands: pin both to one snapshot with ?until=SEQ, or use recsys retrain)"
          : "";
      process.stderr.write(
        `recsys train-ranker: the bundle in ${modelDir} was trained on "${m.datasetSpec}" (fingerprint ${m.datasetFingerprint.slice(0, 12)}…), not on "${spec}" (${dataset.fingerprint.slice(0, 12)}…)${live}\n`,
      );
      return 1;
    }
    const hasServed = (dataset.served?.requestId.length ?? 0) > 0;
    if (examplesFrom === "served" && !hasServed) {
      process.stderr.write(
        `recsys train-ranker: --examples served: ${spec} has no served log (only store: datasets of a system that logged Recommend answers have one)\n`,
      );
      return 1;
    }
    const fromServed = examplesFrom === "served" || (examplesFrom === "auto" && hasServed);
    const split = lastoutSplit(dataset.events, dataset.users.ids.length);
    const rows = trainingRows(split, m.holdout);
    const pipeline = { budget: Number(args["budget"]), mergedSize: Number(args["merged-size"]) };
    // Throws (exit 1) when DIR/session/ was trained on another dataset or holdout.
    const session: BundleSessionModel | null = withSession ? await loadBundleSession(modelDir, dataset, bundle) : null;
    try {
      log(
        session !== null
          ? `session source: the bundle's ${session.ref.kind} session model (saved ${session.ref.savedAt}), replayed over each example's earlier rows`
          : withSession
            ? `session source: none (${modelDir} holds no session model)`
            : "session source: off (--no-session)",
      );
      log(
        `model kind ${kind}${kind === "wide-deep" ? ` (${wideBuckets} wide buckets, wide learning rate ${Number(args["wide-lr"])})` : ""}`,
      );
      log(
        `holdout ${m.holdout} (from the bundle ${m.modelVersion}): ${rows.length} training rows; sources budget ${pipeline.budget}, merged ${pipeline.mergedSize}; provenance features ${provenance ? "on" : "off"}`,
      );
      log(
        fromServed
          ? `examples from the served log: ${dataset.served!.requestId.length} answers; a shown item watched within ${watchWindow} s is a positive weighted by its watch time`
          : "examples by replaying the candidate sources over the training rows",
      );
      let lastPhase = "";
      const result = await trainRanker(dataset, {
        rows,
        sources:
          session === null
            ? createPipelineSources(dataset, bundle, pipeline)
            : createSessionPipelineSources(dataset, bundle, pipeline, session.model),
        budget: pipeline.budget,
        ...(fromServed ? { served: { windowSeconds: watchWindow } } : {}),
        train: {
          epochs,
          seed,
          negatives: Number(args["negatives"]),
          maxExamplesPerUser: Number(args["max-examples"]),
          missedPositives: missed,
          slateNegatives: slate === "true",
          learningRate: Number(args["lr"]),
          embeddingLearningRate: Number(args["embedding-lr"]),
          l2: Number(args["l2"]),
          wideLearningRate: Number(args["wide-lr"]),
        },
        model: { tower, itemDim: Number(args["dim"]), kind: kind as RankerModelKind, wideBuckets },
        features: { provenance },
        onProgress: (p) => {
          const key = `${p.phase}${p.epoch}`;
          if (p.phase === "replay") log(`replay: ${p.done}/${p.total} watches (${formatDuration(p.elapsedSeconds)})`);
          else if (p.done === p.total || key !== lastPhase)
            log(
              `epoch ${p.epoch}/${p.epochs}: ${p.done}/${p.total} examples, loss ${p.loss.toFixed(4)} (${formatDuration(p.elapsedSeconds)})`,
            );
          lastPhase = key;
        },
      });
      const s = result.stats;
      log(
        `${s.examples} examples (${s.candidates} candidates; ${(100 * s.positiveInMerged).toFixed(1)}% of ${s.replayed} replayed watches retrieved, ` +
          `${s.droppedMissed} dropped, ${s.keptMissed} kept as missed, ${s.slateNegatives} slate negatives) built in ${formatDuration(s.replaySeconds)}; ` +
          `trained ${epochs} epochs in ${formatDuration(s.seconds)} on ${s.backend}, losses ${s.epochLosses.map((l) => l.toFixed(4)).join(" ")}`,
      );
      try {
        const manifest = await saveRanker(out, result, {
          datasetSpec: spec,
          datasetFingerprint: dataset.fingerprint,
          holdout: m.holdout,
          candidateGenVersion: m.modelVersion,
          ...(session === null ? {} : { sessionModel: session.ref }),
          pipeline,
        });
        process.stdout.write(
          `wrote ${manifest.modelVersion} to ${out} (${s.examples} examples, ${epochs} epochs, sources ${manifest.space.sources.join(",")}, total ${formatDuration((performance.now() - started) / 1000)})\n`,
        );
      } finally {
        result.model.dispose();
      }
    } finally {
      session?.model.dispose();
    }
  } finally {
    bundle.dispose();
  }
  return 0;
}
