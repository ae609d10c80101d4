/**
 * Seeding against a slow Redis: the real server behind a loopback proxy that holds every byte for
 * a while at first (as a Redis busy with a big load, or far away, would), with a command timeout
 * shorter than that delay. Seeding retries with backoff and completes; nothing is lost.
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { seedFromEvents, SEED_META_KEY, type SeedRetry } from "./seed.js";
import { RedisUserStore } from "./redis.js";
import { quietLogger, TEST_REDIS_URL, uniquePrefix } from "./test-helpers.js";
import type { UserEvent } from "./types.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A TCP proxy to Redis that delays each chunk by `delayMs` (in order) while `slowFor` says so. */
async function slowProxy(delayMs: number): Promise<{ url: string; slowFor: (ms: number) => void }> {
  const target = new URL(TEST_REDIS_URL);
  let slowUntil = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 6379), target.hostname);
    sockets.add(client).add(upstream);
    const forward = (from: net.Socket, to: net.Socket): void => {
      let lastAt = 0;
      from.on("data", (chunk) => {
        const now = Date.now();
        const at = Math.max(now < slowUntil ? now + delayMs : now, lastAt);
        lastAt = at;
        setTimeout(() => to.writable && to.write(chunk), at - now);
      });
      from.on("close", () => to.destroy());
      from.on("error", () => to.destroy());
    };
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    url: `redis://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    slowFor: (ms) => void (slowUntil = Date.now() + ms),
  };
}

describe("seedFromEvents against a slow Redis", () => {
  it("retries timed-out batches with backoff instead of failing, and stores every user", async () => {
    const proxy = await slowProxy(600);
    const keyPrefix = uniquePrefix("seed-slow");
    const store = await RedisUserStore.open({ backend: "redis", url: proxy.url, keyPrefix, commandTimeoutMs: 300, logger: quietLogger() });
    cleanups.push(async () => {
      await store.deleteAllKeys();
      await store.close();
    });
    const events: UserEvent[] = [];
    for (let u = 0; u < 300; u++) {
      for (let k = 0; k < 5; k++) events.push({ kind: "watch", userId: `u${u}`, itemId: `i${k}`, timestamp: 100 + k });
    }
    const retries: SeedRetry[] = [];
    proxy.slowFor(1500);
    const result = await seedFromEvents(store, events, [], { seedId: "slow-1", usersPerCall: 100, onRetry: (r) => retries.push(r) });
    expect(result).toMatchObject({ skipped: false, users: 300, watches: 1500 });
    expect(retries.length).toBeGreaterThan(0);
    expect(retries.every((r) => /timed out/i.test(r.error))).toBe(true);
    expect(await store.getMeta(SEED_META_KEY)).toBe("slow-1");
    for (const userId of ["u0", "u150", "u299"]) expect((await store.get(userId))!.watches).toHaveLength(5);
  });

  it("still fails, with the backend's reason, once retryForMs has passed", async () => {
    const proxy = await slowProxy(600);
    const store = await RedisUserStore.open({
      backend: "redis",
      url: proxy.url,
      keyPrefix: uniquePrefix("seed-down"),
      commandTimeoutMs: 200,
      logger: quietLogger(),
    });
    cleanups.push(() => store.close());
    proxy.slowFor(60_000);
    const events: UserEvent[] = [{ kind: "watch", userId: "u", itemId: "i", timestamp: 1 }];
    await expect(seedFromEvents(store, events, [], { retryForMs: 1000 })).rejects.toThrow(/timed out/i);
  });

  it("opens a Redis that is slow to answer its first commands (retries within openRetryForMs)", async () => {
    const proxy = await slowProxy(600);
    proxy.slowFor(1500);
    const store = await RedisUserStore.open({
      backend: "redis",
      url: proxy.url,
      keyPrefix: uniquePrefix("seed-open"),
      commandTimeoutMs: 300,
      logger: quietLogger(),
    });
    cleanups.push(() => store.close());
    expect(await store.getMeta("nothing")).toBeUndefined();
  });

  it("fails at once when nothing listens (down is not slow)", async () => {
    const started = Date.now();
    await expect(
      RedisUserStore.open({ backend: "redis", url: "redis://127.0.0.1:1", keyPrefix: "x:", logger: quietLogger() }),
    ).rejects.toThrow(/unreachable/);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
