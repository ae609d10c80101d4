/**
 * The ranking stage: Rank = the ranker bundle at <MODEL_PATH>/<RANKER_SUBDIR> (@recsys/ranking,
 * weighted logistic regression) over the request's candidates, hot-reloaded when a new ranker is
 * published there.
 *
 * Per call: validate and convert the request (./context.ts), `Ranker.score` (the package's one
 * feature encoder, `encodeCandidates`, then the network) → logits; answer every candidate with
 * score = logit and expected_watch_seconds = exp(logit), by score descending, ties by item id
 * (`compareIds`). With `debug`, each item also gets the encoded model inputs (the space's column
 * names) and the raw values of the base features (`raw_<name>`, where defined), computed again
 * by the same encoder.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { compareIds } from "@recsys/data";
import { RankingService, type RankedItemSchema } from "@recsys/gen";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  BASE_FEATURES,
  RANKER_FORMAT,
  encodeCandidates,
  encodedRow,
  knownItem,
  loadRanker,
  rawCandidates,
  type Ranker,
  type RankingCandidate,
  type RankingContext,
} from "@recsys/ranking";
import {
  ConfigError,
  implement,
  readManifestVersion,
  watchModel,
  type ModelWatcher,
  type ServiceRegistration,
  type ServiceSetup,
} from "@recsys/runtime";
import { initBackend } from "@recsys/tf";
import { Counter, Histogram } from "prom-client";
import { STAGE, type RankingConfig } from "./config.js";
import { rankInputs } from "./context.js";

/** Buckets of the scoring time per call, in seconds: 100 µs .. 2.5 s. */
const SCORING_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Buckets of the candidates per request (MAX_RANK_CANDIDATES = 2000). */
const CANDIDATE_BUCKETS = [1, 10, 25, 50, 100, 200, 300, 500, 1000, 2000];

type RankedItemInit = MessageInitShape<typeof RankedItemSchema>;

export interface RankingStage {
  readonly services: readonly ServiceRegistration[];
  readonly model: ModelWatcher<Ranker>;
  /** Stops watching the bundle and releases the rankers. */
  close(): Promise<void>;
}

/** The directory of the ranker inside a model bundle. */
export function rankerPath(modelPath: string, subdir: string): string {
  return join(modelPath, subdir);
}

/** Checks at startup that MODEL_PATH holds a ranker (ConfigError naming MODEL_PATH otherwise). */
async function requireRanker(config: RankingConfig): Promise<void> {
  const dir = rankerPath(config.MODEL_PATH, config.RANKER_SUBDIR);
  let text: string;
  try {
    text = await readFile(join(dir, "manifest.json"), "utf8");
  } catch {
    throw new ConfigError(
      "MODEL_PATH",
      `MODEL_PATH=${config.MODEL_PATH}: no ranker there (${dir}/manifest.json cannot be read; train one with \`recsys train-ranker\`, or set RANKER_SUBDIR)`,
    );
  }
  let format: unknown;
  try {
    format = (JSON.parse(text) as { format?: unknown }).format;
  } catch (error) {
    throw new ConfigError(
      "MODEL_PATH",
      `MODEL_PATH=${config.MODEL_PATH}: ${dir}/manifest.json is not valid JSON (${(error as Error).message})`,
    );
  }
  if (format !== RANKER_FORMAT) {
    throw new ConfigError(
      "MODEL_PATH",
      `MODEL_PATH=${config.MODEL_PATH}: ${dir}/manifest.json has format ${JSON.stringify(format)}, expected "${RANKER_FORMAT}"`,
    );
  }
}

/**
 * The debug feature map of each candidate: the encoded model inputs by column name and the raw
 * base features (`raw_<name>`, finite ones only), through the same encoder the scores came from.
 */
export function debugFeatures(
  ranker: Ranker,
  context: RankingContext,
  candidates: readonly RankingCandidate[],
  time: number,
): Record<string, number>[] {
  const space = ranker.space;
  const columns = space.columnNames();
  const batch = encodeCandidates(space, context, candidates, time);
  const raw = new Float64Array(candidates.length * space.rawWidth);
  rawCandidates(space, context, candidates, time, raw, 0);
  return candidates.map((_, k) => {
    const out: Record<string, number> = {};
    const row = encodedRow(batch, k).continuous;
    columns.forEach((name, c) => {
      out[name] = row[c]!;
    });
    BASE_FEATURES.forEach((name, j) => {
      const value = raw[k * space.rawWidth + j]!;
      if (Number.isFinite(value)) out[`raw_${name}`] = value;
    });
    return out;
  });
}

/**
 * Indices of the candidates by score descending, equal scores by item id ascending (`compareIds`:
 * numerically for canonical integer ids, else by code units); a NaN score sorts last.
 */
export function rankedOrder(scores: ArrayLike<number>, itemIds: readonly string[]): number[] {
  const key = (k: number): number => (Number.isNaN(scores[k]!) ? -Infinity : scores[k]!);
  const order = itemIds.map((_, k) => k);
  return order.sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka !== kb) return kb > ka ? 1 : -1;
    return compareIds(itemIds[a]!, itemIds[b]!);
  });
}

/** Loads the ranker (startup fails if it cannot) and builds the Rank handler. */
export async function createRankingService(setup: ServiceSetup<RankingConfig>): Promise<RankingStage> {
  const { config, logger, registry } = setup;
  await initBackend({
    ...(config.RECSYS_TF_BACKEND === undefined ? {} : { backend: config.RECSYS_TF_BACKEND }),
    log: ({ level: _level, msg, ...fields }) => logger.info(fields, String(msg)),
  });
  const scoringSeconds = new Histogram({
    name: `recsys_${STAGE}_scoring_seconds`,
    help: "Time to score one request's candidates (feature encoding and the ranking network), in seconds",
    buckets: SCORING_BUCKETS_SECONDS,
    registers: [registry],
  });
  const candidatesPerRequest = new Histogram({
    name: `recsys_${STAGE}_candidates`,
    help: "Candidates per Rank request (valid requests)",
    buckets: CANDIDATE_BUCKETS,
    registers: [registry],
  });
  const ignoredProvenance = new Counter({
    name: `recsys_${STAGE}_ignored_provenance_total`,
    help: "Provenance entries of sources the serving ranker was not trained with (ignored by its features)",
    registers: [registry],
  });
  const unknownItems = new Counter({
    name: `recsys_${STAGE}_unknown_items_total`,
    help: "Candidates whose item is not in the serving ranker's vocabulary (scored with the out-of-vocabulary embedding)",
    registers: [registry],
  });

  const subdir = config.RANKER_SUBDIR;
  // watchModel reports a missing MODEL_PATH itself; a MODEL_PATH without a ranker is checked here.
  if (existsSync(config.MODEL_PATH)) await requireRanker(config);
  const model = await watchModel<Ranker>({
    path: config.MODEL_PATH,
    load: (dir) => loadRanker(rankerPath(dir, subdir)),
    versionOf: (ranker) => ranker.manifest.modelVersion,
    // Keyed on the ranker's own version: retraining the ranker of an unchanged candidate-gen
    // bundle changes it, the bundle's manifest does not.
    probe: (path) => readManifestVersion(rankerPath(path, subdir)),
    pollMs: config.MODEL_POLL_INTERVAL,
    retireDelayMs: config.MODEL_RETIRE_DELAY,
    retryFailedMs: config.MODEL_RELOAD_RETRY,
    retire: (ranker) => ranker.dispose(),
    logger,
    stage: STAGE,
    registry,
  });
  const first = model.current();
  logger.info(
    {
      modelVersion: model.version(),
      sources: first.space.sources,
      items: first.space.catalog.ids.length,
      features: first.space.width,
      provenance: first.space.config.provenance,
    },
    "ranker ready",
  );

  const service = implement(RankingService, {
    async rank(request) {
      const ranker = model.current(); // once: a swap during this call does not affect it
      const space = ranker.space;
      const inputs = rankInputs(request, space.sources, Date.now() / 1000);
      const { context, candidates, time } = inputs;
      candidatesPerRequest.observe(candidates.length);
      if (inputs.ignoredProvenance > 0) ignoredProvenance.inc(inputs.ignoredProvenance);
      let unknown = 0;
      for (const c of candidates) if (!knownItem(space, c.itemId)) unknown++;
      if (unknown > 0) unknownItems.inc(unknown);

      const started = performance.now();
      const logits = ranker.score(context, candidates, time);
      scoringSeconds.observe((performance.now() - started) / 1000);
      const features = request.debug ? debugFeatures(ranker, context, candidates, time) : undefined;

      const order = rankedOrder(
        logits,
        candidates.map((c) => c.itemId),
      );
      const items: RankedItemInit[] = order.map((k) => ({
        itemId: candidates[k]!.itemId,
        score: logits[k]!,
        expectedWatchSeconds: Math.exp(logits[k]!),
        ...(features === undefined ? {} : { features: features[k]! }),
      }));
      return { items, version: { component: STAGE, modelVersion: ranker.manifest.modelVersion } };
    },
  });
  return { services: [service], model, close: () => model.close() };
}
