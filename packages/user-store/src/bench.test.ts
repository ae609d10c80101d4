import { describe, expect, it } from "vitest";
import { benchUserStore, formatBenchResult } from "./bench.js";
import { EmbeddedUserStore } from "./embedded.js";
import { openTestRedis, quietLogger, tempDir, uniquePrefix } from "./test-helpers.js";
import type { UserStore } from "./types.js";

async function check(store: UserStore): Promise<void> {
  const result = await benchUserStore(store, { users: 20, durationMs: 40, gets: 30, batchSizes: [1, 10], concurrencies: [1, 4] });
  expect(result.append.map((a) => [a.batchSize, a.concurrency])).toEqual([
    [1, 1],
    [1, 4],
    [10, 1],
    [10, 4],
  ]);
  for (const a of result.append) {
    expect(a.appends).toBeGreaterThan(0);
    expect(a.eventsPerSecond).toBeGreaterThan(0);
    expect(a.p99Ms).toBeGreaterThanOrEqual(a.p50Ms);
  }
  expect(result.get.calls).toBe(30);
  expect(result.get.watchesPerUser).toBe(store.limits.maxWatches);
  expect(formatBenchResult(result)).toMatch(/events\/s/);
}

describe("benchUserStore", () => {
  it("measures the embedded store", async () => {
    const dir = await tempDir("bench");
    const store = await EmbeddedUserStore.open({ backend: "embedded", path: dir.path, logger: quietLogger() });
    try {
      await check(store);
    } finally {
      await store.close();
      await dir.remove();
    }
  });

  it("measures the redis store", async () => {
    const store = await openTestRedis(uniquePrefix("bench"));
    try {
      await check(store);
    } finally {
      await store.deleteAllKeys();
      await store.close();
    }
  });
});
