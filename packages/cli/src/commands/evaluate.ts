/**
 * `recsys evaluate --dataset SPEC --model DIR [--shuffled-model DIR] [--protocols LIST] [--tie-seed S] [--json] [--split test|val]`
 *
 * Offline evaluation with protocols lastout and lastout-shuffled (../shared/PROTOCOL.md), side by
 * side: loads the dataset, puts it in each protocol's event order (same-second events by item id,
 * or by one seeded permutation of the catalogue), splits it, and evaluates on the same users the
 * model trained for that order (--model for lastout, --shuffled-model for lastout-shuffled:
 * `recsys train --protocol lastout-shuffled`), the reference baselines (most-popular, item-kNN
 * exact and with 100 neighbours per item, built from the same allowed training rows) and the
 * next-id diagnostic. A model trained on another dataset, another event order or on the target
 * events is refused. When a model directory also holds a ranker (`recsys train-ranker`), the
 * full two-stage pipeline is evaluated too (../pipeline-evaluate.ts). Every request is served at
 * the user's last visible event. Paired 95 % intervals over users are printed for the
 * comparisons the docs make. Prints a table, or with --json exactly one JSON object on stdout
 * (what `recsys report` draws); progress goes to stderr.
 */
import { type CandidateGenBundle, createDatasetScorer, loadBundle } from "@recsys/candidate-gen";
import { type Dataset, lastoutSplit, loadDataset, trainingRows, type UserScorer } from "@recsys/data";
import {
  DEFAULT_TIE_SEED,
  describeTieOrder,
  evaluateLastout,
  itemKnnScorer,
  mostPopularScorer,
  nextIdScorer,
  parseProtocol,
  type Protocol,
  type ScorerResult,
  type Target,
  tiedEvents,
  type TieOrder,
} from "@recsys/eval";
import { parseArgs, UsageError } from "../args.js";
import {
  buildSection,
  type EvaluationReport,
  formatTable,
  type ModelInfo,
  type PipelineDetails,
  type ProtocolSection,
  refusalReason,
} from "../evaluate-report.js";
import { evaluatePipeline } from "../pipeline-evaluate.js";
import { inProtocolOrder } from "../protocol-dataset.js";

const USAGE =
  "usage: recsys evaluate --dataset SPEC --model DIR [--shuffled-model DIR] [--protocols lastout,lastout-shuffled]\n" +
  "         [--tie-seed S] [--split test|val] [--json]";

/** Neighbour cap of the capped item-kNN baseline (as in common implementations). */
const KNN_CAP = 100;

function log(message: string): void {
  process.stderr.write(`recsys evaluate: ${message}\n`);
}

function usageError(message: string): number {
  process.stderr.write(`recsys evaluate: ${message}\n${USAGE}\n`);
  return 2;
}

export async function run(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs(argv, {
      dataset: { type: "string", required: true },
      model: { type: "string", required: true },
      "shuffled-model": { type: "string" },
      protocols: { type: "string", default: "lastout,lastout-shuffled" },
      "tie-seed": { type: "number", default: DEFAULT_TIE_SEED },
      json: { type: "boolean", default: false },
      split: { type: "string", default: "test" },
    });
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message);
    throw err;
  }
  const spec = String(args["dataset"]);
  const split = String(args["split"]);
  if (split !== "test" && split !== "val") return usageError(`--split must be test or val, got '${split}'`);
  const target: Target = split;
  const tieSeed = Number(args["tie-seed"]);
  if (!Number.isSafeInteger(tieSeed)) return usageError(`--tie-seed must be an integer, got ${tieSeed}`);
  let protocols: Protocol[];
  try {
    protocols = String(args["protocols"])
      .split(",")
      .map((p) => parseProtocol(p.trim()));
  } catch (err) {
    return usageError(`--protocols: ${(err as Error).message}`);
  }
  if (protocols.length === 0 || new Set(protocols).size !== protocols.length) return usageError("--protocols must list each protocol once");
  const modelDirs: Partial<Record<Protocol, string>> = { lastout: String(args["model"]) };
  if (typeof args["shuffled-model"] === "string") modelDirs["lastout-shuffled"] = args["shuffled-model"];

  const started = performance.now();
  const base = await loadDataset(spec);
  log(
    `loaded ${base.spec}: ${base.users.ids.length} users, ${base.items.ids.length} items, ${base.events.user.length} events (${((performance.now() - started) / 1000).toFixed(1)} s)`,
  );
  for (const w of base.report.warnings) log(`warning: ${w}`);
  log(
    `${tiedEvents(base.events)} of ${base.events.user.length} events share their timestamp with another event of the same user (the tie order decides their order)`,
  );

  const sections: Partial<Record<Protocol, ProtocolSection>> = {};
  const modelInfo: Partial<Record<Protocol, ModelInfo>> = {};
  for (const protocol of protocols) {
    const { dataset, order } = inProtocolOrder(base, protocol, tieSeed);
    const modelDir = modelDirs[protocol];
    const bundle = modelDir === undefined ? null : await loadBundle(modelDir);
    try {
      if (bundle !== null) {
        const flags = protocol === "lastout" ? "" : ` --protocol ${protocol} --tie-seed ${tieSeed}`;
        const refusal = refusalReason(bundle.manifest, modelDir!, spec, dataset.fingerprint, target, flags);
        if (refusal !== null) {
          process.stderr.write(`recsys evaluate: refusing to evaluate under ${describeTieOrder(order)}: ${refusal}\n`);
          return 1;
        }
        if (bundle.manifest.holdout === "val" && target === "test")
          log(`note: ${modelDir} was trained with --holdout val (without validation events); its test figures are slightly pessimistic`);
        const m = bundle.manifest;
        modelInfo[protocol] = {
          version: m.modelVersion,
          seed: (m.trainConfig as { seed?: number }).seed ?? null,
          epochs: m.train.epochs,
          train: { examples_per_second: finite(m.train.examplesPerSecond), seconds: finite(m.train.seconds) },
        };
      }
      sections[protocol] = await evaluateProtocol(
        dataset,
        protocol,
        protocol === "lastout" ? null : tieSeed,
        order,
        target,
        bundle,
        modelDir,
      );
    } finally {
      bundle?.dispose();
    }
  }
  const first = Object.values(sections)[0]!;
  const report: EvaluationReport = {
    dataset: spec,
    split: target,
    users: first.users,
    tie_seed: tieSeed,
    model_info: modelInfo,
    protocols: sections,
  };
  if (args["json"] === true) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(formatTable(report));
  return 0;
}

function finite(v: number): number {
  return Number.isFinite(v) ? v : 0;
}

/** One protocol: the model (when given), its pipeline (when it holds a ranker), the baselines. */
async function evaluateProtocol(
  dataset: Dataset,
  protocol: Protocol,
  tieSeed: number | null,
  order: TieOrder,
  target: Target,
  bundle: CandidateGenBundle | null,
  modelDir: string | undefined,
): Promise<ProtocolSection> {
  const name = describeTieOrder(order);
  const split = lastoutSplit(dataset.events, dataset.users.ids.length);
  const rows = trainingRows(split, target === "test" ? "test" : "val");
  let started = performance.now();
  // Exact (every co-watched neighbour) up to 20,000 items, as the protocol defines it; above that
  // the exact lists do not fit and itemKnnScorer caps them at 200 (logged).
  const exact = itemKnnScorer(dataset, rows);
  const capped = itemKnnScorer(dataset, rows, { maxNeighbors: KNN_CAP, name: `item-knn@${KNN_CAP}` });
  const baselines: UserScorer[] = [mostPopularScorer(dataset, rows), exact, capped, nextIdScorer(dataset)];
  const models: UserScorer[] = bundle === null ? [] : [createDatasetScorer(bundle, dataset)];
  const exactCap = Number.isFinite(exact.maxNeighbors)
    ? `capped at ${exact.maxNeighbors} neighbours (catalogue too large for the exact lists)`
    : "exact";
  log(
    `${name}: built the scorers (item-knn ${exactCap}, ${exact.pairs} pairs; item-knn@${KNN_CAP} ${capped.pairs} pairs) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  log(`${name}: evaluating ${split.evaluatedUsers} users on their ${target} events`);
  started = performance.now();
  const result = evaluateLastout({
    dataset,
    split,
    target,
    tieOrder: order,
    scorers: [...models, ...baselines],
    onProgress: (scorer, done, total) => log(`${name}: ${scorer}: ${done}/${total} users`),
    progressEvery: Math.max(1000, Math.ceil(split.evaluatedUsers / 10)),
  });
  for (const r of result.results) log(`${name}: ${r.name}: ${r.users} users in ${r.seconds.toFixed(1)} s`);
  const modelResults: ScorerResult[] = result.results.slice(0, models.length);
  const baselineResults = result.results.slice(models.length);
  let pipeline: PipelineDetails | undefined;
  if (bundle !== null && modelDir !== undefined) {
    const p = await evaluatePipeline({ dataset, split, target, tieOrder: order, modelDir, bundle, log: (m) => log(`${name}: ${m}`) });
    if (p !== null) {
      modelResults.push(...p.results);
      pipeline = p.details;
    }
  }
  const popularity = new Float64Array(dataset.items.ids.length);
  for (const r of rows) popularity[dataset.events.item[r]!]! += 1;
  const watch = Float64Array.from(result.userIndex, (u) => {
    const w = dataset.events.weight[target === "test" ? split.testRow[u]! : split.valRow[u]!]!;
    return Number.isFinite(w) && w > 0 ? w : 1;
  });
  return buildSection({
    protocol,
    tieSeed,
    users: result.users,
    modelVersion: bundle?.manifest.modelVersion ?? null,
    modelsSkipped:
      bundle === null
        ? `no model trained for this event order was given (train one with: recsys train --dataset ${dataset.spec} --out DIR --protocol ${protocol}${tieSeed === null ? "" : ` --tie-seed ${tieSeed}`}, and pass --shuffled-model DIR); baselines only`
        : null,
    models: modelResults,
    baselines: baselineResults,
    popularity,
    watch,
    ...(pipeline === undefined ? {} : { pipeline }),
  });
}
