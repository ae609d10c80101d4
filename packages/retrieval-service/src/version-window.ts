/**
 * No version-mismatch window at a rollout. Candidate generation and the retrieval shards each poll
 * `MODEL_PATH` on their own, so after a flip some user vectors come from the new model while a
 * shard still serves the old index, or the other way round; a shard would answer those
 * FAILED_PRECONDITION and the orchestrator would drop its DNN candidates (a degraded answer).
 * Two things close that window:
 *
 * - preload: a publisher (`recsys retrain`) first points `<dirname(MODEL_PATH)>/next` at the new
 *   bundle and waits; each shard polling `next` loads that bundle's index in the background (from
 *   the bundle's prebuilt file) and answers searches that name the new version from it before its
 *   own swap, and the swap itself takes the preloaded index instead of loading it again;
 * - grace: after a swap the previous index keeps answering searches that name the previous version
 *   for `graceMs` (candidate generation may still be on it until its next poll).
 * A search naming no version, or the current one, is answered by the current index as before.
 * Writes (upserts, deletes) go to the current index; searches answered from the preloaded or the
 * previous index leave out every id on the deleted-items list.
 */
import { existsSync } from "node:fs";
import { realpath } from "node:fs/promises";
import { dirname, join } from "node:path";
import { readManifestVersion, type Logger } from "@recsys/runtime";
import type { ShardIndex } from "./shard-index.js";

/** The link a publisher points at the next bundle before it flips MODEL_PATH. */
export const NEXT_LINK = "next";

export function nextBundlePath(modelPath: string): string {
  return join(dirname(modelPath), NEXT_LINK);
}

export interface VersionWindowOptions {
  readonly modelPath: string;
  /** Loads the index of a bundle directory (openShardIndex with the shard's settings). */
  readonly open: (dir: string) => Promise<ShardIndex>;
  /** How often `next` is checked (0: never; preload off). */
  readonly pollMs: number;
  /** How long a swapped-out index keeps answering its version. */
  readonly graceMs: number;
  readonly logger: Logger;
  readonly current: () => ShardIndex;
}

export class VersionWindow {
  private preloaded: ShardIndex | undefined;
  private previous: { readonly index: ShardIndex; readonly until: number } | undefined;
  private loading: Promise<void> | undefined;
  private failedVersion: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: VersionWindowOptions) {
    if (options.pollMs > 0) {
      this.timer = setInterval(() => void this.checkNext(), options.pollMs);
      this.timer.unref();
    }
  }

  /** The index answering a search for `version` ("" = the current one), or undefined. */
  pick(version: string): { readonly index: ShardIndex; readonly current: boolean } | undefined {
    const current = this.options.current();
    if (version === "" || version === current.modelVersion) return { index: current, current: true };
    if (this.preloaded?.modelVersion === version) return { index: this.preloaded, current: false };
    if (this.previous !== undefined) {
      if (Date.now() > this.previous.until) this.previous = undefined;
      else if (this.previous.index.modelVersion === version) return { index: this.previous.index, current: false };
    }
    return undefined;
  }

  /** What the model watcher loads: the preloaded index when it is that bundle's, else a fresh load. */
  async load(dir: string): Promise<ShardIndex> {
    await this.loading;
    const preloaded = this.preloaded;
    if (preloaded !== undefined) {
      const version = await readManifestVersion(dir).catch(() => undefined);
      if (version === preloaded.modelVersion) {
        this.preloaded = undefined;
        this.options.logger.info({ modelVersion: version }, "swapping to the preloaded index");
        return preloaded;
      }
    }
    return this.options.open(dir);
  }

  /** Called at a swap: the previous index answers its version for graceMs more. */
  swapped(previous: ShardIndex): void {
    this.previous = { index: previous, until: Date.now() + this.options.graceMs };
  }

  /** Checks `next` and preloads its index when it names a version not served yet. */
  async checkNext(): Promise<void> {
    // Set synchronously: a poll arriving while this one reads the manifest waits for it instead
    // of starting a second preload of the same bundle.
    if (this.loading !== undefined) return this.loading;
    const link = nextBundlePath(this.options.modelPath);
    if (!existsSync(join(link, "manifest.json"))) return;
    const { logger } = this.options;
    this.loading = (async () => {
      try {
        const version = await readManifestVersion(link).catch(() => undefined);
        if (
          version === undefined ||
          version === this.options.current().modelVersion ||
          version === this.preloaded?.modelVersion ||
          version === this.failedVersion
        )
          return;
        await this.preload(link, version, logger);
      } finally {
        this.loading = undefined;
      }
    })();
    return this.loading;
  }

  private async preload(link: string, version: string, logger: Logger): Promise<void> {
    try {
      const dir = await realpath(link);
      const started = performance.now();
      this.preloaded = await this.options.open(dir);
      logger.info(
        { modelVersion: version, seconds: Number(((performance.now() - started) / 1000).toFixed(3)) },
        "next bundle's index preloaded",
      );
    } catch (error) {
      this.failedVersion = version;
      logger.warn({ err: error, modelVersion: version }, "cannot preload the next bundle's index (the swap will load it)");
    }
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.preloaded = undefined;
    this.previous = undefined;
  }
}
