/**
 * Shared shapes of the candidate-generation stage: what a source is asked, what it answers, and
 * what the merge step hands to the ranker and to the orchestrator.
 *
 * Items and users are the dense indices of the `Dataset` contract of @recsys/data.
 */

/**
 * A candidate source's name. The built-in ones are listed; any other string is allowed (e.g.
 * "trending-geo" for "Trending in your area") and sorts after them (see `SOURCE_ORDER`).
 */
export type SourceName = "dnn" | "co-watch" | "popular" | "trending" | "fresh" | (string & {});

/**
 * The fixed order of sources: provenance lists are sorted by it and the merge's round-robin
 * visits sources in it. Names not listed come after, in code-unit order.
 */
export const SOURCE_ORDER: readonly SourceName[] = ["dnn", "co-watch", "popular", "trending", "trending-geo", "fresh"];

/** Compares source names by `SOURCE_ORDER`, then by code units. */
export function compareSources(a: SourceName, b: SourceName): number {
  const ia = SOURCE_ORDER.indexOf(a);
  const ib = SOURCE_ORDER.indexOf(b);
  const ka = ia < 0 ? SOURCE_ORDER.length : ia;
  const kb = ib < 0 ? SOURCE_ORDER.length : ib;
  if (ka !== kb) return ka - kb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** One nominated item with the nominating source's own score (higher is better). */
export interface Candidate {
  /** Item index. */
  readonly item: number;
  readonly score: number;
  /**
   * Item-to-item sources only: the history item (item index) that contributed most to the score,
   * for "Because you watched X".
   */
  readonly because?: number;
}

/** A source's answer: `candidates` ranked best first; an item's rank is its array position. */
export interface SourceResult {
  readonly source: SourceName;
  readonly candidates: readonly Candidate[];
}

/** Where a merged item came from in one source. */
export interface Provenance {
  readonly source: SourceName;
  /** 0-based position in that source's list. */
  readonly rank: number;
  readonly score: number;
  /** Copied from `Candidate.because` when the source gave one. */
  readonly because?: number;
}

/** A deduplicated candidate with every source that nominated it, sorted by `compareSources`. */
export interface MergedCandidate {
  readonly item: number;
  readonly provenance: readonly Provenance[];
}

/** What the sources are asked: one user (or an anonymous history) at one moment. */
export interface SourceRequest {
  /** User index, when the user is known. */
  readonly user?: number;
  /** Watched item indices, chronological (oldest first). Never nominated. */
  readonly history: ArrayLike<number>;
  /**
   * Unix seconds of the request. Stateful sources answer from events strictly before it; fresh
   * (and dnn, when given upload times) never nominate an item uploaded at or after it.
   */
  readonly asOf: number;
  /** Geography code (the `Dataset`'s users.geo code), for "trending in your area". */
  readonly geo?: number;
  /** Items never to nominate (besides the history). */
  readonly exclude?: ReadonlySet<number>;
  /** How many candidates each source returns at most. */
  readonly budget: number;
  /**
   * The history as a set, when the caller already has it (saves rebuilding it in every source).
   * Must hold exactly the items of `history`.
   */
  readonly watched?: ReadonlySet<number>;
}

/** One watch, as the orchestrator records it and as the dataset replays it. */
export interface WatchEvent {
  readonly user: number;
  readonly item: number;
  /** Unix seconds. */
  readonly timestamp: number;
}

/** A named module that nominates items for a request. */
export interface CandidateSource {
  readonly name: SourceName;
  candidates(request: SourceRequest): SourceResult;
}

/**
 * A source whose state is built from watch events. Events are applied in time order and only
 * those strictly before a request's `asOf` are visible to it (see `TimeGate`).
 */
export interface StatefulSource extends CandidateSource {
  /** Records an event; it becomes visible to requests with `asOf` after its timestamp. */
  observe(event: WatchEvent): void;
  /**
   * The time of the latest request answered (-Infinity before any): the source cannot answer
   * before it any more (`TimeGate.clock`).
   */
  readonly clock: number;
}

export function isStateful(source: CandidateSource): source is StatefulSource {
  return typeof (source as Partial<StatefulSource>).observe === "function";
}

/** The history as a set: `request.watched` when given, else built from `request.history`. */
export function watchedSet(request: SourceRequest): ReadonlySet<number> {
  if (request.watched !== undefined) return request.watched;
  const set = new Set<number>();
  for (let k = 0; k < request.history.length; k++) set.add(request.history[k]!);
  return set;
}

/** Validates the fields every source relies on; throws a RangeError naming the bad field. */
export function checkRequest(request: SourceRequest): void {
  if (!Number.isFinite(request.asOf)) throw new RangeError(`request.asOf must be a finite Unix time, got ${request.asOf}`);
  if (!Number.isInteger(request.budget) || request.budget < 0) {
    throw new RangeError(`request.budget must be a non-negative integer, got ${request.budget}`);
  }
}
