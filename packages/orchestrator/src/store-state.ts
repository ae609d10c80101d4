/**
 * The orchestrator's state from the stores: the system's own record, so that a restart or a new
 * replica needs only the bundle and the stores (DATASET is an optional bootstrap).
 *
 * - Catalogue metadata: the catalogue store's items. A bootstrap dataset's items are written to
 *   it once (`seedCatalogueStore`), so they survive without the dataset.
 * - Source state (co-watch, popular, trending, fresh's popularity): every watch of the user
 *   store's events log (`scanEvents`: the seeded history, then every watch recorded through
 *   RecordEvents, by any replica), replayed in log order.
 */
import { datasetFromEvents, type Dataset } from "@recsys/data";
import type { CatalogueItemInput, CatalogueStore, UserEvent, UserStore, WatchEvent } from "@recsys/user-store";

/** User-store metadata key: the seed id whose items were written to the catalogue store. */
export const CATALOGUE_SEED_META_KEY = "orchestrator.catalogue_seeded";

/** Writes the dataset's items (with their metadata) to the catalogue store, once per seed id. */
export async function seedCatalogueStore(
  store: UserStore,
  catalogueStore: CatalogueStore,
  dataset: Dataset,
  seedId: string,
  /** Added to upload times (model-time.ts: a historical dataset moved into real time). */
  timeOffset = 0,
): Promise<{ skipped: boolean; items: number }> {
  if ((await store.getMeta(CATALOGUE_SEED_META_KEY)) === seedId) return { skipped: true, items: 0 };
  const { items } = dataset;
  const taken = await catalogueStore.deletedIds();
  const batch: CatalogueItemInput[] = [];
  let written = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    await catalogueStore.upsert(batch.splice(0));
  };
  for (let i = 0; i < items.ids.length; i++) {
    const id = items.ids[i]!;
    // A seeding never brings back an item taken down through the API.
    if (taken.has(id)) continue;
    const tags: string[] = [];
    for (let k = items.tagOffsets[i]!; k < items.tagOffsets[i + 1]!; k++) tags.push(items.tagValues[items.tagCodes[k]!]!);
    const channelCode = items.channel.codes[i]!;
    const upload = items.uploadTimestamp[i]!;
    const duration = items.durationSeconds[i]!;
    batch.push({
      itemId: id,
      ...(items.titles[i] ? { title: items.titles[i]! } : {}),
      ...(tags.length > 0 ? { tags } : {}),
      ...(channelCode >= 0 ? { channel: items.channel.values[channelCode]! } : {}),
      ...(Number.isFinite(upload) ? { uploadTimestamp: upload + timeOffset } : {}),
      ...(Number.isFinite(duration) ? { durationSeconds: duration } : {}),
      updatedAt: 0,
    });
    written++;
    if (batch.length >= 5000) await flush();
  }
  await flush();
  await store.setMeta(CATALOGUE_SEED_META_KEY, seedId);
  return { skipped: false, items: written };
}

/** `events` with `offset` seconds added to every timestamp. */
export function* shiftedEvents(events: Iterable<UserEvent>, offset: number): Generator<UserEvent> {
  for (const event of events) yield offset === 0 ? event : { ...event, timestamp: event.timestamp + offset };
}

/** `dataset` with `offset` seconds added to its items' upload times (a shallow copy). */
export function shiftedUploads(dataset: Dataset, offset: number): Dataset {
  if (offset === 0) return dataset;
  return { ...dataset, items: { ...dataset.items, uploadTimestamp: Float64Array.from(dataset.items.uploadTimestamp, (t) => t + offset) } };
}

/** A dataset holding the catalogue store's items (no users, no events): the catalogue's base. */
export async function datasetFromCatalogueStore(catalogueStore: CatalogueStore): Promise<Dataset> {
  const items: {
    id: string;
    title?: string;
    tags?: readonly string[];
    channel?: string;
    uploadTimestamp?: number;
    durationSeconds?: number;
  }[] = [];
  for await (const batch of catalogueStore.scan()) {
    for (const item of batch) {
      items.push({
        id: item.itemId,
        ...(item.title === undefined ? {} : { title: item.title }),
        ...(item.tags === undefined ? {} : { tags: item.tags }),
        ...(item.channel === undefined ? {} : { channel: item.channel }),
        ...(item.uploadTimestamp === undefined ? {} : { uploadTimestamp: item.uploadTimestamp }),
        ...(item.durationSeconds === undefined ? {} : { durationSeconds: item.durationSeconds }),
      });
    }
  }
  return datasetFromEvents([], { items, spec: "stores:" });
}

/**
 * Replays every watch of the events log into `observe` (log order); returns how many, the last
 * seq read and the latest watch time (-Infinity when none).
 */
export async function replayLoggedWatches(
  store: UserStore,
  observe: (watch: WatchEvent) => void,
): Promise<{ watches: number; lastSeq: number; latest: number }> {
  let watches = 0;
  let lastSeq = 0;
  let latest = -Infinity;
  for await (const batch of store.scanEvents()) {
    for (const event of batch) {
      lastSeq = event.seq;
      if (event.kind !== "watch") continue;
      observe(event);
      if (event.timestamp > latest) latest = event.timestamp;
      watches++;
    }
  }
  return { watches, lastSeq, latest };
}

/**
 * The geographies of users not in a bootstrap dataset, from their stored profiles, so that their
 * replayed watches count for "trending in your area" (sources apply queued watches at warm-up).
 * Returns how many were learnt.
 */
export async function learnGeographies(
  store: UserStore,
  online: { usersWithoutGeo(): [string, number][]; learnGeo(user: number, geo: number | undefined): void },
  geoCode: (value: string) => number | undefined,
): Promise<number> {
  const users = online.usersWithoutGeo();
  const chunk = Math.min(5000, store.limits.maxUsersPerCall);
  let learnt = 0;
  for (let i = 0; i < users.length; i += chunk) {
    const slice = users.slice(i, i + chunk);
    const states = await store.getMany(slice.map(([id]) => id));
    states.forEach((state, k) => {
      const geo = state?.profile.geo;
      if (geo === undefined || geo === "") return;
      online.learnGeo(slice[k]![1], geoCode(geo));
      learnt++;
    });
  }
  return learnt;
}
