/**
 * Validation rules of the recsys.v1 contracts: one table, declared next to the generated code and
 * the limits (limits.ts), that the runtime checks once at the boundary of every service, on every
 * request message of every method (`checkContractRules` in @recsys/runtime, called where the
 * request is decoded), before any handler runs. A violation is INVALID_ARGUMENT naming the field
 * in proto snake_case ("context.watch_history[3].watch_seconds must be >= 0, got -1").
 *
 * Why a table and not protovalidate annotations: protovalidate's rules live in
 * buf/validate/validate.proto, which `buf generate` / `buf lint` would have to import; it is
 * fetched from the Buf Schema Registry, which the build machines cannot reach, and the npm
 * package @bufbuild/protovalidate ships only its generated code, not the .proto. A table here
 * keeps the .proto files untouched (other branches edit them) and costs no new dependency; its
 * rules are those protovalidate would express (finite, gte/gt, timestamp range, blank ids).
 *
 * Rules that hold for every message, whatever the field (the walker applies them by type):
 * - every float and double (singular, repeated, map value) is finite: no NaN, no ±Infinity;
 * - every google.protobuf.Timestamp is within the range the type documents (0001-01-01T00:00:00Z
 *   to 9999-12-31T23:59:59.999999999Z) with nanos in 0..999 999 999;
 * - every string field whose name is `*_id` or `*_ids` (user, item and request ids) is either
 *   empty ("absent") or has a non-whitespace character, and is at most MAX_ID_LENGTH long.
 * Per-field rules (below) add bounds. Required fields, counts and list lengths stay with each
 * service's own checks (their messages name the limits of limits.ts).
 */
import { MAX_ID_LENGTH } from "./limits.js";

export interface FieldRule {
  /** Inclusive lower bound of a number. */
  readonly gte?: number;
  /** Exclusive lower bound of a number. */
  readonly gt?: number;
  /** Inclusive upper bound of a number. */
  readonly lte?: number;
}

/** Per-field rules, keyed by the field's full name ("recsys.v1.WatchedItem.watch_seconds"). */
export const FIELD_RULES: Readonly<Record<string, FieldRule>> = {
  "recsys.v1.WatchedItem.watch_seconds": { gte: 0 },
  "recsys.v1.RecommendFilters.max_duration_seconds": { gt: 0 },
  "recsys.v1.Demographics.age": { lte: 150 },
  "recsys.v1.CandidateStats.watch_count": { gte: 0 },
  "recsys.v1.CandidateStats.trending": { gte: 0 },
};

/** google.protobuf.Timestamp's documented range, in seconds since the epoch. */
export const MIN_TIMESTAMP_SECONDS = -62_135_596_800n; // 0001-01-01T00:00:00Z
export const MAX_TIMESTAMP_SECONDS = 253_402_300_799n; // 9999-12-31T23:59:59Z

/** String fields named like this hold ids: not blank when set, at most MAX_ID_LENGTH. */
export const ID_FIELD_PATTERN = /_ids?$/;
export const ID_MAX_LENGTH = MAX_ID_LENGTH;
