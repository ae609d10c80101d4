/**
 * Reading large JSON files (model manifests that carry a million item ids) without stalling the
 * event loop of a serving process: `JSON.parse` of the 17.8 MB candidate-generation manifest at
 * 1M items held the loop for ~0.5 s, in every stage that reloads a model.
 *
 * `readJsonFile` reads and parses the file in a worker thread and sends back the value with the
 * string arrays named in `strings` taken out of it and joined into one string each: one string
 * crosses threads as one copy, where a million small strings are cloned (and allocated on this
 * thread) one by one, which held the loop for ~0.2 s. They are split again here in slices
 * (`SLICE` entries), and the event loop runs between the slices. Entries may be null (labels of
 * deleted items); an array holding the separator or anything else comes back as is (cloned).
 * `keep` names the top-level keys wanted: the others are dropped in the worker. `numbers` turns
 * arrays of numbers into typed arrays there (float64: null becomes NaN; int32: only when every
 * value fits), moved to this thread without a copy.
 */
import { Worker } from "node:worker_threads";

/** Entries per slice of the work done on the calling thread (splitting, indexing). */
const SLICE = 50_000;
/** Joins the strings of an array in the worker (an array with a string holding it is cloned instead). */
const SEPARATOR = "\u0000";

/** The worker: CommonJS source run with `eval`, so that it works from src/ (vitest) and dist/. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { readFileSync } = require("node:fs");
const SEPARATOR = ${JSON.stringify(SEPARATOR)};
let step = "read";
try {
  const text = readFileSync(workerData.file, "utf8");
  step = "parse";
  let value = JSON.parse(text);
  step = "extract";
  if (workerData.keep !== undefined && value !== null && typeof value === "object" && !Array.isArray(value)) {
    const kept = {};
    for (const key of workerData.keep) if (key in value) kept[key] = value[key];
    value = kept;
  }
  // The array at a dotted path and its parent object, or no list.
  const locate = (path) => {
    const keys = path.split(".");
    let parent = value;
    for (const key of keys.slice(0, -1)) parent = parent !== null && typeof parent === "object" ? parent[key] : undefined;
    const last = keys[keys.length - 1];
    const list = parent !== null && typeof parent === "object" ? parent[last] : undefined;
    return { parent, last, list };
  };
  const joined = {};
  for (const path of workerData.strings) {
    const { parent, last, list } = locate(path);
    if (!Array.isArray(list) || !list.every((s) => s === null || (typeof s === "string" && !s.includes(SEPARATOR)))) continue;
    const nulls = [];
    list.forEach((s, i) => { if (s === null) nulls.push(i); });
    joined[path] = { count: list.length, text: list.join(SEPARATOR), nulls };
    parent[last] = [];
  }
  const transfer = [];
  for (const [path, kind] of Object.entries(workerData.numbers)) {
    const { parent, last, list } = locate(path);
    if (!Array.isArray(list) || !list.every((v) => typeof v === "number" || (v === null && kind === "float64"))) continue;
    const typed = kind === "float64" ? Float64Array.from(list, (v) => (v === null ? NaN : v)) : Int32Array.from(list);
    if (kind === "int32" && !typed.every((v, i) => v === list[i])) continue;
    parent[last] = typed;
    transfer.push(typed.buffer);
  }
  parentPort.postMessage({ ok: true, value, joined }, transfer);
} catch (error) {
  parentPort.postMessage({ ok: false, step, message: error instanceof Error ? error.message : String(error) });
}
`;

/** Yield to the event loop (timers and I/O run before this resolves). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** `text.split(separator)` in slices of `SLICE` entries, yielding between them. */
async function splitInSlices(text: string, count: number, nulls: readonly number[]): Promise<(string | null)[]> {
  const out = new Array<string | null>(count);
  if (count === 0) return out;
  let start = 0;
  for (let i = 0; i < count; i++) {
    const end = i === count - 1 ? text.length : text.indexOf(SEPARATOR, start);
    out[i] = text.slice(start, end);
    start = end + 1;
    if ((i + 1) % SLICE === 0) await yieldToEventLoop();
  }
  for (const i of nulls) out[i] = null;
  return out;
}

function setPath(value: unknown, path: string, list: (string | null)[]): void {
  const keys = path.split(".");
  let parent = value as Record<string, unknown>;
  for (const key of keys.slice(0, -1)) parent = parent[key] as Record<string, unknown>;
  parent[keys[keys.length - 1]!] = list;
}

export interface ReadJsonOptions {
  /** Dotted paths (e.g. "features.items.tokens") of string arrays rebuilt here in slices. */
  readonly strings?: readonly string[];
  /** The top-level keys wanted (default: all). */
  readonly keep?: readonly string[];
  /** Dotted paths of number arrays returned as Float64Array / Int32Array. */
  readonly numbers?: Readonly<Record<string, "float64" | "int32">>;
}

type WorkerResult =
  | { ok: true; value: unknown; joined: Record<string, { count: number; text: string; nulls: number[] }> }
  | { ok: false; step: JsonFileError["step"]; message: string };

/** `readJsonFile` failed: reading the file, parsing it, or taking the fields out. */
export class JsonFileError extends Error {
  override readonly name = "JsonFileError";
  constructor(
    readonly step: "read" | "parse" | "extract",
    message: string,
  ) {
    super(message);
  }
}

/** "`file` is not valid JSON: …" when `error` is a parse failure of readJsonFile, else "cannot read `file`: …". */
export function describeJsonFileError(file: string, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return error instanceof JsonFileError && error.step === "parse"
    ? `${file} is not valid JSON: ${message}`
    : `cannot read ${file}: ${message}`;
}

/**
 * The parsed JSON of `file`, read and parsed in a worker thread (see the module comment).
 * Rejects with a JsonFileError carrying the file system's or the parser's message.
 */
export async function readJsonFile(file: string, options: ReadJsonOptions = {}): Promise<unknown> {
  const strings = options.strings ?? [];
  const result = await new Promise<WorkerResult>((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { file, strings, keep: options.keep, numbers: options.numbers ?? {} },
    });
    worker.once("message", (message) => {
      resolve(message);
      void worker.terminate();
    });
    worker.once("error", reject);
    // A worker that ends without a word (out of memory, say): after a message this is a no-op.
    worker.once("exit", (code) => reject(new JsonFileError("read", `the worker reading ${file} exited (code ${code}) without an answer`)));
  });
  if (!result.ok) throw new JsonFileError(result.step, result.message);
  for (const [path, { count, text, nulls }] of Object.entries(result.joined)) {
    setPath(result.value, path, await splitInSlices(text, count, nulls));
  }
  return result.value;
}

export interface IndexOptions {
  /** The position of `ids[0]` (default 0; a vocabulary whose id 0 is out-of-vocabulary uses 1). */
  readonly base?: number;
  /** When given, a repeated id throws what this returns; otherwise its first position is kept. */
  readonly duplicate?: (id: string) => Error;
}

/**
 * id → position of `ids`, built `SLICE` ids at a time with a yield to the event loop between
 * slices: serving stages index a million item ids while they serve (~0.1-0.2 s in one piece).
 */
export async function indexInSlices(ids: readonly string[], options: IndexOptions = {}): Promise<Map<string, number>> {
  const base = options.base ?? 0;
  const index = new Map<string, number>();
  for (let i = 0; i < ids.length; i++) {
    if (i > 0 && i % SLICE === 0) await yieldToEventLoop();
    const id = ids[i]!;
    if (index.has(id)) {
      if (options.duplicate !== undefined) throw options.duplicate(id);
      continue;
    }
    index.set(id, base + i);
  }
  return index;
}
