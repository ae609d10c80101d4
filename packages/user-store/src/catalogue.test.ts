import { afterEach, describe, expect, it } from "vitest";
import {
  EmbeddedCatalogueStore,
  RedisCatalogueStore,
  openCatalogueStore,
  type CatalogueChange,
  type CatalogueItem,
  type CatalogueStore,
} from "./catalogue.js";
import { UserStoreValidationError } from "./errors.js";
import { TEST_REDIS_URL, quietLogger, tempDir, uniquePrefix } from "./test-helpers.js";

type Backend = "embedded" | "redis";
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** Opens a store and a function reopening it (a restart, or a second replica for Redis). */
async function openPair(backend: Backend): Promise<{ store: CatalogueStore; reopen: () => Promise<CatalogueStore> }> {
  if (backend === "embedded") {
    const dir = await tempDir("catalogue");
    cleanups.push(dir.remove);
    const reopen = async (): Promise<CatalogueStore> => {
      const s = await openCatalogueStore({ backend: "embedded", path: dir.path, logger: quietLogger() });
      cleanups.push(() => s.close());
      return s;
    };
    return { store: await reopen(), reopen };
  }
  const keyPrefix = uniquePrefix("catalogue");
  const reopen = async (): Promise<CatalogueStore> => {
    const s = await openCatalogueStore({ backend: "redis", url: TEST_REDIS_URL, keyPrefix, pollMs: 20, logger: quietLogger() });
    cleanups.push(() => s.close());
    return s;
  };
  const store = await reopen();
  cleanups.push(() => (store as RedisCatalogueStore).deleteAllKeys());
  return { store, reopen };
}

async function scanAll(store: CatalogueStore): Promise<CatalogueItem[]> {
  const out: CatalogueItem[] = [];
  for await (const batch of store.scan()) out.push(...batch);
  return out.sort((a, b) => a.itemId.localeCompare(b.itemId));
}

describe.each<Backend>(["embedded", "redis"])("%s catalogue store", (backend) => {
  it("upserts idempotently, deletes, reads back, and survives reopening", async () => {
    const { store, reopen } = await openPair(backend);
    const item = {
      itemId: "v1",
      title: "Cats at play",
      tags: ["cats", "pets", "cats"],
      channel: "ch-a",
      uploadTimestamp: 1_700_000_000,
      durationSeconds: 95,
      updatedAt: 5,
    };
    await store.upsert([item]);
    await store.upsert([item, { itemId: "v2", channel: "ch-b", updatedAt: 6 }]);
    expect(await store.get(["v1", "nope", "v2"])).toEqual([
      { ...item, tags: ["cats", "pets"] },
      undefined,
      { itemId: "v2", channel: "ch-b", updatedAt: 6 },
    ]);
    await store.delete(["v2", "ghost"]);
    expect(await store.get(["v2"])).toEqual([undefined]);
    expect([...(await store.deletedIds())].sort()).toEqual(["ghost", "v2"]);
    expect(await store.deletedAmong(["v1", "v2"])).toEqual(new Set(["v2"]));
    const again = await reopen();
    expect((await scanAll(again)).map((i) => i.itemId)).toEqual(["v1"]);
    expect(await again.deletedAmong(["v2", "ghost", "v1"])).toEqual(new Set(["v2", "ghost"]));
    // Upserting a taken-down id brings it back.
    await again.upsert([{ itemId: "v2" }]);
    expect(await again.deletedAmong(["v2"])).toEqual(new Set());
    expect((await again.get(["v2"]))[0]!.updatedAt).toBeGreaterThan(1_700_000_000);
  });

  it("rejects invalid items, storing nothing", async () => {
    const { store } = await openPair(backend);
    await expect(store.upsert([{ itemId: "" }])).rejects.toBeInstanceOf(UserStoreValidationError);
    await expect(store.upsert([{ itemId: "a", durationSeconds: -1 }])).rejects.toThrow(/durationSeconds/);
    await expect(store.upsert([{ itemId: "a", uploadTimestamp: 1.7e12 }])).rejects.toThrow(/uploadTimestamp/);
    await expect(store.delete([])).rejects.toThrow(/empty/);
    expect(await scanAll(store)).toEqual([]);
  });

  it("delivers changes to subscribers (Redis: another replica's)", async () => {
    const { store, reopen } = await openPair(backend);
    const watcher = backend === "redis" ? await reopen() : store;
    const changes: CatalogueChange[] = [];
    watcher.subscribe((c) => changes.push(c));
    await store.upsert([{ itemId: "n1", channel: "c" }]);
    await store.delete(["n1"]);
    await expect.poll(() => changes.map((c) => c.kind), { timeout: 5000 }).toEqual(["upsert", "delete"]);
  });
});

it("embedded catalogue: a torn tail is truncated, earlier writes kept", async () => {
  const dir = await tempDir("catalogue-torn");
  cleanups.push(dir.remove);
  let store = await EmbeddedCatalogueStore.open({ backend: "embedded", path: dir.path, logger: quietLogger() });
  await store.upsert([{ itemId: "a" }]);
  await store.upsert([{ itemId: "b" }]);
  const size = await store.fileSize();
  await store.close();
  const { truncate } = await import("node:fs/promises");
  await truncate(`${dir.path}/catalogue.log`, size - 4);
  const logger = quietLogger();
  store = await EmbeddedCatalogueStore.open({ backend: "embedded", path: dir.path, logger });
  cleanups.push(() => store.close());
  expect(store.itemCount).toBe(1);
  expect(logger.lines.some((l) => /torn/.test(l.message))).toBe(true);
});
