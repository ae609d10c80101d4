/**
 * Retrain → gate → publish (`recsys retrain`, the CronJob of k8s/base/retrain):
 *
 * 1. Load the dataset (usually `store:`, the system's own log) and hold out its latest events:
 *    the cut-off is the time after which the last `holdoutFraction` of the watches made since the
 *    serving bundle's training window (its `features.windowEnd`) fall, so that neither model
 *    trained on a held-out watch. No watch since: refused, nothing new.
 * 2. Train both models on what came before the cut-off (`datasetBefore`): the candidate generator
 *    (every event, holdout none) and the ranker behind it, from the served log when the dataset
 *    has one (watch window `watchWindowSeconds`), else by replaying the sources.
 * 3. Evaluate the candidate and the serving bundle (the one `current` points at) on the same
 *    held-out events: for each user with a watch after the cut-off, the first one of an item not
 *    watched before, ranked among every catalogue item minus the user's history before the
 *    cut-off. Printed: HR@10 and watch-time DCG@10 (Σ watch seconds × [rank < 10] / log2(rank + 2)
 *    over Σ watch seconds, a watch without seconds counting 1).
 * 4. Gate: refuse when the candidate is worse than the serving bundle by more than `margin`
 *    (relative) on either figure, printing both, or when its ranker's AUC on the held-out served
 *    answers is below the serving ranker's by more than `rankerMargin` (ranker-gate.ts). With no serving bundle there is nothing to
 *    compare with and the candidate is published.
 * 5. Publish: give the bundle a session model when the serving bundle has one (retrain-session.ts:
 *    trained on the same window, or the serving one carried forward), build every retrieval
 *    shard's index into the bundle (`indexes/shard-<i>-of-<n>/`,
 *    with the shards' INDEX_KIND and HNSW parameters), move it to `<dirname(current)>/<version>`,
 *    point `<dirname(current)>/next` at it and wait `preloadSeconds` (the retrieval shards preload
 *    its index and already answer user vectors of the new version, so there is no moment when
 *    candidate generation is ahead of a shard), then flip the `current` symlink atomically (a
 *    rename over it); every stage's hot reload
 *    (MODEL_POLL_INTERVAL) picks it up, and the retrieval shards copy their prebuilt index instead
 *    of building. A `current` that is a plain directory (what `recsys start` writes) is first
 *    moved to `<dirname(current)>/<its version>` and replaced by a symlink to it.
 * Every run ends by writing `<dirname(current)>/retrain-status.json` (the retrieval shards export
 * it as the recsys_retrieval_retrain_* gauges), whatever the outcome.
 */
import { existsSync } from "node:fs";
import { lstat, mkdir, readFile, realpath, rename, rm, symlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import {
  createDatasetScorer,
  HISTORY_POOLINGS,
  loadBundle,
  saveBundle,
  trainCandidateGen,
  type CandidateGenBundle,
  type HistoryPooling,
} from "@recsys/candidate-gen";
import { datasetBefore, parseStoreSpec, type Dataset } from "@recsys/data";
import { DEFAULT_WATCH_WINDOW_SECONDS, loadRanker, type Ranker, saveRanker, trainRanker } from "@recsys/ranking";
import {
  prebuildShardIndexes,
  readRetrainStatus,
  retrainStatusPath,
  writeRetrainStatus,
  type RetrainOutcome,
} from "@recsys/retrieval-service";
import { initBackend } from "@recsys/tf";
import { createPipelineSources } from "./pipeline-setup.js";
import { formatRankerFigures, heldOutServedAnswers, type RankerGateFigures, rankerFigures, rankerGateRefusal } from "./ranker-gate.js";
import { type SessionMode, sessionModelForCandidate } from "./retrain-session.js";
import { readStoreModelTimeOffset } from "./store-opener.js";
import { formatDuration } from "./train-progress.js";

export interface RetrainOptions {
  /** The dataset, loaded (e.g. `store:DIR`). */
  readonly dataset: Dataset;
  /**
   * The spec it was loaded from, credentials included, to reopen its store (the dataset's own
   * `spec` has a Redis password redacted); default `dataset.spec`.
   */
  readonly datasetSpec?: string;
  /** The symlink (or directory) every stage's MODEL_PATH names. */
  readonly current: string;
  /**
   * Fraction of the watches made after the serving bundle's training window (all watches without
   * a serving bundle) held out for the gate, the latest ones (default 0.2).
   */
  readonly holdoutFraction?: number;
  /** Largest relative loss on HR@10 or watch-time DCG@10 that still publishes (default 0.05). */
  readonly margin?: number;
  /** Candidate-generation epochs; 0 trains one batch only (a deliberately broken candidate). */
  readonly epochs?: number;
  /** Ranker epochs; 0 leaves it untrained (a deliberately broken ranker). */
  readonly rankerEpochs?: number;
  /** Largest relative loss of the ranker's held-out AUC that still publishes (default: `margin`). */
  readonly rankerMargin?: number;
  readonly seed?: number;
  readonly watchWindowSeconds?: number;
  /** The retrieval deployment the indexes are built for. */
  readonly shards?: number;
  readonly indexKind?: "hnsw" | "brute-force";
  readonly hnswM?: number;
  readonly hnswEfConstruction?: number;
  /** Users evaluated at most (a seeded sample beyond it; default 20,000). */
  readonly maxEvalUsers?: number;
  /**
   * Seconds between pointing `<dirname(current)>/next` at the new bundle (the retrieval shards
   * preload its index) and flipping `current` (default 60: two of the stages' default 30 s polls).
   */
  readonly preloadSeconds?: number;
  /** Train and gate, never publish. */
  readonly dryRun?: boolean;
  /**
   * The published bundle's session model when the serving bundle has one (retrain-session.ts):
   * trained on the training window (default) or the serving one carried forward.
   */
  readonly session?: SessionMode;
  /** Epochs of a trained session model (default: as many as the serving one was trained for). */
  readonly sessionEpochs?: number;
  readonly log: (message: string) => void;
}

export interface GateFigures {
  readonly users: number;
  readonly hr10: number;
  readonly wdcg10: number;
}

export interface RetrainResult {
  readonly outcome: RetrainOutcome | "dry-run";
  readonly message: string;
  readonly cutoff: number;
  readonly candidateVersion?: string;
  readonly servingVersion?: string;
  readonly candidate?: GateFigures;
  readonly serving?: GateFigures;
  /** The rankers' figures on the held-out served answers (absent: not gated, see gateRankers). */
  readonly rankerCandidate?: RankerGateFigures;
  readonly rankerServing?: RankerGateFigures;
  readonly publishedDir?: string;
  /** What the published bundle's session model is (absent: the serving bundle had none). */
  readonly session?: string;
  readonly seconds: number;
}

export const RETRAIN_DEFAULTS = {
  holdoutFraction: 0.2,
  margin: 0.05,
  epochs: 5,
  rankerEpochs: 2,
  seed: 1,
  shards: 1,
  maxEvalUsers: 20_000,
  pipeline: { budget: 50, mergedSize: 150 },
  rankerMaxExamplesPerUser: 20,
  preloadSeconds: 60,
} as const;

/**
 * The gate's cut-off: the time after which the last `fraction` of the watches made after
 * `after` fall (`after`: the end of the serving bundle's training window, so that the held-out
 * watches are new to both models; -Infinity without a serving bundle). Undefined when no watch
 * came after `after`.
 */
export function holdoutCutoff(dataset: Dataset, fraction: number, after = -Infinity): number | undefined {
  if (!(fraction > 0 && fraction < 1)) throw new Error(`holdout fraction must be in (0, 1), got ${fraction}`);
  const all = Float64Array.from(dataset.events.timestamp).sort();
  const first = all.findIndex((t) => t > after);
  if (first < 0) return undefined;
  const times = all.subarray(first);
  const cutoff = times[Math.min(times.length - 1, Math.floor(times.length * (1 - fraction)))]!;
  if (!(cutoff > all[0]!))
    throw new Error(`dataset ${dataset.spec}: every held-out watch has the first timestamp; nothing to train on before it`);
  return cutoff;
}

/** Held-out targets: per user, the first watch at/after `cutoff` of an item not watched before it. */
export interface HeldOut {
  readonly users: Int32Array;
  readonly targetRows: Int32Array;
  /** Each user's deduplicated rows before the cut-off (chronological). */
  readonly history: readonly Int32Array[];
}

export function heldOutTargets(dataset: Dataset, cutoff: number, maxUsers: number, seed: number): HeldOut {
  const ev = dataset.events;
  const users: number[] = [];
  const targets: number[] = [];
  const history: Int32Array[] = [];
  const seen = new Set<number>();
  for (let u = 0; u < dataset.users.ids.length; u++) {
    seen.clear();
    const rows: number[] = [];
    let target = -1;
    for (let r = ev.userOffsets[u]!; r < ev.userOffsets[u + 1]!; r++) {
      const item = ev.item[r]!;
      if (ev.timestamp[r]! < cutoff) {
        if (!seen.has(item)) rows.push(r);
        seen.add(item);
      } else if (!seen.has(item)) {
        target = r;
        break;
      }
    }
    if (target < 0 || rows.length === 0) continue;
    users.push(u);
    targets.push(target);
    history.push(Int32Array.from(rows));
  }
  if (users.length <= maxUsers) return { users: Int32Array.from(users), targetRows: Int32Array.from(targets), history };
  // A seeded sample of maxUsers (a partial Fisher–Yates), kept in user order.
  const order = Array.from(users.keys());
  let state = seed >>> 0 || 1;
  for (let i = 0; i < maxUsers; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const j = i + (state % (order.length - i));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const pick = order.slice(0, maxUsers).sort((a, b) => a - b);
  return {
    users: Int32Array.from(pick, (k) => users[k]!),
    targetRows: Int32Array.from(pick, (k) => targets[k]!),
    history: pick.map((k) => history[k]!),
  };
}

/** Per held-out user: hit (rank < 10), watch-time DCG contribution (w / log2(rank + 2) or 0), weight w. */
export interface PerUserGate {
  readonly hit: Float64Array;
  readonly dcg: Float64Array;
  readonly weight: Float64Array;
}

/** A bundle's per-user figures on the held-out targets (full ranking, history removed, ties by item index). */
export function perUserGate(bundle: CandidateGenBundle, dataset: Dataset, heldOut: HeldOut): PerUserGate {
  const scorer = createDatasetScorer(bundle, dataset);
  const numItems = dataset.items.ids.length;
  const scores = new Float32Array(numItems);
  const excluded = new Int32Array(numItems).fill(-1);
  const n = heldOut.users.length;
  const out = { hit: new Float64Array(n), dcg: new Float64Array(n), weight: new Float64Array(n) };
  for (let k = 0; k < n; k++) {
    const u = heldOut.users[k]!;
    const row = heldOut.targetRows[k]!;
    const rows = heldOut.history[k]!;
    scorer.score(u, rows, dataset.events.timestamp[row]!, scores);
    for (const r of rows) excluded[dataset.events.item[r]!] = k;
    const target = dataset.events.item[row]!;
    const t = scores[target]!;
    let rank = 0;
    for (let i = 0; i < numItems && rank < 10; i++) {
      if (excluded[i] === k || i === target) continue;
      const s = scores[i]!;
      if (s > t || (s === t && i < target)) rank++;
    }
    const w0 = dataset.events.weight[row]!;
    const w = Number.isFinite(w0) && w0 > 0 ? w0 : 1;
    out.weight[k] = w;
    if (rank < 10) {
      out.hit[k] = 1;
      out.dcg[k] = w / Math.log2(rank + 2);
    }
  }
  return out;
}

/** HR@10 and watch-time DCG@10 of a bundle on the held-out targets (full ranking, history removed). */
export function gateFigures(bundle: CandidateGenBundle, dataset: Dataset, heldOut: HeldOut): GateFigures {
  const p = perUserGate(bundle, dataset, heldOut);
  const n = heldOut.users.length;
  let hits = 0;
  let dcg = 0;
  let weights = 0;
  for (let k = 0; k < n; k++) {
    hits += p.hit[k]!;
    dcg += p.dcg[k]!;
    weights += p.weight[k]!;
  }
  return { users: n, hr10: n > 0 ? hits / n : NaN, wdcg10: weights > 0 ? dcg / weights : NaN };
}

/** Why `candidate` may not replace `serving` (undefined: it may). */
export function gateRefusal(candidate: GateFigures, serving: GateFigures, margin: number): string | undefined {
  const worse: string[] = [];
  if (!(candidate.hr10 >= serving.hr10 * (1 - margin))) worse.push(`HR@10 ${fmt(candidate.hr10)} < ${fmt(serving.hr10)} × (1 − ${margin})`);
  if (!(candidate.wdcg10 >= serving.wdcg10 * (1 - margin)))
    worse.push(`watch-time DCG@10 ${fmt(candidate.wdcg10)} < ${fmt(serving.wdcg10)} × (1 − ${margin})`);
  return worse.length === 0 ? undefined : `the candidate is worse than the serving bundle by more than the margin: ${worse.join("; ")}`;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(4) : String(x);
}

export function formatFigures(name: string, version: string, f: GateFigures): string {
  return `${name.padEnd(9)} ${version.padEnd(32)} HR@10 ${fmt(f.hr10)}  watch-time DCG@10 ${fmt(f.wdcg10)}  (${f.users} held-out users)`;
}

/** The fields of a bundle's manifest.json that retrain reads; undefined when it is missing or unreadable. */
async function readManifest(dir: string): Promise<
  | {
      readonly modelVersion?: unknown;
      readonly datasetFingerprint?: unknown;
      readonly features?: { readonly windowEnd?: unknown };
      readonly model?: { readonly historyPooling?: unknown };
    }
  | undefined
> {
  try {
    return JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
  } catch {
    return undefined;
  }
}

async function readVersion(dir: string): Promise<string | undefined> {
  const version = (await readManifest(dir))?.modelVersion;
  return typeof version === "string" ? version : undefined;
}

/**
 * The serving bundle's training window end on the store's time line: a bundle trained on a
 * historical dataset that bootstrapped a store under the wall clock has its history stored
 * shifted by the orchestrator's model time offset, recorded per bundle dataset fingerprint
 * (`model-time.json` beside an embedded store, the user store's metadata on Redis); a bundle
 * trained on the live log has none. Other datasets than `store:` are on the bundle's own time line.
 */
export async function storeTimeWindowEnd(servingDir: string, datasetSpec: string): Promise<number | undefined> {
  const manifest = await readManifest(servingDir);
  const end = manifest?.features?.windowEnd;
  if (typeof end !== "number" || !Number.isFinite(end)) return undefined;
  const fingerprint = manifest?.datasetFingerprint;
  if (!datasetSpec.startsWith("store:") || typeof fingerprint !== "string") return end;
  const { location } = parseStoreSpec(datasetSpec.slice("store:".length));
  const offset = await readStoreModelTimeOffset(location, fingerprint);
  return offset === undefined ? end : end + offset;
}

/**
 * The serving bundle's history pooling, which the candidate keeps (a retrain changes the data, not
 * the architecture); a bundle written before the option pooled with the mean.
 */
async function readHistoryPooling(dir: string | undefined): Promise<HistoryPooling | undefined> {
  const manifest = dir === undefined ? undefined : await readManifest(dir);
  if (manifest === undefined) return undefined;
  const pooling = manifest.model?.historyPooling ?? "mean";
  return HISTORY_POOLINGS.includes(pooling as HistoryPooling) ? (pooling as HistoryPooling) : undefined;
}

/** Points the symlink `link` at `target` atomically (a new link renamed over the old one). */
export async function flipSymlink(link: string, target: string): Promise<void> {
  const tmp = join(dirname(link), `.${basename(link)}.flip-${process.pid}-${Date.now().toString(36)}`);
  await symlink(target, tmp);
  try {
    await rename(tmp, link);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
}

/**
 * Makes `current` a symlink: a plain directory there (what `recsys start` writes) moves to
 * `<dirname>/<its version>` and a symlink to it takes its place (a stage polling in between sees
 * no bundle for a moment, logs it and keeps serving).
 */
async function ensureSymlink(current: string, log: (m: string) => void): Promise<void> {
  const info = await lstat(current).catch(() => undefined);
  if (info === undefined || info.isSymbolicLink()) return;
  if (!info.isDirectory()) throw new Error(`${current} is neither a directory nor a symlink`);
  const version = await readVersion(current);
  if (version === undefined) throw new Error(`${current} holds no bundle manifest.json`);
  const target = join(dirname(current), version);
  if (existsSync(target)) throw new Error(`cannot turn ${current} into a symlink: ${target} exists`);
  await rename(current, target);
  await symlink(version, current);
  log(`moved the serving bundle ${current} to ${target}; ${current} is now a symlink to it`);
}

/** Records a run that failed before `retrain` could start (e.g. the store could not be read). */
export async function recordRetrainFailure(current: string, message: string): Promise<void> {
  const statusFile = retrainStatusPath(current);
  const previous = await readRetrainStatus(statusFile).catch(() => undefined);
  await mkdir(dirname(statusFile), { recursive: true });
  await writeRetrainStatus(statusFile, {
    outcome: "failed",
    finishedAt: new Date().toISOString(),
    message,
    ...(previous?.currentVersion === undefined ? {} : { currentVersion: previous.currentVersion }),
    ...(previous?.publishedAt === undefined ? {} : { publishedAt: previous.publishedAt }),
  });
}

/**
 * Both rankers' figures on the held-out served answers (ranker-gate.ts), logged; undefined, with
 * the reason logged, when there is nothing to compare: no serving ranker, or no held-out answer
 * with a watched and an unwatched shown item.
 */
async function gateRankers(options: {
  readonly dataset: Dataset;
  readonly cutoff: number;
  readonly window: number;
  readonly stagingDir: string;
  readonly servingDir: string | undefined;
  readonly candidateVersion: string;
  readonly servingVersion: string;
  readonly log: (message: string) => void;
}): Promise<{ candidate: RankerGateFigures; serving: RankerGateFigures } | undefined> {
  const { dataset, log } = options;
  if (options.servingDir === undefined || !existsSync(join(options.servingDir, "ranker", "manifest.json"))) {
    log("ranker not gated: the serving bundle has no ranker");
    return undefined;
  }
  const examples = heldOutServedAnswers(dataset, options.cutoff, {
    windowSeconds: options.window,
    maxAnswersPerUser: RETRAIN_DEFAULTS.rankerMaxExamplesPerUser,
    mergedSize: RETRAIN_DEFAULTS.pipeline.mergedSize,
  });
  const nothingToCompare = (): undefined => {
    log(
      `ranker not gated: no served answer at or after the cut-off whose ${options.window} s watch window closed with a watched and an unwatched shown item`,
    );
    return undefined;
  };
  if (examples === undefined) return nothingToCompare();
  const loaded: Ranker[] = [];
  try {
    const candidate = await loadRanker(join(options.stagingDir, "ranker"));
    loaded.push(candidate);
    const serving = await loadRanker(join(options.servingDir, "ranker"));
    loaded.push(serving);
    const figures = { candidate: rankerFigures(candidate, dataset, examples), serving: rankerFigures(serving, dataset, examples) };
    if (figures.candidate.pairs === 0) return nothingToCompare();
    log(formatRankerFigures("candidate", options.candidateVersion, figures.candidate));
    log(formatRankerFigures("serving", options.servingVersion, figures.serving));
    return figures;
  } finally {
    for (const r of loaded) r.dispose();
  }
}

/** Runs retrain → gate → publish (see the module comment); writes the status file whatever happens. */
export async function retrain(options: RetrainOptions): Promise<RetrainResult> {
  const started = performance.now();
  const { current } = options;
  const statusFile = retrainStatusPath(current);
  const previous = await readRetrainStatus(statusFile).catch(() => undefined);
  const servingDir = existsSync(join(current, "manifest.json")) ? await realpath(current) : undefined;
  const servingVersion = servingDir === undefined ? undefined : await readVersion(servingDir);
  let result: RetrainResult;
  try {
    result = await run(options, servingDir, servingVersion, started);
  } catch (error) {
    const message = (error as Error).message;
    await mkdir(dirname(statusFile), { recursive: true });
    await writeRetrainStatus(statusFile, {
      outcome: "failed",
      finishedAt: new Date().toISOString(),
      message,
      ...(servingVersion === undefined ? {} : { servingVersion, currentVersion: servingVersion }),
      ...(previous?.publishedAt === undefined ? {} : { publishedAt: previous.publishedAt }),
    });
    throw error;
  }
  if (result.outcome !== "dry-run") {
    const published = result.outcome === "published";
    await writeRetrainStatus(statusFile, {
      outcome: result.outcome,
      finishedAt: new Date().toISOString(),
      message: result.message,
      ...(result.candidateVersion === undefined ? {} : { candidateVersion: result.candidateVersion }),
      ...(servingVersion === undefined ? {} : { servingVersion }),
      ...((published ? result.candidateVersion : servingVersion) === undefined
        ? {}
        : { currentVersion: (published ? result.candidateVersion : servingVersion)! }),
      ...(published
        ? { publishedAt: new Date().toISOString() }
        : previous?.publishedAt === undefined
          ? {}
          : { publishedAt: previous.publishedAt }),
      metrics: {
        cutoff: result.cutoff,
        candidate: result.candidate,
        serving: result.serving,
        margin: options.margin ?? RETRAIN_DEFAULTS.margin,
        ...(result.rankerCandidate === undefined
          ? {}
          : {
              rankerCandidate: result.rankerCandidate,
              rankerServing: result.rankerServing,
              rankerMargin: options.rankerMargin ?? options.margin ?? RETRAIN_DEFAULTS.margin,
            }),
      },
    });
  }
  return result;
}

async function run(
  options: RetrainOptions,
  servingDir: string | undefined,
  servingVersion: string | undefined,
  started: number,
): Promise<RetrainResult> {
  const { dataset, current, log } = options;
  const margin = options.margin ?? RETRAIN_DEFAULTS.margin;
  const epochs = options.epochs ?? RETRAIN_DEFAULTS.epochs;
  const rankerEpochs = options.rankerEpochs ?? RETRAIN_DEFAULTS.rankerEpochs;
  const rankerMargin = options.rankerMargin ?? margin;
  const seed = options.seed ?? RETRAIN_DEFAULTS.seed;
  const window = options.watchWindowSeconds ?? DEFAULT_WATCH_WINDOW_SECONDS;
  if (!(margin >= 0 && margin < 1)) throw new Error(`margin must be in [0, 1), got ${margin}`);
  if (!Number.isInteger(epochs) || epochs < 0) throw new Error(`epochs must be an integer >= 0, got ${epochs}`);
  if (!Number.isInteger(rankerEpochs) || rankerEpochs < 0) throw new Error(`ranker epochs must be an integer >= 0, got ${rankerEpochs}`);
  if (!(rankerMargin >= 0 && rankerMargin < 1)) throw new Error(`ranker margin must be in [0, 1), got ${rankerMargin}`);

  // The serving bundle trained on events up to its window end: the gate holds out only later ones.
  const servingWindowEnd =
    servingDir === undefined ? undefined : await storeTimeWindowEnd(servingDir, options.datasetSpec ?? options.dataset.spec);
  const cutoff = holdoutCutoff(dataset, options.holdoutFraction ?? RETRAIN_DEFAULTS.holdoutFraction, servingWindowEnd ?? -Infinity);
  if (cutoff === undefined) {
    return {
      outcome: "refused",
      message: `no watch after the serving bundle's training window (${new Date(servingWindowEnd! * 1000).toISOString()}): nothing new to train on or to gate with; ${servingVersion} keeps serving`,
      cutoff: NaN,
      ...(servingVersion === undefined ? {} : { servingVersion }),
      seconds: (performance.now() - started) / 1000,
    };
  }
  const train = datasetBefore(dataset, cutoff);
  log(
    `held out the watches from ${new Date(cutoff * 1000).toISOString()} on (${dataset.events.user.length - train.events.user.length} of ${dataset.events.user.length}` +
      `${servingWindowEnd === undefined ? "" : `; the latest ${((options.holdoutFraction ?? RETRAIN_DEFAULTS.holdoutFraction) * 100).toFixed(0)} % of those after the serving bundle's training window, ${new Date(servingWindowEnd * 1000).toISOString()}`}); training on the ${train.events.user.length} before`,
  );

  await initBackend();
  const root = dirname(current);
  await mkdir(root, { recursive: true });
  const staging = join(root, `.retrain-${process.pid}-${Date.now().toString(36)}`);
  let candidate: CandidateGenBundle | undefined;
  let serving: CandidateGenBundle | undefined;
  try {
    const t0 = performance.now();
    const historyPooling = await readHistoryPooling(servingDir);
    const cg = await trainCandidateGen(train, {
      holdout: "none",
      epochs: Math.max(1, epochs),
      seed,
      ...(historyPooling === undefined ? {} : { model: { historyPooling } }),
      ...(epochs === 0 ? { maxSteps: 1 } : {}),
    });
    let candidateVersion: string;
    try {
      candidateVersion = (await saveBundle(staging, cg)).modelVersion;
    } finally {
      cg.model.dispose();
    }
    log(
      `candidate generator ${candidateVersion}: ${epochs === 0 ? "one batch (--epochs 0)" : `${epochs} epochs`} in ${formatDuration((performance.now() - t0) / 1000)}`,
    );
    candidate = await loadBundle(staging);

    const t1 = performance.now();
    const rows = Int32Array.from({ length: train.events.user.length }, (_, r) => r);
    // From the served log when some answer's watch window closed before the cut-off.
    const servedComplete = train.served === undefined ? 0 : train.served.timestamp.filter((t) => t + window <= cutoff).length;
    const fromServed = servedComplete > 0;
    if (!fromServed && (train.served?.requestId.length ?? 0) > 0) {
      log(`no served answer's ${window} s watch window closed before the cut-off: the ranker learns by replaying the sources`);
    }
    const pipeline = RETRAIN_DEFAULTS.pipeline;
    const ranker = await trainRanker(train, {
      rows,
      sources: createPipelineSources(train, candidate, pipeline),
      budget: pipeline.budget,
      // Watches are known up to the cut-off: answers whose window reaches past it are left out.
      ...(fromServed ? { served: { windowSeconds: window, labelsUntil: cutoff } } : {}),
      train: {
        epochs: Math.max(1, rankerEpochs),
        seed,
        maxExamplesPerUser: RETRAIN_DEFAULTS.rankerMaxExamplesPerUser,
      },
      ...(rankerEpochs === 0 ? { maxSteps: 0 } : {}),
    });
    try {
      await saveRanker(join(staging, "ranker"), ranker, {
        datasetSpec: train.spec,
        datasetFingerprint: train.fingerprint,
        holdout: "none",
        candidateGenVersion: candidateVersion,
        pipeline,
      });
    } finally {
      ranker.model.dispose();
    }
    log(
      `ranker: ${rankerEpochs === 0 ? "untrained (--ranker-epochs 0), " : ""}${ranker.stats.examples} examples ${fromServed ? `from ${train.served!.requestId.length} served answers (watch window ${window} s)` : "by replaying the sources (no served log)"} in ${formatDuration((performance.now() - t1) / 1000)}`,
    );

    const heldOut = heldOutTargets(dataset, cutoff, options.maxEvalUsers ?? RETRAIN_DEFAULTS.maxEvalUsers, seed);
    if (heldOut.users.length === 0)
      throw new Error(`no user has a held-out watch of a new item after ${new Date(cutoff * 1000).toISOString()}: nothing to gate on`);
    const candidateFigures = gateFigures(candidate, dataset, heldOut);
    log(formatFigures("candidate", candidateVersion, candidateFigures));
    let servingFigures: GateFigures | undefined;
    if (servingDir !== undefined) {
      serving = await loadBundle(servingDir);
      servingFigures = gateFigures(serving, dataset, heldOut);
      log(formatFigures("serving", servingVersion ?? "?", servingFigures));
    } else log(`no serving bundle at ${current}: nothing to compare with`);
    const rankers = await gateRankers({
      dataset,
      cutoff,
      window,
      stagingDir: staging,
      servingDir,
      candidateVersion,
      servingVersion: servingVersion ?? "?",
      log,
    });
    const base = {
      cutoff,
      candidateVersion,
      candidate: candidateFigures,
      ...(servingVersion === undefined ? {} : { servingVersion }),
      ...(servingFigures === undefined ? {} : { serving: servingFigures }),
      ...(rankers === undefined ? {} : { rankerCandidate: rankers.candidate, rankerServing: rankers.serving }),
    };
    const refusals = [
      servingFigures === undefined ? undefined : gateRefusal(candidateFigures, servingFigures, margin),
      rankers === undefined ? undefined : rankerGateRefusal(rankers.candidate, rankers.serving, rankerMargin),
    ].filter((r): r is string => r !== undefined);
    const refusal = refusals.length === 0 ? undefined : refusals.join("; ");
    if (refusal !== undefined) {
      return {
        ...base,
        outcome: "refused",
        message: `${refusal}; ${servingVersion} keeps serving`,
        seconds: (performance.now() - started) / 1000,
      };
    }
    if (options.dryRun === true)
      return {
        ...base,
        outcome: "dry-run",
        message: `the gate passes (margin ${margin}, ranker margin ${rankerMargin}); --dry-run: not published`,
        seconds: (performance.now() - started) / 1000,
      };

    const session = await sessionModelForCandidate({
      servingDir,
      stagingDir: staging,
      train,
      candidateVersion,
      mode: options.session ?? "train",
      ...(options.sessionEpochs === undefined ? {} : { epochs: options.sessionEpochs }),
      seed,
      log,
    });
    if (session !== undefined) log(session);
    else if (servingDir !== undefined) log("session model: none (the serving bundle has none)");

    const shards = options.shards ?? RETRAIN_DEFAULTS.shards;
    const t2 = performance.now();
    await prebuildShardIndexes(
      staging,
      { modelVersion: candidateVersion, itemIds: candidate.itemIds, itemEmbeddings: candidate.itemEmbeddings, dim: candidate.dim },
      {
        shardCount: shards,
        ...(options.indexKind === undefined ? {} : { kind: options.indexKind }),
        ...(options.hnswM === undefined ? {} : { M: options.hnswM }),
        ...(options.hnswEfConstruction === undefined ? {} : { efConstruction: options.hnswEfConstruction }),
        parallel: 2,
        onShard: (shard, items, seconds) => log(`index of shard ${shard + 1}/${shards}: ${items} items in ${formatDuration(seconds)}`),
      },
    );
    log(`prebuilt ${shards} shard index${shards === 1 ? "" : "es"} in ${formatDuration((performance.now() - t2) / 1000)}`);
    candidate.dispose();
    candidate = undefined;
    const target = join(root, candidateVersion);
    if (existsSync(target)) throw new Error(`${target} exists already`);
    await rename(staging, target);
    await ensureSymlink(current, log);
    // Phase 1: `next` names the new bundle; the shards preload its index and answer its user
    // vectors before their own swap (retrieval-service version-window.ts). Phase 2: the flip.
    const preload = options.preloadSeconds ?? RETRAIN_DEFAULTS.preloadSeconds;
    await flipSymlink(join(root, "next"), candidateVersion);
    if (preload > 0) {
      log(`${join(root, "next")} -> ${candidateVersion}: waiting ${preload} s for the retrieval shards to preload its index`);
      await new Promise((resolve) => setTimeout(resolve, preload * 1000));
    }
    await flipSymlink(current, candidateVersion);
    return {
      ...base,
      outcome: "published",
      message: `published ${candidateVersion} (${current} -> ${target})${servingVersion === undefined ? "" : `, replacing ${servingVersion}`}${session === undefined ? "" : `; ${session}`}`,
      publishedDir: target,
      ...(session === undefined ? {} : { session }),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    candidate?.dispose();
    serving?.dispose();
    await rm(staging, { recursive: true, force: true });
  }
}
