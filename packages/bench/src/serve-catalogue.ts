/**
 * The full-size catalogue of the serving benchmark. A bundle only knows the items its training
 * rows watched (the item vocabulary's minimum count is 1), and training until every item of a
 * 1M-item catalogue has been watched takes hours here. So the benchmark trains on a small watch
 * log and then writes a derived bundle covering the whole catalogue: trained items keep their
 * rows; every other item gets a synthesised output embedding (and input watch embedding) drawn
 * from a low-rank Gaussian fitted on the trained items of its topic (its first tag; the whole
 * trained catalogue for topics with fewer than 20 trained items): the topic's mean plus its top
 * principal directions with their variances, plus a small isotropic residual, so the extra items
 * spread over the trained topic clusters along the directions trained items vary in and compete
 * in retrieval. (Tried before: copies of single trained items plus small noise, ~55
 * near-duplicates per trained item, made a pathological HNSW graph, recall@100 0.37 at ef 100;
 * a diagonal Gaussian per topic filled all 64 dimensions with independent noise, the hardest
 * case for any ANN index and unlike learnt embeddings: recall@100 0.09 at ef 100 at 1M items.) Everything else (tower, search and
 * categorical tables, the ranker) is copied. The manifest records what was
 * synthesised (`syntheticCatalogue`) and gets its own modelVersion.
 *
 * Format: packages/candidate-gen/src/bundle.ts (manifest.json + raw little-endian float32 files).
 */
import { createHash } from "node:crypto";
import { copyFile, cp, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { BundleManifest } from "@recsys/candidate-gen";
import type { Dataset } from "@recsys/data";
import { prng } from "./serve-load.js";

export interface SyntheticCatalogueInfo {
  /** modelVersion of the trained bundle it extends. */
  readonly source: string;
  readonly trained: number;
  readonly synthesised: number;
  readonly seed: number;
  /** How the synthesised rows were drawn. */
  readonly method: string;
}

/** Recorded in the derived manifest: a cached extension made another way is rebuilt. */
const SYNTHESIS_METHOD = "topic-lowrank-8";
/** Principal directions kept per topic, and the scale of the isotropic residual kept. */
const RANK = 8;
const RESIDUAL_SCALE = 0.25;

interface LowRankGaussian {
  readonly mean: Float64Array;
  /** RANK directions (unit, row-major RANK × dim) scaled by their standard deviations. */
  readonly axes: Float64Array;
  /** Standard deviation of the isotropic residual per dimension. */
  readonly residual: number;
}

/** Mean, top principal directions (power iteration with deflation) and residual of table rows. */
function fitLowRank(table: Float32Array, rows: readonly number[], offset: number, dim: number): LowRankGaussian {
  const n = rows.length;
  const mean = new Float64Array(dim);
  for (const row of rows) for (let d = 0; d < dim; d++) mean[d]! += table[(row + offset) * dim + d]! / n;
  const cov = new Float64Array(dim * dim);
  const x = new Float64Array(dim);
  for (const row of rows) {
    for (let d = 0; d < dim; d++) x[d] = table[(row + offset) * dim + d]! - mean[d]!;
    for (let a = 0; a < dim; a++) for (let b = 0; b < dim; b++) cov[a * dim + b]! += (x[a]! * x[b]!) / n;
  }
  let total = 0;
  for (let d = 0; d < dim; d++) total += cov[d * dim + d]!;
  const rank = Math.min(RANK, dim);
  const axes = new Float64Array(rank * dim);
  let explained = 0;
  const v = new Float64Array(dim);
  const w = new Float64Array(dim);
  for (let k = 0; k < rank; k++) {
    for (let d = 0; d < dim; d++) v[d] = 1 / Math.sqrt(dim) + (d === k ? 0.5 : 0);
    let lambda = 0;
    for (let iter = 0; iter < 100; iter++) {
      for (let a = 0; a < dim; a++) {
        let sum = 0;
        for (let b = 0; b < dim; b++) sum += cov[a * dim + b]! * v[b]!;
        w[a] = sum;
      }
      let norm = 0;
      for (let d = 0; d < dim; d++) norm += w[d]! * w[d]!;
      norm = Math.sqrt(norm);
      if (norm === 0) break;
      lambda = norm;
      for (let d = 0; d < dim; d++) v[d] = w[d]! / norm;
    }
    explained += lambda;
    const sd = Math.sqrt(lambda);
    for (let d = 0; d < dim; d++) axes[k * dim + d] = v[d]! * sd;
    // Deflate: cov -= lambda v vᵀ.
    for (let a = 0; a < dim; a++) for (let b = 0; b < dim; b++) cov[a * dim + b]! -= lambda * v[a]! * v[b]!;
  }
  return { mean, axes, residual: Math.sqrt(Math.max(0, total - explained) / dim) * RESIDUAL_SCALE };
}

function sampleLowRank(model: LowRankGaussian, gaussian: () => number, into: Float32Array, at: number): void {
  const dim = model.mean.length;
  const rank = model.axes.length / dim;
  for (let d = 0; d < dim; d++) into[at + d] = model.mean[d]! + model.residual * gaussian();
  for (let k = 0; k < rank; k++) {
    const z = gaussian();
    for (let d = 0; d < dim; d++) into[at + d]! += z * model.axes[k * dim + d]!;
  }
}

type ExtendedManifest = BundleManifest & { readonly syntheticCatalogue: SyntheticCatalogueInfo };

async function readF32(path: string): Promise<Float32Array> {
  const bytes = await readFile(path);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

function asBytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** The derived bundle in `dst` if it extends `src` already, else undefined. */
export async function existingExtension(src: string, dst: string): Promise<ExtendedManifest | undefined> {
  try {
    const source = JSON.parse(await readFile(join(src, "manifest.json"), "utf8")) as BundleManifest;
    const derived = JSON.parse(await readFile(join(dst, "manifest.json"), "utf8")) as ExtendedManifest;
    const info = derived.syntheticCatalogue;
    return info?.source === source.modelVersion && info.method === SYNTHESIS_METHOD ? derived : undefined;
  } catch {
    return undefined;
  }
}

/** Writes into `dst` the bundle of `src` extended to every item of `dataset` (see the module comment). */
export async function extendBundleToCatalogue(src: string, dst: string, dataset: Dataset, seed = 1): Promise<ExtendedManifest> {
  const manifest = JSON.parse(await readFile(join(src, "manifest.json"), "utf8")) as BundleManifest;
  const dim = manifest.dim;
  const trainedOut = await readF32(join(src, manifest.files.itemEmbeddings.file));
  const trainedWatch = await readF32(join(src, manifest.files.watchEmbeddings.file));
  const rowOf = new Map<string, number>();
  manifest.itemIds.forEach((id, row) => rowOf.set(id, row));

  const ids = dataset.items.ids;
  const n = ids.length;
  // Trained rows per topic (an item's first tag; items without tags form one group).
  const { tagOffsets, tagCodes } = dataset.items;
  const topicOf = (i: number): number => (tagOffsets[i + 1]! > tagOffsets[i]! ? tagCodes[tagOffsets[i]!]! : -1);
  const byTopic = new Map<number, number[]>();
  const trainedRows: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = rowOf.get(ids[i]!);
    if (row === undefined) continue;
    trainedRows.push(row);
    const topic = topicOf(i);
    let list = byTopic.get(topic);
    if (list === undefined) byTopic.set(topic, (list = []));
    list.push(row);
  }
  if (trainedRows.length === 0) throw new Error("the trained bundle shares no item with the dataset");
  // A low-rank Gaussian per topic and table, fitted on the topic's trained rows (`offset` 1 for the watch table).
  const everyone = { out: fitLowRank(trainedOut, trainedRows, 0, dim), watch: fitLowRank(trainedWatch, trainedRows, 1, dim) };
  const models = new Map<number, { out: LowRankGaussian; watch: LowRankGaussian }>();
  for (const [topic, rows] of byTopic) {
    // Too few trained items for a fit: the catalogue-wide one.
    models.set(
      topic,
      rows.length < 20 ? everyone : { out: fitLowRank(trainedOut, rows, 0, dim), watch: fitLowRank(trainedWatch, rows, 1, dim) },
    );
  }

  const random = prng(seed);
  const gaussian = (): number => {
    const u = Math.max(random(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  };
  const out = new Float32Array(n * dim);
  const watch = new Float32Array((n + 1) * dim); // row 0 = out of vocabulary
  watch.set(trainedWatch.subarray(0, dim), 0);
  let synthesised = 0;
  for (let i = 0; i < n; i++) {
    const row = rowOf.get(ids[i]!);
    if (row !== undefined) {
      out.set(trainedOut.subarray(row * dim, (row + 1) * dim), i * dim);
      watch.set(trainedWatch.subarray((row + 1) * dim, (row + 2) * dim), (i + 1) * dim);
      continue;
    }
    synthesised += 1;
    const model = models.get(topicOf(i)) ?? everyone;
    sampleLowRank(model.out, gaussian, out, i * dim);
    sampleLowRank(model.watch, gaussian, watch, (i + 1) * dim);
  }

  const info: SyntheticCatalogueInfo = {
    source: manifest.modelVersion,
    trained: n - synthesised,
    synthesised,
    seed,
    method: SYNTHESIS_METHOD,
  };
  const hash = createHash("sha256").update(JSON.stringify(info)).digest("hex").slice(0, 8);
  const stamp = manifest.modelVersion.split("-")[1] ?? "0";
  const derived: ExtendedManifest = {
    ...manifest,
    modelVersion: `cg-${stamp}-${hash}`,
    itemIds: ids,
    features: { ...manifest.features, items: { ...manifest.features.items, tokens: ids } },
    files: {
      ...manifest.files,
      itemEmbeddings: { ...manifest.files.itemEmbeddings, rows: n },
      watchEmbeddings: { ...manifest.files.watchEmbeddings, rows: n + 1 },
    },
    syntheticCatalogue: info,
  };

  const partial = `${dst}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  const copied = new Set([manifest.files.itemEmbeddings.file, manifest.files.watchEmbeddings.file]);
  const others = [
    manifest.files.searchEmbeddings.file,
    ...manifest.files.categorical.map((f) => f.file),
    ...new Set(manifest.files.tower.map((l) => l.file)),
    ...(manifest.files.attention === undefined ? [] : [manifest.files.attention.file]),
  ];
  for (const file of others) if (!copied.has(file)) await copyFile(join(src, file), join(partial, file));
  await writeFile(join(partial, manifest.files.itemEmbeddings.file), asBytes(out));
  await writeFile(join(partial, manifest.files.watchEmbeddings.file), asBytes(watch));
  await cp(join(src, "ranker"), join(partial, "ranker"), { recursive: true });
  await writeFile(join(partial, "manifest.json"), JSON.stringify(derived));
  await rm(dst, { recursive: true, force: true });
  await rename(partial, dst);
  return derived;
}
