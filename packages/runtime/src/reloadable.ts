/**
 * Hot model reloading: a stage serves one model object at a time and swaps it for a new one
 * without a restart and without failing a call.
 *
 * Deploying a model = making `path` show the new bundle:
 *   - preferred: `path` is a symlink to a versioned directory; publish with
 *       ln -sfn /models/cg-20240101-abcd /models/current.tmp && mv -T /models/current.tmp /models/current
 *     (rename(2) replaces the link atomically, so a reader sees the old or the new bundle, never a mix);
 *   - or replace the directory itself (`mv current current.old && mv staged current`): there is a
 *     short window in which `path` is missing (a failed probe, logged; the old model keeps serving).
 * The watcher resolves the symlink once per load (`realpath`), so a load reads one directory
 * from start to end even if the link flips meanwhile.
 *
 * `watchModel` loads the model at start (rejecting with a message naming the path if it cannot),
 * then every `pollMs` reads the version at `path` (by default `modelVersion` in `manifest.json`,
 * cheap) and, when it differs from the one serving, loads the new model fully in the background
 * and swaps the reference. Handlers call `current()` once per request and use that object to the
 * end, so a call that started on the old model finishes on it. A model that fails to load is
 * logged and counted (`recsys_<stage>_model_reload_failures_total`) and the old one keeps
 * serving; the same broken bundle (same resolved directory and version) is retried at most once
 * per `retryFailedMs`. The serving version is exported as `recsys_<stage>_model_info{model_version}` = 1.
 */
import { realpath, stat } from "node:fs/promises";
import { join } from "node:path";
import { describeJsonFileError, readJsonFile } from "@recsys/data";
import { Counter, Gauge, type Registry } from "prom-client";
import { ConfigError } from "./config.js";
import type { Logger } from "./logger.js";
import { assertStageName } from "./metrics.js";

/** File whose `modelVersion` field names a bundle's version (candidate-generation bundles). */
export const MANIFEST_FILE = "manifest.json";

/** Default retry interval for a bundle that failed to load (or a failing probe). */
export const DEFAULT_RETRY_FAILED_MS = 60_000;

export interface WatchModelOptions<T> {
  /** The bundle location: a directory, usually a symlink that deploys flip. */
  readonly path: string;
  /** Loads a model from a directory (the resolved `path`). Must not mutate shared state. */
  readonly load: (dir: string) => Promise<T>;
  /** The version of a loaded model (compared with what `probe` reads). */
  readonly versionOf: (model: T) => string;
  /** Reads the version at `path` without loading; default {@link readManifestVersion}. */
  readonly probe?: (path: string) => Promise<string>;
  /** Poll interval in milliseconds; 0 disables polling (`checkNow` still works). */
  readonly pollMs: number;
  readonly logger: Logger;
  /** Metric prefix `recsys_<stage>_`; with `registry`, the reload metrics are registered there. */
  readonly stage?: string;
  readonly registry?: Registry;
  /**
   * Called synchronously at the moment of a swap, just before `current()` starts returning
   * `next`: nothing else runs in between, so state can be carried over (e.g. deletes made while
   * `next` was loading). If it throws, the swap is abandoned and counted as a failure.
   */
  readonly onSwap?: (next: T, previous: T) => void;
  /**
   * Releases a model no longer served (e.g. tfjs tensors), `retireDelayMs` after it was swapped
   * out, so calls that read it before the swap have finished with it. Also called by `close()`.
   */
  readonly retire?: (model: T) => void | Promise<void>;
  /** Default 30 s: longer than any request deadline. */
  readonly retireDelayMs?: number;
  /** Default {@link DEFAULT_RETRY_FAILED_MS}. */
  readonly retryFailedMs?: number;
  /** The variable named by the ConfigError when `path` does not exist at start. Default "MODEL_PATH". */
  readonly configVariable?: string;
}

/** What one check did. */
export type ReloadOutcome = "unchanged" | "swapped" | "failed" | "skipped-failed" | "busy" | "closed";

export interface ModelWatcher<T> {
  /** The model serving now: read it once per request. */
  current(): T;
  /** Its version. */
  version(): string;
  /** The resolved directory it was loaded from. */
  source(): string;
  /** Checks `path` now (what the poller does); resolves when the check (and any load) is done. */
  checkNow(): Promise<ReloadOutcome>;
  /** Stops polling, waits for a load in progress, retires every model. Idempotent. */
  close(): Promise<void>;
}

/**
 * What readManifestVersion last read from each manifest, by path: the file's identity (device,
 * inode, size, mtime) and the version it held.
 */
const manifestVersions = new Map<string, { readonly signature: string; readonly version: string }>();

/** A manifest modified this recently is read again at every probe (file times can be coarse). */
const MANIFEST_SETTLE_MS = 2000;

/**
 * The `modelVersion` string of `<dir>/manifest.json`.
 *
 * A probe (every MODEL_POLL_INTERVAL, in every stage) first stats the file and reads and parses
 * it only when it is another file or has changed (device, inode, size or mtime), or was modified
 * within the last 2 s. The manifests are large at 1M items (17.8 MB for the candidate-generation
 * bundle, 42.8 MB for the ranker with its catalogue): parsing one took 0.5-0.6 s of the event
 * loop, and with polling every 10 s the serving benchmark's p99 went from ~16 ms to 614 ms. What
 * is read is parsed in a worker thread (`readJsonFile`), so a changed manifest (a rollout) does
 * not stall the stage either.
 * Deploys replace the file (a symlink flip or a renamed directory: another inode) or rewrite it
 * (another mtime), so a stat tells them apart.
 */
export async function readManifestVersion(dir: string): Promise<string> {
  const file = join(dir, MANIFEST_FILE);
  let signature: string;
  let settled: boolean;
  try {
    const info = await stat(file);
    signature = `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}`;
    settled = Date.now() - info.mtimeMs > MANIFEST_SETTLE_MS;
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  const known = manifestVersions.get(file);
  if (known !== undefined && known.signature === signature && settled) return known.version;
  let manifest: unknown;
  try {
    // Parsed in a worker thread, only modelVersion sent back: the probe runs in serving stages.
    manifest = await readJsonFile(file, { keep: ["modelVersion"] });
  } catch (error) {
    throw new Error(describeJsonFileError(file, error), { cause: error });
  }
  const version = (manifest as { modelVersion?: unknown } | null)?.modelVersion;
  if (typeof version !== "string" || version === "") {
    throw new Error(`${file} has no "modelVersion" string`);
  }
  if (settled) manifestVersions.set(file, { signature, version });
  else manifestVersions.delete(file);
  return version;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

interface ReloadMetrics {
  readonly failures: Counter;
  readonly reloads: Counter;
  readonly info: Gauge<"model_version">;
}

function reloadMetrics(stage: string, registry: Registry): ReloadMetrics {
  assertStageName(stage);
  return {
    failures: new Counter({
      name: `recsys_${stage}_model_reload_failures_total`,
      help: `Attempts of the ${stage} service to read or load a new model that failed (the old model kept serving)`,
      registers: [registry],
    }),
    reloads: new Counter({
      name: `recsys_${stage}_model_reloads_total`,
      help: `New models the ${stage} service swapped in after startup`,
      registers: [registry],
    }),
    info: new Gauge({
      name: `recsys_${stage}_model_info`,
      help: `1 for the model version the ${stage} service serves`,
      labelNames: ["model_version"] as const,
      registers: [registry],
    }),
  };
}

/**
 * Loads the model at `options.path` and keeps it current (see the module comment). Rejects when
 * the first load fails: a `ConfigError` naming the path when it does not exist, an Error with
 * the loader's reason otherwise.
 */
export async function watchModel<T>(options: WatchModelOptions<T>): Promise<ModelWatcher<T>> {
  const { path, load, versionOf, logger } = options;
  const probe = options.probe ?? readManifestVersion;
  const retireDelayMs = options.retireDelayMs ?? 30_000;
  const retryFailedMs = options.retryFailedMs ?? DEFAULT_RETRY_FAILED_MS;
  if (!Number.isFinite(options.pollMs) || options.pollMs < 0) {
    throw new Error(`pollMs must be a number >= 0, got ${options.pollMs}`);
  }
  const metrics =
    options.registry !== undefined && options.stage !== undefined ? reloadMetrics(options.stage, options.registry) : undefined;

  let dir: string;
  try {
    dir = await realpath(path);
  } catch (error) {
    const variable = options.configVariable ?? "MODEL_PATH";
    throw new ConfigError(variable, `${variable}=${path}: no model there (${message(error)})`);
  }
  let model: T;
  const started = performance.now();
  try {
    model = await load(dir);
  } catch (error) {
    throw new Error(`cannot load the model at ${path}${dir === path ? "" : ` (-> ${dir})`}: ${message(error)}`, {
      cause: error,
    });
  }
  let version = versionOf(model);
  let source = dir;
  if (options.pollMs > 0) {
    // The first probe reads the whole manifest (readManifestVersion caches what a stat can
    // vouch for): now, before serving, rather than at the first poll under traffic.
    await probe(path).catch(() => undefined);
  }
  metrics?.info.set({ model_version: version }, 1);
  logger.info({ modelVersion: version, path, dir, seconds: Number(((performance.now() - started) / 1000).toFixed(3)) }, "model loaded");

  let closed = false;
  let running: Promise<ReloadOutcome> | undefined;
  let timer: NodeJS.Timeout | undefined;
  const retiring = new Map<NodeJS.Timeout, T>();
  /** Last failure: what failed (a key) and when, to retry/log it at most once per retryFailedMs. */
  let lastFailure: { key: string; at: number } | undefined;

  const retire = async (old: T): Promise<void> => {
    try {
      await options.retire?.(old);
    } catch (error) {
      logger.warn({ err: error, modelVersion: versionOf(old) }, "retiring the old model failed");
    }
  };

  /** True when this failure is new or its retry interval has passed (then it is recorded). */
  const shouldReport = (key: string): boolean => {
    const now = Date.now();
    if (lastFailure !== undefined && lastFailure.key === key && now - lastFailure.at < retryFailedMs) return false;
    lastFailure = { key, at: now };
    return true;
  };

  const check = async (): Promise<ReloadOutcome> => {
    let probed: string;
    try {
      probed = await probe(path);
    } catch (error) {
      if (shouldReport(`probe\0${message(error)}`)) {
        metrics?.failures.inc();
        logger.warn({ err: error, path, modelVersion: version }, "cannot read the model version; the current model keeps serving");
      }
      return "failed";
    }
    if (probed === version) {
      lastFailure = undefined;
      return "unchanged";
    }
    let next: T;
    let nextDir = path;
    try {
      nextDir = await realpath(path);
    } catch {
      // reported by the load below
    }
    const key = `load\0${nextDir}\0${probed}`;
    if (lastFailure !== undefined && lastFailure.key === key && Date.now() - lastFailure.at < retryFailedMs) {
      return "skipped-failed";
    }
    const loadStarted = performance.now();
    logger.info({ from: version, to: probed, dir: nextDir }, "new model found: loading it in the background");
    try {
      next = await load(nextDir);
    } catch (error) {
      shouldReport(key);
      metrics?.failures.inc();
      logger.error(
        { err: error, path, dir: nextDir, modelVersion: probed, serving: version },
        "new model failed to load; the current model keeps serving",
      );
      return "failed";
    }
    if (closed) {
      await retire(next);
      return "closed";
    }
    const nextVersion = versionOf(next);
    if (nextVersion === version) {
      // The bundle changed again while loading, back to what is serving.
      await retire(next);
      return "unchanged";
    }
    // From here to the swap: synchronous, so no call can observe a half-done hand-over.
    const previous = model;
    try {
      options.onSwap?.(next, previous);
    } catch (error) {
      shouldReport(key);
      metrics?.failures.inc();
      logger.error(
        { err: error, modelVersion: nextVersion },
        "preparing the new model for the swap failed; the current model keeps serving",
      );
      await retire(next);
      return "failed";
    }
    const previousVersion = version;
    model = next;
    version = nextVersion;
    source = nextDir;
    lastFailure = undefined;
    metrics?.info.reset();
    metrics?.info.set({ model_version: version }, 1);
    metrics?.reloads.inc();
    logger.info(
      {
        from: previousVersion,
        to: version,
        dir: nextDir,
        seconds: Number(((performance.now() - loadStarted) / 1000).toFixed(3)),
      },
      "model swapped",
    );
    const retireTimer = setTimeout(() => {
      retiring.delete(retireTimer);
      void retire(previous);
    }, retireDelayMs);
    retireTimer.unref();
    retiring.set(retireTimer, previous);
    return "swapped";
  };

  const checkNow = (): Promise<ReloadOutcome> => {
    if (closed) return Promise.resolve("closed");
    if (running !== undefined) return running.then(() => "busy" as const);
    running = check()
      .catch((error: unknown): ReloadOutcome => {
        // check() handles its own failures; this is a bug guard so the poller never dies.
        logger.error({ err: error }, "model reload check failed");
        return "failed";
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };

  const schedule = (): void => {
    if (closed || options.pollMs === 0) return;
    timer = setTimeout(() => {
      void checkNow().finally(schedule);
    }, options.pollMs);
    timer.unref();
  };
  schedule();

  let closing: Promise<void> | undefined;
  return {
    current: () => model,
    version: () => version,
    source: () => source,
    checkNow,
    close() {
      closing ??= (async () => {
        closed = true;
        if (timer !== undefined) clearTimeout(timer);
        await running;
        const old = [...retiring.entries()];
        retiring.clear();
        for (const [t, m] of old) {
          clearTimeout(t);
          await retire(m);
        }
        await retire(model);
      })();
      return closing;
    },
  };
}
