/**
 * The model bundle: one directory with everything a service needs to compute user vectors and
 * score items, without the training data.
 *
 *   manifest.json            format, modelVersion, dataset spec + fingerprint, holdout, feature
 *                            space (vocabularies, normalisers), model and train configs, training
 *                            stats, item ids in row order, and the list of binary files below.
 *   item_embeddings.f32      output item embeddings: itemIds.length × dim, row i = itemIds[i]
 *                            (trainConfig.output "hierarchical": the serving vectors w_c(j) + v_j,
 *                            cluster vector plus within-cluster vector; see hierarchical-softmax.ts)
 *   watch_embeddings.f32     input watch embeddings: items vocabulary size × dim (row 0 = OOV,
 *                            row k = vocabulary id k, i.e. itemIds[k-1])
 *   search_embeddings.f32    search-token embeddings: token vocabulary size × searchDim
 *   gender_embeddings.f32, occupation_embeddings.f32, geo_embeddings.f32
 *                            categorical embeddings: vocabulary size × categoricalDim
 *   tower.f32                dense layers in order, each W (inDim × outDim, row-major) then b
 *   attention.f32            (model.historyPooling "attention" only) the query (dim floats), then
 *                            the recency bias (historyLength floats, most recent watch first)
 *   cluster_embeddings.f32   (trainConfig.output "hierarchical" only) the cluster vectors w_c:
 *                            clusters × dim
 *   item_clusters.i32        (the same) the cluster of each item: itemIds.length little-endian
 *                            int32, row i = itemIds[i]. Not read by serving (item_embeddings.f32
 *                            already holds the serving vectors); it keeps the tree of the model.
 *
 * Every .f32 file is a raw little-endian IEEE-754 float32 matrix, row-major, no header; its
 * shape is in manifest.files. The manifest is written last, so a directory with a manifest is
 * complete.
 */
import { createHash } from "node:crypto";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { endianness } from "node:os";
import { join } from "node:path";
import { Float32FileSizeError, readFloat32File, readJsonFile, type Dataset, type Holdout, type UserScorer } from "@recsys/data";
import {
  CATEGORICAL_FEATURES,
  contextFromDataset,
  EncodedBatch,
  encodeUser,
  FeatureSpace,
  type FeatureSpaceJson,
  type UserContext,
} from "@recsys/features";
import { initBackend } from "@recsys/tf";
import { DEFAULT_MODEL_CONFIG, type ModelConfig, type TrainConfig, validateModelConfig } from "./config.js";
import { CandidateGenModel, type ModelWeights } from "./model.js";
import type { TrainResult } from "./trainer.js";

export const BUNDLE_FORMAT = "recsys-candidate-gen/1";

export interface BundleFile {
  readonly file: string;
  readonly rows: number;
  readonly cols: number;
}

export interface BundleManifest {
  readonly format: typeof BUNDLE_FORMAT;
  /** `cg-<UTC yyyymmddHHMMSS>-<first 8 hex of the SHA-256 of the weights and config>`. */
  readonly modelVersion: string;
  readonly createdAt: string;
  readonly datasetSpec: string;
  readonly datasetFingerprint: string;
  /** Which lastout events training left out: "test" (evaluate on test), "val" (tuning), "none" (production). */
  readonly holdout: Holdout;
  readonly dim: number;
  readonly features: FeatureSpaceJson;
  readonly model: ModelConfig;
  readonly trainConfig: TrainConfig;
  readonly train: {
    readonly examplesPerSecond: number;
    readonly seconds: number;
    readonly epochs: number;
    readonly finalLoss: number;
    readonly steps: number;
    readonly examples: number;
    readonly backend: string;
    readonly threads: number;
  };
  /** External item ids in the row order of item_embeddings.f32. */
  readonly itemIds: readonly string[];
  readonly files: {
    readonly itemEmbeddings: BundleFile;
    readonly watchEmbeddings: BundleFile;
    readonly searchEmbeddings: BundleFile;
    readonly categorical: readonly BundleFile[];
    readonly tower: readonly { readonly file: string; readonly inDim: number; readonly outDim: number }[];
    /** Present iff model.historyPooling is "attention". */
    readonly attention?: { readonly file: string; readonly queryDim: number; readonly recencyLength: number };
    /** Present iff trainConfig.output is "hierarchical". */
    readonly hierarchy?: {
      readonly clusterEmbeddings: BundleFile;
      readonly itemClusters: { readonly file: string; readonly rows: number };
    };
  };
}

/** What the candidate-generation stage serves: the user side of a bundle (see {@link loadUserTower}). */
export interface UserTower {
  readonly manifest: BundleManifest;
  readonly dim: number;
  readonly space: FeatureSpace;
  /**
   * The user vector for a context, through @recsys/features encodeUser. Example age 0 (serving)
   * unless `exampleTime` is given.
   */
  userVector(ctx: UserContext, exampleTime?: number): Float32Array;
  /** Batched {@link userVector}. */
  userVectors(ctxs: readonly UserContext[], exampleTime?: number): Float32Array[];
  /** Releases the tfjs tensors. */
  dispose(): void;
}

export interface CandidateGenBundle extends UserTower {
  /** Row order of itemEmbeddings. */
  readonly itemIds: readonly string[];
  /** itemIds.length × dim, row-major. */
  readonly itemEmbeddings: Float32Array;
}

class Bundle implements CandidateGenBundle {
  readonly dim: number;
  readonly itemIds: readonly string[];
  readonly itemEmbeddings: Float32Array;
  readonly space: FeatureSpace;
  private scratch: EncodedBatch | undefined;

  constructor(
    readonly manifest: BundleManifest,
    readonly model: CandidateGenModel,
    itemEmbeddings: Float32Array,
  ) {
    this.dim = manifest.dim;
    this.itemIds = manifest.itemIds;
    this.itemEmbeddings = itemEmbeddings;
    this.space = model.space;
  }

  userVector(ctx: UserContext, exampleTime?: number): Float32Array {
    return this.userVectors([ctx], exampleTime)[0]!;
  }

  userVectors(ctxs: readonly UserContext[], exampleTime?: number): Float32Array[] {
    if (ctxs.length === 0) return [];
    let batch = this.scratch;
    if (batch === undefined || batch.capacity < ctxs.length) {
      batch = EncodedBatch.forSpace(this.space, Math.max(ctxs.length, 16));
      this.scratch = batch;
    }
    batch.size = 0;
    ctxs.forEach((ctx, row) => encodeUser(this.space, ctx, exampleTime, { batch: batch!, row }));
    batch.size = ctxs.length;
    const u = this.model.userVectors(batch);
    const d = this.dim;
    return ctxs.map((_, i) => u.slice(i * d, (i + 1) * d));
  }

  dispose(): void {
    this.model.dispose();
  }
}

/**
 * Item embeddings in bundle row order: output rows of vocabulary ids 1..size-1, or with the
 * hierarchical softmax the serving vectors (cluster vector + within-cluster vector).
 */
function itemRows(result: TrainResult): Float32Array {
  if (result.hierarchy !== null) return result.hierarchy.servingItemVectors();
  const model = result.model;
  const d = model.dim;
  return model.output.data.slice(d, model.space.items.size * d);
}

/** The manifest of a training result (modelVersion derived from the weights). */
export function manifestFor(result: TrainResult): BundleManifest {
  const { model, space, stats } = result;
  const weights = model.weights();
  const hash = createHash("sha256");
  const add = (a: Float32Array): void => {
    hash.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  };
  add(weights.watch);
  add(weights.output);
  for (const l of weights.tower) {
    add(l.w);
    add(l.b);
  }
  if (weights.attention !== undefined) {
    add(weights.attention.query);
    add(weights.attention.recency);
  }
  if (result.hierarchy !== null) {
    add(result.hierarchy.clusters.data);
    hash.update(new Uint8Array(result.hierarchy.tree.itemCluster.buffer));
  }
  hash.update(
    JSON.stringify({
      model: result.modelConfig,
      train: result.trainConfig,
      spec: result.datasetSpec,
      fp: result.datasetFingerprint,
      holdout: result.holdout,
    }),
  );
  const now = new Date();
  const stamp = now.toISOString().replace(/[-:T]/g, "").slice(0, 14);
  const cfg = result.modelConfig;
  const d = cfg.embeddingDim;
  const tower = model.layers.map((l) => ({ file: "tower.f32", inDim: l.inDim, outDim: l.outDim }));
  return {
    format: BUNDLE_FORMAT,
    modelVersion: `cg-${stamp}-${hash.digest("hex").slice(0, 8)}`,
    createdAt: now.toISOString(),
    datasetSpec: result.datasetSpec,
    datasetFingerprint: result.datasetFingerprint,
    holdout: result.holdout,
    dim: d,
    features: space.toJSON(),
    model: cfg,
    trainConfig: result.trainConfig,
    train: {
      examplesPerSecond: stats.examplesPerSecond,
      seconds: stats.seconds,
      epochs: stats.epochs,
      finalLoss: stats.finalLoss,
      steps: stats.steps,
      examples: stats.examples,
      backend: stats.backend,
      threads: stats.threads,
    },
    itemIds: space.items.tokens,
    files: {
      itemEmbeddings: { file: "item_embeddings.f32", rows: space.items.size - 1, cols: d },
      watchEmbeddings: { file: "watch_embeddings.f32", rows: space.items.size, cols: d },
      searchEmbeddings: { file: "search_embeddings.f32", rows: space.tokens.size, cols: cfg.searchDim },
      categorical: CATEGORICAL_FEATURES.map((f) => ({
        file: `${f}_embeddings.f32`,
        rows: space.categorical(f).size,
        cols: cfg.categoricalDim,
      })),
      tower,
      ...(cfg.historyPooling === "attention"
        ? { attention: { file: "attention.f32", queryDim: d, recencyLength: space.config.historyLength } }
        : {}),
      ...(result.hierarchy !== null
        ? {
            hierarchy: {
              clusterEmbeddings: { file: "cluster_embeddings.f32", rows: result.hierarchy.tree.clusters, cols: d },
              itemClusters: { file: "item_clusters.i32", rows: space.items.size - 1 },
            },
          }
        : {}),
    },
  };
}

/** A bundle in memory straight from training (same behaviour as saving and loading it). */
export function bundleFromTraining(result: TrainResult): CandidateGenBundle {
  const manifest = manifestFor(result);
  return new Bundle(manifest, result.model, itemRows(result));
}

function assertLittleEndian(): void {
  if (endianness() !== "LE") throw new Error("model bundles are little-endian float32; this platform is big-endian (unsupported)");
}

function bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Writes a bundle directory (created if needed; existing bundle files are replaced). */
export async function saveBundle(dir: string, result: TrainResult): Promise<BundleManifest> {
  assertLittleEndian();
  const manifest = manifestFor(result);
  const weights = result.model.weights();
  await mkdir(dir, { recursive: true });
  const f = manifest.files;
  await writeFile(join(dir, f.itemEmbeddings.file), bytes(itemRows(result)));
  await writeFile(join(dir, f.watchEmbeddings.file), bytes(weights.watch));
  await writeFile(join(dir, f.searchEmbeddings.file), bytes(weights.search));
  for (let j = 0; j < f.categorical.length; j++) await writeFile(join(dir, f.categorical[j]!.file), bytes(weights.categorical[j]!));
  const towerLen = weights.tower.reduce((s, l) => s + l.w.length + l.b.length, 0);
  const tower = new Float32Array(towerLen);
  let o = 0;
  for (const l of weights.tower) {
    tower.set(l.w, o);
    o += l.w.length;
    tower.set(l.b, o);
    o += l.b.length;
  }
  await writeFile(join(dir, "tower.f32"), bytes(tower));
  if (f.attention !== undefined) {
    const a = weights.attention!;
    const flat = new Float32Array(a.query.length + a.recency.length);
    flat.set(a.query, 0);
    flat.set(a.recency, a.query.length);
    await writeFile(join(dir, f.attention.file), bytes(flat));
  }
  if (f.hierarchy !== undefined) {
    const h = result.hierarchy!;
    await writeFile(join(dir, f.hierarchy.clusterEmbeddings.file), bytes(h.clusters.data));
    const clusters = h.tree.itemCluster.slice(1);
    await writeFile(join(dir, f.hierarchy.itemClusters.file), new Uint8Array(clusters.buffer));
  }
  const tmp = join(dir, "manifest.json.tmp");
  await writeFile(tmp, `${JSON.stringify(manifest, null, 1)}\n`);
  await rename(tmp, join(dir, "manifest.json"));
  return manifest;
}

/** A rows × cols float32 file of the bundle (into `into`, or a new array). */
async function readMatrix(dir: string, file: string, rows: number, cols: number, into?: Float32Array): Promise<Float32Array> {
  try {
    return await readFloat32File(join(dir, file), rows * cols, into);
  } catch (err) {
    if (err instanceof Float32FileSizeError) {
      throw new Error(`model bundle ${dir}: ${file} has ${err.bytes} bytes, expected ${err.expectedBytes} (${rows}×${cols} float32)`);
    }
    throw new Error(`model bundle ${dir}: cannot read ${file}: ${(err as Error).message}`);
  }
}

/** Loads a bundle directory written by {@link saveBundle}; initialises the tfjs backend. */
export function loadBundle(dir: string): Promise<CandidateGenBundle> {
  return loadBundleFrom(dir, true);
}

/**
 * The user side of a bundle: {@link loadBundle} without the output item embeddings, which a user
 * vector does not read (item_embeddings.f32 is not read; 256 MB at 1M items × 64 floats). What
 * the candidate-generation stage serves; retrieval indexes the item side.
 */
export function loadUserTower(dir: string): Promise<UserTower> {
  return loadBundleFrom(dir, false);
}

async function loadBundleFrom(dir: string, withItems: boolean): Promise<CandidateGenBundle> {
  assertLittleEndian();
  let manifest: BundleManifest;
  try {
    // Off the event loop, the two lists of item ids rebuilt in slices (17.8 MB of JSON at 1M
    // items: ~0.5 s of JSON.parse in one piece): a serving stage loads a new bundle while it serves.
    manifest = (await readJsonFile(join(dir, "manifest.json"), { strings: ["itemIds", "features.items.tokens"] })) as BundleManifest;
  } catch (err) {
    throw new Error(
      `model bundle ${dir}: cannot read manifest.json (${(err as Error).message}); is this a directory written by 'recsys train'?`,
    );
  }
  if (manifest.format !== BUNDLE_FORMAT)
    throw new Error(`model bundle ${dir}: format "${String(manifest.format)}", expected "${BUNDLE_FORMAT}"`);
  const space = await FeatureSpace.fromJSONInSlices(manifest.features);
  // A bundle written before the historyPooling option pooled with the mean, whatever today's default.
  const written: Partial<ModelConfig> = manifest.model;
  const cfg: ModelConfig = { ...DEFAULT_MODEL_CONFIG, ...manifest.model, historyPooling: written.historyPooling ?? "mean" };
  validateModelConfig(cfg);
  const f = manifest.files;
  if (manifest.itemIds.length !== space.items.size - 1 || f.itemEmbeddings.rows !== manifest.itemIds.length) {
    throw new Error(`model bundle ${dir}: ${manifest.itemIds.length} item ids but the item vocabulary has ${space.items.size - 1}`);
  }
  // The output table is the OOV row 0 followed by the item rows: the item file is read into it in
  // place, and itemEmbeddings is a view of it (one 256 MB table at 1M items, not two).
  if (manifest.dim !== cfg.embeddingDim)
    throw new Error(`model bundle ${dir}: dim ${manifest.dim} but the model's embeddingDim is ${cfg.embeddingDim}`);
  const output = cfg.sharedItemEmbeddings || !withItems ? undefined : new Float32Array(space.items.size * cfg.embeddingDim);
  const itemEmbeddings = withItems
    ? await readMatrix(dir, f.itemEmbeddings.file, f.itemEmbeddings.rows, manifest.dim, output?.subarray(cfg.embeddingDim))
    : new Float32Array(0);
  const watch = await readMatrix(dir, f.watchEmbeddings.file, space.items.size, cfg.embeddingDim);
  const search = await readMatrix(dir, f.searchEmbeddings.file, space.tokens.size, cfg.searchDim);
  const categorical: Float32Array[] = [];
  for (let j = 0; j < CATEGORICAL_FEATURES.length; j++) {
    const fj = f.categorical[j]!;
    categorical.push(await readMatrix(dir, fj.file, space.categorical(CATEGORICAL_FEATURES[j]!).size, cfg.categoricalDim));
  }
  const towerShapes = f.tower;
  const towerLen = towerShapes.reduce((s, l) => s + l.inDim * l.outDim + l.outDim, 0);
  const towerFlat = await readMatrix(dir, "tower.f32", 1, towerLen);
  const tower: { w: Float32Array; b: Float32Array }[] = [];
  let o = 0;
  for (const l of towerShapes) {
    const w = towerFlat.subarray(o, o + l.inDim * l.outDim);
    o += w.length;
    const b = towerFlat.subarray(o, o + l.outDim);
    o += b.length;
    tower.push({ w, b });
  }
  // Without the item side the model's output table is the watch table (never read for a user
  // vector; only training and item scoring read it, and a UserTower offers neither).
  let attention: ModelWeights["attention"];
  if (cfg.historyPooling === "attention") {
    const fa = f.attention;
    if (fa === undefined || fa.queryDim !== cfg.embeddingDim || fa.recencyLength !== space.config.historyLength) {
      throw new Error(
        `model bundle ${dir}: historyPooling "attention" needs files.attention with queryDim ${cfg.embeddingDim} and recencyLength ${space.config.historyLength}`,
      );
    }
    const flat = await readMatrix(dir, fa.file, 1, fa.queryDim + fa.recencyLength);
    attention = { query: flat.subarray(0, fa.queryDim), recency: flat.subarray(fa.queryDim) };
  }
  const weights: ModelWeights = {
    watch,
    search,
    categorical,
    output: output ?? watch,
    tower,
    ...(attention === undefined ? {} : { attention }),
  };
  await initBackend();
  const model = CandidateGenModel.fromWeights(space, cfg, weights);
  return new Bundle(manifest, model, itemEmbeddings);
}

/** Options of {@link createDatasetScorer}. */
export interface DatasetScorerOptions {
  /**
   * Example age used for scoring. "asOf" (default): the age of the scored moment (the `asOf` the
   * caller passes) relative to the end of the training window, clamped at 0; a live service
   * (now ≥ window end) gets 0, as in the paper. "serving": always 0. The offline evaluator passes
   * the time of the user's last visible event, never anything of the held-out event.
   */
  readonly exampleAge?: "serving" | "asOf";
  readonly name?: string;
}

/** Score of dataset items the bundle does not know (finite: the evaluator rejects non-finite scores). */
export const UNKNOWN_ITEM_SCORE = -1e30;

/**
 * A UserScorer over `dataset`'s catalogue: the user's context from the dataset (history rows,
 * searches before asOf, demographics), the bundle's user vector, and dot products with the item
 * embeddings, mapped to dataset item indices by external id.
 */
export function createDatasetScorer(bundle: CandidateGenBundle, dataset: Dataset, options: DatasetScorerOptions = {}): UserScorer {
  const numItems = dataset.items.ids.length;
  const rowOf = new Int32Array(numItems).fill(-1);
  const index = new Map<string, number>();
  bundle.itemIds.forEach((id, r) => index.set(id, r));
  for (let i = 0; i < numItems; i++) rowOf[i] = index.get(dataset.items.ids[i]!) ?? -1;
  const d = bundle.dim;
  const emb = bundle.itemEmbeddings;
  const mode = options.exampleAge ?? "asOf";
  return {
    name: options.name ?? "youtube-dnn",
    score(user: number, historyRows: Int32Array, asOf: number, out: Float32Array): void {
      const ctx = contextFromDataset(dataset, user, historyRows, asOf);
      const u = bundle.userVector(ctx, mode === "asOf" ? asOf : undefined);
      for (let i = 0; i < numItems; i++) {
        const r = rowOf[i]!;
        if (r < 0) {
          out[i] = UNKNOWN_ITEM_SCORE;
          continue;
        }
        let s = 0;
        const o = r * d;
        for (let k = 0; k < d; k++) s += u[k]! * emb[o + k]!;
        out[i] = s;
      }
    },
  };
}
