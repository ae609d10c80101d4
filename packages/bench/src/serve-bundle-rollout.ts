/**
 * A whole-bundle rollout under load (`npm run bench -- serve --rollout`, after the ranker's): a
 * new candidate-generation version, published as `recsys retrain` publishes one, while Recommend
 * calls go on at the load's rate. Every stage serving the bundle swaps (candidate generation, each
 * retrieval shard, the orchestrator's catalogue; the ranker keeps its own version).
 *
 * The new version is the served bundle under another `modelVersion` (files hard-linked, manifest
 * rewritten), with every shard's index prebuilt into it beforehand (`prebuildShardIndexes`, the
 * function `recsys retrain` calls; timed, outside the measured window). Publishing: `next` is
 * pointed at it, `preloadSeconds` later `current` is flipped (both atomic renames of a symlink).
 * Measured: errors, degraded answers, answers degraded by a retrieval version mismatch (a shard
 * answered FAILED_PRECONDITION), answers by the new version, indexes built by the shards (the
 * `recsys_retrieval_index_builds_total` counters before and after), p50/p99/max. The previous
 * version is put back afterwards the same way (its indexes are still in the shards' INDEX_DIR).
 */
import { link, mkdir, readdir, readFile, realpath, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { readFloat32File } from "@recsys/data";
import type { RecommendResponse } from "@recsys/gen";
import { prebuildShardIndexes } from "@recsys/retrieval-service";
import { percentiles, round, runLoad } from "./serve-load.js";

async function flip(linkPath: string, target: string): Promise<void> {
  const tmp = `${linkPath}.flip-${process.pid}-${Date.now().toString(36)}`;
  await symlink(target, tmp);
  await rename(tmp, linkPath);
}

/** Hard-links every file of `from` into `to` (recursively), except the names in `skip`. */
export async function linkTree(from: string, to: string, skip: ReadonlySet<string>): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const name of await readdir(from)) {
    if (skip.has(name)) continue;
    const source = join(from, name);
    if ((await stat(source)).isDirectory()) await linkTree(source, join(to, name), new Set());
    else await link(source, join(to, name));
  }
}

export interface BundleVersion {
  readonly previous: string;
  readonly next: string;
  readonly dir: string;
  readonly prebuildSeconds: number;
}

/**
 * Writes `<dirname(current)>/<new version>/`: the bundle `current` points at under a new
 * modelVersion, with every shard's index prebuilt. Does not publish it.
 */
export async function prepareBundleVersion(current: string, shardCount: number, log: (line: string) => void): Promise<BundleVersion> {
  const from = await realpath(current);
  const manifest = JSON.parse(await readFile(join(from, "manifest.json"), "utf8")) as {
    modelVersion: string;
    dim: number;
    itemIds: string[];
    files: { itemEmbeddings: { file: string } };
  };
  const previous = manifest.modelVersion;
  const next = `${previous.replace(/-rollout-\d+$/, "")}-rollout-${Date.now()}`;
  const dir = join(dirname(current), next);
  await rm(dir, { recursive: true, force: true });
  await linkTree(from, dir, new Set(["manifest.json", "indexes"]));
  await writeFile(join(dir, "manifest.json"), `${JSON.stringify({ ...manifest, modelVersion: next })}\n`);
  const vectors = await readFloat32File(join(from, manifest.files.itemEmbeddings.file), manifest.itemIds.length * manifest.dim);
  const started = performance.now();
  await prebuildShardIndexes(
    dir,
    { modelVersion: next, itemIds: manifest.itemIds, itemEmbeddings: vectors, dim: manifest.dim },
    {
      shardCount,
      parallel: 2,
      onShard: (shard, items, seconds) =>
        log(`bundle rollout: prebuilt the index of shard ${shard}: ${items} items in ${seconds.toFixed(1)} s`),
    },
  );
  return { previous, next, dir, prebuildSeconds: (performance.now() - started) / 1000 };
}

export interface BundleRolloutOptions {
  /** The symlink every stage's MODEL_PATH names. */
  readonly current: string;
  readonly shardCount: number;
  readonly rate: number;
  readonly seconds: number;
  readonly concurrency: number;
  readonly publishAfterSeconds: number;
  /** Between pointing `next` at the new bundle and flipping `current`. */
  readonly preloadSeconds: number;
  readonly send: () => Promise<RecommendResponse>;
  readonly errorKey: (error: unknown) => string;
  /** Sum of recsys_retrieval_index_builds_total over the shards. */
  readonly indexBuilds: () => Promise<number>;
  readonly log: (line: string) => void;
}

export interface BundleRolloutResult {
  readonly component: "bundle";
  readonly previous_version: string;
  readonly next_version: string;
  readonly prebuild_seconds: number;
  readonly requests: number;
  readonly errors: number;
  readonly degraded: number;
  readonly degraded_by_version_mismatch: number;
  readonly answered_by_next: number;
  readonly indexes_built_by_shards: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
}

const candidateVersion = (response: RecommendResponse): string | undefined =>
  response.versions.find((v) => v.component === "candidate_generation")?.modelVersion;
const mismatch = (response: RecommendResponse): boolean => response.failedStages.some((f) => /model version mismatch/.test(f.message));

/** Publishes a new bundle version during `seconds` of calls at `rate`, then puts the old one back. */
export async function measureBundleRollout(options: BundleRolloutOptions): Promise<BundleRolloutResult> {
  const { current, log } = options;
  const version = await prepareBundleVersion(current, options.shardCount, log);
  const root = dirname(current);
  const previousTarget = await realpath(current);
  const buildsBefore = await options.indexBuilds();
  let published: Promise<void> | undefined;
  const timer = setTimeout(() => {
    log(`bundle rollout: next -> ${version.next}, current flipped ${options.preloadSeconds} s later (was ${version.previous})`);
    published = (async () => {
      await flip(join(root, "next"), version.dir);
      await new Promise((resolve) => setTimeout(resolve, options.preloadSeconds * 1000));
      await flip(current, version.dir);
    })();
  }, options.publishAfterSeconds * 1000);
  let load;
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
  const buildsAfter = await options.indexBuilds();
  // Back to the previous version (its indexes are in the shards' INDEX_DIR: loaded, not built).
  await flip(join(root, "next"), previousTarget);
  await flip(current, previousTarget);
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const v = await options.send().then(candidateVersion, () => undefined);
    if (v === version.previous) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await rm(join(root, "next"), { force: true });
  await rm(version.dir, { recursive: true, force: true }); // hard links and the prebuilt indexes
  const p = percentiles(load.latenciesMs);
  return {
    component: "bundle",
    previous_version: version.previous,
    next_version: version.next,
    prebuild_seconds: round(version.prebuildSeconds),
    requests: load.completed,
    errors: Object.values(load.errors).reduce((sum, n) => sum + n, 0),
    degraded: load.outcomes.filter((r) => r.degraded).length,
    degraded_by_version_mismatch: load.outcomes.filter(mismatch).length,
    answered_by_next: load.outcomes.filter((r) => candidateVersion(r) === version.next).length,
    indexes_built_by_shards: buildsAfter - buildsBefore,
    p50_ms: round(p.p50),
    p99_ms: round(p.p99),
    max_ms: round(load.latenciesMs[load.latenciesMs.length - 1] ?? 0),
  };
}
