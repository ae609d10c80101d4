/**
 * Ranking inputs built from a Dataset and a live SourceSet: the same functions build them for a
 * training example (replayed) and for an evaluated request, so both go through one code path.
 */
import type { CandidateGenBundle } from "@recsys/candidate-gen";
import type { Dataset } from "@recsys/data";
import { contextFromDataset } from "@recsys/features";
import {
  BruteForceIndex,
  PopularSource,
  TrendingSource,
  type Candidate,
  type ItemIndex,
  type MergedCandidate,
  type Provenance,
  type SourceRequest,
  type SourceResult,
  type SourceSet,
  type UserVectorProvider,
} from "@recsys/sources";
import type { ItemStats, RankingCandidate, RankingContext } from "./types.js";

/** Item statistics at a time, from watch events strictly before it. */
export type ItemStatsAt = (item: number, asOf: number) => ItemStats;

/**
 * Item statistics read from the source set's own time-gated state: the "popular" source's
 * all-time count and the "trending" source's decayed count (so they never see events at or after
 * the request time). The set must contain both sources.
 */
export function sourceItemStats(sources: SourceSet): ItemStatsAt {
  const popular = sources.source("popular");
  const trending = sources.source("trending");
  if (!(popular instanceof PopularSource))
    throw new Error(`the ranker needs a "popular" source for item counts; the source set has ${sources.names.join(", ")}`);
  if (!(trending instanceof TrendingSource))
    throw new Error(`the ranker needs a "trending" source for recent item counts; the source set has ${sources.names.join(", ")}`);
  return (item, asOf) => ({ watchCount: popular.countAt(item, asOf), trending: trending.scoreAt(item, asOf) });
}

/** Where each source ranked `item` in its (budget-cut) list; empty when no source listed it. */
export function provenanceOf(results: readonly SourceResult[], item: number): Provenance[] {
  const out: Provenance[] = [];
  for (const r of results) {
    const rank = r.candidates.findIndex((c) => c.item === item);
    if (rank >= 0) out.push({ source: r.source, rank, score: r.candidates[rank]!.score });
  }
  return out;
}

/** The ranking candidates of a merged list (position = index in the list), with item stats at `asOf`. */
export function rankingCandidates(
  dataset: Dataset,
  merged: readonly MergedCandidate[],
  stats: ItemStatsAt,
  asOf: number,
): RankingCandidate[] {
  const ids = dataset.items.ids;
  return merged.map((m, position) => ({ itemId: ids[m.item]!, provenance: m.provenance, position, stats: stats(m.item, asOf) }));
}

/**
 * The ranking context of dataset user `user` at `asOf`: @recsys/features' context (watches of
 * `historyRows`, searches before asOf, demographics) plus the user's logged impressions strictly
 * before asOf.
 */
export function rankingContextFromDataset(dataset: Dataset, user: number, historyRows: ArrayLike<number>, asOf: number): RankingContext {
  const ctx = contextFromDataset(dataset, user, historyRows, asOf);
  const imp = dataset.impressions;
  if (imp.user.length === 0) return ctx;
  const impressions: { itemId: string; timestamp: number }[] = [];
  for (let r = imp.userOffsets[user]!; r < imp.userOffsets[user + 1]!; r++) {
    const t = imp.timestamp[r]!;
    if (t < asOf) impressions.push({ itemId: dataset.items.ids[imp.item[r]!]!, timestamp: t });
  }
  return { ...ctx, impressions };
}

/**
 * An ItemIndex over the dataset's item indices backed by a candidate-gen bundle's item embeddings
 * (the bundle's rows are its own vocabulary); items the bundle does not know are never returned.
 */
class BundleItemIndex implements ItemIndex {
  private readonly inner: BruteForceIndex;
  private readonly datasetItem: Int32Array;

  constructor(bundle: CandidateGenBundle, dataset: Dataset) {
    this.inner = new BruteForceIndex(bundle.itemEmbeddings, bundle.dim);
    const index = new Map<string, number>();
    dataset.items.ids.forEach((id, i) => index.set(id, i));
    this.datasetItem = Int32Array.from(bundle.itemIds, (id) => index.get(id) ?? -1);
  }

  search(vector: Float32Array, k: number, exclude?: (item: number) => boolean): Candidate[] {
    const map = this.datasetItem;
    const skip = (row: number): boolean => map[row]! < 0 || (exclude !== undefined && exclude(map[row]!));
    return this.inner.search(vector, k, skip).map((c) => ({ item: map[c.item]!, score: c.score }));
  }
}

/**
 * The "dnn" source inputs for `createStandardSources` from a candidate-gen bundle: the user vector
 * of a request (its history items, the user's searches before the request and demographics, at
 * serving example age 0) and the item index.
 *
 * Note: the bundle was trained on the training rows, i.e. also on events after a replayed
 * training example's time; its scores for training examples therefore carry a mild leak of the
 * training period (as in the paper, which accepts it). Evaluation targets are never in those rows.
 */
export function dnnFromBundle(bundle: CandidateGenBundle, dataset: Dataset): { index: ItemIndex; userVector: UserVectorProvider } {
  const ids = dataset.items.ids;
  const userVector: UserVectorProvider = (request: SourceRequest) => {
    if (request.user === undefined) return null;
    const base = contextFromDataset(dataset, request.user, [], request.asOf);
    const watches = Array.from(request.history as ArrayLike<number>, (item) => ({ itemId: ids[item]!, timestamp: request.asOf }));
    return bundle.userVector({ ...base, watches });
  };
  return { index: new BundleItemIndex(bundle, dataset), userVector };
}
