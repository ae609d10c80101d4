/**
 * Input checks, done once at the store boundary. Each returns a normalized copy holding only the
 * known fields, so what is stored (and written to the log or Redis) is exactly what was checked.
 */
import { UserStoreValidationError } from "./errors.js";
import type {
  ImpressionEvent,
  SearchEvent,
  ServedEvent,
  ServedItem,
  UserEvent,
  UserProfile,
  UserSnapshot,
  UserStoreLimits,
  WatchEvent,
} from "./types.js";
import { DEFAULT_LIMITS, MAX_WATCHED_AMONG_IDS } from "./types.js";

/** Largest accepted timestamp (unix seconds, year 5138): larger ones are milliseconds by mistake. */
export const MAX_TIMESTAMP = 1e11;
/** Largest accepted position in a shown list. */
export const MAX_POSITION = 1_000_000;
/** Largest accepted watch time (one year), in seconds. */
export const MAX_WATCH_SECONDS = 366 * 24 * 3600;
export const MAX_AGE = 200;
export const MAX_META_KEY_LENGTH = 256;
export const MAX_META_VALUE_LENGTH = 65_536;

function fail(field: string, message: string): never {
  throw new UserStoreValidationError(field, `${field} ${message}`);
}

/** Limits with defaults filled in; every limit must be a positive integer. */
export function resolveLimits(partial: Partial<UserStoreLimits> = {}): UserStoreLimits {
  const limits = { ...DEFAULT_LIMITS, ...partial };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      fail(`limits.${name}`, `must be a positive integer, got ${String(value)}`);
    }
  }
  return Object.freeze(limits);
}

export function checkId(value: unknown, field: string, limits: UserStoreLimits): string {
  if (typeof value !== "string") fail(field, `must be a string, got ${typeof value}`);
  if (value === "") fail(field, "is required (empty)");
  if (value.length > limits.maxIdLength) {
    fail(field, `is too long: ${value.length} characters, at most ${limits.maxIdLength}`);
  }
  return value;
}

function checkTimestamp(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    fail(field, `must be a finite number of unix seconds, got ${String(value)}`);
  }
  if (value < 0) fail(field, `must be >= 0 (unix seconds), got ${value}`);
  if (value > MAX_TIMESTAMP) {
    fail(field, `is ${value}: too large for unix seconds (milliseconds by mistake?)`);
  }
  return value;
}

function checkOptionalNumber(value: unknown, field: string, max: number, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > max) {
    fail(field, `must be a finite number in 0..${max}, got ${String(value)}`);
  }
  if (integer && !Number.isInteger(value)) fail(field, `must be an integer, got ${value}`);
  return value;
}

function checkOptionalString(value: unknown, field: string, maxLength: number): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string") fail(field, `must be a string, got ${typeof value}`);
  if (value.length > maxLength) {
    fail(field, `is too long: ${value.length} characters, at most ${maxLength}`);
  }
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function checkWatch(value: unknown, field: string, limits: UserStoreLimits): WatchEvent {
  if (!isObject(value)) fail(field, "must be an object");
  const event: { userId: string; itemId: string; timestamp: number; watchSeconds?: number; clientId?: string } = {
    userId: checkId(value.userId, `${field}.userId`, limits),
    itemId: checkId(value.itemId, `${field}.itemId`, limits),
    timestamp: checkTimestamp(value.timestamp, `${field}.timestamp`),
  };
  const watchSeconds = checkOptionalNumber(value.watchSeconds, `${field}.watchSeconds`, MAX_WATCH_SECONDS, false);
  if (watchSeconds !== undefined) event.watchSeconds = watchSeconds;
  const clientId = checkOptionalString(value.clientId, `${field}.clientId`, limits.maxIdLength);
  if (clientId !== undefined && clientId !== "") event.clientId = clientId;
  return event;
}

export function checkSearch(value: unknown, field: string, limits: UserStoreLimits): SearchEvent {
  if (!isObject(value)) fail(field, "must be an object");
  const query = value.query;
  if (typeof query !== "string") fail(`${field}.query`, `must be a string, got ${typeof query}`);
  if (query.trim() === "") fail(`${field}.query`, "is required (empty)");
  if (query.length > limits.maxQueryLength) {
    fail(`${field}.query`, `is too long: ${query.length} characters, at most ${limits.maxQueryLength}`);
  }
  return {
    userId: checkId(value.userId, `${field}.userId`, limits),
    query,
    timestamp: checkTimestamp(value.timestamp, `${field}.timestamp`),
  };
}

export function checkImpression(value: unknown, field: string, limits: UserStoreLimits): ImpressionEvent {
  if (!isObject(value)) fail(field, "must be an object");
  const event: {
    userId: string;
    itemId: string;
    timestamp: number;
    position?: number;
    requestId?: string;
  } = {
    userId: checkId(value.userId, `${field}.userId`, limits),
    itemId: checkId(value.itemId, `${field}.itemId`, limits),
    timestamp: checkTimestamp(value.timestamp, `${field}.timestamp`),
  };
  const position = checkOptionalNumber(value.position, `${field}.position`, MAX_POSITION, true);
  if (position !== undefined) event.position = position;
  const requestId = checkOptionalString(value.requestId, `${field}.requestId`, limits.maxIdLength);
  if (requestId !== undefined && requestId !== "") event.requestId = requestId;
  return event;
}

/** Most items in one served answer, provenance entries per item, model versions per answer. */
export const MAX_SERVED_ITEMS = 1000;
export const MAX_SERVED_PROVENANCE = 32;
export const MAX_MODEL_VERSIONS = 32;

export function checkServed(value: unknown, field: string, limits: UserStoreLimits): ServedEvent {
  if (!isObject(value)) fail(field, "must be an object");
  const userId = checkId(value.userId, `${field}.userId`, limits);
  const timestamp = checkTimestamp(value.timestamp, `${field}.timestamp`);
  const requestId = checkId(value.requestId, `${field}.requestId`, limits);
  const items = value.items;
  if (!Array.isArray(items)) fail(`${field}.items`, "must be an array");
  if (items.length > MAX_SERVED_ITEMS) fail(`${field}.items`, `has ${items.length} entries, at most ${MAX_SERVED_ITEMS}`);
  const checkedItems: ServedItem[] = items.map((item: unknown, i: number) => {
    const f = `${field}.items[${i}]`;
    if (!isObject(item)) fail(f, "must be an object");
    const position = checkOptionalNumber(item.position, `${f}.position`, MAX_POSITION, true);
    if (position === undefined || position < 1) fail(`${f}.position`, "must be an integer >= 1");
    const provenance = item.provenance === undefined ? [] : item.provenance;
    if (!Array.isArray(provenance)) fail(`${f}.provenance`, "must be an array");
    if (provenance.length > MAX_SERVED_PROVENANCE) {
      fail(`${f}.provenance`, `has ${provenance.length} entries, at most ${MAX_SERVED_PROVENANCE}`);
    }
    return {
      itemId: checkId(item.itemId, `${f}.itemId`, limits),
      position,
      provenance: provenance.map((p: unknown, j: number) => {
        const pf = `${f}.provenance[${j}]`;
        if (!isObject(p)) fail(pf, "must be an object");
        const source = checkId(p.source, `${pf}.source`, limits);
        const rank = checkOptionalNumber(p.rank, `${pf}.rank`, MAX_POSITION, true);
        if (rank === undefined) fail(`${pf}.rank`, "is required");
        if (typeof p.score !== "number" || !Number.isFinite(p.score)) fail(`${pf}.score`, "must be a finite number");
        return { source, rank, score: p.score };
      }),
    };
  });
  const versions = value.modelVersions ?? {};
  if (!isObject(versions)) fail(`${field}.modelVersions`, "must be an object of strings");
  const entries = Object.entries(versions);
  if (entries.length > MAX_MODEL_VERSIONS) fail(`${field}.modelVersions`, `has ${entries.length} entries, at most ${MAX_MODEL_VERSIONS}`);
  const modelVersions: Record<string, string> = {};
  for (const [k, v] of entries) {
    checkId(k, `${field}.modelVersions key`, limits);
    const text = checkOptionalString(v, `${field}.modelVersions.${k}`, limits.maxIdLength);
    if (text === undefined) fail(`${field}.modelVersions.${k}`, "must be a string");
    modelVersions[k] = text;
  }
  return { userId, timestamp, requestId, items: checkedItems, modelVersions };
}

export function checkEvent(value: unknown, field: string, limits: UserStoreLimits): UserEvent {
  if (!isObject(value)) fail(field, "must be an object");
  switch (value.kind) {
    case "watch":
      return { kind: "watch", ...checkWatch(value, field, limits) };
    case "search":
      return { kind: "search", ...checkSearch(value, field, limits) };
    case "impression":
      return { kind: "impression", ...checkImpression(value, field, limits) };
    case "served":
      return { kind: "served", ...checkServed(value, field, limits) };
    default:
      return fail(`${field}.kind`, `must be "watch", "search", "impression" or "served", got ${JSON.stringify(value.kind)}`);
  }
}

/** A non-empty list of at most `maxEventsPerAppend` valid events. */
export function checkEvents(events: unknown, limits: UserStoreLimits): UserEvent[] {
  if (!Array.isArray(events)) fail("events", "must be an array");
  if (events.length === 0) fail("events", "is empty");
  if (events.length > limits.maxEventsPerAppend) {
    fail("events", `has ${events.length} entries, at most ${limits.maxEventsPerAppend}`);
  }
  return events.map((event, i) => checkEvent(event, `events[${i}]`, limits));
}

export function checkProfile(value: unknown, field: string, limits: UserStoreLimits): UserProfile {
  if (!isObject(value)) fail(field, "must be an object");
  const profile: {
    age?: number;
    gender?: string;
    occupation?: string;
    geo?: string;
    device?: string;
  } = {};
  const age = checkOptionalNumber(value.age, `${field}.age`, MAX_AGE, false);
  if (age !== undefined) profile.age = age;
  for (const key of ["gender", "occupation", "geo", "device"] as const) {
    const text = checkOptionalString(value[key], `${field}.${key}`, limits.maxProfileFieldLength);
    // "" means unknown, as in the proto: stored as absent.
    if (text !== undefined && text !== "") profile[key] = text;
  }
  return profile;
}

function checkList<T>(
  value: unknown,
  field: string,
  userId: string,
  check: (value: unknown, field: string) => T & { userId: string },
): T[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) fail(field, "must be an array");
  return value.map((entry, i) => {
    const event = check(entry, `${field}[${i}]`);
    if (event.userId !== userId) fail(`${field}[${i}].userId`, `must be the snapshot's userId "${userId}"`);
    return event;
  });
}

/** A snapshot for `putUsers`; lists longer than the limits keep their last entries. */
export function checkSnapshot(value: unknown, field: string, limits: UserStoreLimits): Required<UserSnapshot> {
  if (!isObject(value)) fail(field, "must be an object");
  const userId = checkId(value.userId, `${field}.userId`, limits);
  const profile = value.profile === undefined ? {} : checkProfile(value.profile, `${field}.profile`, limits);
  const watches = checkList(value.watches, `${field}.watches`, userId, (v, f) => checkWatch(v, f, limits));
  const searches = checkList(value.searches, `${field}.searches`, userId, (v, f) => checkSearch(v, f, limits));
  const impressions = checkList(value.impressions, `${field}.impressions`, userId, (v, f) => checkImpression(v, f, limits));
  const given = value.earlierWatchedIds === undefined ? [] : checkIdList(value.earlierWatchedIds, `${field}.earlierWatchedIds`, limits);
  const overflow = watches.slice(0, Math.max(0, watches.length - limits.maxWatches)).map((w) => w.itemId);
  // Distinct, oldest first (an id given twice counts at its last place), the newest kept.
  const earlier = [...new Set([...given, ...overflow].reverse())].reverse();
  return {
    userId,
    profile,
    earlierWatchedIds: earlier.slice(-limits.maxEarlierWatches),
    watches: watches.slice(-limits.maxWatches),
    searches: searches.slice(-limits.maxSearches),
    impressions: impressions.slice(-limits.maxImpressions),
  };
}

function checkIdList(value: unknown, field: string, limits: UserStoreLimits): string[] {
  if (!Array.isArray(value)) fail(field, "must be an array");
  return value.map((id, i) => checkId(id, `${field}[${i}]`, limits));
}

/** The item ids of a `watchedAmong` call. */
export function checkItemIds(itemIds: unknown, limits: UserStoreLimits): string[] {
  if (Array.isArray(itemIds) && itemIds.length > MAX_WATCHED_AMONG_IDS) {
    fail("itemIds", `has ${itemIds.length} entries, at most ${MAX_WATCHED_AMONG_IDS}`);
  }
  return checkIdList(itemIds, "itemIds", limits);
}

export function checkSnapshots(users: unknown, limits: UserStoreLimits): Required<UserSnapshot>[] {
  if (!Array.isArray(users)) fail("users", "must be an array");
  if (users.length > limits.maxUsersPerCall) {
    fail("users", `has ${users.length} entries, at most ${limits.maxUsersPerCall}`);
  }
  return users.map((user, i) => checkSnapshot(user, `users[${i}]`, limits));
}

export function checkUserIds(userIds: unknown, limits: UserStoreLimits): string[] {
  if (!Array.isArray(userIds)) fail("userIds", "must be an array");
  if (userIds.length > limits.maxUsersPerCall) {
    fail("userIds", `has ${userIds.length} entries, at most ${limits.maxUsersPerCall}`);
  }
  return userIds.map((id, i) => checkId(id, `userIds[${i}]`, limits));
}

export function checkMetaKey(key: unknown): string {
  if (typeof key !== "string" || key === "") fail("key", "must be a non-empty string");
  if (key.length > MAX_META_KEY_LENGTH) fail("key", `is too long: at most ${MAX_META_KEY_LENGTH} characters`);
  return key;
}

export function checkMetaValue(value: unknown): string {
  if (typeof value !== "string") fail("value", `must be a string, got ${typeof value}`);
  if (value.length > MAX_META_VALUE_LENGTH) {
    fail("value", `is too long: ${value.length} characters, at most ${MAX_META_VALUE_LENGTH}`);
  }
  return value;
}
