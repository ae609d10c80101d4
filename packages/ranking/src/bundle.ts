/**
 * The ranker bundle: one directory (by convention `<candidate-gen bundle>/ranker/`) with
 * everything the ranking service needs.
 *
 *   manifest.json           format, modelVersion, dataset spec + fingerprint, holdout, the
 *                           candidate-gen bundle it was trained with, the session model it was
 *                           trained behind (when the sources included "session"), the candidate
 *                           pipeline settings (per-source budget, merged size), the ranking feature space
 *                           (vocabularies, item catalogue, source list, quantile normalisers),
 *                           model and train configs, training stats, and the binary files below.
 *   item_embeddings.f32     item vocabulary size × itemDim (row 0 = OOV): impression and history
 *   gender_embeddings.f32, occupation_embeddings.f32, geo_embeddings.f32
 *   tower.f32               dense layers in order, each W (inDim × outDim, row-major) then b
 *   wide.f32                model kind "wide-deep" only: the wide part's wideBuckets weights
 *
 * The model kind ("weighted-lr" or "wide-deep") is `model.kind` in the manifest (absent in
 * bundles written before the kind existed: "weighted-lr").
 *
 * .f32 files are raw little-endian float32, row-major, no header. The manifest is written last.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { endianness } from "node:os";
import { join } from "node:path";
import { readJsonFile, type Holdout } from "@recsys/data";
import { CATEGORICAL_FEATURES } from "@recsys/features";
import { initBackend } from "@recsys/tf";
import { encodeCandidates, RankingBatch } from "./encode.js";
import {
  DEFAULT_RANKER_MODEL_CONFIG,
  RankerModel,
  type RankerModelConfig,
  type RankerWeights,
  validateRankerModelConfig,
} from "./model.js";
import { RankingSpace, type RankingSpaceJson } from "./space.js";
import type { RankerTrainConfig, RankerTrainResult } from "./trainer.js";
import type { RankingCandidate, RankingContext } from "./types.js";

export const RANKER_FORMAT = "recsys-ranker/1";

/** Settings of the candidate stage the ranker was trained behind (the evaluation reproduces them). */
export interface PipelineSettings {
  /** Default per-source budget of a request. */
  readonly budget: number;
  /** Size of the merged candidate list the ranker ranks. */
  readonly mergedSize: number;
}

/**
 * The session model (the bundle's session/ directory, @recsys/sequence) a ranker was trained
 * behind: its encoder kind and the time it was saved, which names one training run.
 */
export interface SessionModelRef {
  readonly kind: string;
  readonly savedAt: string;
}

export interface RankerManifest {
  readonly format: typeof RANKER_FORMAT;
  /** `rk-<UTC yyyymmddHHMMSS>-<first 8 hex of the SHA-256 of weights and config>`. */
  readonly modelVersion: string;
  readonly createdAt: string;
  readonly datasetSpec: string;
  readonly datasetFingerprint: string;
  readonly holdout: Holdout;
  /** modelVersion of the candidate-gen bundle whose "dnn" source the ranker was trained with. */
  readonly candidateGenVersion: string;
  /**
   * The session model whose "session" source the ranker was trained behind; absent when its
   * sources (`space.sources`) do not include "session".
   */
  readonly sessionModel?: SessionModelRef;
  readonly pipeline: PipelineSettings;
  readonly space: RankingSpaceJson;
  readonly model: RankerModelConfig;
  readonly trainConfig: RankerTrainConfig;
  readonly train: {
    readonly examples: number;
    readonly candidates: number;
    readonly positiveInMerged: number;
    readonly replaySeconds: number;
    readonly seconds: number;
    readonly epochLosses: readonly number[];
    readonly examplesPerSecond: number;
    readonly backend: string;
  };
  readonly files: {
    readonly itemEmbeddings: { readonly file: string; readonly rows: number; readonly cols: number };
    readonly categorical: readonly { readonly file: string; readonly rows: number; readonly cols: number }[];
    readonly tower: { readonly file: string; readonly layers: readonly { readonly inDim: number; readonly outDim: number }[] };
    /** Model kind "wide-deep" only. */
    readonly wide?: { readonly file: string; readonly rows: number };
  };
}

/** A loaded (or freshly trained) ranker: scores candidates for a context. */
export class Ranker {
  private batch: RankingBatch | undefined;

  constructor(
    readonly manifest: RankerManifest,
    readonly space: RankingSpace,
    readonly model: RankerModel,
  ) {}

  /**
   * Logits of the candidates for the user of `ctx` at request time `t` (higher is better;
   * exp(logit) estimates the expected watch time of the impression).
   */
  score(ctx: RankingContext, candidates: readonly RankingCandidate[], t: number): Float32Array {
    if (candidates.length === 0) return new Float32Array(0);
    let batch = this.batch;
    if (batch === undefined || batch.capacity < candidates.length) {
      batch = RankingBatch.forSpace(this.space, Math.max(candidates.length, 64));
      this.batch = batch;
    }
    batch.size = 0;
    encodeCandidates(this.space, ctx, candidates, t, batch);
    return this.model.score(batch);
  }

  dispose(): void {
    this.model.dispose();
  }
}

/** What a manifest needs beyond the training result. */
export interface RankerProvenance {
  readonly datasetSpec: string;
  readonly datasetFingerprint: string;
  readonly holdout: Holdout;
  readonly candidateGenVersion: string;
  /** The session model, when the sources the ranker was trained behind include "session". */
  readonly sessionModel?: SessionModelRef;
  readonly pipeline: PipelineSettings;
}

export function rankerManifest(result: RankerTrainResult, about: RankerProvenance): RankerManifest {
  const weights = result.model.weights();
  const hash = createHash("sha256");
  const add = (a: Float32Array): void => {
    hash.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  };
  add(weights.item);
  for (const l of weights.tower) {
    add(l.w);
    add(l.b);
  }
  if (weights.wide !== undefined) add(weights.wide);
  hash.update(JSON.stringify({ model: result.modelConfig, train: result.trainConfig, about }));
  const now = new Date();
  const stamp = now.toISOString().replace(/[-:T]/g, "").slice(0, 14);
  const space = result.space;
  const s = result.stats;
  return {
    format: RANKER_FORMAT,
    modelVersion: `rk-${stamp}-${hash.digest("hex").slice(0, 8)}`,
    createdAt: now.toISOString(),
    ...about,
    space: space.toJSON(),
    model: result.modelConfig,
    trainConfig: result.trainConfig,
    train: {
      examples: s.examples,
      candidates: s.candidates,
      positiveInMerged: s.positiveInMerged,
      replaySeconds: s.replaySeconds,
      seconds: s.seconds,
      epochLosses: s.epochLosses,
      examplesPerSecond: s.examplesPerSecond,
      backend: s.backend,
    },
    files: {
      itemEmbeddings: { file: "item_embeddings.f32", rows: space.features.items.size, cols: result.modelConfig.itemDim },
      categorical: CATEGORICAL_FEATURES.map((f) => ({
        file: `${f}_embeddings.f32`,
        rows: space.features.categorical(f).size,
        cols: result.modelConfig.categoricalDim,
      })),
      tower: { file: "tower.f32", layers: result.model.layers.map((l) => ({ inDim: l.inDim, outDim: l.outDim })) },
      ...(weights.wide === undefined ? {} : { wide: { file: "wide.f32", rows: weights.wide.length } }),
    },
  };
}

/** The in-memory ranker of a training result (same behaviour as saving and loading it). */
export function rankerFromTraining(result: RankerTrainResult, about: RankerProvenance): Ranker {
  return new Ranker(rankerManifest(result, about), result.space, result.model);
}

function assertLittleEndian(): void {
  if (endianness() !== "LE") throw new Error("ranker bundles are little-endian float32; this platform is big-endian (unsupported)");
}

function bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Writes a ranker directory (created if needed). */
export async function saveRanker(dir: string, result: RankerTrainResult, about: RankerProvenance): Promise<RankerManifest> {
  assertLittleEndian();
  const manifest = rankerManifest(result, about);
  const weights = result.model.weights();
  await mkdir(dir, { recursive: true });
  const f = manifest.files;
  await writeFile(join(dir, f.itemEmbeddings.file), bytes(weights.item));
  for (let j = 0; j < f.categorical.length; j++) await writeFile(join(dir, f.categorical[j]!.file), bytes(weights.categorical[j]!));
  const tower = new Float32Array(weights.tower.reduce((s, l) => s + l.w.length + l.b.length, 0));
  let o = 0;
  for (const l of weights.tower) {
    tower.set(l.w, o);
    o += l.w.length;
    tower.set(l.b, o);
    o += l.b.length;
  }
  await writeFile(join(dir, f.tower.file), bytes(tower));
  if (f.wide !== undefined && weights.wide !== undefined) await writeFile(join(dir, f.wide.file), bytes(weights.wide));
  const tmp = join(dir, "manifest.json.tmp");
  await writeFile(tmp, `${JSON.stringify(manifest)}\n`);
  await rename(tmp, join(dir, "manifest.json"));
  return manifest;
}

async function readMatrix(dir: string, file: string, length: number): Promise<Float32Array> {
  let buf: Buffer;
  try {
    buf = await readFile(join(dir, file));
  } catch (err) {
    throw new Error(`ranker ${dir}: cannot read ${file}: ${(err as Error).message}`);
  }
  if (buf.byteLength !== length * 4) throw new Error(`ranker ${dir}: ${file} has ${buf.byteLength} bytes, expected ${length * 4}`);
  const out = new Float32Array(length);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

/** Loads a ranker directory written by {@link saveRanker}; initialises the tfjs backend. */
export async function loadRanker(dir: string): Promise<Ranker> {
  assertLittleEndian();
  let manifest: RankerManifest;
  try {
    // Off the event loop, the item ids rebuilt in slices (42.8 MB of JSON at 1M items: ~0.45 s
    // of JSON.parse in one piece): the ranking stage loads a new ranker while it serves.
    manifest = (await readJsonFile(join(dir, "manifest.json"), {
      strings: ["space.catalog.ids", "space.features.items.tokens"],
      numbers: {
        "space.catalog.upload": "float64",
        "space.catalog.channel": "int32",
        "space.catalog.tagOffsets": "int32",
        "space.catalog.tagCodes": "int32",
      },
    })) as RankerManifest;
  } catch (err) {
    throw new Error(
      `ranker ${dir}: cannot read manifest.json (${(err as Error).message}); is this a directory written by 'recsys train-ranker'?`,
    );
  }
  if (manifest.format !== RANKER_FORMAT) throw new Error(`ranker ${dir}: format "${String(manifest.format)}", expected "${RANKER_FORMAT}"`);
  const space = await RankingSpace.fromJSONInSlices(manifest.space);
  const cfg: RankerModelConfig = { ...DEFAULT_RANKER_MODEL_CONFIG, ...manifest.model };
  validateRankerModelConfig(cfg);
  const f = manifest.files;
  if (f.itemEmbeddings.rows !== space.features.items.size || f.itemEmbeddings.cols !== cfg.itemDim) {
    throw new Error(
      `ranker ${dir}: item embeddings are ${f.itemEmbeddings.rows}×${f.itemEmbeddings.cols}, the space and config need ${space.features.items.size}×${cfg.itemDim}`,
    );
  }
  const item = await readMatrix(dir, f.itemEmbeddings.file, f.itemEmbeddings.rows * f.itemEmbeddings.cols);
  const categorical: Float32Array[] = [];
  for (let j = 0; j < CATEGORICAL_FEATURES.length; j++) {
    const fj = f.categorical[j]!;
    categorical.push(await readMatrix(dir, fj.file, space.features.categorical(CATEGORICAL_FEATURES[j]!).size * cfg.categoricalDim));
  }
  const total = f.tower.layers.reduce((s, l) => s + l.inDim * l.outDim + l.outDim, 0);
  const flat = await readMatrix(dir, f.tower.file, total);
  const tower: { w: Float32Array; b: Float32Array }[] = [];
  let o = 0;
  for (const l of f.tower.layers) {
    const w = flat.subarray(o, o + l.inDim * l.outDim);
    o += w.length;
    const b = flat.subarray(o, o + l.outDim);
    o += b.length;
    tower.push({ w, b });
  }
  let wide: Float32Array | undefined;
  if (cfg.kind === "wide-deep") {
    if (f.wide === undefined || f.wide.rows !== cfg.wideBuckets)
      throw new Error(`ranker ${dir}: a wide-deep ranker needs files.wide with ${cfg.wideBuckets} rows in its manifest`);
    wide = await readMatrix(dir, f.wide.file, cfg.wideBuckets);
  }
  const weights: RankerWeights = { item, categorical, tower, ...(wide === undefined ? {} : { wide }) };
  await initBackend();
  return new Ranker(manifest, space, RankerModel.fromWeights(space, cfg, weights));
}
