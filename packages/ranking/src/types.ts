/**
 * What the ranker is given: a user context (the candidate generator's, plus impressions), and
 * candidates with their provenance and item statistics. External ids everywhere, so that the
 * same shapes serve offline training (built from a Dataset) and the ranking service (built from a
 * request).
 */
import type { UserContext } from "@recsys/features";
import type { Provenance } from "@recsys/sources";

/** An item shown to the user (whether or not it was watched). */
export interface Impression {
  readonly itemId: string;
  /** Unix seconds. */
  readonly timestamp: number;
}

/**
 * Everything the ranker knows about the user at request time. Watches and impressions at or
 * before the request time `t` given to {@link encodeCandidates} are used; later ones are ignored.
 */
export interface RankingContext extends UserContext {
  /** Impressions, any order; absent or empty when the system does not log them. */
  readonly impressions?: readonly Impression[];
}

/** Item statistics from watch events strictly before the request time. */
export interface ItemStats {
  /** All-time watch count. */
  readonly watchCount: number;
  /** Exponentially time-decayed watch count (the trending source's score). */
  readonly trending: number;
}

/** One candidate to rank: the item, where the candidate sources put it, and its statistics. */
export interface RankingCandidate {
  readonly itemId: string;
  /**
   * Every source that nominated it (rank = 0-based position in that source's list, score = the
   * source's own score). Empty for an item no source nominated.
   */
  readonly provenance: readonly Provenance[];
  /** Position in the merged candidate list (0-based); -1 when it is not in it. */
  readonly position: number;
  readonly stats: ItemStats;
}
