/**
 * Test fixtures: a tiny ranker trained in a few seconds on a small synthetic dataset (impressions,
 * channels, tags, geography: every feature group is live) and saved as a model bundle
 * (`<dir>/ranker/`), the atomic symlink flip a deploy does, and the conversion of the ranking
 * package's inputs into the RankRequest the orchestrator sends.
 */
import { rename, symlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { generateSynthetic, lastoutSplit, parseSyntheticSpec, trainingRows, type Dataset } from "@recsys/data";
import { CandidateSource } from "@recsys/gen";
import {
  saveRanker,
  trainRanker,
  type RankerManifest,
  type RankerModelKind,
  type RankingCandidate,
  type RankingContext,
} from "@recsys/ranking";
import { createStandardSources } from "@recsys/sources";
import { initBackend } from "@recsys/tf";

export const TINY_SPEC = "users=120,items=90,events=14,impressions=30,seed=4";
/** Candidate stage the tiny rankers are trained behind. */
export const TINY_PIPELINE = { budget: 20, mergedSize: 40 };

export function tinyDataset(): Dataset {
  return generateSynthetic(`synthetic:${TINY_SPEC}`, parseSyntheticSpec(TINY_SPEC));
}

/**
 * Trains a tiny ranker (holdout "test") and saves it as `<dir>/ranker/`; `seed` changes the
 * weights (and so the modelVersion); `kind` the model kind (default "weighted-lr").
 */
export async function writeTinyRankerBundle(
  dir: string,
  seed: number,
  dataset: Dataset = tinyDataset(),
  kind: RankerModelKind = "weighted-lr",
): Promise<RankerManifest> {
  await initBackend({ log: null });
  const split = lastoutSplit(dataset.events, dataset.users.ids.length);
  const result = await trainRanker(dataset, {
    rows: trainingRows(split, "test"),
    sources: createStandardSources(dataset, { mergedSize: TINY_PIPELINE.mergedSize }),
    budget: TINY_PIPELINE.budget,
    train: { epochs: 1, maxExamplesPerUser: 4, negatives: 6, seed },
    model: { itemDim: 8, categoricalDim: 4, tower: [16, 8], kind, ...(kind === "wide-deep" ? { wideBuckets: 1 << 12 } : {}) },
    features: { quantiles: 50 },
  });
  const manifest = await saveRanker(join(dir, "ranker"), result, {
    datasetSpec: dataset.spec,
    datasetFingerprint: dataset.fingerprint,
    holdout: "test",
    candidateGenVersion: "none",
    pipeline: TINY_PIPELINE,
  });
  result.model.dispose();
  return manifest;
}

/** Points the symlink `link` at `target` atomically (a new link renamed over the old one). */
export async function publishBundle(link: string, target: string): Promise<void> {
  const tmp = join(dirname(link), `.publish-${process.pid}-${Math.random().toString(36).slice(2)}`);
  await symlink(target, tmp);
  await rename(tmp, link);
}

/** A google.protobuf.Timestamp init object. */
export interface TimestampInit {
  seconds: bigint;
  nanos: number;
}

export interface ProvenanceInit {
  source?: CandidateSource;
  sourceName?: string;
  rank?: number;
  score?: number;
}

export interface CandidateInit {
  itemId?: string;
  provenance?: ProvenanceInit[];
  stats?: { watchCount: number; trending: number } | undefined;
}

export interface UserContextInit {
  userId?: string;
  watchHistory?: { itemId: string; watchedAt?: TimestampInit }[];
  impressionHistory?: { itemId: string; shownAt?: TimestampInit }[];
  demographics?: { age?: number; gender?: string; occupation?: string };
  geo?: string;
  requestTime?: TimestampInit;
}

/** The init-object form of a RankRequest, plain mutable objects all the way down (easy to patch in tests). */
export interface RankRequestInit {
  context?: UserContextInit;
  candidates?: CandidateInit[];
  debug?: boolean;
}

const SOURCE_ENUM: Readonly<Record<string, CandidateSource>> = {
  dnn: CandidateSource.DNN,
  "co-watch": CandidateSource.CO_WATCH,
  popular: CandidateSource.POPULAR,
  trending: CandidateSource.TRENDING,
  "trending-geo": CandidateSource.TRENDING,
  fresh: CandidateSource.FRESH,
};

/** Unix seconds (millisecond precision) as a Timestamp. */
export function ts(seconds: number): TimestampInit {
  const ms = Math.round(seconds * 1000);
  const whole = Math.floor(ms / 1000);
  return { seconds: BigInt(whole), nanos: (ms - whole * 1000) * 1_000_000 };
}

/**
 * The RankRequest of a ranking context and merged candidates (positions 0..n-1, in order), as
 * the orchestrator builds it: rank 1-based, source_name = the @recsys/sources name, stats.
 */
export function toRankRequest(
  context: RankingContext,
  candidates: readonly RankingCandidate[],
  userId = "u1",
  debug = false,
): RankRequestInit {
  candidates.forEach((c, k) => {
    if (c.position !== k)
      throw new Error(`toRankRequest: candidate ${k} has merged position ${c.position}; the request order is the merged order`);
  });
  return {
    context: {
      userId,
      watchHistory: context.watches.map((w) => ({ itemId: w.itemId, watchedAt: ts(w.timestamp) })),
      impressionHistory: (context.impressions ?? []).map((i) => ({ itemId: i.itemId, shownAt: ts(i.timestamp) })),
      demographics: {
        ...(context.age === undefined ? {} : { age: context.age }),
        gender: context.gender ?? "",
        occupation: context.occupation ?? "",
      },
      geo: context.geo ?? "",
      requestTime: ts(context.requestTime),
    },
    candidates: candidates.map((c) => ({
      itemId: c.itemId,
      provenance: c.provenance.map((p) => ({
        source: SOURCE_ENUM[p.source] ?? CandidateSource.UNSPECIFIED,
        sourceName: p.source,
        rank: p.rank + 1,
        score: p.score,
      })),
      stats: { watchCount: c.stats.watchCount, trending: c.stats.trending },
    })),
    debug,
  };
}
