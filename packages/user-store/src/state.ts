/**
 * Per-user state shared by both backends: events stored without their userId (the key says
 * whose they are), bounded lists in append order, and the `UserState` built from them on read.
 */
import type { ImpressionEvent, SearchEvent, UserEvent, UserProfile, UserState, WatchEvent } from "./types.js";

export type StoredWatch = Omit<WatchEvent, "userId">;
export type StoredSearch = Omit<SearchEvent, "userId">;
export type StoredImpression = Omit<ImpressionEvent, "userId">;

export function stripWatch(event: WatchEvent): StoredWatch {
  return event.watchSeconds === undefined
    ? { itemId: event.itemId, timestamp: event.timestamp }
    : { itemId: event.itemId, timestamp: event.timestamp, watchSeconds: event.watchSeconds };
}

export function stripSearch(event: SearchEvent): StoredSearch {
  return { query: event.query, timestamp: event.timestamp };
}

export function stripImpression(event: ImpressionEvent): StoredImpression {
  const stored: { itemId: string; timestamp: number; position?: number; requestId?: string } = {
    itemId: event.itemId,
    timestamp: event.timestamp,
  };
  if (event.position !== undefined) stored.position = event.position;
  if (event.requestId !== undefined) stored.requestId = event.requestId;
  return stored;
}

/** One user's events of one append call, split by kind (append order kept). */
export interface UserBatch {
  readonly watches: StoredWatch[];
  readonly searches: StoredSearch[];
  readonly impressions: StoredImpression[];
}

/** Group validated events by user, keeping append order within each user and kind. */
export function groupByUser(events: readonly UserEvent[]): Map<string, UserBatch> {
  const groups = new Map<string, UserBatch>();
  for (const event of events) {
    // Served answers are in the events log only, not in a user's state.
    if (event.kind === "served") continue;
    let group = groups.get(event.userId);
    if (group === undefined) {
      group = { watches: [], searches: [], impressions: [] };
      groups.set(event.userId, group);
    }
    switch (event.kind) {
      case "watch":
        group.watches.push(stripWatch(event));
        break;
      case "search":
        group.searches.push(stripSearch(event));
        break;
      case "impression":
        group.impressions.push(stripImpression(event));
        break;
    }
  }
  return groups;
}

/** `list` followed by `added`, keeping the last `max` entries (new array; inputs untouched). */
export function appendBounded<T>(list: readonly T[], added: readonly T[], max: number): readonly T[] {
  if (added.length === 0) return list;
  const total = list.length + added.length;
  if (total <= max) return list.concat(added);
  if (added.length >= max) return added.slice(added.length - max);
  return list.slice(total - max).concat(added);
}

/**
 * `appendBounded` for watches, also returning the entries that left the list (oldest first): the
 * store remembers their item ids as earlier watches.
 */
export function appendWatches(
  list: readonly StoredWatch[],
  added: readonly StoredWatch[],
  max: number,
): { readonly kept: readonly StoredWatch[]; readonly dropped: readonly StoredWatch[] } {
  const kept = appendBounded(list, added, max);
  const droppedCount = list.length + added.length - kept.length;
  if (droppedCount === 0) return { kept, dropped: [] };
  return { kept, dropped: list.concat(added).slice(0, droppedCount) };
}

/**
 * `earlier` with `ids` added as the most recent (an id already there moves to the end), then the
 * oldest forgotten beyond `max`. Returns `earlier` itself when `ids` is empty (sets are never
 * mutated: a record may be in a snapshot being written).
 */
export function rememberEarlier(earlier: ReadonlySet<string>, ids: Iterable<string>, max: number): ReadonlySet<string> {
  let next: Set<string> | undefined;
  for (const id of ids) {
    next ??= new Set(earlier);
    next.delete(id);
    next.add(id);
  }
  if (next === undefined) return earlier;
  for (const id of next) {
    if (next.size <= max) break;
    next.delete(id);
  }
  return next;
}

function byTimestamp<T extends { readonly timestamp: number }>(list: readonly T[]): readonly T[] {
  for (let i = 1; i < list.length; i++) {
    if (list[i]!.timestamp < list[i - 1]!.timestamp) {
      // Array.prototype.sort is stable: equal timestamps keep append order.
      return list.slice().sort((a, b) => a.timestamp - b.timestamp);
    }
  }
  return list;
}

/** The public state: lists sorted by timestamp (stable), userId put back, impression counts. */
export function toUserState(
  userId: string,
  profile: UserProfile,
  watches: readonly StoredWatch[],
  searches: readonly StoredSearch[],
  impressions: readonly StoredImpression[],
  hasEarlierWatches: boolean,
): UserState {
  const impressionCounts = new Map<string, number>();
  for (const impression of impressions) {
    impressionCounts.set(impression.itemId, (impressionCounts.get(impression.itemId) ?? 0) + 1);
  }
  return {
    userId,
    profile: { ...profile },
    watches: byTimestamp(watches).map((w) => ({ userId, ...w })),
    searches: byTimestamp(searches).map((s) => ({ userId, ...s })),
    impressions: byTimestamp(impressions).map((i) => ({ userId, ...i })),
    impressionCounts,
    hasEarlierWatches,
  };
}
