import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, rename, stat, unlink, writeFile } from "node:fs/promises";
import { statSync } from "node:fs";
import { join, resolve } from "node:path";
import { IndexFormatError, ModelVersionMismatchError } from "./errors.js";
import type { IndexKind } from "./vector-index.js";
import { MAX_DIM, MAX_ID_LENGTH } from "./vector-index.js";
import { describeJsonFileError, Float32FileSizeError, readFloat32File, readJsonFile } from "@recsys/data";

/**
 * On-disk layout of a saved index directory:
 *
 *   index.json           metadata (this file is the commit point: written last, renamed atomically)
 *   <prefix>-<token>.bin the data file named by index.json's "file" ("hnsw-…" = hnswlib's own
 *                        binary format; "vectors-…" = raw little-endian float32 rows)
 *   head-<token>.bin     HNSW with an exact head only: the head's raw little-endian float32 rows,
 *                        named by index.json's "head.file"
 *
 * A save writes fresh data files under new names, then replaces index.json with a rename, then
 * deletes older data files. A crash at any point leaves either the old or the new index loadable.
 * One process should save into a given directory at a time.
 *
 * Format versions: 2 added the optional "head" of HNSW indexes (the norm split, see HnswIndex).
 * A version-1 brute-force directory is still read (its layout did not change); a version-1 HNSW
 * directory is refused with IndexFormatError (it is a single graph with the high-norm items
 * inside: rebuild it).
 */
export const META_FILE = "index.json";
export const INDEX_FORMAT = "recsys-ann-index";
export const FORMAT_VERSION = 2;
/** Entries a load handles between two yields to the event loop (indexes load while serving). */
export const LOAD_SLICE = 50_000;

export type DataPrefix = "hnsw" | "vectors" | "head";

const DATA_FILE = /^(hnsw|vectors|head)-[0-9a-z-]+\.bin$/;
const TMP_META = /^index\.json\.[0-9a-z-]+\.tmp$/;

export interface IndexMetadata {
  readonly format: typeof INDEX_FORMAT;
  readonly formatVersion: number;
  readonly kind: IndexKind;
  /** Always "inner_product": scores are dot products. */
  readonly metric: "inner_product";
  readonly dim: number;
  /** Version of the model whose item tower produced the vectors. */
  readonly modelVersion: string;
  /** Free-form string annotations given at construction (e.g. training run, dataset). */
  readonly annotations: Readonly<Record<string, string>>;
  readonly savedAt: string;
  /** Number of live items (graph labels + head, for HNSW with a head). */
  readonly size: number;
  /** Data file name (in the same directory) and its exact size in bytes. */
  readonly file: string;
  readonly fileBytes: number;
  /**
   * Label → external id. For "hnsw" the label is hnswlib's label; `null` marks a deleted label
   * (marked deleted in the hnswlib file and free for reuse), so the nulls are the deleted set.
   * For "brute-force" it is the row of the vector in the data file (never null).
   */
  readonly labels: readonly (string | null)[];
  /** Kind-specific options (HNSW: M, efConstruction, ef, seed, maxElements, normBound). */
  readonly options: Readonly<Record<string, number | null>>;
  /**
   * HNSW only, present iff the index keeps an exact head (items of norm > normBound, out of the
   * graph): the file of its raw little-endian float32 rows (row i = labels[i]) and their ids.
   */
  readonly head?: IndexHeadMetadata;
}

export interface IndexHeadMetadata {
  readonly file: string;
  readonly fileBytes: number;
  readonly labels: readonly string[];
}

/** One data file of a save: its name prefix and a synchronous writer. */
export interface DataFileWriter {
  readonly prefix: DataPrefix;
  readonly write: (path: string) => void;
}

/** A data file as written: its name (in the index directory) and size in bytes. */
export interface WrittenDataFile {
  readonly file: string;
  readonly fileBytes: number;
}

export interface LoadOptions {
  /** Refuse (ModelVersionMismatchError) an index built from another model version. */
  readonly expectedModelVersion?: string;
  /** Refuse (IndexFormatError) an index of another dimension. */
  readonly expectedDim?: number;
}

/**
 * Reads a data file of `rows` × `dim` raw little-endian float32 values (a brute-force index's
 * vectors, an HNSW index's exact head) into `into` (default: a new array). IndexFormatError when
 * it cannot be read, has another size or holds a non-finite value.
 */
export async function readFloat32Rows(path: string, rows: number, dim: number, into?: Float32Array): Promise<Float32Array> {
  let out: Float32Array;
  try {
    out = await readFloat32File(path, rows * dim, into);
  } catch (err) {
    if (err instanceof Float32FileSizeError) {
      throw new IndexFormatError(`${path} has ${err.bytes} bytes, expected ${rows}×${dim} float32 values`);
    }
    throw new IndexFormatError(`cannot read data file ${path}: ${(err as Error).message}`, { cause: err });
  }
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) throw new IndexFormatError(`${path}: non-finite value at row ${Math.floor(i / dim)}`);
  }
  return out;
}

/** Saves in progress per directory (within this process), so that two saves never interleave. */
const savesInProgress = new Map<string, Promise<void>>();

/**
 * Saves an index: every writer must write its data file synchronously and `metadataFor` (given
 * the written files in the order of `writers`) must be synchronous too, so that no mutation can
 * slip in between them and the set stays consistent. Saves into the same directory from this
 * process run one after the other.
 */
export async function saveIndexFiles(
  dir: string,
  writers: readonly DataFileWriter[],
  metadataFor: (files: readonly WrittenDataFile[]) => IndexMetadata,
): Promise<void> {
  const key = resolve(dir);
  const previous = savesInProgress.get(key) ?? Promise.resolve();
  const current = previous.catch(() => {}).then(() => saveNow(dir, writers, metadataFor));
  savesInProgress.set(key, current);
  try {
    await current;
  } finally {
    if (savesInProgress.get(key) === current) savesInProgress.delete(key);
  }
}

async function saveNow(
  dir: string,
  writers: readonly DataFileWriter[],
  metadataFor: (files: readonly WrittenDataFile[]) => IndexMetadata,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const token = `${Date.now().toString(36)}-${randomBytes(6).toString("hex")}`;
  const written: WrittenDataFile[] = [];
  // Synchronous from the first write to the metadata: no mutation can interleave.
  for (const { prefix, write } of writers) {
    const file = `${prefix}-${token}.bin`;
    const path = join(dir, file);
    write(path);
    written.push({ file, fileBytes: statSync(path).size });
  }
  const json = JSON.stringify(metadataFor(written));
  for (const { file } of written) await fsyncPath(join(dir, file));
  const tmp = join(dir, `${META_FILE}.${token}.tmp`);
  await writeFile(tmp, json);
  await fsyncPath(tmp);
  await rename(tmp, join(dir, META_FILE));
  await fsyncPath(dir);
  const keep = new Set(written.map((w) => w.file));
  for (const name of await readdir(dir)) {
    if (!keep.has(name) && (DATA_FILE.test(name) || TMP_META.test(name))) {
      await unlink(join(dir, name)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "ENOENT") throw err;
      });
    }
  }
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Reads and checks index.json of `dir`; returns it with the absolute paths of its data file and,
 * when it has one, of its head file.
 */
export async function readIndexMetadata(
  dir: string,
  options: LoadOptions = {},
): Promise<{ meta: IndexMetadata; dataPath: string; headPath: string | undefined }> {
  const metaPath = join(dir, META_FILE);
  let raw: unknown;
  try {
    // Off the event loop, the labels rebuilt in slices: they are every id of the index (8.9 MB
    // of JSON at 1M items), and a serving process loads an index while it serves.
    raw = await readJsonFile(metaPath, { strings: ["labels", "head.labels"] });
  } catch (err) {
    throw new IndexFormatError(describeJsonFileError(metaPath, err), { cause: err });
  }
  const meta = checkMetadata(raw, metaPath);
  if (options.expectedDim !== undefined && meta.dim !== options.expectedDim) {
    throw new IndexFormatError(`${metaPath}: index has dimension ${meta.dim}, expected ${options.expectedDim}`);
  }
  if (options.expectedModelVersion !== undefined && meta.modelVersion !== options.expectedModelVersion) {
    throw new ModelVersionMismatchError(options.expectedModelVersion, meta.modelVersion);
  }
  const dataPath = join(dir, meta.file);
  await checkDataFile(dataPath, meta.fileBytes);
  let headPath: string | undefined;
  if (meta.head !== undefined) {
    headPath = join(dir, meta.head.file);
    await checkDataFile(headPath, meta.head.fileBytes);
  }
  return { meta, dataPath, headPath };
}

async function checkDataFile(path: string, expectedBytes: number): Promise<void> {
  let bytes: number;
  try {
    bytes = (await stat(path)).size;
  } catch (err) {
    throw new IndexFormatError(`cannot read data file ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (bytes !== expectedBytes) {
    throw new IndexFormatError(`data file ${path} has ${bytes} bytes, index.json says ${expectedBytes}`);
  }
}

function checkMetadata(raw: unknown, where: string): IndexMetadata {
  const fail = (what: string): never => {
    throw new IndexFormatError(`${where}: ${what}`);
  };
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return fail("not a JSON object");
  const m = raw as Record<string, unknown>;
  if (m.format !== INDEX_FORMAT) return fail(`"format" is ${JSON.stringify(m.format)}, expected "${INDEX_FORMAT}"`);
  if (m.formatVersion === 1 && m.kind === "hnsw") {
    return fail(
      "formatVersion 1 HNSW index (one graph with the high-norm items inside, no exact head): " +
        `this build reads HNSW indexes of formatVersion ${FORMAT_VERSION} only, rebuild it`,
    );
  }
  if (m.formatVersion !== FORMAT_VERSION && m.formatVersion !== 1) {
    return fail(`unsupported formatVersion ${JSON.stringify(m.formatVersion)} (this build reads ${FORMAT_VERSION})`);
  }
  if (m.kind !== "hnsw" && m.kind !== "brute-force") return fail(`unknown kind ${JSON.stringify(m.kind)}`);
  if (m.metric !== "inner_product") return fail(`unsupported metric ${JSON.stringify(m.metric)}`);
  if (!Number.isInteger(m.dim) || (m.dim as number) < 1 || (m.dim as number) > MAX_DIM) return fail("bad dim");
  if (typeof m.modelVersion !== "string" || m.modelVersion.length === 0) return fail("missing modelVersion");
  if (typeof m.file !== "string" || !DATA_FILE.test(m.file)) return fail(`bad data file name ${JSON.stringify(m.file)}`);
  if (!Number.isSafeInteger(m.fileBytes) || (m.fileBytes as number) < 0) return fail("bad fileBytes");
  if (!Number.isSafeInteger(m.size) || (m.size as number) < 0) return fail("bad size");
  if (typeof m.savedAt !== "string") return fail("missing savedAt");
  if (!Array.isArray(m.labels)) return fail("labels is not an array");
  let live = 0;
  for (const label of m.labels as unknown[]) {
    if (label === null) continue;
    if (typeof label !== "string" || label.length === 0 || label.length > MAX_ID_LENGTH) return fail("bad id in labels");
    live++;
  }
  if (m.head !== undefined) {
    if (m.kind !== "hnsw") return fail("only an hnsw index has a head");
    const head = m.head as Record<string, unknown> | null;
    if (head === null || typeof head !== "object" || Array.isArray(head)) return fail("bad head");
    if (typeof head.file !== "string" || !DATA_FILE.test(head.file)) return fail(`bad head file name ${JSON.stringify(head.file)}`);
    if (head.file === m.file) return fail("head file is the data file");
    if (!Number.isSafeInteger(head.fileBytes) || (head.fileBytes as number) < 0) return fail("bad head fileBytes");
    if (!Array.isArray(head.labels)) return fail("head labels is not an array");
    for (const label of head.labels as unknown[]) {
      if (typeof label !== "string" || label.length === 0 || label.length > MAX_ID_LENGTH) return fail("bad id in head labels");
      live++;
    }
  }
  if (live !== m.size) return fail(`labels hold ${live} ids but size is ${String(m.size)}`);
  if (!isStringRecord(m.annotations)) return fail("annotations must be an object of strings");
  if (m.options === null || typeof m.options !== "object" || Array.isArray(m.options)) return fail("bad options");
  for (const v of Object.values(m.options)) if (typeof v !== "number" && v !== null) return fail("options must be numbers");
  return m as unknown as IndexMetadata;
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return v !== null && typeof v === "object" && !Array.isArray(v) && Object.values(v).every((x) => typeof x === "string");
}
