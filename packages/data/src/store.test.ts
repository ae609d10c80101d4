import { describe, expect, it } from "vitest";
import { loadDataset } from "./load.js";
import {
  datasetBefore,
  datasetFromStoreEvents,
  parseStoreSpec,
  redactSpec,
  registerStoreOpener,
  type StoreCatalogueItem,
  type StoreEvent,
} from "./store.js";

const served = (seq: number, userId: string, timestamp: number, requestId: string, itemIds: string[]): StoreEvent => ({
  kind: "served",
  seq,
  userId,
  timestamp,
  requestId,
  items: itemIds.map((itemId, k) => ({
    itemId,
    position: k + 1,
    provenance: [{ source: k % 2 === 0 ? "dnn" : "popular", rank: k + 1, score: 1 / (k + 1) }],
  })),
  modelVersions: { ranking: "rk-1", candidate_generation: "cg-1" },
});

const EVENTS: StoreEvent[] = [
  { kind: "watch", seq: 1, userId: "u1", itemId: "a", timestamp: 100, watchSeconds: 30 },
  { kind: "search", seq: 2, userId: "u1", query: "cats", timestamp: 101 },
  served(3, "u1", 110, "r1", ["b", "c", "ghost", "d"]),
  { kind: "impression", seq: 4, userId: "u1", itemId: "b", timestamp: 110, requestId: "r1", position: 1 },
  { kind: "impression", seq: 5, userId: "u1", itemId: "c", timestamp: 110, requestId: "r1", position: 2 },
  { kind: "watch", seq: 6, userId: "u1", itemId: "c", timestamp: 130, watchSeconds: 60 },
  served(7, "u2", 120, "r2", ["a", "b"]),
  { kind: "watch", seq: 8, userId: "u2", itemId: "ghost", timestamp: 125 },
  { kind: "watch", seq: 9, userId: "u2", itemId: "a", timestamp: 200 },
];
const CATALOGUE: StoreCatalogueItem[] = ["a", "b", "c", "d", "e"].map((itemId) => ({
  itemId,
  title: `T ${itemId}`,
  tags: ["x"],
  channel: "ch",
  updatedAt: 1,
}));

describe("store: datasets", () => {
  it("parses the two store forms", () => {
    expect(parseStoreSpec("/var/lib/store")).toEqual({ location: { backend: "embedded", path: "/var/lib/store" } });
    expect(parseStoreSpec("/var/lib/store?until=42")).toEqual({ location: { backend: "embedded", path: "/var/lib/store" }, until: 42 });
    expect(parseStoreSpec("redis://127.0.0.1:6379/2?prefix=live:")).toEqual({
      location: { backend: "redis", url: "redis://127.0.0.1:6379/2", keyPrefix: "live:" },
    });
    expect(parseStoreSpec("redis://127.0.0.1:6379")).toEqual({
      location: { backend: "redis", url: "redis://127.0.0.1:6379", keyPrefix: "recsys:" },
    });
    expect(() => parseStoreSpec("redis://h:1?pfx=a")).toThrow(/unknown parameter "pfx"/);
    expect(() => parseStoreSpec("/d?prefix=a")).toThrow(/unknown parameter "prefix"/);
    expect(() => parseStoreSpec("/d?until=x")).toThrow(/until must be an event seq/);
  });

  it("turns watches, searches, served answers and impressions into a dataset with a served log", () => {
    const d = datasetFromStoreEvents("store:test", EVENTS, CATALOGUE, new Set(["e"]));
    expect(d.items.ids).toEqual(["a", "b", "c", "d"]);
    expect(d.users.ids).toEqual(["u1", "u2"]);
    expect(d.events.user.length).toBe(3); // the ghost watch is left out
    expect(d.report.counts["events_not_in_catalogue"]).toBe(1);
    expect(d.searches.query).toEqual(["cats"]);
    const log = d.served!;
    expect(log.requestId).toEqual(["r1", "r2"]);
    expect(Array.from(log.itemOffsets)).toEqual([0, 3, 5]);
    expect(Array.from(log.item, (i) => d.items.ids[i])).toEqual(["b", "c", "d", "a", "b"]);
    expect(Array.from(log.position)).toEqual([1, 2, 4, 1, 2]);
    // r1 had impressions for b and c only; r2 had none, so all of it counts as shown.
    expect(Array.from(log.shown)).toEqual([1, 1, 0, 1, 1]);
    expect(log.sources).toEqual(["dnn", "popular"]);
    expect(Array.from(log.provenanceRank)).toEqual([0, 1, 3, 0, 1]); // 1-based in the log, 0-based here
    expect(d.report.counts["served_items_not_in_catalogue"]).toBe(1);
    expect(JSON.parse(log.modelVersions[0]!)).toEqual({ candidate_generation: "cg-1", ranking: "rk-1" });
    const again = datasetFromStoreEvents("store:test", [...EVENTS].reverse(), CATALOGUE, new Set(["e"]));
    expect(again.fingerprint).toBe(d.fingerprint);
  });

  it("datasetBefore keeps the indices and drops everything at or after the cut-off", () => {
    const d = datasetFromStoreEvents("store:test", EVENTS, CATALOGUE);
    const before = datasetBefore(d, 120);
    expect(before.items.ids).toEqual(d.items.ids);
    expect(before.users.ids).toEqual(d.users.ids);
    expect(Array.from(before.events.timestamp)).toEqual([100]);
    expect(before.served!.requestId).toEqual(["r1"]);
    expect(before.items.titles).toEqual(d.items.titles);
    expect(before.fingerprint).not.toBe(d.fingerprint);
  });

  it("loadDataset opens a store through the registered opener", async () => {
    let closed = false;
    registerStoreOpener(async (location) => {
      expect(location).toEqual({ backend: "redis", url: "redis://127.0.0.1:6379", keyPrefix: "p:" });
      return {
        async *scanEvents() {
          yield EVENTS.slice(0, 4);
          yield EVENTS.slice(4);
        },
        catalogue: {
          async *scan() {
            yield CATALOGUE;
          },
          deletedIds: async () => ["d"],
        },
        close: async () => {
          closed = true;
        },
      };
    });
    const d = await loadDataset("store:redis://127.0.0.1:6379?prefix=p:");
    expect(d.items.ids).toEqual(["a", "b", "c", "e"]);
    expect(d.served!.requestId.length).toBe(2);
    expect(d.report.counts["last_seq"]).toBe(9);
    expect(closed).toBe(true);
    const pinned = await loadDataset("store:redis://127.0.0.1:6379?prefix=p:&until=6");
    expect(pinned.report.counts["last_seq"]).toBe(6);
    expect(pinned.served!.requestId).toEqual(["r1"]);
  });
  it("keeps a Redis password out of the dataset's spec, not out of the store it opens", async () => {
    expect(redactSpec("store:redis://:s3cret@redis.example:6379/1?prefix=p:")).toBe("store:redis://:***@redis.example:6379/1?prefix=p:");
    expect(redactSpec("store:rediss://app:s3cret@redis.example:6380")).toBe("store:rediss://app:***@redis.example:6380");
    expect(redactSpec("store:redis://127.0.0.1:6379?prefix=p:")).toBe("store:redis://127.0.0.1:6379?prefix=p:");
    expect(redactSpec("store:/var/lib/recsys/users")).toBe("store:/var/lib/recsys/users");
    let opened = "";
    registerStoreOpener(async (location) => {
      opened = location.backend === "redis" ? location.url : location.path;
      return {
        async *scanEvents() {
          yield EVENTS;
        },
        close: async () => undefined,
      };
    });
    const d = await loadDataset("store:redis://app:s3cret@127.0.0.1:6379?prefix=p:");
    expect(opened).toBe("redis://app:s3cret@127.0.0.1:6379");
    expect(d.spec).toBe("store:redis://app:***@127.0.0.1:6379?prefix=p:");
  });
});
