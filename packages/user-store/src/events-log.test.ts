/**
 * The events log contract (`scanEvents`, `lastSeq`, `logEvents`, served answers) on both
 * backends, and the embedded log's durability: it survives compaction and reopening, and a torn
 * tail of either file is reconciled by seq.
 */
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { EmbeddedUserStore } from "./embedded.js";
import { EVENTS_LOG_FILE } from "./events-log.js";
import { UserStoreValidationError } from "./errors.js";
import { seedFromEvents } from "./seed.js";
import { openTestRedis, quietLogger, tempDir, uniquePrefix } from "./test-helpers.js";
import type { StoredEvent, UserEvent, UserStore } from "./types.js";

type Backend = "embedded" | "redis";
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function openStore(backend: Backend): Promise<UserStore> {
  if (backend === "embedded") {
    const dir = await tempDir("events");
    const store = await EmbeddedUserStore.open({ backend: "embedded", path: dir.path, logger: quietLogger() });
    cleanups.push(dir.remove, () => store.close());
    return store;
  }
  const prefix = uniquePrefix("events");
  const store = await openTestRedis(prefix);
  cleanups.push(async () => {
    await store.close();
    const cleaner = await openTestRedis(prefix);
    await cleaner.deleteAllKeys();
    await cleaner.close();
  });
  return store;
}

async function scanAll(store: UserStore, afterSeq?: number, batchSize?: number): Promise<{ events: StoredEvent[]; batches: number }> {
  const events: StoredEvent[] = [];
  let batches = 0;
  for await (const batch of store.scanEvents({
    ...(afterSeq === undefined ? {} : { afterSeq }),
    ...(batchSize === undefined ? {} : { batchSize }),
  })) {
    batches++;
    events.push(...batch);
  }
  return { events, batches };
}

const watch = (userId: string, itemId: string, timestamp: number): UserEvent => ({ kind: "watch", userId, itemId, timestamp });
const served = (userId: string, requestId: string, timestamp: number, items: string[]): UserEvent => ({
  kind: "served",
  userId,
  timestamp,
  requestId,
  items: items.map((itemId, i) => ({ itemId, position: i + 1, provenance: [{ source: "dnn", rank: i + 1, score: 1 - i / 10 }] })),
  modelVersions: { ranker: "v2", retrieval: "v2" },
});

describe.each<Backend>(["embedded", "redis"])("%s events log", (backend) => {
  it("scans every appended and logged event in append order with contiguous seqs", async () => {
    const store = await openStore(backend);
    expect(await store.lastSeq()).toBe(0);
    expect((await scanAll(store)).events).toEqual([]);
    await store.append([watch("a", "i1", 10), watch("b", "i2", 11)]);
    await store.append([served("a", "r1", 12, ["i3", "i4"])]);
    await store.logEvents([watch("c", "i9", 5)]);
    await store.append([{ kind: "search", userId: "a", query: "cats", timestamp: 13 }]);
    expect(await store.lastSeq()).toBe(5);
    const { events } = await scanAll(store);
    expect(events.map((e) => [e.seq, e.kind, e.userId])).toEqual([
      [1, "watch", "a"],
      [2, "watch", "b"],
      [3, "served", "a"],
      [4, "watch", "c"],
      [5, "search", "a"],
    ]);
    expect(events[2]).toEqual({ ...served("a", "r1", 12, ["i3", "i4"]), seq: 3 });
    // afterSeq and batches.
    const tail = await scanAll(store, 2, 2);
    expect(tail.events.map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(tail.batches).toBe(2);
    expect((await scanAll(store, 5)).events).toEqual([]);
  });

  it("keeps served answers and logged events out of user state and subscriptions", async () => {
    const store = await openStore(backend);
    const seen: UserEvent[] = [];
    const sub = store.subscribe((events) => seen.push(...events));
    await sub.ready;
    await store.append([served("u1", "r1", 12, ["i3"])]);
    await store.logEvents([watch("u1", "i9", 5)]);
    await store.append([watch("u2", "i1", 20)]);
    await expect.poll(() => seen.length, { timeout: 5000 }).toBe(1);
    expect(seen[0]!.kind).toBe("watch");
    expect(await store.get("u1")).toBeUndefined();
    sub.unsubscribe();
  });

  it("keeps a watch's client id in the log and in subscriptions, not in the user's history", async () => {
    const store = await openStore(backend);
    const seen: UserEvent[] = [];
    const sub = store.subscribe((events) => seen.push(...events));
    await sub.ready;
    const event: UserEvent = { kind: "watch", userId: "u1", itemId: "i1", timestamp: 20, clientId: "device-9" };
    await store.append([event]);
    expect((await scanAll(store)).events).toEqual([{ ...event, seq: 1 }]);
    await expect.poll(() => seen.length, { timeout: 5000 }).toBe(1);
    expect(seen[0]).toEqual(event);
    expect((await store.get("u1"))?.watches).toEqual([{ userId: "u1", itemId: "i1", timestamp: 20 }]);
    await expect(store.append([{ ...event, clientId: "x".repeat(store.limits.maxIdLength + 1) }])).rejects.toThrow(/clientId is too long/);
    sub.unsubscribe();
  });

  it("rejects a malformed served answer, storing nothing", async () => {
    const store = await openStore(backend);
    const bad = { ...served("a", "r1", 12, ["i3"]), items: [{ itemId: "i3", position: 0, provenance: [] }] } as UserEvent;
    await expect(store.append([bad])).rejects.toBeInstanceOf(UserStoreValidationError);
    await expect(store.append([{ ...served("a", "", 12, []) }])).rejects.toThrow(/requestId/);
    expect(await store.lastSeq()).toBe(0);
  });

  it("seeding records the seeded history in the events log once, oldest first", async () => {
    const store = await openStore(backend);
    const events = [watch("a", "i2", 20), watch("b", "i1", 10), watch("a", "i3", 30)];
    await seedFromEvents(store, events, [], { seedId: "ds1" });
    await seedFromEvents(store, events, [], { seedId: "ds1" });
    const { events: logged } = await scanAll(store);
    expect(logged.map((e) => e.timestamp)).toEqual([10, 20, 30]);
    expect((await store.get("a"))?.watches.map((w) => w.itemId)).toEqual(["i2", "i3"]);
  });

  it("a store seeded before the events log existed gets the seeded history logged, its users untouched", async () => {
    const store = await openStore(backend);
    await store.setMeta("seeded", "ds1");
    await store.append([watch("a", "live", 50)]);
    const result = await seedFromEvents(store, [watch("a", "i2", 20), watch("b", "i1", 10)], [], { seedId: "ds1" });
    expect(result.skipped).toBe(true);
    expect((await scanAll(store)).events.map((e) => e.timestamp)).toEqual([50, 10, 20]);
    expect((await store.get("a"))?.watches.map((w) => w.itemId)).toEqual(["live"]);
  });
});

describe("embedded events log durability", () => {
  it("survives compaction and reopening; a reopened store continues the seqs", async () => {
    const dir = await tempDir("events-durable");
    cleanups.push(dir.remove);
    let store = await EmbeddedUserStore.open({ backend: "embedded", path: dir.path, logger: quietLogger(), compactBytes: 1 });
    for (let i = 0; i < 50; i++) await store.append([watch(`u${i % 5}`, `i${i}`, i)]);
    await store.compact();
    await store.append([served("u1", "r", 99, ["i1"])]);
    await store.close();
    store = await EmbeddedUserStore.open({ backend: "embedded", path: dir.path, logger: quietLogger() });
    cleanups.push(() => store.close());
    expect(await store.lastSeq()).toBe(51);
    await store.append([watch("u9", "x", 100)]);
    const { events } = await scanAll(store);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 52 }, (_, i) => i + 1));
    expect((await scanAll(store, 40, 3)).events[0]!.seq).toBe(41);
    expect((await store.get("u0"))?.watches).toHaveLength(10);
  });

  it("re-logs events the user log holds beyond a torn events log", async () => {
    const dir = await tempDir("events-torn");
    cleanups.push(dir.remove);
    const logger = quietLogger();
    let store = await EmbeddedUserStore.open({ backend: "embedded", path: dir.path, logger });
    await store.append([watch("a", "i1", 1)]);
    await store.append([watch("a", "i2", 2), watch("b", "i3", 3)]);
    await store.close();
    // Cut the events log in the middle of its last record (a crash after the user log's write).
    const path = join(dir.path, EVENTS_LOG_FILE);
    const handle = await open(path, "r+");
    await handle.truncate((await stat(path)).size - 5);
    await handle.close();
    store = await EmbeddedUserStore.open({ backend: "embedded", path: dir.path, logger });
    cleanups.push(() => store.close());
    expect((await scanAll(store)).events.map((e) => [e.seq, e.kind === "watch" ? e.itemId : ""])).toEqual([
      [1, "i1"],
      [2, "i2"],
      [3, "i3"],
    ]);
    expect(logger.lines.some((l) => /re-logging/.test(l.message))).toBe(true);
  });

  it("applies events the events log holds beyond the user log", async () => {
    const dir = await tempDir("events-ahead");
    cleanups.push(dir.remove);
    const logger = quietLogger();
    let store = await EmbeddedUserStore.open({ backend: "embedded", path: dir.path, logger, compactBytes: 1 });
    await store.append([watch("a", "i1", 1)]);
    await store.compact();
    await store.append([watch("a", "i2", 2)]);
    await store.close();
    // Drop the newest user log (a crash before its write reached the disk).
    const { readdir, truncate } = await import("node:fs/promises");
    const wal = (await readdir(dir.path))
      .filter((n) => n.startsWith("wal-"))
      .sort()
      .at(-1)!;
    await truncate(join(dir.path, wal), 8);
    store = await EmbeddedUserStore.open({ backend: "embedded", path: dir.path, logger });
    expect((await store.get("a"))?.watches.map((w) => w.itemId)).toEqual(["i1", "i2"]);
    expect(await store.lastSeq()).toBe(2);
    await store.close();
    // ...and it was written back to the user log: a second reopen agrees.
    store = await EmbeddedUserStore.open({ backend: "embedded", path: dir.path, logger });
    cleanups.push(() => store.close());
    expect((await store.get("a"))?.watches.map((w) => w.itemId)).toEqual(["i1", "i2"]);
    await store.append([watch("a", "i3", 3)]);
    expect((await scanAll(store)).events.map((e) => e.seq)).toEqual([1, 2, 3]);
  });
});
