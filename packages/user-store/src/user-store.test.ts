/**
 * The contract both backends keep: the same tests against the embedded store (temp directory)
 * and the Redis store (the real server at 127.0.0.1:6379, unique key prefix, cleaned up).
 */
import { datasetFromEvents, lastoutSplit, trainingRows } from "@recsys/data";
import { afterEach, describe, expect, it } from "vitest";
import { EmbeddedUserStore } from "./embedded.js";
import { UserStoreUnavailableError, UserStoreValidationError } from "./errors.js";
import { datasetUserEvents, datasetUserProfiles, seedFromEvents, SEED_META_KEY } from "./seed.js";
import { openTestRedis, quietLogger, tempDir, uniquePrefix, waitFor } from "./test-helpers.js";
import type { UserEvent, UserStore, UserStoreLimits } from "./types.js";

type Backend = "embedded" | "redis";
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function openStore(backend: Backend, limits: Partial<UserStoreLimits> = {}): Promise<UserStore> {
  if (backend === "embedded") {
    const dir = await tempDir("contract");
    const store = await EmbeddedUserStore.open({ backend: "embedded", path: dir.path, limits, logger: quietLogger() });
    cleanups.push(dir.remove, () => store.close());
    return store;
  }
  const prefix = uniquePrefix("contract");
  const store = await openTestRedis(prefix, { limits });
  cleanups.push(async () => {
    await store.close();
    // A fresh instance: the test may have closed its own.
    const cleaner = await openTestRedis(prefix);
    await cleaner.deleteAllKeys();
    await cleaner.close();
  });
  return store;
}

const watch = (userId: string, itemId: string, timestamp: number, watchSeconds?: number): UserEvent =>
  watchSeconds === undefined ? { kind: "watch", userId, itemId, timestamp } : { kind: "watch", userId, itemId, timestamp, watchSeconds };
const search = (userId: string, query: string, timestamp: number): UserEvent => ({ kind: "search", userId, query, timestamp });
const impression = (userId: string, itemId: string, timestamp: number, position?: number): UserEvent =>
  position === undefined ? { kind: "impression", userId, itemId, timestamp } : { kind: "impression", userId, itemId, timestamp, position };

describe.each<Backend>(["embedded", "redis"])("%s user store", (backend) => {
  it("returns appended events in order, per user and kind, with their fields", async () => {
    const store = await openStore(backend);
    expect(await store.get("alice")).toBeUndefined();
    await store.append([
      watch("alice", "i1", 100, 42.5),
      search("alice", "space movies", 101),
      watch("bob", "i9", 102),
      impression("alice", "i7", 103, 3),
      watch("alice", "i2", 104),
    ]);
    await store.append([
      watch("alice", "i3", 105),
      { kind: "impression", userId: "alice", itemId: "i7", timestamp: 106, requestId: "r-1" },
    ]);
    const alice = await store.get("alice");
    expect(alice).toEqual({
      userId: "alice",
      profile: {},
      watches: [
        { userId: "alice", itemId: "i1", timestamp: 100, watchSeconds: 42.5 },
        { userId: "alice", itemId: "i2", timestamp: 104 },
        { userId: "alice", itemId: "i3", timestamp: 105 },
      ],
      searches: [{ userId: "alice", query: "space movies", timestamp: 101 }],
      impressions: [
        { userId: "alice", itemId: "i7", timestamp: 103, position: 3 },
        { userId: "alice", itemId: "i7", timestamp: 106, requestId: "r-1" },
      ],
      impressionCounts: new Map([["i7", 2]]),
      hasEarlierWatches: false,
    });
    expect((await store.get("bob"))?.watches.map((w) => w.itemId)).toEqual(["i9"]);
    const many = await store.getMany(["bob", "nobody", "alice"]);
    expect(many.map((s) => s?.userId)).toEqual(["bob", undefined, "alice"]);
    expect(many[2]).toEqual(alice);
  });

  it("returns histories sorted by timestamp, equal timestamps in append order", async () => {
    const store = await openStore(backend);
    await store.append([watch("u", "late", 300), watch("u", "early", 100), watch("u", "tie-a", 200)]);
    await store.append([watch("u", "tie-b", 200), watch("u", "middle", 150)]);
    expect((await store.get("u"))!.watches.map((w) => w.itemId)).toEqual(["early", "middle", "tie-a", "tie-b", "late"]);
  });

  it("keeps only the most recent events within the configured bounds", async () => {
    const store = await openStore(backend, { maxWatches: 5, maxSearches: 3, maxImpressions: 4 });
    for (let t = 0; t < 4; t++) await store.append([watch("u", `w${t}`, t)]);
    // One call with more than the bound at once, mixed kinds.
    await store.append([
      ...Array.from({ length: 7 }, (_, k) => watch("u", `w${4 + k}`, 4 + k)),
      ...Array.from({ length: 5 }, (_, k) => search("u", `q${k}`, k)),
      ...Array.from({ length: 6 }, (_, k) => impression("u", k % 2 === 0 ? "even" : `odd${k}`, k)),
    ]);
    await store.append([watch("u", "w11", 11)]);
    const state = (await store.get("u"))!;
    expect(state.watches.map((w) => w.itemId)).toEqual(["w7", "w8", "w9", "w10", "w11"]);
    expect(state.searches.map((s) => s.query)).toEqual(["q2", "q3", "q4"]);
    expect(state.impressions.map((i) => i.itemId)).toEqual(["even", "odd3", "even", "odd5"]);
    expect(state.impressionCounts).toEqual(
      new Map([
        ["even", 2],
        ["odd3", 1],
        ["odd5", 1],
      ]),
    );
  });

  it("remembers watches that left the bounded list: watchedAmong finds them, up to maxEarlierWatches", async () => {
    const store = await openStore(backend, { maxWatches: 3, maxEarlierWatches: 4 });
    await store.append([watch("u", "a", 1), watch("u", "b", 2), watch("u", "c", 3)]);
    let state = (await store.get("u"))!;
    expect(state.hasEarlierWatches).toBe(false);
    expect(await store.watchedAmong("u", ["a", "c", "z"])).toEqual(new Set(["a", "c"]));
    // a and b leave the list; a rewatch of c keeps it in the list.
    await store.append([watch("u", "d", 4), watch("u", "c", 5)]);
    state = (await store.get("u"))!;
    expect(state.watches.map((w) => w.itemId)).toEqual(["c", "d", "c"]);
    expect(state.hasEarlierWatches).toBe(true);
    expect(await store.watchedAmong("u", ["a", "b", "c", "d", "e"])).toEqual(new Set(["a", "b", "c", "d"]));
    // Six more: c, d, e, f, g leave the list; 4 are remembered, the least recently watched
    // forgotten first (d at 4 before c, rewatched at 5).
    await store.append(["e", "f", "g", "h", "i", "j"].map((id, k) => watch("u", id, 10 + k)));
    expect((await store.get("u"))!.watches.map((w) => w.itemId)).toEqual(["h", "i", "j"]);
    const found = await store.watchedAmong("u", ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "never"]);
    expect([...found].sort()).toEqual(["c", "e", "f", "g", "h", "i", "j"]);
    expect(await store.watchedAmong("nobody", ["a"])).toEqual(new Set());
    expect(await store.watchedAmong("u", [])).toEqual(new Set());
    await expect(store.watchedAmong("u", [""])).rejects.toThrow(/itemIds\[0\]/);
  });

  it("keeps the earlier watches of bulk-loaded users: given ones and those beyond maxWatches", async () => {
    const store = await openStore(backend, { maxWatches: 2 });
    await store.putUsers([
      {
        userId: "p",
        earlierWatchedIds: ["x", "y"],
        watches: [1, 2, 3].map((t) => ({ userId: "p", itemId: `i${t}`, timestamp: t })),
      },
      { userId: "q", watches: [{ userId: "q", itemId: "only", timestamp: 1 }] },
    ]);
    const p = (await store.get("p"))!;
    expect(p.watches.map((w) => w.itemId)).toEqual(["i2", "i3"]);
    expect(p.hasEarlierWatches).toBe(true);
    expect(await store.watchedAmong("p", ["x", "y", "i1", "i2", "i3", "i4"])).toEqual(new Set(["x", "y", "i1", "i2", "i3"]));
    expect((await store.get("q"))!.hasEarlierWatches).toBe(false);
    // Replacing the user replaces its earlier watches too.
    await store.putUsers([{ userId: "p", watches: [{ userId: "p", itemId: "i9", timestamp: 9 }] }]);
    expect((await store.get("p"))!.hasEarlierWatches).toBe(false);
    expect(await store.watchedAmong("p", ["x", "i1", "i9"])).toEqual(new Set(["i9"]));
  });

  it("round-trips and replaces profiles", async () => {
    const store = await openStore(backend);
    await store.setProfile("carol", { age: 34, gender: "F", occupation: "engineer", geo: "94", device: "tv" });
    expect(await store.get("carol")).toEqual({
      userId: "carol",
      profile: { age: 34, gender: "F", occupation: "engineer", geo: "94", device: "tv" },
      watches: [],
      searches: [],
      impressions: [],
      impressionCounts: new Map(),
      hasEarlierWatches: false,
    });
    await store.append([watch("carol", "i1", 5)]);
    // Replace: fields not given become unknown; "" means unknown.
    await store.setProfile("carol", { age: 35, gender: "" });
    const state = (await store.get("carol"))!;
    expect(state.profile).toEqual({ age: 35 });
    expect(state.watches).toHaveLength(1);
  });

  it("delivers appended events to subscribers, one call per append, not bulk loads", async () => {
    const store = await openStore(backend);
    const seen: (readonly UserEvent[])[] = [];
    const other: UserEvent[] = [];
    const subscription = store.subscribe((events) => seen.push(events));
    const second = store.subscribe((events) => other.push(...events));
    await subscription.ready;
    await second.ready;
    await store.append([watch("dave", "a", 1), search("dave", "jazz", 2)]);
    await store.append([impression("erin", "b", 3, 1)], { publish: false });
    await store.putUsers([{ userId: "frank", watches: [{ userId: "frank", itemId: "z", timestamp: 9 }] }]);
    await store.append([watch("erin", "c", 4)]);
    await waitFor(() => seen.length >= 2, 5000, "two deliveries");
    expect(seen).toEqual([[watch("dave", "a", 1), search("dave", "jazz", 2)], [watch("erin", "c", 4)]]);
    await waitFor(() => other.length >= 3, 5000, "the second subscriber");
    subscription.unsubscribe();
    await store.append([watch("erin", "d", 5)]);
    await waitFor(() => other.length >= 4, 5000, "the remaining subscriber");
    expect(seen).toHaveLength(2);
    second.unsubscribe();
  });

  it("puts whole users (idempotently), lists bounded, and keeps metadata", async () => {
    const store = await openStore(backend, { maxWatches: 2 });
    await store.append([watch("gina", "old", 1), search("gina", "old query", 1)]);
    const snapshot = {
      userId: "gina",
      profile: { age: 20 },
      watches: [1, 2, 3].map((t) => ({ userId: "gina", itemId: `i${t}`, timestamp: t })),
    };
    await store.putUsers([snapshot, { userId: "hank", profile: { geo: "10" } }]);
    await store.putUsers([snapshot]);
    const gina = (await store.get("gina"))!;
    expect(gina.profile).toEqual({ age: 20 });
    expect(gina.watches.map((w) => w.itemId)).toEqual(["i2", "i3"]);
    expect(gina.searches).toEqual([]);
    expect((await store.get("hank"))!.profile).toEqual({ geo: "10" });
    expect(await store.getMeta("k")).toBeUndefined();
    await store.setMeta("k", "v1");
    await store.setMeta("k", "v2");
    expect(await store.getMeta("k")).toBe("v2");
  });

  it("rejects bad input with a typed error naming the field, storing nothing", async () => {
    const store = await openStore(backend, { maxEventsPerAppend: 3 });
    const cases: [unknown, string][] = [
      [[], "events"],
      [[watch("", "i", 1)], "events[0].userId"],
      [[watch("u", "", 1)], "events[0].itemId"],
      [[watch("u", "x".repeat(257), 1)], "events[0].itemId"],
      [[watch("u", "i", Number.NaN)], "events[0].timestamp"],
      [[watch("u", "i", -5)], "events[0].timestamp"],
      [[watch("u", "i", 1_700_000_000_000)], "events[0].timestamp"],
      [[watch("u", "i", 1, -1)], "events[0].watchSeconds"],
      [[watch("u", "i", 1), search("u", "q".repeat(513), 1)], "events[1].query"],
      [[search("u", "   ", 1)], "events[0].query"],
      [[impression("u", "i", 1, 1.5)], "events[0].position"],
      [[{ kind: "like", userId: "u", itemId: "i", timestamp: 1 }], "events[0].kind"],
      [[watch("u", "a", 1), watch("u", "b", 2), watch("u", "c", 3), watch("u", "d", 4)], "events"],
      ["not a list", "events"],
    ];
    for (const [events, field] of cases) {
      const error = await store.append(events as UserEvent[]).catch((e: unknown) => e);
      expect(error, `field ${field}`).toBeInstanceOf(UserStoreValidationError);
      expect((error as UserStoreValidationError).field).toBe(field);
      expect((error as UserStoreValidationError).code).toBe("INVALID_ARGUMENT");
    }
    expect(await store.get("u")).toBeUndefined();
    await expect(store.get("")).rejects.toBeInstanceOf(UserStoreValidationError);
    await expect(store.setProfile("u", { age: -1 })).rejects.toThrow(/profile\.age/);
    await expect(store.setProfile("u", { gender: 7 as unknown as string })).rejects.toThrow(/profile\.gender/);
    await expect(store.putUsers([{ userId: "u", watches: [{ userId: "someone-else", itemId: "i", timestamp: 1 }] }])).rejects.toThrow(
      /users\[0\]\.watches\[0\]\.userId/,
    );
    expect(await store.get("u")).toBeUndefined();
  });

  it("seeds from events once per seed id, sorted and bounded, without notifying subscribers", async () => {
    const store = await openStore(backend, { maxWatches: 3 });
    const delivered: UserEvent[] = [];
    const subscription = store.subscribe((events) => delivered.push(...events));
    await subscription.ready;
    const events: UserEvent[] = [
      watch("u1", "c", 30),
      watch("u2", "x", 5),
      watch("u1", "a", 10),
      watch("u1", "d", 40),
      watch("u1", "b", 20),
      search("u2", "news", 6),
    ];
    const result = await seedFromEvents(
      store,
      events,
      [
        ["u1", { age: 30 }],
        ["u3", { geo: "12" }],
      ],
      {
        seedId: "dataset-1",
        usersPerCall: 1,
      },
    );
    expect(result).toMatchObject({ skipped: false, users: 3, watches: 4, searches: 1, impressions: 0 });
    expect((await store.get("u1"))!.watches.map((w) => w.itemId)).toEqual(["b", "c", "d"]);
    expect(await store.watchedAmong("u1", ["a", "b", "x"])).toEqual(new Set(["a", "b"]));
    expect((await store.get("u1"))!.profile).toEqual({ age: 30 });
    expect((await store.get("u3"))!.profile).toEqual({ geo: "12" });
    expect(await store.getMeta(SEED_META_KEY)).toBe("dataset-1");
    await store.append([watch("u2", "live", 7)]);
    const again = await seedFromEvents(store, events, [], { seedId: "dataset-1" });
    expect(again.skipped).toBe(true);
    expect((await store.get("u2"))!.watches.map((w) => w.itemId)).toEqual(["x", "live"]);
    await waitFor(() => delivered.length >= 1, 5000, "the live event");
    expect(delivered).toEqual([watch("u2", "live", 7)]);
    subscription.unsubscribe();
  });

  it("seeds a long history: the last maxWatches watches, every earlier one remembered", async () => {
    const store = await openStore(backend, { maxWatches: 2 });
    // Six watches: the reader trims at twice the limit, then putUsers keeps the last two.
    const events = ["a", "b", "c", "d", "e", "f"].map((id, k) => watch("long", id, 10 + k));
    const result = await seedFromEvents(store, events.reverse());
    expect(result.watches).toBe(2);
    const state = (await store.get("long"))!;
    expect(state.watches.map((w) => w.itemId)).toEqual(["e", "f"]);
    expect(state.hasEarlierWatches).toBe(true);
    expect(await store.watchedAmong("long", ["a", "b", "c", "d", "e", "f", "g"])).toEqual(new Set(["a", "b", "c", "d", "e", "f"]));
  });

  it("refuses calls after close with UNAVAILABLE", async () => {
    const store = await openStore(backend);
    await store.close();
    await expect(store.append([watch("u", "i", 1)])).rejects.toBeInstanceOf(UserStoreUnavailableError);
    await expect(store.get("u")).rejects.toBeInstanceOf(UserStoreUnavailableError);
    await store.close();
  });
});

describe("dataset seeding helpers", () => {
  it("turn a dataset into events and profiles, leaving held-out events out", async () => {
    const dataset = datasetFromEvents(
      [
        { user: "1", item: "10", timestamp: 100, weight: 4 },
        { user: "1", item: "11", timestamp: 200, weight: 5 },
        { user: "1", item: "12", timestamp: 300, weight: 3 },
        { user: "1", item: "13", timestamp: 400, weight: 2 },
        { user: "2", item: "10", timestamp: 150, weight: 1 },
      ],
      {
        users: [{ id: "1", age: 25, gender: "M", occupation: "writer", geo: "55" }, { id: "2" }],
        searches: [
          { user: "1", timestamp: 150, query: "before" },
          { user: "1", timestamp: 350, query: "after the last training watch" },
        ],
      },
    );
    const split = lastoutSplit(dataset.events, dataset.users.ids.length);
    const rows = trainingRows(split, "val"); // user 1 keeps 10 and 11; user 2 keeps its one event
    const events = [...datasetUserEvents(dataset, { watchRows: rows })];
    expect(events).toEqual([
      { kind: "watch", userId: "1", itemId: "10", timestamp: 100 },
      { kind: "watch", userId: "1", itemId: "11", timestamp: 200 },
      { kind: "search", userId: "1", query: "before", timestamp: 150 },
      { kind: "watch", userId: "2", itemId: "10", timestamp: 150 },
    ]);
    const all = [...datasetUserEvents(dataset, { weightIsWatchSeconds: true })];
    expect(all.filter((e) => e.kind === "watch")).toHaveLength(5);
    expect(all[0]).toEqual({ kind: "watch", userId: "1", itemId: "10", timestamp: 100, watchSeconds: 4 });
    expect(all.filter((e) => e.kind === "search")).toHaveLength(2);
    const profiles = datasetUserProfiles(dataset);
    expect(profiles.get("1")).toEqual({ age: 25, gender: "M", occupation: "writer", geo: "55" });
    expect(profiles.get("2")).toEqual({});
  });
});
