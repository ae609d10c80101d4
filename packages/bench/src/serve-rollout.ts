/**
 * A model rollout under load (`npm run bench -- serve --rollout`): a new version of the ranker is
 * published into the running stack's bundle while Recommend calls go on at the load's rate, and
 * the calls around it are measured: errors, degraded answers, p99 and the slowest call. The ranker
 * is the stage that can roll out alone (its probe reads the ranker's own manifest); a new
 * candidate-generation version would also have every retrieval shard build a new index (minutes
 * at 1M items).
 *
 * The new version is the same ranker under another `modelVersion`: its directory is a copy with
 * the weight files hard-linked and the manifest rewritten. It is published as a deploy that
 * replaces the directory does it (`ranker` → `ranker.prev`, `ranker.next` → `ranker`), and the
 * previous one is put back the same way afterwards.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { link, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { RecommendResponse } from "@recsys/gen";
import { percentiles, round, runLoad, type LoadResult } from "./serve-load.js";

/** The ranker's directory in the bundle (the ranking stage's default RANKER_SUBDIR). */
const RANKER = "ranker";

export interface RankerVersions {
  /** The version the bundle held. */
  readonly previous: string;
  /** The version published. */
  readonly next: string;
}

/**
 * Writes `<bundleDir>/ranker.next`: the ranker of `<bundleDir>/ranker` under a new modelVersion
 * (weights hard-linked, manifest rewritten). Does not publish it.
 */
export async function prepareRankerVersion(bundleDir: string): Promise<RankerVersions> {
  const current = join(bundleDir, RANKER);
  const next = join(bundleDir, `${RANKER}.next`);
  await rm(next, { recursive: true, force: true });
  await mkdir(next);
  const manifest = JSON.parse(await readFile(join(current, "manifest.json"), "utf8")) as { modelVersion: string };
  const previous = manifest.modelVersion;
  const stamp = new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14);
  const version = `rk-${stamp}-${createHash("sha256").update(`${previous} rollout ${stamp}`).digest("hex").slice(0, 8)}`;
  for (const name of await readdir(current)) {
    if (name !== "manifest.json") await link(join(current, name), join(next, name));
  }
  await writeFile(join(next, "manifest.json"), `${JSON.stringify({ ...manifest, modelVersion: version })}\n`);
  return { previous, next: version };
}

/** Publishes `ranker.next` (prepared) as `ranker`, keeping the old one as `ranker.prev`. */
export async function publishRankerVersion(bundleDir: string): Promise<void> {
  const prev = join(bundleDir, `${RANKER}.prev`);
  await rm(prev, { recursive: true, force: true });
  await rename(join(bundleDir, RANKER), prev);
  await rename(join(bundleDir, `${RANKER}.next`), join(bundleDir, RANKER));
}

/** Puts `ranker.prev` back as `ranker` (the published one is removed). */
export async function restoreRankerVersion(bundleDir: string): Promise<void> {
  const rolled = join(bundleDir, `${RANKER}.rolled`);
  await rm(rolled, { recursive: true, force: true });
  await rename(join(bundleDir, RANKER), rolled);
  await rename(join(bundleDir, `${RANKER}.prev`), join(bundleDir, RANKER));
  await rm(rolled, { recursive: true, force: true });
}

export interface RolloutOptions {
  readonly bundleDir: string;
  /** Recommend calls per second, and for how long. */
  readonly rate: number;
  readonly seconds: number;
  readonly concurrency: number;
  /** When the new version is published, from the start of the calls. */
  readonly publishAfterSeconds: number;
  readonly send: () => Promise<RecommendResponse>;
  readonly errorKey: (error: unknown) => string;
  readonly log: (line: string) => void;
}

export interface RolloutResult {
  readonly component: "ranking";
  readonly previous_version: string;
  readonly next_version: string;
  readonly requests: number;
  readonly errors: number;
  readonly degraded: number;
  /** Answers whose ranking version was the published one (0: the stage never swapped). */
  readonly answered_by_next: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
}

const rankingVersion = (response: RecommendResponse): string | undefined =>
  response.versions.find((v) => v.component === "ranking")?.modelVersion;

/** Publishes a new ranker version during `seconds` of calls at `rate`, then puts the old one back. */
export async function measureRankerRollout(options: RolloutOptions): Promise<RolloutResult> {
  const { bundleDir, log } = options;
  if (existsSync(join(bundleDir, `${RANKER}.prev`))) await restoreRankerVersion(bundleDir); // an interrupted run
  const versions = await prepareRankerVersion(bundleDir);
  let published: Promise<void> | undefined;
  const timer = setTimeout(() => {
    log(`rollout: publishing ranker ${versions.next} (was ${versions.previous})`);
    published = publishRankerVersion(bundleDir);
  }, options.publishAfterSeconds * 1000);
  let load: LoadResult<RecommendResponse>;
  try {
    load = await runLoad<RecommendResponse>(
      {
        requests: Math.round(options.rate * options.seconds),
        concurrency: options.concurrency,
        rate: options.rate,
        timeCapSeconds: options.seconds * 2,
      },
      options.send,
      options.errorKey,
    );
  } finally {
    clearTimeout(timer);
    await published;
  }
  if (published === undefined) await publishRankerVersion(bundleDir); // the load ended first
  await restoreRankerVersion(bundleDir);
  // Back to the previous version before the next phase measures anything.
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const version = await options.send().then(rankingVersion, () => undefined);
    if (version === versions.previous) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const p = percentiles(load.latenciesMs);
  return {
    component: "ranking",
    previous_version: versions.previous,
    next_version: versions.next,
    requests: load.completed,
    errors: Object.values(load.errors).reduce((sum, n) => sum + n, 0),
    degraded: load.outcomes.filter((r) => r.degraded).length,
    answered_by_next: load.outcomes.filter((r) => rankingVersion(r) === versions.next).length,
    p50_ms: round(p.p50),
    p99_ms: round(p.p99),
    max_ms: round(load.latenciesMs[load.latenciesMs.length - 1] ?? 0),
  };
}
