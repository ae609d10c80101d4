/**
 * `store:` datasets: the system's own stores (the event log `RecordEvents` and `Recommend` append
 * to, and the item catalogue) read as a `Dataset`, so that training and evaluation run on the live
 * log exactly as on files.
 *
 *   store:DIR                                   the embedded stores in DIR (the orchestrator's USER_STORE_PATH)
 *   store:redis://host:port[/db]?prefix=P       the Redis stores under key prefix P (default "recsys:")
 *
 * This package does not depend on the store implementation (@recsys/user-store depends on this
 * one): a program registers how to open a store once (`registerStoreOpener`; the `recsys` CLI
 * registers @recsys/user-store's), then `loadDataset("store:...")` works like any other spec.
 *
 * What becomes what:
 * - `watch` events → the event log (weight = watch seconds, NaN when not given);
 * - `search` events → the search log;
 * - `served` events (one per `Recommend` answer) → the served log (`Dataset.served`), each item
 *   marked shown or not from the `impression` events that carry its request id (see ServedLog);
 * - the catalogue store's items (minus the deleted ones) → the item table with their metadata.
 *   When the catalogue is empty (stores seeded from a dataset only), the items are those of the
 *   events. Watches of items outside a non-empty catalogue or deleted are left out and counted
 *   (`events_not_in_catalogue`), like served items outside it (`served_items_not_in_catalogue`).
 * - user profiles (age, gender, occupation, geo) → the user table, when the store gives them
 *   (`StoreContents.profiles`: the user store's state, not its event log).
 */
import { createHash } from "node:crypto";
import { datasetFromEvents, type EventRecord, type InMemoryOptions } from "./in-memory.js";
import type { Dataset, ServedLog } from "./types.js";

/** An event as the store returns it from `scanEvents` (the store contract's StoredEvent). */
export type StoreEvent =
  | {
      readonly kind: "watch";
      readonly seq: number;
      readonly userId: string;
      readonly itemId: string;
      readonly timestamp: number;
      readonly watchSeconds?: number;
    }
  | { readonly kind: "search"; readonly seq: number; readonly userId: string; readonly query: string; readonly timestamp: number }
  | {
      readonly kind: "impression";
      readonly seq: number;
      readonly userId: string;
      readonly itemId: string;
      readonly timestamp: number;
      readonly position?: number;
      readonly requestId?: string;
    }
  | {
      readonly kind: "served";
      readonly seq: number;
      readonly userId: string;
      readonly timestamp: number;
      readonly requestId: string;
      readonly items: readonly {
        readonly itemId: string;
        readonly position: number;
        /** rank: 1-based position in that source's list, as logged. */
        readonly provenance: readonly { readonly source: string; readonly rank: number; readonly score: number }[];
      }[];
      readonly modelVersions: Readonly<Record<string, string>>;
    };

/** A catalogue entry (the store contract's CatalogueItem). */
export interface StoreCatalogueItem {
  readonly itemId: string;
  readonly title?: string;
  readonly tags?: readonly string[];
  readonly channel?: string;
  readonly uploadTimestamp?: number;
  readonly durationSeconds?: number;
  readonly updatedAt: number;
}

export type StoreLocation =
  | { readonly backend: "embedded"; readonly path: string }
  | { readonly backend: "redis"; readonly url: string; readonly keyPrefix: string };

/** A store spec: where, and optionally the last event seq to read (a snapshot of a live log). */
export interface StoreSpec {
  readonly location: StoreLocation;
  /** Read events with seq <= until only (`?until=SEQ`); undefined: everything appended so far. */
  readonly until?: number;
}

/** A user's profile as the user store keeps it (every field may be unknown). */
export interface StoreProfile {
  readonly age?: number;
  readonly gender?: string;
  readonly occupation?: string;
  readonly geo?: string;
}

/** What `loadDataset` reads from an opened store. */
export interface StoreContents {
  /** The profiles of these users (absent: the store keeps none; users then have no profile features). */
  profiles?(userIds: readonly string[]): Promise<ReadonlyMap<string, StoreProfile>>;
  scanEvents(options?: { afterSeq?: number }): AsyncIterable<readonly StoreEvent[]>;
  /** Absent when the deployment has no catalogue store. */
  readonly catalogue?: {
    scan(): AsyncIterable<readonly StoreCatalogueItem[]>;
    deletedIds(): Promise<Iterable<string>> | Iterable<string> | AsyncIterable<string>;
  };
  close(): Promise<void>;
}

export type StoreOpener = (location: StoreLocation) => Promise<StoreContents>;

let opener: StoreOpener | undefined;

/** How `store:` specs are opened (the program registers @recsys/user-store's opener once). */
export function registerStoreOpener(open: StoreOpener): void {
  opener = open;
}

/** The default Redis key prefix of `store:redis://...` (the orchestrator's USER_STORE_PREFIX default). */
export const DEFAULT_STORE_PREFIX = "recsys:";

/**
 * Parses what follows `store:`: `DIR` or `redis://host:port[/db]`, optionally followed by
 * `?prefix=P` (Redis) and `?until=SEQ` / `&until=SEQ` (both: read the events up to that seq, so
 * that two commands see the same snapshot of a live log). Throws a message naming the forms.
 */
export function parseStoreSpec(rest: string): StoreSpec {
  const forms = "store:DIR[?until=SEQ] or store:redis://host:port[/db][?prefix=P][&until=SEQ]";
  if (rest === "") throw new Error(`dataset "store:": missing the store after the colon (${forms})`);
  const q = rest.indexOf("?");
  const where = q < 0 ? rest : rest.slice(0, q);
  const params = new URLSearchParams(q < 0 ? "" : rest.slice(q + 1));
  const redis = where.startsWith("redis://") || where.startsWith("rediss://");
  for (const key of params.keys()) {
    if (key !== "until" && !(redis && key === "prefix")) throw new Error(`dataset "store:${rest}": unknown parameter "${key}" (${forms})`);
  }
  let until: number | undefined;
  const untilText = params.get("until");
  if (untilText !== null) {
    until = Number(untilText);
    if (!Number.isSafeInteger(until) || until < 0)
      throw new Error(`dataset "store:${rest}": until must be an event seq (an integer >= 0), got "${untilText}"`);
  }
  const withUntil = (location: StoreLocation): StoreSpec => (until === undefined ? { location } : { location, until });
  if (!redis) {
    if (where === "") throw new Error(`dataset "store:${rest}": missing the directory (${forms})`);
    return withUntil({ backend: "embedded", path: where });
  }
  let url: URL;
  try {
    url = new URL(where);
  } catch {
    throw new Error(`dataset "store:${rest}": not a valid Redis URL (${forms})`);
  }
  return withUntil({ backend: "redis", url: url.toString().replace(/\/$/, ""), keyPrefix: params.get("prefix") ?? DEFAULT_STORE_PREFIX });
}

async function* iterate<T>(source: Promise<Iterable<T>> | Iterable<T> | AsyncIterable<T>): AsyncIterable<T> {
  const value = await source;
  yield* value as AsyncIterable<T> | Iterable<T>;
}

/**
 * The spec without the password of a Redis URL (`store:redis://user:secret@host` →
 * `store:redis://user:***@host`): what a dataset records as its `spec`, so that bundle manifests,
 * status files and logs never carry a store's credentials.
 */
export function redactSpec(spec: string): string {
  return spec.replace(/(rediss?:\/\/)([^@/?]*)@/, (_match, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(":");
    return `${scheme}${colon < 0 ? "***" : `${userinfo.slice(0, colon)}:***`}@`;
  });
}

/** Opens the store of `spec` ("store:...") with the registered opener and reads it whole. */
export async function loadStoreDataset(spec: string, rest: string): Promise<Dataset> {
  const { location, until } = parseStoreSpec(rest);
  // What the dataset records (manifests, logs) carries no password; `location` keeps it.
  spec = redactSpec(spec);
  if (opener === undefined) {
    throw new Error(
      `dataset "${spec}": no store opener registered (a program reading store: datasets calls registerStoreOpener, as the recsys CLI does)`,
    );
  }
  const store = await opener(location);
  try {
    const events: StoreEvent[] = [];
    let lastSeq = 0;
    scan: for await (const batch of store.scanEvents()) {
      for (const e of batch) {
        if (until !== undefined && e.seq > until) break scan;
        events.push(e);
        lastSeq = Math.max(lastSeq, e.seq);
      }
    }
    const catalogue: StoreCatalogueItem[] = [];
    const deleted = new Set<string>();
    if (store.catalogue !== undefined) {
      for await (const batch of store.catalogue.scan()) for (const item of batch) catalogue.push(item);
      for await (const id of iterate(store.catalogue.deletedIds())) deleted.add(id);
    }
    let profiles: ReadonlyMap<string, StoreProfile> | undefined;
    if (store.profiles !== undefined) {
      const userIds = new Set<string>();
      for (const e of events) userIds.add(e.userId);
      profiles = await store.profiles([...userIds]);
    }
    const dataset = datasetFromStoreEvents(spec, events, catalogue, deleted, profiles);
    return { ...dataset, report: { ...dataset.report, counts: { ...dataset.report.counts, last_seq: lastSeq } } };
  } finally {
    await store.close();
  }
}

/** A served request while it is collected. */
interface ServedRequest {
  readonly event: Extract<StoreEvent, { kind: "served" }>;
}

/**
 * The Dataset of a store's contents (see the module comment). Deterministic: the same events and
 * catalogue give the same dataset and fingerprint whatever the batch boundaries.
 */
export function datasetFromStoreEvents(
  spec: string,
  events: readonly StoreEvent[],
  catalogue: readonly StoreCatalogueItem[],
  deleted: ReadonlySet<string> = new Set(),
  profiles: ReadonlyMap<string, StoreProfile> = new Map(),
): Dataset {
  const useCatalogue = catalogue.length > 0;
  const catalogueIds = new Set<string>();
  const items: NonNullable<InMemoryOptions["items"]>[number][] = [];
  for (const c of catalogue) {
    if (deleted.has(c.itemId) || catalogueIds.has(c.itemId)) continue;
    catalogueIds.add(c.itemId);
    items.push({
      id: c.itemId,
      ...(c.title === undefined ? {} : { title: c.title }),
      ...(c.tags === undefined ? {} : { tags: c.tags }),
      ...(c.channel === undefined ? {} : { channel: c.channel }),
      ...(c.uploadTimestamp === undefined ? {} : { uploadTimestamp: c.uploadTimestamp }),
      ...(c.durationSeconds === undefined ? {} : { durationSeconds: c.durationSeconds }),
    });
  }
  const known = (itemId: string): boolean => (useCatalogue ? catalogueIds.has(itemId) : !deleted.has(itemId));

  const watches: EventRecord[] = [];
  const searches: { user: string; timestamp: number; query: string }[] = [];
  const users = new Set<string>();
  const served: ServedRequest[] = [];
  const shownByRequest = new Map<string, Set<string>>();
  let notInCatalogue = 0;
  let impressionsWithoutRequest = 0;
  for (const e of events) {
    switch (e.kind) {
      case "watch":
        users.add(e.userId);
        if (!known(e.itemId)) {
          notInCatalogue++;
          continue;
        }
        watches.push({ user: e.userId, item: e.itemId, timestamp: e.timestamp, weight: e.watchSeconds ?? NaN });
        break;
      case "search":
        users.add(e.userId);
        searches.push({ user: e.userId, timestamp: e.timestamp, query: e.query });
        break;
      case "impression": {
        if (e.requestId === undefined || e.requestId === "") {
          impressionsWithoutRequest++;
          continue;
        }
        const key = `${e.userId}\u0000${e.requestId}`;
        let set = shownByRequest.get(key);
        if (set === undefined) shownByRequest.set(key, (set = new Set()));
        set.add(e.itemId);
        break;
      }
      case "served":
        users.add(e.userId);
        served.push({ event: e });
        break;
    }
  }
  const base = datasetFromEvents(watches, {
    spec,
    items,
    users: [...users].map((id) => {
      const p = profiles.get(id);
      return {
        id,
        ...(p?.age === undefined ? {} : { age: p.age }),
        ...(p?.gender === undefined ? {} : { gender: p.gender }),
        ...(p?.occupation === undefined ? {} : { occupation: p.occupation }),
        ...(p?.geo === undefined ? {} : { geo: p.geo }),
      };
    }),
    searches,
  });
  const log = buildServedLog(base, served, shownByRequest);
  const report = {
    counts: {
      ...base.report.counts,
      served_requests: log.log.requestId.length,
      served_items: log.log.item.length,
      served_items_not_in_catalogue: log.missingItems,
      events_not_in_catalogue: notInCatalogue,
      impressions_without_request_id: impressionsWithoutRequest,
      catalogue_items: catalogueIds.size,
      deleted_items: deleted.size,
    },
    warnings: [
      ...base.report.warnings,
      ...(notInCatalogue > 0 ? [`${notInCatalogue} watches of items not in the catalogue (or deleted) left out`] : []),
      ...(log.missingItems > 0 ? [`${log.missingItems} served items not in the catalogue left out of the served log`] : []),
    ],
  };
  return { ...base, fingerprint: servedFingerprint(base.fingerprint, log.log), served: log.log, report };
}

function buildServedLog(
  dataset: Dataset,
  requests: readonly ServedRequest[],
  shownByRequest: ReadonlyMap<string, ReadonlySet<string>>,
): { log: ServedLog; missingItems: number } {
  const userIndex = new Map<string, number>();
  dataset.users.ids.forEach((id, u) => userIndex.set(id, u));
  const itemIndex = new Map<string, number>();
  dataset.items.ids.forEach((id, i) => itemIndex.set(id, i));
  const order = [...requests].sort(
    (a, b) =>
      a.event.timestamp - b.event.timestamp ||
      (a.event.requestId < b.event.requestId ? -1 : a.event.requestId > b.event.requestId ? 1 : a.event.seq - b.event.seq),
  );
  const sources: string[] = [];
  const sourceCode = new Map<string, number>();
  const user = new Int32Array(order.length);
  const timestamp = new Float64Array(order.length);
  const requestId: string[] = [];
  const modelVersions: string[] = [];
  const itemOffsets = new Int32Array(order.length + 1);
  const item: number[] = [];
  const position: number[] = [];
  const shown: number[] = [];
  const provOffsets: number[] = [0];
  const provSource: number[] = [];
  const provRank: number[] = [];
  const provScore: number[] = [];
  let missingItems = 0;
  order.forEach(({ event }, r) => {
    user[r] = userIndex.get(event.userId)!;
    timestamp[r] = event.timestamp;
    requestId.push(event.requestId);
    modelVersions.push(
      JSON.stringify(Object.fromEntries(Object.entries(event.modelVersions).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))),
    );
    const shownSet = shownByRequest.get(`${event.userId}\u0000${event.requestId}`);
    for (const it of event.items) {
      const i = itemIndex.get(it.itemId);
      if (i === undefined) {
        missingItems++;
        continue;
      }
      item.push(i);
      position.push(it.position);
      shown.push(shownSet === undefined || shownSet.has(it.itemId) ? 1 : 0);
      for (const p of it.provenance) {
        let code = sourceCode.get(p.source);
        if (code === undefined) {
          code = sources.length;
          sourceCode.set(p.source, code);
          sources.push(p.source);
        }
        provSource.push(code);
        provRank.push(p.rank - 1); // logged 1-based; the sources' (and the ranker's) ranks are 0-based
        provScore.push(p.score);
      }
      provOffsets.push(provSource.length);
    }
    itemOffsets[r + 1] = item.length;
  });
  return {
    missingItems,
    log: {
      requestId,
      user,
      timestamp,
      modelVersions,
      itemOffsets,
      item: Int32Array.from(item),
      position: Int32Array.from(position),
      shown: Uint8Array.from(shown),
      provenanceOffsets: Int32Array.from(provOffsets),
      provenanceSource: Int32Array.from(provSource),
      provenanceRank: Float32Array.from(provRank),
      provenanceScore: Float64Array.from(provScore),
      sources,
    },
  };
}

/** The dataset fingerprint extended with the served log's content (its absence changes nothing). */
function servedFingerprint(base: string, log: ServedLog): string {
  if (log.requestId.length === 0) return base;
  const h = createHash("sha256");
  h.update(base);
  h.update(JSON.stringify([log.requestId, log.modelVersions, log.sources]));
  for (const a of [
    log.user,
    log.timestamp,
    log.itemOffsets,
    log.item,
    log.position,
    log.shown,
    log.provenanceOffsets,
    log.provenanceSource,
    log.provenanceRank,
    log.provenanceScore,
  ]) {
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
  return h.digest("hex");
}

/**
 * The dataset as it was before `cutoff` (Unix seconds): the same users and items (so the same
 * indices), only the watches, searches and served requests strictly before it. Retraining trains
 * on it and holds out what comes after.
 */
export function datasetBefore(dataset: Dataset, cutoff: number, spec = `${dataset.spec}@before=${cutoff}`): Dataset {
  const { events, items, users, searches } = dataset;
  const watches: EventRecord[] = [];
  for (let r = 0; r < events.user.length; r++) {
    if (!(events.timestamp[r]! < cutoff)) continue;
    watches.push({
      user: users.ids[events.user[r]!]!,
      item: items.ids[events.item[r]!]!,
      timestamp: events.timestamp[r]!,
      weight: events.weight[r]!,
    });
  }
  const itemOptions = items.ids.map((id, i) => {
    const tags = Array.from(items.tagCodes.subarray(items.tagOffsets[i]!, items.tagOffsets[i + 1]!), (c) => items.tagValues[c]!);
    const channel = items.channel.codes[i]!;
    return {
      id,
      ...(items.titles[i] === "" ? {} : { title: items.titles[i]! }),
      ...(tags.length === 0 ? {} : { tags }),
      ...(channel < 0 ? {} : { channel: items.channel.values[channel]! }),
      ...(Number.isNaN(items.uploadTimestamp[i]!) ? {} : { uploadTimestamp: items.uploadTimestamp[i]! }),
      ...(Number.isNaN(items.durationSeconds[i]!) ? {} : { durationSeconds: items.durationSeconds[i]! }),
    };
  });
  const category = (c: { codes: Int32Array; values: readonly string[] }, u: number): string | undefined =>
    c.codes[u]! < 0 ? undefined : c.values[c.codes[u]!];
  const userOptions = users.ids.map((id, u) => {
    const gender = category(users.gender, u);
    const occupation = category(users.occupation, u);
    const geo = category(users.geo, u);
    return {
      id,
      ...(Number.isNaN(users.age[u]!) ? {} : { age: users.age[u]! }),
      ...(gender === undefined ? {} : { gender }),
      ...(occupation === undefined ? {} : { occupation }),
      ...(geo === undefined ? {} : { geo }),
    };
  });
  const searchOptions: { user: string; timestamp: number; query: string }[] = [];
  for (let k = 0; k < searches.user.length; k++) {
    if (searches.timestamp[k]! < cutoff)
      searchOptions.push({ user: users.ids[searches.user[k]!]!, timestamp: searches.timestamp[k]!, query: searches.query[k]! });
  }
  const base = datasetFromEvents(watches, { spec, items: itemOptions, users: userOptions, searches: searchOptions });
  if (dataset.served === undefined) return base;
  const log = servedBefore(dataset.served, cutoff);
  return { ...base, fingerprint: servedFingerprint(base.fingerprint, log), served: log };
}

/** The requests of `log` strictly before `cutoff` (requests are sorted by time: a prefix). */
function servedBefore(log: ServedLog, cutoff: number): ServedLog {
  let n = 0;
  while (n < log.timestamp.length && log.timestamp[n]! < cutoff) n++;
  const items = log.itemOffsets[n]!;
  const provs = log.provenanceOffsets[items]!;
  return {
    requestId: log.requestId.slice(0, n),
    user: log.user.slice(0, n),
    timestamp: log.timestamp.slice(0, n),
    modelVersions: log.modelVersions.slice(0, n),
    itemOffsets: log.itemOffsets.slice(0, n + 1),
    item: log.item.slice(0, items),
    position: log.position.slice(0, items),
    shown: log.shown.slice(0, items),
    provenanceOffsets: log.provenanceOffsets.slice(0, items + 1),
    provenanceSource: log.provenanceSource.slice(0, provs),
    provenanceRank: log.provenanceRank.slice(0, provs),
    provenanceScore: log.provenanceScore.slice(0, provs),
    sources: log.sources,
  };
}
