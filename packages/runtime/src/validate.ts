/**
 * Request validation at the service boundary. Each helper throws INVALID_ARGUMENT with a message
 * naming the field (in proto snake_case, as callers see it), e.g.
 * "count must be in 1..500, got 0".
 */
import type { UserContext } from "@recsys/gen";
import { MAX_ID_LENGTH, MAX_QUERY_LENGTH, MAX_SEARCH_HISTORY, MAX_WATCH_HISTORY } from "@recsys/gen";
import { invalidArgument } from "@recsys/transport";

/** A required string field: non-empty and at most `maxLength` code units. */
export function requireNonEmpty(value: string, field: string, maxLength: number = MAX_ID_LENGTH): string {
  if (value === "") throw invalidArgument(`${field} is required`);
  return requireMaxLength(value, field, maxLength);
}

/** An optional string field (empty = absent): at most `maxLength` code units. */
export function requireMaxLength(value: string, field: string, maxLength: number = MAX_ID_LENGTH): string {
  if (value.length > maxLength) {
    throw invalidArgument(`${field} is too long: ${value.length} characters, at most ${maxLength}`);
  }
  return value;
}

/** True when `requireNonEmpty(value, …, maxLength)` throws: lets a loop name the field only then. */
export function emptyOrTooLong(value: string, maxLength: number = MAX_ID_LENGTH): boolean {
  return value === "" || value.length > maxLength;
}

/** A google.protobuf.Timestamp as Unix seconds (seconds + nanos / 1e9; not validated). */
export function timestampSeconds(ts: { readonly seconds: bigint; readonly nanos: number }): number {
  return Number(ts.seconds) + ts.nanos / 1e9;
}

function validNanos(nanos: number): boolean {
  return Number.isInteger(nanos) && nanos >= 0 && nanos <= 999_999_999;
}

/** True when `requireValidTimestamp` accepts `ts`: lets a loop name the field only on an error. */
export function validTimestamp(ts: { readonly seconds: bigint; readonly nanos: number }): boolean {
  return validNanos(ts.nanos) && Number.isFinite(timestampSeconds(ts));
}

/** A Timestamp field as Unix seconds, rejecting nanos outside 0..999 999 999 and times that are not finite. */
export function requireValidTimestamp(ts: { readonly seconds: bigint; readonly nanos: number }, field: string): number {
  if (!validNanos(ts.nanos)) throw invalidArgument(`${field}.nanos must be in 0..999999999, got ${ts.nanos}`);
  const seconds = timestampSeconds(ts);
  if (!Number.isFinite(seconds)) throw invalidArgument(`${field} is not a valid time`);
  return seconds;
}

/** A required message field. */
export function requirePresent<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw invalidArgument(`${field} is required`);
  return value;
}

/** An integer field within min..max (inclusive). */
export function requireInRange(value: number, min: number, max: number, field: string): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalidArgument(`${field} must be in ${min}..${max}, got ${value}`);
  }
  return value;
}

/** A finite number (rejects NaN and ±Infinity, e.g. in vectors). */
export function requireFinite(value: number, field: string): number {
  if (!Number.isFinite(value)) throw invalidArgument(`${field} must be a finite number, got ${value}`);
  return value;
}

/** A repeated field with at most `max` entries. */
export function requireMaxItems<T>(list: readonly T[], max: number, field: string): readonly T[] {
  if (list.length > max) {
    throw invalidArgument(`${field} has ${list.length} entries, at most ${max} allowed`);
  }
  return list;
}

/** A repeated string field whose entries are unique (and non-empty ids). */
export function requireUniqueIds(ids: readonly string[], field: string): readonly string[] {
  const seen = new Set<string>();
  ids.forEach((id, i) => {
    if (emptyOrTooLong(id)) requireNonEmpty(id, `${field}[${i}]`);
    if (seen.has(id)) throw invalidArgument(`${field} contains "${id}" more than once`);
    seen.add(id);
  });
  return ids;
}

/**
 * The checks every stage applies to a UserContext: user_id set, history within limits, every
 * history entry with an item id / query.
 */
export function validateUserContext(context: UserContext | undefined, field = "context"): UserContext {
  const value = requirePresent(context, field);
  requireNonEmpty(value.userId, `${field}.user_id`);
  requireMaxItems(value.watchHistory, MAX_WATCH_HISTORY, `${field}.watch_history`);
  // Entry field names are built only for an error message (histories run to thousands of entries).
  value.watchHistory.forEach((watch, i) => {
    if (emptyOrTooLong(watch.itemId)) requireNonEmpty(watch.itemId, `${field}.watch_history[${i}].item_id`);
    if (watch.watchSeconds !== undefined && !(watch.watchSeconds >= 0)) {
      throw invalidArgument(`${field}.watch_history[${i}].watch_seconds must be >= 0, got ${watch.watchSeconds}`);
    }
  });
  requireMaxItems(value.searchHistory, MAX_SEARCH_HISTORY, `${field}.search_history`);
  value.searchHistory.forEach((search, i) => {
    if (emptyOrTooLong(search.query, MAX_QUERY_LENGTH))
      requireNonEmpty(search.query, `${field}.search_history[${i}].query`, MAX_QUERY_LENGTH);
  });
  return value;
}
