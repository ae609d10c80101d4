/**
 * A RankRequest (proto) → the ranking package's inputs (RankingContext, RankingCandidate[], the
 * request time), validated: the shapes `encodeCandidates` takes in training, so the service
 * computes features exactly as the trainer did.
 *
 * - The user context goes through the candidate-generation service's conversion
 *   (`toFeatureContext`: timestamps → Unix seconds, request_time absent → the service clock, a
 *   watch without watched_at counts as watched at the request time, empty demographics = unknown),
 *   so both stages read a UserContext the same way; impression_history is added (an impression
 *   without shown_at counts as shown 1 ms before the request time, i.e. it is counted).
 * - Candidate k's merged position is k (the request lists candidates in merged order).
 * - Provenance: rank 1-based on the wire → 0-based (as @recsys/sources and the training data);
 *   source = `source_name`, or the enum's name when it is empty. Sources the ranker was not trained
 *   with (and UNSPECIFIED without a name) are dropped: the encoder would ignore them anyway; they
 *   are counted (`ignoredProvenance`).
 * - Item statistics (`stats`) are required: they are features, and a default would be silent
 *   train/serve skew.
 */
import { toFeatureContext } from "@recsys/candidate-gen-service";
import {
  MAX_ID_LENGTH,
  MAX_IMPRESSION_HISTORY,
  MAX_RANK_CANDIDATES,
  type Provenance as ProtoProvenance,
  type RankRequest,
  type UserContext as ProtoUserContext,
} from "@recsys/gen";
import type { Impression, RankingCandidate, RankingContext } from "@recsys/ranking";
import {
  emptyOrTooLong,
  invalidArgument,
  requireMaxItems,
  requireNonEmpty,
  requireValidTimestamp,
  SOURCE_ENUM_NAMES,
  timestampSeconds,
  validTimestamp,
  validateUserContext,
} from "@recsys/runtime";

type SourceProvenance = RankingCandidate["provenance"][number];

/** The source name a provenance entry stands for; undefined for UNSPECIFIED (or unknown) without a name. */
export function provenanceSourceName(provenance: ProtoProvenance): string | undefined {
  if (provenance.sourceName !== "") return provenance.sourceName;
  return SOURCE_ENUM_NAMES[provenance.source];
}

/** The user context checks (runtime's common ones, timestamps, impression_history). */
export function validateRankingContext(context: ProtoUserContext | undefined): ProtoUserContext {
  const value = validateUserContext(context, "context");
  if (value.requestTime !== undefined) requireValidTimestamp(value.requestTime, "context.request_time");
  // Entry field names are built only for an error message (histories run to thousands of entries).
  value.watchHistory.forEach((watch, i) => {
    if (watch.watchedAt !== undefined && !validTimestamp(watch.watchedAt))
      requireValidTimestamp(watch.watchedAt, `context.watch_history[${i}].watched_at`);
  });
  value.searchHistory.forEach((search, i) => {
    if (search.searchedAt !== undefined && !validTimestamp(search.searchedAt))
      requireValidTimestamp(search.searchedAt, `context.search_history[${i}].searched_at`);
  });
  requireMaxItems(value.impressionHistory, MAX_IMPRESSION_HISTORY, "context.impression_history");
  value.impressionHistory.forEach((shown, i) => {
    if (emptyOrTooLong(shown.itemId)) requireNonEmpty(shown.itemId, `context.impression_history[${i}].item_id`);
    if (shown.shownAt !== undefined && !validTimestamp(shown.shownAt))
      requireValidTimestamp(shown.shownAt, `context.impression_history[${i}].shown_at`);
  });
  return value;
}

/** A candidate statistic must be a finite number >= 0. */
function requireStat(value: number, k: number, name: string): void {
  if (!Number.isFinite(value) || value < 0)
    throw invalidArgument(`candidates[${k}].stats.${name} must be a finite number >= 0, got ${value}`);
}

/** What the ranker scores for one request. */
export interface RankInputs {
  readonly context: RankingContext;
  /** In request order (= merged order: position k). */
  readonly candidates: readonly RankingCandidate[];
  /** Request time, Unix seconds: features are computed as of it. */
  readonly time: number;
  /** Provenance entries dropped because the ranker does not know their source. */
  readonly ignoredProvenance: number;
}

/**
 * Validates a RankRequest (INVALID_ARGUMENT naming the field) and converts it for a ranker
 * trained with the sources `knownSources`. `nowSeconds` is used when request_time is absent.
 */
export function rankInputs(request: RankRequest, knownSources: readonly string[], nowSeconds: number): RankInputs {
  const proto = validateRankingContext(request.context);
  const n = request.candidates.length;
  if (n < 1 || n > MAX_RANK_CANDIDATES) {
    throw invalidArgument(`candidates must have 1..${MAX_RANK_CANDIDATES} entries, got ${n}`);
  }
  const known = new Set(knownSources);
  const seen = new Set<string>();
  let ignoredProvenance = 0;
  // Field names are built only for an error message (this runs for every candidate of every call).
  const candidates: RankingCandidate[] = request.candidates.map((candidate, k) => {
    const itemId = candidate.itemId;
    if (emptyOrTooLong(itemId)) requireNonEmpty(itemId, `candidates[${k}].item_id`);
    if (seen.has(itemId)) throw invalidArgument(`candidates contains item_id "${itemId}" more than once`);
    seen.add(itemId);
    const stats = candidate.stats;
    if (stats === undefined) {
      throw invalidArgument(`candidates[${k}].stats is required (watch_count and trending are features of the ranker)`);
    }
    requireStat(stats.watchCount, k, "watch_count");
    requireStat(stats.trending, k, "trending");
    const provenance: SourceProvenance[] = [];
    const names: string[] = [];
    for (let j = 0; j < candidate.provenance.length; j++) {
      const p = candidate.provenance[j]!;
      if (p.rank < 1)
        throw invalidArgument(`candidates[${k}].provenance[${j}].rank must be >= 1 (1-based position in the source's list), got ${p.rank}`);
      if (!Number.isFinite(p.score))
        throw invalidArgument(`candidates[${k}].provenance[${j}].score must be a finite number, got ${p.score}`);
      if (p.sourceName.length > MAX_ID_LENGTH) {
        throw invalidArgument(
          `candidates[${k}].provenance[${j}].source_name is too long: ${p.sourceName.length} characters, at most ${MAX_ID_LENGTH}`,
        );
      }
      const source = provenanceSourceName(p);
      if (source !== undefined) {
        if (names.includes(source)) throw invalidArgument(`candidates[${k}].provenance lists source "${source}" more than once`);
        names.push(source);
      }
      if (source === undefined || !known.has(source)) {
        ignoredProvenance++;
        continue;
      }
      provenance.push({ source, rank: p.rank - 1, score: p.score });
    }
    return { itemId, provenance, position: k, stats: { watchCount: stats.watchCount, trending: stats.trending } };
  });

  const base = toFeatureContext(proto, nowSeconds);
  const time = base.requestTime;
  const impressions: Impression[] = proto.impressionHistory.map((shown) => ({
    itemId: shown.itemId,
    timestamp: shown.shownAt === undefined ? time - 0.001 : timestampSeconds(shown.shownAt),
  }));
  return { context: { ...base, impressions }, candidates, time, ignoredProvenance };
}
