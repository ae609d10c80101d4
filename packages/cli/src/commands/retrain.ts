/**
 * `recsys retrain [--dataset SPEC] [--current PATH] [--margin M] [--holdout-fraction F] [--epochs N] ...`
 *
 * Retrain → gate → publish (../retrain.ts): trains both models on the log before its latest
 * events, evaluates the candidate and the serving bundle on those events (HR@10 and watch-time
 * DCG@10, both printed), refuses a candidate worse by more than the margin, otherwise publishes it
 * with every retrieval shard's prebuilt index and flips `current`, which every stage hot-reloads.
 *
 * Without --dataset / --current it retrains the stack `recsys start` serves (models/stack.json):
 * its embedded store (store:<run>/users) and its bundle. Exit codes: 0 published (or --dry-run
 * passed the gate), 3 refused by the gate, 1 failed, 2 usage.
 */
import { join } from "node:path";
import { loadDataset, redactSpec } from "@recsys/data";
import { HNSW_DEFAULTS } from "@recsys/ann";
import { parseArgs, UsageError } from "../args.js";
import { formatFigures, recordRetrainFailure, retrain, RETRAIN_DEFAULTS } from "../retrain.js";
import { formatRankerFigures } from "../ranker-gate.js";
import { SESSION_MODES, type SessionMode } from "../retrain-session.js";
import { DEFAULT_RUN_ROOT, readStackState, stateFilePath } from "../stack-state.js";
import { formatDuration } from "../train-progress.js";
import { DEFAULT_WATCH_WINDOW_SECONDS } from "@recsys/ranking";

const USAGE =
  "usage: recsys retrain [--dataset SPEC] [--current PATH] [--margin M] [--ranker-margin M] [--holdout-fraction F] [--epochs N]\n" +
  "                      [--ranker-epochs N] [--seed S] [--watch-window SECONDS] [--shards N] [--index-kind hnsw|brute-force] [--hnsw-m M]\n" +
  "                      [--hnsw-ef-construction N] [--max-eval-users N] [--preload-seconds S] [--session train|carry]\n" +
  "                      [--session-epochs N] [--dir DIR] [--dry-run] [--json]";

function log(message: string): void {
  process.stderr.write(`recsys retrain: ${message}\n`);
}

export async function run(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv, {
      dataset: { type: "string" },
      current: { type: "string" },
      dir: { type: "string", default: DEFAULT_RUN_ROOT },
      margin: { type: "number", default: RETRAIN_DEFAULTS.margin },
      "ranker-margin": { type: "number" },
      "holdout-fraction": { type: "number", default: RETRAIN_DEFAULTS.holdoutFraction },
      epochs: { type: "number", default: RETRAIN_DEFAULTS.epochs },
      "ranker-epochs": { type: "number", default: RETRAIN_DEFAULTS.rankerEpochs },
      seed: { type: "number", default: RETRAIN_DEFAULTS.seed },
      "watch-window": { type: "number", default: DEFAULT_WATCH_WINDOW_SECONDS },
      shards: { type: "number" },
      "index-kind": { type: "string", default: "hnsw" },
      "hnsw-m": { type: "number", default: HNSW_DEFAULTS.M },
      "hnsw-ef-construction": { type: "number", default: HNSW_DEFAULTS.efConstruction },
      "max-eval-users": { type: "number", default: RETRAIN_DEFAULTS.maxEvalUsers },
      "preload-seconds": { type: "number", default: RETRAIN_DEFAULTS.preloadSeconds },
      session: { type: "string", default: "train" },
      "session-epochs": { type: "number" },
      "dry-run": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    });
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`recsys retrain: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
  const usage = (message: string): number => {
    process.stderr.write(`recsys retrain: ${message}\n${USAGE}\n`);
    return 2;
  };
  let spec = typeof args["dataset"] === "string" ? args["dataset"] : undefined;
  let current = typeof args["current"] === "string" ? args["current"] : undefined;
  let shards = typeof args["shards"] === "number" ? args["shards"] : undefined;
  if (spec === undefined || current === undefined) {
    const statePath = stateFilePath(String(args["dir"]));
    const state = await readStackState(statePath);
    if (state === undefined)
      return usage(`no --dataset/--current given and no running stack (${statePath}); start one with \`npm start\` or pass both`);
    spec ??= `store:${join(state.runDir, "users")}`;
    current ??= state.modelDir;
    shards ??= state.stages.filter((s) => s.name.startsWith("retrieval")).length || 1;
    log(`retraining the stack of ${statePath}: --dataset ${redactSpec(spec)} --current ${current} --shards ${shards}`);
  }
  const kind = String(args["index-kind"]);
  if (kind !== "hnsw" && kind !== "brute-force") return usage(`--index-kind must be hnsw or brute-force, got '${kind}'`);
  for (const name of ["epochs", "ranker-epochs", "hnsw-m", "hnsw-ef-construction", "max-eval-users"] as const) {
    const v = Number(args[name]);
    const zeroAllowed = name === "epochs" || name === "ranker-epochs";
    if (!Number.isInteger(v) || v < (zeroAllowed ? 0 : 1))
      return usage(`--${name} must be a ${zeroAllowed ? "non-negative" : "positive"} integer, got ${v}`);
  }
  const rankerMargin = typeof args["ranker-margin"] === "number" ? args["ranker-margin"] : undefined;
  if (rankerMargin !== undefined && !(rankerMargin >= 0 && rankerMargin < 1))
    return usage(`--ranker-margin must be in [0, 1), got ${rankerMargin}`);
  if (shards !== undefined && (!Number.isInteger(shards) || shards < 1)) return usage(`--shards must be a positive integer, got ${shards}`);
  const session = String(args["session"]);
  if (!(SESSION_MODES as readonly string[]).includes(session)) return usage(`--session must be train or carry, got '${session}'`);
  const sessionEpochs = typeof args["session-epochs"] === "number" ? args["session-epochs"] : undefined;
  if (sessionEpochs !== undefined && (!Number.isInteger(sessionEpochs) || sessionEpochs < 1))
    return usage(`--session-epochs must be a positive integer, got ${sessionEpochs}`);
  const preload = Number(args["preload-seconds"]);
  if (!(preload >= 0) || !Number.isFinite(preload))
    return usage(`--preload-seconds must be a number >= 0, got ${String(args["preload-seconds"])}`);

  const started = performance.now();
  let dataset;
  try {
    dataset = await loadDataset(spec);
  } catch (error) {
    const message = `cannot load ${redactSpec(spec)}: ${(error as Error).message}`;
    await recordRetrainFailure(current, message).catch(() => undefined);
    process.stderr.write(`recsys retrain: failed: ${message}\n`);
    return 1;
  }
  log(
    `loaded ${dataset.spec}: ${dataset.users.ids.length} users, ${dataset.items.ids.length} items, ${dataset.events.user.length} watches, ${dataset.served?.requestId.length ?? 0} served answers`,
  );
  for (const w of dataset.report.warnings) log(`warning: ${w}`);
  let result;
  try {
    result = await retrain({
      dataset,
      datasetSpec: spec,
      current,
      margin: Number(args["margin"]),
      holdoutFraction: Number(args["holdout-fraction"]),
      epochs: Number(args["epochs"]),
      rankerEpochs: Number(args["ranker-epochs"]),
      ...(rankerMargin === undefined ? {} : { rankerMargin }),
      seed: Number(args["seed"]),
      watchWindowSeconds: Number(args["watch-window"]),
      ...(shards === undefined ? {} : { shards }),
      indexKind: kind,
      hnswM: Number(args["hnsw-m"]),
      hnswEfConstruction: Number(args["hnsw-ef-construction"]),
      maxEvalUsers: Number(args["max-eval-users"]),
      preloadSeconds: Number(args["preload-seconds"]),
      dryRun: args["dry-run"] === true,
      session: session as SessionMode,
      ...(sessionEpochs === undefined ? {} : { sessionEpochs }),
      log,
    });
  } catch (error) {
    process.stderr.write(`recsys retrain: failed: ${(error as Error).message}\n`);
    return 1;
  }
  if (args["json"] === true) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    if (result.candidate !== undefined)
      process.stdout.write(`${formatFigures("candidate", result.candidateVersion ?? "?", result.candidate)}\n`);
    if (result.serving !== undefined) process.stdout.write(`${formatFigures("serving", result.servingVersion ?? "?", result.serving)}\n`);
    if (result.rankerCandidate !== undefined && result.rankerServing !== undefined) {
      process.stdout.write(`${formatRankerFigures("candidate", result.candidateVersion ?? "?", result.rankerCandidate)}\n`);
      process.stdout.write(`${formatRankerFigures("serving", result.servingVersion ?? "?", result.rankerServing)}\n`);
    }
    process.stdout.write(
      `${result.outcome}: ${result.message} (margin ${Number(args["margin"])}, total ${formatDuration((performance.now() - started) / 1000)})\n`,
    );
  }
  return result.outcome === "refused" ? 3 : 0;
}
