/**
 * `recsys train --dataset SPEC --out DIR [--epochs N] [--seed S] [--holdout test|val|none]`
 *
 * Trains the YouTube-DNN candidate generator on a dataset and writes a model bundle directory.
 * The default holdout "test" leaves every user's lastout test event out, so the bundle can be
 * evaluated honestly with `recsys evaluate`; "val" also leaves the validation events out (for
 * tuning); production training uses `--holdout none` (every event). Same seed → same model.
 * `--threads` picks single-threaded (1, the default: the fastest measured on 2 cores with the
 * wasm backend) or two-thread data-parallel (2) training (a seed gives the same model for a
 * given thread count). `--history-pooling` pools the watch history with learned attention
 * weights ("attention", the default: better on ml-100k validation) or with the paper's average
 * ("mean"); docs/attention-pooling.md. `--output` picks the training loss over the catalogue:
 * the sampled softmax ("sampled", the default) or the two-level hierarchical softmax over a
 * co-watch item tree ("hierarchical", `--clusters N`, default √items; `--self-normalization A`,
 * default 0.1, pulls the within-cluster log-partition towards 0); docs/hierarchical-softmax.md.
 * Progress goes to stderr; the last stdout line is a one-line summary.
 */
import {
  DEFAULT_MODEL_CONFIG,
  DEFAULT_TRAIN_CONFIG,
  HISTORY_POOLINGS,
  type HistoryPooling,
  OUTPUT_LAYERS,
  type OutputLayer,
  saveBundle,
  trainCandidateGen,
} from "@recsys/candidate-gen";
import { loadDataset } from "@recsys/data";
import { initBackend } from "@recsys/tf";
import { parseArgs, UsageError } from "../args.js";
import { describeTieOrder } from "@recsys/eval";
import { inProtocolOrder, PROTOCOL_OPTIONS, PROTOCOL_USAGE, protocolOptions } from "../protocol-dataset.js";
import { formatDuration, progressReporter } from "../train-progress.js";

const USAGE = `usage: recsys train --dataset SPEC --out DIR [--epochs N] [--seed S] [--holdout test|val|none] [--threads 1|2]\n         [--history-pooling attention|mean] [--output sampled|hierarchical] [--clusters N]\n         [--self-normalization A] ${PROTOCOL_USAGE}`;

function log(message: string): void {
  process.stderr.write(`recsys train: ${message}\n`);
}

export async function run(argv: string[]): Promise<number> {
  let args;
  let protocol;
  try {
    args = parseArgs(argv, {
      dataset: { type: "string", required: true },
      out: { type: "string", required: true },
      epochs: { type: "number", default: DEFAULT_TRAIN_CONFIG.epochs },
      seed: { type: "number", default: DEFAULT_TRAIN_CONFIG.seed },
      holdout: { type: "string", default: "test" },
      threads: { type: "number", default: DEFAULT_TRAIN_CONFIG.threads },
      "history-pooling": { type: "string", default: DEFAULT_MODEL_CONFIG.historyPooling },
      output: { type: "string", default: DEFAULT_TRAIN_CONFIG.output },
      clusters: { type: "number", default: DEFAULT_TRAIN_CONFIG.clusters },
      "self-normalization": { type: "number", default: DEFAULT_TRAIN_CONFIG.selfNormalization },
      ...PROTOCOL_OPTIONS,
    });
    protocol = protocolOptions(args);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`recsys train: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
  const spec = String(args["dataset"]);
  const out = String(args["out"]);
  const holdout = String(args["holdout"]);
  const epochs = Number(args["epochs"]);
  const seed = Number(args["seed"]);
  const threads = Number(args["threads"]);
  const historyPooling = String(args["history-pooling"]) as HistoryPooling;
  if (!HISTORY_POOLINGS.includes(historyPooling)) {
    process.stderr.write(`recsys train: --history-pooling must be mean or attention, got '${historyPooling}'\n${USAGE}\n`);
    return 2;
  }
  const output = String(args["output"]) as OutputLayer;
  if (!OUTPUT_LAYERS.includes(output)) {
    process.stderr.write(`recsys train: --output must be sampled or hierarchical, got '${output}'\n${USAGE}\n`);
    return 2;
  }
  const clusters = Number(args["clusters"]);
  if (!Number.isInteger(clusters) || clusters < 0) {
    process.stderr.write(`recsys train: --clusters must be an integer >= 0 (0: √items), got ${clusters}\n${USAGE}\n`);
    return 2;
  }
  const selfNormalization = Number(args["self-normalization"]);
  if (!(selfNormalization >= 0) || !Number.isFinite(selfNormalization)) {
    process.stderr.write(`recsys train: --self-normalization must be a number >= 0, got ${selfNormalization}\n${USAGE}\n`);
    return 2;
  }
  if (output === "hierarchical" && threads !== 1) {
    process.stderr.write(`recsys train: --output hierarchical trains with --threads 1 only\n${USAGE}\n`);
    return 2;
  }
  if (threads !== 1 && threads !== 2) {
    process.stderr.write(`recsys train: --threads must be 1 or 2, got ${threads}\n${USAGE}\n`);
    return 2;
  }
  if (holdout !== "test" && holdout !== "val" && holdout !== "none") {
    process.stderr.write(`recsys train: --holdout must be test, val or none, got '${holdout}'\n${USAGE}\n`);
    return 2;
  }
  if (!Number.isInteger(epochs) || epochs < 1) {
    process.stderr.write(`recsys train: --epochs must be a positive integer, got ${epochs}\n${USAGE}\n`);
    return 2;
  }
  if (!Number.isSafeInteger(seed)) {
    process.stderr.write(`recsys train: --seed must be an integer, got ${seed}\n${USAGE}\n`);
    return 2;
  }

  const started = performance.now();
  await initBackend();
  const ordered = inProtocolOrder(await loadDataset(spec), protocol.protocol, protocol.tieSeed);
  const dataset = ordered.dataset;
  if (protocol.protocol !== "lastout")
    log(`protocol ${describeTieOrder(ordered.order)}: same-second events ordered by the seeded permutation`);
  log(
    `loaded ${dataset.spec}: ${dataset.users.ids.length} users, ${dataset.items.ids.length} items, ${dataset.events.user.length} events (${((performance.now() - started) / 1000).toFixed(1)} s)`,
  );
  for (const w of dataset.report.warnings) log(`warning: ${w}`);
  if (holdout === "none") log("holdout none: training on every event (production); the bundle cannot be evaluated on lastout");

  const progress = progressReporter();
  const result = await trainCandidateGen(dataset, {
    holdout,
    epochs,
    seed,
    threads,
    output,
    clusters,
    selfNormalization,
    model: { historyPooling },
    onProgress: (p) => progress.update(p),
  });
  progress.done();
  const s = result.stats;
  if (result.hierarchy !== null) log(`hierarchical softmax over ${result.hierarchy.tree.clusters} co-watch clusters`);
  log(
    `${s.examples} examples, ${s.steps} steps in ${formatDuration(s.seconds)} (${Math.round(s.examplesPerSecond)} examples/s on ${s.backend}, ${s.threads} thread${s.threads === 1 ? "" : "s"}), final loss ${s.finalLoss.toFixed(4)}`,
  );
  try {
    const manifest = await saveBundle(out, result);
    process.stdout.write(
      `wrote ${manifest.modelVersion} to ${out} (holdout ${holdout}, ${s.epochs} epochs, ${Math.round(s.examplesPerSecond)} examples/s, total ${formatDuration((performance.now() - started) / 1000)})\n`,
    );
  } finally {
    result.model.dispose();
  }
  return 0;
}
