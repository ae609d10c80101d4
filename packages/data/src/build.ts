/**
 * Turns loader output keyed by provisional codes (order of first appearance) into the canonical
 * columnar `Dataset`: indices in `compareIds` order of the external ids, events sorted by
 * (user, timestamp, item id), searches by (user, timestamp), plus a content fingerprint.
 */
import { createHash } from "node:crypto";
import { categorical, type IdInterner } from "./columns.js";
import { compareIds } from "./ids.js";
import type { Dataset, EventLog, ImpressionLog, ItemTable, LoadReport, SearchLog, UserTable } from "./types.js";

export interface RawUsers {
  readonly ids: IdInterner;
  /** By provisional code; holes/undefined = missing. */
  readonly age: (number | undefined)[];
  readonly gender: (string | undefined)[];
  readonly occupation: (string | undefined)[];
  readonly geo: (string | undefined)[];
}

export interface RawItems {
  readonly ids: IdInterner;
  readonly title: (string | undefined)[];
  readonly tags: (readonly string[] | undefined)[];
  /** Fixed tag vocabulary order (e.g. ml-100k's u.genre); otherwise tags are sorted. */
  readonly tagVocabulary?: readonly string[];
  readonly channel: (string | undefined)[];
  readonly uploadTimestamp: (number | undefined)[];
  readonly durationSeconds: (number | undefined)[];
}

/** Columns by row, user/item as provisional codes. */
export interface RawEvents {
  readonly user: Int32Array;
  readonly item: Int32Array;
  readonly timestamp: Float64Array;
  readonly weight: Float32Array;
}

export interface RawSearches {
  readonly user: Int32Array;
  readonly timestamp: Float64Array;
  readonly query: readonly string[];
}

/** Permutation of ids into `compareIds` order: `rank[provisional] = final index`. */
export function idOrder(ids: readonly string[]): { readonly sorted: string[]; readonly rank: Int32Array } {
  const order = Array.from({ length: ids.length }, (_, i) => i);
  order.sort((a, b) => compareIds(ids[a]!, ids[b]!));
  const rank = new Int32Array(ids.length);
  const sorted = new Array<string>(ids.length);
  for (let k = 0; k < order.length; k++) {
    rank[order[k]!] = k;
    sorted[k] = ids[order[k]!]!;
  }
  for (let k = 1; k < sorted.length; k++) {
    if (compareIds(sorted[k - 1]!, sorted[k]!) === 0) throw new Error(`duplicate id "${sorted[k]}"`);
  }
  return { sorted, rank };
}

/**
 * Sorts event columns (final user/item indices) into an `EventLog`: counting sort by user, then
 * each user's rows by (timestamp, item index). Item index order is item id order, so this is the
 * protocol's (timestamp, item id as written). Equal (timestamp, item) rows keep input order.
 */
export function sortEventLog(
  user: Int32Array,
  item: Int32Array,
  timestamp: Float64Array,
  weight: Float32Array,
  numUsers: number,
): EventLog {
  const n = user.length;
  const userOffsets = new Int32Array(numUsers + 1);
  for (let r = 0; r < n; r++) userOffsets[user[r]! + 1]!++;
  for (let u = 0; u < numUsers; u++) userOffsets[u + 1]! += userOffsets[u]!;
  const cursor = userOffsets.slice(0, numUsers);
  const perm = new Int32Array(n);
  for (let r = 0; r < n; r++) perm[cursor[user[r]!]!++] = r;
  const byTimeThenItem = (a: number, b: number): number => timestamp[a]! - timestamp[b]! || item[a]! - item[b]! || a - b;
  for (let u = 0; u < numUsers; u++) {
    const lo = userOffsets[u]!;
    const hi = userOffsets[u + 1]!;
    let sorted = true;
    for (let k = lo + 1; k < hi && sorted; k++) if (byTimeThenItem(perm[k - 1]!, perm[k]!) > 0) sorted = false;
    if (!sorted) perm.subarray(lo, hi).sort(byTimeThenItem);
  }
  const out = {
    user: new Int32Array(n),
    item: new Int32Array(n),
    timestamp: new Float64Array(n),
    weight: new Float32Array(n),
    userOffsets,
  };
  for (let k = 0; k < n; k++) {
    const r = perm[k]!;
    out.user[k] = user[r]!;
    out.item[k] = item[r]!;
    out.timestamp[k] = timestamp[r]!;
    out.weight[k] = weight[r]!;
  }
  return out;
}

/** Number of events that repeat an earlier (user, item) pair (the protocol keeps the first). */
export function countDuplicateEvents(events: EventLog): number {
  const numUsers = events.userOffsets.length - 1;
  const seen = new Set<number>();
  let duplicates = 0;
  for (let u = 0; u < numUsers; u++) {
    seen.clear();
    for (let r = events.userOffsets[u]!; r < events.userOffsets[u + 1]!; r++) {
      const i = events.item[r]!;
      if (seen.has(i)) duplicates++;
      else seen.add(i);
    }
  }
  return duplicates;
}

export function emptySearchLog(numUsers: number): SearchLog {
  return { user: new Int32Array(0), timestamp: new Float64Array(0), query: [], userOffsets: new Int32Array(numUsers + 1) };
}

export function emptyImpressionLog(numUsers: number): ImpressionLog {
  return {
    user: new Int32Array(0),
    item: new Int32Array(0),
    timestamp: new Float64Array(0),
    clicked: new Uint8Array(0),
    watchSeconds: new Float32Array(0),
    userOffsets: new Int32Array(numUsers + 1),
  };
}

/** Users/items without events, searches, events and duplicates: counts every loader reports. */
export function standardCounts(users: UserTable, items: ItemTable, events: EventLog, searches: SearchLog): Record<string, number> {
  let usersWithout = 0;
  for (let u = 0; u < users.ids.length; u++) if (events.userOffsets[u] === events.userOffsets[u + 1]) usersWithout++;
  const itemSeen = new Uint8Array(items.ids.length);
  for (let r = 0; r < events.item.length; r++) itemSeen[events.item[r]!] = 1;
  let itemsWithout = 0;
  for (let i = 0; i < itemSeen.length; i++) if (itemSeen[i] === 0) itemsWithout++;
  return {
    users: users.ids.length,
    items: items.ids.length,
    events: events.user.length,
    duplicate_events: countDuplicateEvents(events),
    users_without_events: usersWithout,
    items_without_events: itemsWithout,
    searches: searches.user.length,
  };
}

/** Canonical build from provisional-code loader output. */
export function buildDataset(
  spec: string,
  rawUsers: RawUsers,
  rawItems: RawItems,
  rawEvents: RawEvents,
  rawSearches: RawSearches | undefined,
  extraCounts: Record<string, number>,
  warnings: string[],
): Dataset {
  const uo = idOrder(rawUsers.ids.ids);
  const io = idOrder(rawItems.ids.ids);
  const numUsers = uo.sorted.length;
  const numItems = io.sorted.length;

  const permute = <T>(values: readonly T[], rank: Int32Array, n: number): (T | undefined)[] => {
    const out = new Array<T | undefined>(n);
    for (let p = 0; p < rank.length; p++) out[rank[p]!] = values[p];
    return out;
  };

  const age = new Float32Array(numUsers).fill(NaN);
  for (let p = 0; p < numUsers; p++) {
    const a = rawUsers.age[p];
    if (a !== undefined) age[uo.rank[p]!] = a;
  }
  const users: UserTable = {
    ids: uo.sorted,
    age,
    gender: categorical(permute(rawUsers.gender, uo.rank, numUsers), numUsers),
    occupation: categorical(permute(rawUsers.occupation, uo.rank, numUsers), numUsers),
    geo: categorical(permute(rawUsers.geo, uo.rank, numUsers), numUsers),
  };

  // Tags as CSR with a vocabulary either given (file order) or sorted.
  const tagsByItem = permute(rawItems.tags, io.rank, numItems);
  let tagValues: string[];
  if (rawItems.tagVocabulary !== undefined) tagValues = [...rawItems.tagVocabulary];
  else {
    const distinct = new Set<string>();
    for (const t of tagsByItem) if (t !== undefined) for (const s of t) distinct.add(s);
    tagValues = [...distinct].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
  const tagIndex = new Map<string, number>();
  tagValues.forEach((t, i) => tagIndex.set(t, i));
  const tagOffsets = new Int32Array(numItems + 1);
  let tagCount = 0;
  for (let i = 0; i < numItems; i++) {
    tagCount += tagsByItem[i]?.length ?? 0;
    tagOffsets[i + 1] = tagCount;
  }
  const tagCodes = new Int32Array(tagCount);
  for (let i = 0, k = 0; i < numItems; i++) {
    for (const t of tagsByItem[i] ?? []) {
      const code = tagIndex.get(t);
      if (code === undefined) throw new Error(`tag "${t}" is not in the tag vocabulary`);
      tagCodes[k++] = code;
    }
  }
  const uploadTimestamp = new Float64Array(numItems).fill(NaN);
  const durationSeconds = new Float32Array(numItems).fill(NaN);
  for (let p = 0; p < numItems; p++) {
    const up = rawItems.uploadTimestamp[p];
    if (up !== undefined) uploadTimestamp[io.rank[p]!] = up;
    const d = rawItems.durationSeconds[p];
    if (d !== undefined) durationSeconds[io.rank[p]!] = d;
  }
  const titles = permute(rawItems.title, io.rank, numItems).map((t) => t ?? "");
  const items: ItemTable = {
    ids: io.sorted,
    titles,
    tagOffsets,
    tagCodes,
    tagValues,
    channel: categorical(permute(rawItems.channel, io.rank, numItems), numItems),
    uploadTimestamp,
    durationSeconds,
  };

  const n = rawEvents.user.length;
  const evUser = new Int32Array(n);
  const evItem = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    evUser[r] = uo.rank[rawEvents.user[r]!]!;
    evItem[r] = io.rank[rawEvents.item[r]!]!;
  }
  const events = sortEventLog(evUser, evItem, rawEvents.timestamp, rawEvents.weight, numUsers);

  let searches = emptySearchLog(numUsers);
  if (rawSearches !== undefined && rawSearches.user.length > 0) {
    const m = rawSearches.user.length;
    const su = new Int32Array(m);
    for (let k = 0; k < m; k++) su[k] = uo.rank[rawSearches.user[k]!]!;
    const order = Array.from({ length: m }, (_, k) => k);
    order.sort((a, b) => su[a]! - su[b]! || rawSearches.timestamp[a]! - rawSearches.timestamp[b]! || a - b);
    const user = new Int32Array(m);
    const timestamp = new Float64Array(m);
    const query = new Array<string>(m);
    const userOffsets = new Int32Array(numUsers + 1);
    order.forEach((src, k) => {
      user[k] = su[src]!;
      timestamp[k] = rawSearches.timestamp[src]!;
      query[k] = rawSearches.query[src]!;
      userOffsets[user[k]! + 1]!++;
    });
    for (let u = 0; u < numUsers; u++) userOffsets[u + 1]! += userOffsets[u]!;
    searches = { user, timestamp, query, userOffsets };
  }
  const impressions = emptyImpressionLog(numUsers);
  const report: LoadReport = { counts: { ...standardCounts(users, items, events, searches), ...extraCounts }, warnings };
  return {
    spec,
    fingerprint: fingerprint(users, items, events, searches, impressions),
    users,
    items,
    events,
    searches,
    impressions,
    report,
  };
}

/**
 * sha256 over a canonical serialisation of the content (not the spec): ids, user and item
 * columns, events, searches and impressions. Typed arrays are hashed as their little-endian bytes.
 */
export function fingerprint(users: UserTable, items: ItemTable, events: EventLog, searches: SearchLog, impressions: ImpressionLog): string {
  const h = createHash("sha256");
  const bytes = (a: ArrayBufferView): void => {
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  };
  const strings = (label: string, s: readonly string[]): void => {
    h.update(`\n${label}:${s.length}:`);
    // JSON keeps the encoding unambiguous for any string content; chunked to bound string size.
    for (let k = 0; k < s.length; k += 65536) h.update(JSON.stringify(s.slice(k, k + 65536)));
  };
  h.update("recsys-dataset-v1");
  strings("user.ids", users.ids);
  bytes(users.age);
  for (const c of [users.gender, users.occupation, users.geo]) {
    strings("values", c.values);
    bytes(c.codes);
  }
  strings("item.ids", items.ids);
  strings("item.titles", items.titles);
  strings("item.tags", items.tagValues);
  bytes(items.tagOffsets);
  bytes(items.tagCodes);
  strings("item.channels", items.channel.values);
  bytes(items.channel.codes);
  bytes(items.uploadTimestamp);
  bytes(items.durationSeconds);
  h.update("\nevents");
  for (const a of [events.user, events.item, events.timestamp, events.weight, events.userOffsets]) bytes(a);
  h.update("\nsearches");
  bytes(searches.user);
  bytes(searches.timestamp);
  strings("queries", searches.query);
  h.update("\nimpressions");
  for (const a of [impressions.user, impressions.item, impressions.timestamp, impressions.clicked, impressions.watchSeconds]) bytes(a);
  return h.digest("hex");
}
