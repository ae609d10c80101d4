/**
 * The retrain status file: `recsys retrain` (a CronJob, which Prometheus cannot scrape) writes
 * `<dirname(MODEL_PATH)>/retrain-status.json` beside the bundles after every run; the retrieval
 * shards, which mount the same model volume, read it at each scrape and export it as gauges:
 *
 *   recsys_retrieval_retrain_last_run_timestamp_seconds          when the last run ended
 *   recsys_retrieval_retrain_last_outcome{outcome}               1 for the last run's outcome
 *                                                      (published | refused | failed), 0 for the others
 *   recsys_retrieval_retrain_last_published_timestamp_seconds    when the serving bundle was published
 *   recsys_retrieval_retrain_status_readable                     0 when the file exists but cannot be read
 *
 * No file (no retrain ever ran): no samples except `recsys_retrieval_retrain_status_readable` 1, so the
 * "model too old" alert falls back to the absent series (see deploy/prometheus/rules/retrain.rules.yml).
 */
import { readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Gauge, type Registry } from "prom-client";

export const RETRAIN_STATUS_FILE = "retrain-status.json";

export const RETRAIN_OUTCOMES = ["published", "refused", "failed"] as const;
export type RetrainOutcome = (typeof RETRAIN_OUTCOMES)[number];

export interface RetrainStatus {
  readonly outcome: RetrainOutcome;
  /** ISO time the run ended. */
  readonly finishedAt: string;
  /** Why it refused or failed, or what it published. */
  readonly message: string;
  readonly candidateVersion?: string;
  readonly servingVersion?: string;
  /** Version serving after the run (the candidate when published). */
  readonly currentVersion?: string;
  /** ISO time the serving bundle was published (kept from earlier runs when this one did not publish). */
  readonly publishedAt?: string;
  readonly metrics?: Readonly<Record<string, unknown>>;
}

/** Where the status of the bundles behind `modelPath` (the `current` link) lives. */
export function retrainStatusPath(modelPath: string): string {
  return join(dirname(modelPath), RETRAIN_STATUS_FILE);
}

export async function readRetrainStatus(file: string): Promise<RetrainStatus | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const status = JSON.parse(text) as RetrainStatus;
  if (!RETRAIN_OUTCOMES.includes(status.outcome) || typeof status.finishedAt !== "string") throw new Error(`${file}: not a retrain status`);
  return status;
}

/** Writes the status atomically (a temporary file renamed over it). */
export async function writeRetrainStatus(file: string, status: RetrainStatus): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(status, null, 2)}\n`);
  await rename(tmp, file);
}

/** Registers the gauges above, read from `file` at each collection. */
export function registerRetrainStatusGauges(registry: Registry, file: string): void {
  let status: RetrainStatus | undefined;
  let readable = 1;
  // One read per scrape: the gauges may be collected concurrently, so they share a read that
  // stays fresh for a second.
  let pending: Promise<void> | undefined;
  let readAt = 0;
  const refresh = (): Promise<void> => {
    if (pending === undefined || performance.now() - readAt > 1000) {
      readAt = performance.now();
      pending = readRetrainStatus(file).then(
        (s) => {
          status = s;
          readable = 1;
        },
        () => {
          status = undefined;
          readable = 0;
        },
      );
    }
    return pending;
  };
  const seconds = (iso: string | undefined): number | undefined => {
    const t = iso === undefined ? NaN : Date.parse(iso);
    return Number.isFinite(t) ? t / 1000 : undefined;
  };
  new Gauge({
    name: "recsys_retrieval_retrain_status_readable",
    help: "0 when the retrain status file beside the bundles exists but cannot be read",
    registers: [registry],
    async collect() {
      await refresh();
      this.set(readable);
    },
  });
  new Gauge({
    name: "recsys_retrieval_retrain_last_run_timestamp_seconds",
    help: "Unix time the last `recsys retrain` run ended (from the status file beside the bundles)",
    registers: [registry],
    async collect() {
      await refresh();
      this.reset();
      const t = seconds(status?.finishedAt);
      if (t !== undefined) this.set(t);
    },
  });
  new Gauge({
    name: "recsys_retrieval_retrain_last_outcome",
    help: "1 for the outcome of the last `recsys retrain` run (published, refused by the gate, failed), 0 for the others",
    labelNames: ["outcome"],
    registers: [registry],
    async collect() {
      await refresh();
      this.reset();
      if (status === undefined) return;
      for (const outcome of RETRAIN_OUTCOMES) this.set({ outcome }, status.outcome === outcome ? 1 : 0);
    },
  });
  new Gauge({
    name: "recsys_retrieval_retrain_last_published_timestamp_seconds",
    help: "Unix time the serving bundle was published by `recsys retrain`",
    registers: [registry],
    async collect() {
      await refresh();
      this.reset();
      const t = seconds(status?.publishedAt);
      if (t !== undefined) this.set(t);
    },
  });
}
