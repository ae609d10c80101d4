/**
 * The one TensorFlow.js instance every package uses, and the choice of its backend.
 *
 * `initBackend()` picks the fastest backend available in this process, in order:
 *   1. `@tensorflow/tfjs-node-gpu` (native TensorFlow with CUDA), if installed;
 *   2. `@tensorflow/tfjs-node` (native TensorFlow on CPU), if installed;
 *   3. `wasm` (@tensorflow/tfjs-backend-wasm: XNNPACK kernels, SIMD when the runtime has it;
 *      single-threaded by default, multi-threaded with `RECSYS_TF_WASM_THREADS=N`, see below);
 *   4. `cpu` (plain JavaScript kernels; very slow for training).
 * The native packages are optional: their install script downloads libtensorflow, so they are not
 * dependencies of this package. Set `RECSYS_TF_BACKEND` to one of `node-gpu`, `node`, `wasm`,
 * `cpu` to force a backend (startup fails with a clear message if it cannot be loaded).
 * The choice is logged once as a JSON line on stderr.
 *
 * Multi-threaded wasm kernels (`wasmThreads` / `RECSYS_TF_WASM_THREADS`, default 1). tfjs ships
 * the threaded SIMD build (tfjs-backend-wasm-threaded-simd.wasm) but never loads it under Node,
 * for three reasons found in tfjs-backend-wasm 4.22:
 *   - its WASM_HAS_MULTITHREAD_SUPPORT flag returns false whenever IS_NODE (tfjs issue 3830);
 *   - the emscripten pthread workers are started from a Blob URL (`URL.createObjectURL`), which
 *     Node's worker_threads cannot load, and the worker imports the main script from a Blob too;
 *   - XNNPACK's pool is capped at `os.cpus().length / 2` threads ("2 threads per core"): 1 on a
 *     2-vCPU machine whatever setThreadsCount asks.
 * With wasmThreads > 1 this module sets the flag, writes the pthread worker script (the package's
 * own, plus a line that points its "load" message at the package's threaded factory file) to a
 * temporary file that Node can start, answers tfjs's Blob URL request for it with that path, and
 * reports os.cpus() as 2 × wasmThreads while the backend initialises. Emscripten's glue already
 * supports worker_threads: nothing else is changed.
 */
import * as tf from "@tensorflow/tfjs";
import { getThreadsCount, setThreadsCount, setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { dirname, join } from "node:path";

export { tf };

export type BackendChoice = "node-gpu" | "node" | "wasm" | "cpu";
export const BACKEND_CHOICES: readonly BackendChoice[] = ["node-gpu", "node", "wasm", "cpu"];

export interface BackendInfo {
  /** The choice that was loaded ("node-gpu", "node", "wasm" or "cpu"). */
  readonly name: BackendChoice;
  /** The tfjs backend name (`tf.getBackend()`): "tensorflow", "wasm" or "cpu". */
  readonly tfBackend: string;
  /** wasm only: whether the SIMD build was loaded. */
  readonly simd?: boolean;
  /** wasm only: whether the multi-threaded build was loaded (only with wasmThreads > 1). */
  readonly threads?: boolean;
  /** wasm only: threads of XNNPACK's pool (1 unless wasmThreads > 1). */
  readonly wasmThreads?: number;
}

export interface InitBackendOptions {
  /** Force a backend (otherwise `RECSYS_TF_BACKEND`, otherwise the fastest available). */
  readonly backend?: BackendChoice;
  /** wasm: kernel threads (default $RECSYS_TF_WASM_THREADS, else 1: the single-threaded SIMD build). */
  readonly wasmThreads?: number;
  /** Where the choice is reported; default one JSON line on stderr. `null` to stay quiet. */
  readonly log?: ((line: Record<string, unknown>) => void) | null;
}

let initialised: Promise<BackendInfo> | undefined;

/** Parses RECSYS_TF_BACKEND (or another value); throws naming the accepted values. */
export function parseBackendChoice(value: string, source = "RECSYS_TF_BACKEND"): BackendChoice {
  const v = value.trim().toLowerCase();
  const aliases: Record<string, BackendChoice> = { tensorflow: "node", "tfjs-node": "node", "tfjs-node-gpu": "node-gpu", gpu: "node-gpu" };
  const choice = (BACKEND_CHOICES as readonly string[]).includes(v) ? (v as BackendChoice) : aliases[v];
  if (choice === undefined) throw new Error(`${source}="${value}" is not a backend; use one of ${BACKEND_CHOICES.join(", ")}`);
  return choice;
}

/** Imports a module that may be absent, without TypeScript resolving it at build time. */
async function importOptional(name: string): Promise<boolean> {
  try {
    await import(name);
    return true;
  } catch {
    return false;
  }
}

async function tryNative(pkg: string): Promise<boolean> {
  if (!(await importOptional(pkg))) return false;
  // Both native packages register the backend "tensorflow" on import.
  return tf.setBackend("tensorflow");
}

/** Parses RECSYS_TF_WASM_THREADS (or another value): an integer from 1 to 8. */
export function parseWasmThreads(value: string, source = "RECSYS_TF_WASM_THREADS"): number {
  const n = Number(value.trim());
  if (!Number.isInteger(n) || n < 1 || n > 8)
    throw new Error(`${source}="${value}" must be an integer from 1 to 8 (tfjs starts 8 pthread workers at most)`);
  return n;
}

/** The threaded build's pthread worker, started by Node from a file (see the module comment). */
function prepareThreadedWorker(distDir: string): void {
  const req = createRequire(import.meta.url);
  const outDir = join(distDir, "..", "wasm-out");
  const { wasmWorkerContents } = req(join(outDir, "tfjs-backend-wasm-threaded-simd.worker.js")) as { wasmWorkerContents: string };
  const factory = join(outDir, "tfjs-backend-wasm-threaded-simd.js");
  const dir = mkdtempSync(join(os.tmpdir(), "recsys-tfjs-wasm-"));
  const workerPath = join(dir, "worker.cjs");
  // The contents are a template literal: its "\n" escapes became line breaks (tfjs re-escapes them too).
  const redirect = `;(() => { const handle = self.onmessage; self.onmessage = (e) => { if (e.data && e.data.cmd === "load" && typeof e.data.urlOrBlob !== "string") e.data.urlOrBlob = ${JSON.stringify(factory)}; return handle(e); }; })();`;
  writeFileSync(workerPath, `${wasmWorkerContents.replace(/\n/g, "\\n")}\n${redirect}\n`);
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const createObjectURL = URL.createObjectURL.bind(URL);
  // tfjs asks for the worker script as a Blob of type application/javascript; nothing else does here.
  URL.createObjectURL = (obj: Blob) => (obj instanceof Blob && obj.type === "application/javascript" ? workerPath : createObjectURL(obj));
}

/**
 * XNNPACK's pool threads live as long as the process and emscripten keeps a reference on the
 * worker of every running pthread, so the process would never exit on its own: drop those.
 */
function unrefPoolWorkers(): void {
  const module = (
    tf.backend() as unknown as { wasm?: { PThread?: { runningWorkers?: { unref(): void }[]; unusedWorkers?: { unref(): void }[] } } }
  ).wasm;
  const pool = module?.PThread;
  for (const w of [...(pool?.runningWorkers ?? []), ...(pool?.unusedWorkers ?? [])]) w.unref();
}

async function tryWasm(wasmThreads: number): Promise<{ simd: boolean; threads: boolean; wasmThreads: number } | null> {
  const cpus = os.cpus;
  try {
    // Under Node the binaries are read from the package's dist directory (a file path prefix).
    const main = createRequire(import.meta.url).resolve("@tensorflow/tfjs-backend-wasm");
    setWasmPaths(`${dirname(main)}/`);
    if (wasmThreads > 1) {
      prepareThreadedWorker(dirname(main));
      tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
      setThreadsCount(wasmThreads);
      // XNNPACK caps its pool at os.cpus().length / 2 when the module starts.
      const one = cpus()[0]!;
      os.cpus = () => new Array<os.CpuInfo>(2 * wasmThreads).fill(one);
    }
    if (!(await tf.setBackend("wasm"))) return null;
    await tf.ready();
    const simd = Boolean(await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT"));
    const threads = Boolean(await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT"));
    if (threads) unrefPoolWorkers();
    return { simd, threads, wasmThreads: getThreadsCount() };
  } catch {
    return null;
  } finally {
    os.cpus = cpus;
  }
}

async function load(choice: BackendChoice, wasmThreads: number): Promise<BackendInfo | null> {
  switch (choice) {
    case "node-gpu":
      return (await tryNative("@tensorflow/tfjs-node-gpu")) ? { name: choice, tfBackend: tf.getBackend() } : null;
    case "node":
      return (await tryNative("@tensorflow/tfjs-node")) ? { name: choice, tfBackend: tf.getBackend() } : null;
    case "wasm": {
      const w = await tryWasm(wasmThreads);
      return w === null ? null : { name: choice, tfBackend: tf.getBackend(), simd: w.simd, threads: w.threads, wasmThreads: w.wasmThreads };
    }
    case "cpu":
      return (await tf.setBackend("cpu")) ? { name: choice, tfBackend: tf.getBackend() } : null;
  }
}

async function choose(options: InitBackendOptions): Promise<BackendInfo> {
  const env = process.env["RECSYS_TF_BACKEND"];
  const forced = options.backend ?? (env !== undefined && env.trim() !== "" ? parseBackendChoice(env) : undefined);
  const threadsEnv = process.env["RECSYS_TF_WASM_THREADS"];
  const wasmThreads = options.wasmThreads ?? (threadsEnv !== undefined && threadsEnv.trim() !== "" ? parseWasmThreads(threadsEnv) : 1);
  if (!Number.isInteger(wasmThreads) || wasmThreads < 1 || wasmThreads > 8)
    throw new Error(`wasmThreads must be an integer from 1 to 8, got ${wasmThreads}`);
  if (forced !== undefined) {
    const info = await load(forced, wasmThreads);
    if (info === null) {
      const hint = forced === "node" || forced === "node-gpu" ? ` (is @tensorflow/tfjs-${forced} installed?)` : "";
      throw new Error(`tfjs backend "${forced}" was requested but could not be loaded${hint}`);
    }
    return info;
  }
  for (const choice of BACKEND_CHOICES) {
    const info = await load(choice, wasmThreads);
    if (info !== null) return info;
  }
  throw new Error("no tfjs backend could be loaded");
}

/**
 * Selects and initialises the backend once per process (later calls return the same result).
 * Also keeps tfjs from printing its "install the node backend" banner.
 */
export function initBackend(options: InitBackendOptions = {}): Promise<BackendInfo> {
  if (initialised === undefined) {
    initialised = (async () => {
      // Production mode: skips debug-only checks and the console banner tfjs prints under Node.
      tf.enableProdMode();
      const info = await choose(options);
      const log = options.log === undefined ? defaultLog : options.log;
      if (log !== null)
        log({
          level: "info",
          msg: "tfjs backend selected",
          backend: info.name,
          tfBackend: info.tfBackend,
          simd: info.simd,
          threads: info.threads,
          wasmThreads: info.wasmThreads,
        });
      return info;
    })();
    initialised.catch(() => {
      initialised = undefined;
    });
  }
  return initialised;
}

/**
 * Native single-precision GEMM (row-major) for the training step: C = α·op(A)·op(B) + β·C, op = transpose
 * when asked. Backed by the optional `nblas` package (CBLAS bindings, built against the system's
 * libblas; with Debian's libopenblas-dev that is OpenBLAS, whose kernels use the host's AVX2 /
 * AVX-512). tfjs-wasm's XNNPACK kernels are limited to 128-bit wasm SIMD without FMA.
 */
export interface Blas {
  readonly name: string;
  /** Threads the library uses (RECSYS_BLAS_THREADS, default 1). */
  readonly threads: number;
  sgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    lda: number,
    b: Float32Array,
    ldb: number,
    beta: number,
    c: Float32Array,
    ldc: number,
  ): void;
}

interface NblasModule {
  readonly NoTrans: number;
  readonly Trans: number;
  sgemm(
    transA: number,
    transB: number,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    lda: number,
    b: Float32Array,
    ldb: number,
    beta: number,
    c: Float32Array,
    ldc: number,
  ): void;
}

let blasLoaded: Blas | null | undefined;

/**
 * The native BLAS, or null when it is not installed or RECSYS_BLAS=off. RECSYS_BLAS=on makes a
 * missing one an error. Loaded once per process; OPENBLAS_NUM_THREADS is set from
 * RECSYS_BLAS_THREADS (default 1: the trainer's other work is single-threaded and an idle
 * OpenBLAS thread spins) unless already set.
 */
export function nativeBlas(): Blas | null {
  if (blasLoaded !== undefined) return blasLoaded;
  const mode = (process.env["RECSYS_BLAS"] ?? "auto").trim().toLowerCase();
  if (mode !== "auto" && mode !== "on" && mode !== "off") throw new Error(`RECSYS_BLAS="${mode}" must be auto, on or off`);
  if (mode === "off") return (blasLoaded = null);
  const threadsText = process.env["RECSYS_BLAS_THREADS"] ?? "1";
  const threads = Number(threadsText);
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`RECSYS_BLAS_THREADS="${threadsText}" must be a positive integer`);
  process.env["OPENBLAS_NUM_THREADS"] ??= String(threads);
  let nb: NblasModule;
  try {
    nb = createRequire(import.meta.url)("nblas") as NblasModule;
  } catch (err) {
    if (mode === "on")
      throw new Error(
        `RECSYS_BLAS=on but the native BLAS (the optional package nblas, built against libblas: apt-get install libopenblas-dev, then npm ci) could not be loaded: ${err instanceof Error ? err.message : String(err)}`,
      );
    return (blasLoaded = null);
  }
  const check = (name: string, x: Float32Array, rows: number, cols: number, ld: number): void => {
    // The binding does not check sizes: a short array would be read or written past its end.
    if (rows > 0 && cols > 0 && (ld < cols || x.length < (rows - 1) * ld + cols))
      throw new Error(`sgemm: ${name} (${x.length} floats, ld ${ld}) is smaller than ${rows}x${cols}`);
  };
  blasLoaded = {
    name: "nblas",
    threads: Number(process.env["OPENBLAS_NUM_THREADS"]) || threads,
    sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) {
      if (![m, n, k, lda, ldb, ldc].every((v) => Number.isInteger(v) && v >= 0))
        throw new Error("sgemm: sizes must be non-negative integers");
      check("A", a, transA ? k : m, transA ? m : k, lda);
      check("B", b, transB ? n : k, transB ? k : n, ldb);
      check("C", c, m, n, ldc);
      if (m === 0 || n === 0) return;
      nb.sgemm(transA ? nb.Trans : nb.NoTrans, transB ? nb.Trans : nb.NoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    },
  };
  return blasLoaded;
}

function defaultLog(line: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ time: Date.now(), ...line })}\n`);
}

/**
 * A variable holding `init`, which is disposed. tf.variable shares the initial tensor's data and
 * leaves that tensor alive, so a variable made from a temporary tensor keeps its data after the
 * variable's own dispose(): every model load or training run leaked its initial weights.
 */
export function variableFrom(init: tf.Tensor, name?: string, trainable = true): tf.Variable {
  const v = tf.variable(init, trainable, name);
  init.dispose();
  return v;
}

/**
 * Gives `variable` the value of `value` and disposes `value`. Variable.assign takes a reference
 * to the new value's data and leaves the tensor itself alive: a tensor made only to be assigned
 * leaks unless it is disposed (one per training step).
 */
export function assignFrom(variable: tf.Variable, value: tf.Tensor): void {
  variable.assign(value);
  value.dispose();
}
