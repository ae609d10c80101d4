/**
 * One model version's index of this shard, ready to serve: loaded from
 * `<INDEX_DIR>/<modelVersion>/shard-<i>-of-<n>/` when that holds a usable index, otherwise copied
 * from the bundle's prebuilt index `<bundle>/indexes/shard-<i>-of-<n>/` (what `recsys retrain`
 * publishes) when that one matches (model version, dimension, INDEX_KIND, HNSW M and
 * efConstruction), otherwise built
 * from the bundle's item embeddings (only the items this shard owns: shardOf(id, n) === i) on a
 * worker thread and saved (into a temporary directory renamed into place, so a crash never leaves
 * a half-written index under the final name); then the upsert journal of that version is
 * replayed and the deleted-items list applied.
 */
import { existsSync } from "node:fs";
import { cp, mkdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { AnnError, HnswIndex, META_FILE, loadIndex, shardItems, type IndexKind, type VectorIndex } from "@recsys/ann";
import { readJsonFile } from "@recsys/data";
import type { Logger } from "@recsys/runtime";
import type { BackendChoice } from "@recsys/tf";
import type { DenyList } from "./deny-list.js";
import { emptyFile, readJsonLines } from "./journal.js";
import { bundleIndexPath, indexPath, journalPath, shardTag } from "./paths.js";

export interface ShardIndexSettings {
  readonly indexDir: string;
  readonly shard: number;
  readonly shardCount: number;
  readonly kind: IndexKind;
  readonly M: number;
  readonly efConstruction: number;
  readonly ef: number;
  /** Forced tfjs backend for loading the bundle (RECSYS_TF_BACKEND). */
  readonly tfBackend?: BackendChoice | undefined;
  readonly logger: Logger;
}

/** What the build worker receives. */
export interface BuildJob {
  readonly ids: readonly string[];
  readonly vectors: Float32Array;
  readonly dim: number;
  readonly kind: IndexKind;
  readonly modelVersion: string;
  readonly annotations: Record<string, string>;
  readonly M: number;
  readonly efConstruction: number;
  readonly ef: number;
  readonly dir: string;
}

/** A served index (one per model version; the service swaps them). */
export interface ShardIndex {
  readonly modelVersion: string;
  readonly dim: number;
  readonly index: VectorIndex;
  /** The saved index directory. */
  readonly dir: string;
  /** Upserts of this version since the index file was saved. */
  readonly journalFile: string;
  /** True when the index came from an existing file, false when it was built at this load. */
  readonly loadedFromFile: boolean;
  /** Where the index came from: INDEX_DIR, the bundle's prebuilt index, or built at this load. */
  readonly source: "index-dir" | "bundle" | "built";
  /** Records in the journal (replayed + appended since). */
  journaled: number;
}

/** One upsert journal record. */
interface UpsertRecord {
  readonly id: string;
  readonly vector: readonly number[];
}

interface BundleHead {
  readonly modelVersion: string;
  readonly dim: number;
}

async function readBundleHead(bundleDir: string): Promise<BundleHead> {
  const file = join(bundleDir, "manifest.json");
  let manifest: { modelVersion?: unknown; dim?: unknown };
  try {
    // Parsed off the event loop: at 1M items the manifest is 17.8 MB (~0.5 s of JSON.parse).
    manifest = (await readJsonFile(file, { keep: ["modelVersion", "dim"] })) as typeof manifest;
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  const { modelVersion, dim } = manifest;
  if (typeof modelVersion !== "string" || modelVersion === "") throw new Error(`${file} has no "modelVersion" string`);
  if (typeof dim !== "number" || !Number.isInteger(dim) || dim < 1) throw new Error(`${file} has no valid "dim"`);
  return { modelVersion, dim };
}

/** The compiled worker script (next to this file in dist/; from src/ under vitest, the dist/ copy). */
function buildWorkerPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const sibling = join(here, "build-worker.js");
  return existsSync(sibling) ? sibling : join(here, "..", "dist", "build-worker.js");
}

export function runBuildWorker(job: BuildJob): Promise<number> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(buildWorkerPath(), { workerData: job });
    let size: number | undefined;
    worker.once("message", (message: { size: number }) => (size = message.size));
    worker.once("error", reject);
    worker.once("exit", (code) => {
      if (size !== undefined) resolve(size);
      else reject(new Error(`index build worker exited with code ${code} without a result`));
    });
  });
}

/** Moves the freshly saved `tmp` to `dir`, replacing an older index there. */
async function install(tmp: string, dir: string): Promise<void> {
  try {
    await rename(tmp, dir);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOTEMPTY" && code !== "EEXIST") throw error;
  }
  const old = `${dir}.old-${process.pid}-${Date.now().toString(36)}`;
  await rename(dir, old);
  await rename(tmp, dir);
  await rm(old, { recursive: true, force: true });
}

/** The saved index at `dir` if it exists and matches the settings; undefined means "build it". */
async function tryLoad(dir: string, head: BundleHead, settings: ShardIndexSettings): Promise<VectorIndex | undefined> {
  const { logger } = settings;
  if (!existsSync(join(dir, META_FILE))) return undefined;
  let index: VectorIndex;
  try {
    index = await loadIndex(dir, { expectedModelVersion: head.modelVersion, expectedDim: head.dim });
  } catch (error) {
    if (!(error instanceof AnnError)) throw error;
    logger.warn({ err: error, dir }, "saved index unusable: rebuilding it from the bundle");
    return undefined;
  }
  if (index.kind !== settings.kind) {
    logger.warn({ dir, saved: index.kind, wanted: settings.kind }, "saved index is of another INDEX_KIND: rebuilding it");
    return undefined;
  }
  if (index instanceof HnswIndex) {
    if (index.M !== settings.M || index.efConstruction !== settings.efConstruction) {
      logger.warn(
        {
          dir,
          saved: { M: index.M, efConstruction: index.efConstruction },
          wanted: { M: settings.M, efConstruction: settings.efConstruction },
        },
        "saved index was built with other HNSW parameters: rebuilding it",
      );
      return undefined;
    }
    index.ef = settings.ef;
  }
  return index;
}

async function build(bundleDir: string, head: BundleHead, dir: string, settings: ShardIndexSettings): Promise<void> {
  const { logger, shard, shardCount } = settings;
  const started = performance.now();
  // Loaded lazily: a server whose index is on disk never needs the model code (nor tfjs).
  const [{ loadBundle }, { initBackend }] = await Promise.all([import("@recsys/candidate-gen"), import("@recsys/tf")]);
  await initBackend({
    ...(settings.tfBackend === undefined ? {} : { backend: settings.tfBackend }),
    log: ({ level: _level, msg, ...fields }) => logger.info(fields, String(msg)),
  });
  const bundle = await loadBundle(bundleDir);
  let items;
  try {
    if (bundle.manifest.modelVersion !== head.modelVersion) {
      throw new Error(`the bundle at ${bundleDir} changed while loading (${head.modelVersion} -> ${bundle.manifest.modelVersion})`);
    }
    items = shardItems({ ids: bundle.itemIds, vectors: bundle.itemEmbeddings, dim: bundle.dim }, shard, shardCount);
  } finally {
    bundle.dispose();
  }
  await mkdir(dirname(dir), { recursive: true });
  const tmp = `${dirname(dir)}/.tmp-${shardTag(shard, shardCount)}-${process.pid}-${Date.now().toString(36)}`;
  try {
    const size = await runBuildWorker({
      ids: items.ids,
      vectors: items.vectors,
      dim: items.dim,
      kind: settings.kind,
      modelVersion: head.modelVersion,
      annotations: { shard: shardTag(shard, shardCount), bundle: bundleDir },
      M: settings.M,
      efConstruction: settings.efConstruction,
      ef: settings.ef,
      dir: tmp,
    });
    await install(tmp, dir);
    logger.info(
      {
        dir,
        items: size,
        catalogue: bundle.itemIds.length,
        kind: settings.kind,
        seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
      },
      "index built from the bundle and saved",
    );
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Copies the bundle's prebuilt index of this shard into `dir` (INDEX_DIR, where compactions save
 * and journals refer to) when the bundle has one; false when it has none. The caller loads `dir`
 * with the usual checks (model version, dimension, kind, HNSW parameters) and builds when they fail.
 */
async function copyPrebuilt(bundleDir: string, dir: string, settings: ShardIndexSettings): Promise<boolean> {
  const { logger, shard, shardCount } = settings;
  const prebuilt = bundleIndexPath(bundleDir, shard, shardCount);
  if (!existsSync(join(prebuilt, META_FILE))) return false;
  const started = performance.now();
  await mkdir(dirname(dir), { recursive: true });
  const tmp = `${dirname(dir)}/.tmp-${shardTag(shard, shardCount)}-${process.pid}-${Date.now().toString(36)}`;
  try {
    await cp(prebuilt, tmp, { recursive: true });
    await install(tmp, dir);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  logger.info(
    { from: prebuilt, dir, seconds: Number(((performance.now() - started) / 1000).toFixed(3)) },
    "prebuilt index copied from the bundle",
  );
  return true;
}

function isUpsertRecord(value: unknown): value is UpsertRecord {
  const record = value as Partial<UpsertRecord> | null;
  return typeof record === "object" && record !== null && typeof record.id === "string" && Array.isArray(record.vector);
}

/** Loads or builds the index of the bundle at `bundleDir` (see the module comment). */
export async function openShardIndex(bundleDir: string, settings: ShardIndexSettings, denied: DenyList): Promise<ShardIndex> {
  const { logger, indexDir, shard, shardCount } = settings;
  const started = performance.now();
  const head = await readBundleHead(bundleDir);
  const dir = indexPath(indexDir, head.modelVersion, shard, shardCount);
  let index = await tryLoad(dir, head, settings);
  let source: ShardIndex["source"] = "index-dir";
  if (index === undefined && (await copyPrebuilt(bundleDir, dir, settings))) {
    index = await tryLoad(dir, head, settings);
    source = "bundle";
  }
  const loadedFromFile = index !== undefined;
  if (index === undefined) {
    source = "built";
    await build(bundleDir, head, dir, settings);
    index = await tryLoad(dir, head, settings);
    if (index === undefined) throw new Error(`the index just built in ${dir} cannot be loaded`);
  } else {
    logger.info(
      { dir, items: index.size(), kind: index.kind, source },
      source === "bundle" ? "index loaded from the bundle's prebuilt file" : "index loaded from file",
    );
  }

  const journalFile = journalPath(indexDir, head.modelVersion, shard, shardCount);
  const records = await readJsonLines(journalFile, logger);
  records.forEach((record, i) => {
    if (!isUpsertRecord(record)) throw new Error(`${journalFile}: record ${i + 1} is not {"id":...,"vector":[...]}`);
    try {
      index.upsert(record.id, record.vector);
    } catch (error) {
      throw new Error(`${journalFile}: record ${i + 1}: ${(error as Error).message}`, { cause: error });
    }
  });
  let removed = 0;
  for (const id of denied.values()) if (index.remove(id)) removed++;
  const shardIndex: ShardIndex = {
    modelVersion: head.modelVersion,
    dim: head.dim,
    index,
    dir,
    journalFile,
    loadedFromFile,
    source,
    journaled: records.length,
  };
  logger.info(
    {
      modelVersion: head.modelVersion,
      shard: shardTag(shard, shardCount),
      items: index.size(),
      loadedFromFile,
      journalReplayed: records.length,
      deletedRemoved: removed,
      seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
    },
    "index ready",
  );
  return shardIndex;
}

/** Saves the index in place (atomic, see @recsys/ann) and empties its journal. */
export async function compactShardIndex(shardIndex: ShardIndex, logger: Logger): Promise<void> {
  await shardIndex.index.save(shardIndex.dir);
  await emptyFile(shardIndex.journalFile);
  const journaled = shardIndex.journaled;
  shardIndex.journaled = 0;
  logger.info({ dir: shardIndex.dir, items: shardIndex.index.size(), journaled }, "index re-saved, upsert journal emptied");
}
