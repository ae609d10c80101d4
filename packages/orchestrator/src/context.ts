/**
 * Request validation at the public boundary, the user context built from the user store, item
 * filters, and timestamp conversions.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  Device,
  MAX_EXCLUDED_ITEMS,
  MAX_IMPRESSION_HISTORY,
  MAX_RECOMMEND_COUNT,
  MAX_SEARCH_HISTORY,
  MAX_WATCH_HISTORY,
  UserContextSchema,
  type RecommendFilters,
  type RecommendRequest,
  type UserContext,
} from "@recsys/gen";
import {
  invalidArgument,
  requireMaxItems,
  requireMaxLength,
  requireNonEmpty,
  requireValidTimestamp,
  timestampSeconds,
  validateUserContext,
} from "@recsys/runtime";
import type { UserProfile, UserState } from "@recsys/user-store";
import type { Catalogue } from "./catalogue.js";

/** Entries per RecommendFilters list (tags, channels). */
export const MAX_FILTER_VALUES = 1000;

/** Unix seconds as a google.protobuf.Timestamp (millisecond precision). */
export function secondsTimestamp(seconds: number): Timestamp {
  return timestampFromMs(Math.round(seconds * 1000));
}

export interface ValidRecommendRequest {
  readonly userId: string;
  /** The caller's context (user_id filled in), when it sent one. */
  readonly context: UserContext | undefined;
  readonly count: number;
  readonly excluded: readonly string[];
  readonly filters: RecommendFilters | undefined;
  readonly debug: boolean;
}

function hasAnyFilter(filters: RecommendFilters | undefined): filters is RecommendFilters {
  return (
    filters !== undefined &&
    (filters.includeTags.length > 0 ||
      filters.excludeTags.length > 0 ||
      filters.channels.length > 0 ||
      filters.uploadedAfter !== undefined ||
      filters.maxDurationSeconds !== undefined)
  );
}

function requireValues(values: readonly string[], field: string): void {
  requireMaxItems(values, MAX_FILTER_VALUES, field);
  values.forEach((value, i) => requireNonEmpty(value, `${field}[${i}]`));
}

/** Validates a RecommendRequest; throws INVALID_ARGUMENT naming the field. */
export function validateRecommendRequest(request: RecommendRequest): ValidRecommendRequest {
  const contextUserId = request.context?.userId ?? "";
  if (request.userId === "" && contextUserId === "") {
    throw invalidArgument("user_id is required (or a context with context.user_id)");
  }
  if (request.userId !== "" && contextUserId !== "" && request.userId !== contextUserId) {
    throw invalidArgument(`context.user_id ("${contextUserId}") must be empty or equal to user_id ("${request.userId}")`);
  }
  const userId = requireNonEmpty(request.userId !== "" ? request.userId : contextUserId, "user_id");
  let context: UserContext | undefined;
  if (request.context !== undefined) {
    context = request.context.userId === userId ? request.context : { ...request.context, userId };
    validateUserContext(context);
    if (Device[context.device] === undefined) {
      throw invalidArgument(`context.device has unknown value ${context.device}`);
    }
    requireMaxLength(context.geo, "context.geo");
    context.watchHistory.forEach((watch, i) => {
      if (watch.watchedAt !== undefined) requireValidTimestamp(watch.watchedAt, `context.watch_history[${i}].watched_at`);
    });
    if (context.requestTime !== undefined) requireValidTimestamp(context.requestTime, "context.request_time");
    requireMaxItems(context.impressionHistory, MAX_IMPRESSION_HISTORY, "context.impression_history");
    context.impressionHistory.forEach((shown, i) => {
      requireNonEmpty(shown.itemId, `context.impression_history[${i}].item_id`);
      if (shown.shownAt !== undefined) requireValidTimestamp(shown.shownAt, `context.impression_history[${i}].shown_at`);
    });
  }
  if (!Number.isInteger(request.count) || request.count < 1 || request.count > MAX_RECOMMEND_COUNT) {
    throw invalidArgument(`count must be between 1 and ${MAX_RECOMMEND_COUNT}, got ${request.count}`);
  }
  requireMaxItems(request.excludedItemIds, MAX_EXCLUDED_ITEMS, "excluded_item_ids");
  request.excludedItemIds.forEach((id, i) => requireNonEmpty(id, `excluded_item_ids[${i}]`));
  const filters = request.filters;
  if (filters !== undefined) {
    requireValues(filters.includeTags, "filters.include_tags");
    requireValues(filters.excludeTags, "filters.exclude_tags");
    requireValues(filters.channels, "filters.channels");
    if (filters.uploadedAfter !== undefined) requireValidTimestamp(filters.uploadedAfter, "filters.uploaded_after");
    if (filters.maxDurationSeconds !== undefined && !(filters.maxDurationSeconds >= 0)) {
      throw invalidArgument(`filters.max_duration_seconds must be >= 0, got ${filters.maxDurationSeconds}`);
    }
  }
  return {
    userId,
    context,
    count: request.count,
    excluded: request.excludedItemIds,
    filters: hasAnyFilter(filters) ? filters : undefined,
    debug: request.debug,
  };
}

/** The item filter of a request (true = keep), undefined when it has none. */
export function itemFilter(catalogue: Catalogue, filters: RecommendFilters | undefined): ((item: number) => boolean) | undefined {
  if (filters === undefined) return undefined;
  const include = new Set(filters.includeTags);
  const exclude = new Set(filters.excludeTags);
  const channels = new Set(filters.channels);
  const uploadedAfter = filters.uploadedAfter === undefined ? undefined : timestampSeconds(filters.uploadedAfter);
  const maxDuration = filters.maxDurationSeconds;
  return (item) => {
    if (include.size > 0 || exclude.size > 0) {
      const tags = catalogue.tags(item);
      if (include.size > 0 && !tags.some((t) => include.has(t))) return false;
      if (tags.some((t) => exclude.has(t))) return false;
    }
    if (channels.size > 0) {
      const channel = catalogue.channel(item);
      if (channel === undefined || !channels.has(channel)) return false;
    }
    if (uploadedAfter !== undefined && !(catalogue.uploadTimestamp(item) >= uploadedAfter)) return false;
    if (maxDuration !== undefined && !(catalogue.durationSeconds(item) <= maxDuration)) return false;
    return true;
  };
}

const DEVICE_NAMES: Readonly<Record<string, Device>> = {
  desktop: Device.DESKTOP,
  mobile: Device.MOBILE,
  tablet: Device.TABLET,
  tv: Device.TV,
};

/** A stored profile's device ("mobile", "DEVICE_MOBILE", ...) as the enum; unknown → UNSPECIFIED. */
export function deviceOf(profile: UserProfile): Device {
  const name = (profile.device ?? "").toLowerCase().replace(/^device_/, "");
  return DEVICE_NAMES[name] ?? Device.UNSPECIFIED;
}

/**
 * The context of a user from the user store (undefined state: an unknown user, context with the
 * id only), served at `requestTime`. Keeps the most recent MAX_WATCH_HISTORY watches,
 * MAX_SEARCH_HISTORY searches and MAX_IMPRESSION_HISTORY impressions (the ranker counts
 * previous impressions of each candidate).
 */
export function contextFromState(userId: string, state: UserState | undefined, requestTime: number): UserContext {
  const watches = state?.watches ?? [];
  const searches = state?.searches ?? [];
  const impressions = state?.impressions ?? [];
  const profile = state?.profile ?? {};
  return create(UserContextSchema, {
    userId,
    watchHistory: watches.slice(-MAX_WATCH_HISTORY).map((w) => ({
      itemId: w.itemId,
      watchedAt: secondsTimestamp(w.timestamp),
      ...(w.watchSeconds === undefined ? {} : { watchSeconds: w.watchSeconds }),
    })),
    searchHistory: searches.slice(-MAX_SEARCH_HISTORY).map((s) => ({ query: s.query, searchedAt: secondsTimestamp(s.timestamp) })),
    impressionHistory: impressions
      .slice(-MAX_IMPRESSION_HISTORY)
      .map((i) => ({ itemId: i.itemId, shownAt: secondsTimestamp(i.timestamp) })),
    demographics: {
      ...(profile.age === undefined ? {} : { age: Math.max(0, Math.round(profile.age)) }),
      gender: profile.gender ?? "",
      occupation: profile.occupation ?? "",
    },
    geo: profile.geo ?? "",
    device: deviceOf(profile),
    requestTime: secondsTimestamp(requestTime),
  });
}
