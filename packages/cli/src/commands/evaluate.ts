/**
 * `recsys evaluate --dataset SPEC --model DIR [--json] [--split test|val]`
 *
 * Offline evaluation with protocol lastout (../shared/PROTOCOL.md): loads the dataset and its
 * split, the model bundle and its scorer, refuses a model trained on another dataset or on the
 * target events, then evaluates the model and the two reference baselines (most-popular,
 * item-kNN, built from the same allowed training rows) on the same users. When DIR also holds a
 * ranker (`recsys train-ranker`), the full two-stage pipeline is evaluated too (../pipeline-evaluate.ts).
 * Prints a table, or with --json exactly one JSON object on stdout; progress goes to stderr.
 */
import { createDatasetScorer, loadBundle } from "@recsys/candidate-gen";
import { lastoutSplit, loadDataset, trainingRows } from "@recsys/data";
import { evaluateLastout, itemKnnScorer, metricNames, mostPopularScorer, type Target } from "@recsys/eval";
import { parseArgs, UsageError } from "../args.js";
import { buildReport, formatTable, refusalReason } from "../evaluate-report.js";
import { evaluatePipeline, formatPipelineTable } from "../pipeline-evaluate.js";

const USAGE = "usage: recsys evaluate --dataset SPEC --model DIR [--json] [--split test|val]";

function log(message: string): void {
  process.stderr.write(`recsys evaluate: ${message}\n`);
}

export async function run(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv, {
      dataset: { type: "string", required: true },
      model: { type: "string", required: true },
      json: { type: "boolean", default: false },
      split: { type: "string", default: "test" },
    });
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`recsys evaluate: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
  const spec = String(args["dataset"]);
  const modelDir = String(args["model"]);
  const split = String(args["split"]);
  if (split !== "test" && split !== "val") {
    process.stderr.write(`recsys evaluate: --split must be test or val, got '${split}'\n${USAGE}\n`);
    return 2;
  }
  const target: Target = split;

  let started = performance.now();
  const dataset = await loadDataset(spec);
  const numUsers = dataset.users.ids.length;
  log(`loaded ${spec}: ${numUsers} users, ${dataset.items.ids.length} items, ${dataset.events.user.length} events (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  for (const w of dataset.report.warnings) log(`warning: ${w}`);

  const bundle = await loadBundle(modelDir);
  const refusal = refusalReason(bundle.manifest, modelDir, spec, dataset.fingerprint, target);
  if (refusal !== null) {
    process.stderr.write(`recsys evaluate: refusing to evaluate: ${refusal}\n`);
    return 1;
  }
  if (bundle.manifest.holdout === "val" && target === "test") {
    log("note: the model was trained with --holdout val (without validation events); its test figures are slightly pessimistic");
  }

  const lastout = lastoutSplit(dataset.events, numUsers);
  const rows = trainingRows(lastout, target === "test" ? "test" : "val");
  started = performance.now();
  const model = createDatasetScorer(bundle, dataset);
  const popular = mostPopularScorer(dataset, rows);
  const knn = itemKnnScorer(dataset, rows);
  const cap = Number.isFinite(knn.maxNeighbors) ? `${knn.maxNeighbors} neighbours per item` : "exact";
  log(`built the model scorer and the baselines (item-kNN ${cap}, ${knn.pairs} pairs) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  log(`evaluating ${lastout.evaluatedUsers} users on their ${target} events`);

  const result = evaluateLastout({
    dataset,
    split: lastout,
    scorers: [model, popular, knn],
    target,
    onProgress: (name, done, total) => log(`${name}: ${done}/${total} users`),
    progressEvery: Math.max(1000, Math.ceil(lastout.evaluatedUsers / 10)),
  });
  for (const r of result.results) log(`${r.name}: ${r.users} users in ${r.seconds.toFixed(1)} s`);
  const [modelResult, ...baselineResults] = result.results;
  const report = buildReport(spec, target, result.users, modelResult!, baselineResults, bundle.manifest.train);
  // The two-stage pipeline, when the model directory holds a ranker (DIR/ranker/, DIR/ranker-noprov/).
  const pipeline = await evaluatePipeline({ dataset, split: lastout, target, modelDir, bundle, baselines: [popular, knn], log });
  if (args["json"] === true) process.stdout.write(`${JSON.stringify(pipeline === null ? report : { ...report, ...pipeline })}\n`);
  else process.stdout.write(formatTable(report, metricNames(), bundle.manifest.modelVersion) + (pipeline === null ? "" : formatPipelineTable(pipeline, metricNames())));
  return 0;
}
