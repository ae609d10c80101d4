/**
 * The one TensorFlow.js instance every package uses, and the choice of its backend.
 *
 * `initBackend()` picks the fastest backend available in this process, in order:
 *   1. `@tensorflow/tfjs-node-gpu` (native TensorFlow with CUDA), if installed;
 *   2. `@tensorflow/tfjs-node` (native TensorFlow on CPU), if installed;
 *   3. `wasm` (@tensorflow/tfjs-backend-wasm: XNNPACK kernels, SIMD when the runtime has it;
 *      tfjs disables its multi-threaded wasm build under Node);
 *   4. `cpu` (plain JavaScript kernels; very slow for training).
 * The native packages are optional: their install script downloads libtensorflow, so they are not
 * dependencies of this package. Set `RECSYS_TF_BACKEND` to one of `node-gpu`, `node`, `wasm`,
 * `cpu` to force a backend (startup fails with a clear message if it cannot be loaded).
 * The choice is logged once as a JSON line on stderr.
 */
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { createRequire } from "node:module";
import { dirname } from "node:path";

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
  /** wasm only: whether the multi-threaded build was loaded (tfjs never uses it under Node). */
  readonly threads?: boolean;
}

export interface InitBackendOptions {
  /** Force a backend (otherwise `RECSYS_TF_BACKEND`, otherwise the fastest available). */
  readonly backend?: BackendChoice;
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

async function tryWasm(): Promise<{ simd: boolean; threads: boolean } | null> {
  try {
    // Under Node the binaries are read from the package's dist directory (a file path prefix).
    const main = createRequire(import.meta.url).resolve("@tensorflow/tfjs-backend-wasm");
    setWasmPaths(`${dirname(main)}/`);
    if (!(await tf.setBackend("wasm"))) return null;
    await tf.ready();
    const simd = Boolean(await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT"));
    const threads = Boolean(await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT"));
    return { simd, threads };
  } catch {
    return null;
  }
}

async function load(choice: BackendChoice): Promise<BackendInfo | null> {
  switch (choice) {
    case "node-gpu":
      return (await tryNative("@tensorflow/tfjs-node-gpu")) ? { name: choice, tfBackend: tf.getBackend() } : null;
    case "node":
      return (await tryNative("@tensorflow/tfjs-node")) ? { name: choice, tfBackend: tf.getBackend() } : null;
    case "wasm": {
      const w = await tryWasm();
      return w === null ? null : { name: choice, tfBackend: tf.getBackend(), simd: w.simd, threads: w.threads };
    }
    case "cpu":
      return (await tf.setBackend("cpu")) ? { name: choice, tfBackend: tf.getBackend() } : null;
  }
}

async function choose(options: InitBackendOptions): Promise<BackendInfo> {
  const env = process.env["RECSYS_TF_BACKEND"];
  const forced = options.backend ?? (env !== undefined && env.trim() !== "" ? parseBackendChoice(env) : undefined);
  if (forced !== undefined) {
    const info = await load(forced);
    if (info === null) {
      const hint = forced === "node" || forced === "node-gpu" ? ` (is @tensorflow/tfjs-${forced} installed?)` : "";
      throw new Error(`tfjs backend "${forced}" was requested but could not be loaded${hint}`);
    }
    return info;
  }
  for (const choice of BACKEND_CHOICES) {
    const info = await load(choice);
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
      if (log !== null) log({ level: "info", msg: "tfjs backend selected", backend: info.name, tfBackend: info.tfBackend, simd: info.simd, threads: info.threads });
      return info;
    })();
    initialised.catch(() => {
      initialised = undefined;
    });
  }
  return initialised;
}

function defaultLog(line: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ time: Date.now(), ...line })}\n`);
}
