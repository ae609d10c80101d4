/**
 * Redis backend against real servers: the shared one at 127.0.0.1:6379 (the test fails, not
 * skips, when it is not there) and a private redis-server this file starts and kills to check
 * the UNAVAILABLE path and reconnection.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { UserStoreUnavailableError } from "./errors.js";
import { RedisUserStore } from "./redis.js";
import { openTestRedis, quietLogger, TEST_REDIS_URL, uniquePrefix, waitFor } from "./test-helpers.js";
import type { UserEvent } from "./types.js";

const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

async function store(prefix: string, extra: Parameters<typeof openTestRedis>[1] = {}): Promise<RedisUserStore> {
  const s = await openTestRedis(prefix, extra);
  cleanups.push(() => s.close());
  return s;
}

const watch = (userId: string, itemId: string, timestamp: number): UserEvent => ({ kind: "watch", userId, itemId, timestamp });

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Start a throwaway redis-server on `port` and wait until it answers. */
async function startRedisServer(port: number): Promise<ChildProcess> {
  const found = spawnSync("redis-server", ["--version"], { encoding: "utf8" });
  if (found.error !== undefined || found.status !== 0) {
    throw new Error(
      `this test needs the redis-server binary on PATH (Debian package redis-server): ${found.error?.message ?? found.stderr}`,
    );
  }
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  const probe = new Redis({ port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  probe.on("error", () => undefined);
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      return child;
    } catch (error) {
      probe.disconnect();
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`redis-server on port ${port} did not start: ${(error as Error).message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

describe("redis user store", () => {
  it("shares users and events between instances on one prefix, and cleans up", async () => {
    const prefix = uniquePrefix("shared");
    const a = await store(prefix, { streamMaxLen: 10 });
    const b = await store(prefix, { streamMaxLen: 10 });
    const other = await store(uniquePrefix("other"));
    const seenByB: UserEvent[] = [];
    const seenByA: UserEvent[] = [];
    const seenByOther: UserEvent[] = [];
    const subB = b.subscribe((events) => seenByB.push(...events));
    const subA = a.subscribe((events) => seenByA.push(...events));
    const subOther = other.subscribe((events) => seenByOther.push(...events));
    await Promise.all([subA.ready, subB.ready, subOther.ready]);
    await a.append([watch("u1", "i1", 1), { kind: "search", userId: "u2", query: "q", timestamp: 2 }]);
    await a.setProfile("u1", { age: 41 });
    await waitFor(() => seenByB.length >= 2, 5000, "B to receive A's events");
    expect(seenByB).toEqual([watch("u1", "i1", 1), { kind: "search", userId: "u2", query: "q", timestamp: 2 }]);
    await waitFor(() => seenByA.length >= 2, 5000, "A to receive its own events");
    expect((await b.get("u1"))!).toMatchObject({ profile: { age: 41 }, watches: [{ itemId: "i1" }] });
    expect(await other.get("u1")).toBeUndefined();
    // B writes too; A sees it.
    await b.append([watch("u1", "i2", 3)]);
    await waitFor(() => seenByA.length >= 3, 5000, "A to receive B's event");
    expect((await a.get("u1"))!.watches.map((w) => w.itemId)).toEqual(["i1", "i2"]);

    // The stream is capped (MAXLEN ~: trimmed in whole stream nodes, so roughly).
    const raw = new Redis(TEST_REDIS_URL);
    cleanups.push(() => raw.quit());
    for (let k = 0; k < 300; k++) await a.append([watch("u3", `x${k}`, k)]);
    expect(await raw.xlen(`${prefix}events`)).toBeLessThan(300);
    await waitFor(() => seenByB.length >= 303, 10_000, "B to receive the burst");
    expect(seenByOther).toEqual([]);

    subA.unsubscribe();
    subB.unsubscribe();
    subOther.unsubscribe();
    expect(await a.deleteAllKeys()).toBeGreaterThan(0);
    expect(await raw.keys(`${prefix}*`)).toEqual([]);
    await other.deleteAllKeys();
  });

  it("expires a user's keys after userTtlSeconds when configured", async () => {
    const prefix = uniquePrefix("ttl");
    const s = await store(prefix, { userTtlSeconds: 3600 });
    await s.append([watch("u", "i", 1)]);
    await s.setProfile("u", { age: 30 });
    const raw = new Redis(TEST_REDIS_URL);
    cleanups.push(() => raw.quit());
    for (const suffix of ["w", "p"]) {
      const ttl = await raw.ttl(`${prefix}user:{u}:${suffix}`);
      expect(ttl).toBeGreaterThan(3500);
      expect(ttl).toBeLessThanOrEqual(3600);
    }
    await s.deleteAllKeys();
  });

  it("fails to open with UNAVAILABLE and a clear message when Redis is not there", async () => {
    const port = await freePort();
    const started = Date.now();
    const error = await RedisUserStore.open({
      backend: "redis",
      url: `redis://127.0.0.1:${port}`,
      keyPrefix: "x:",
      connectTimeoutMs: 1000,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserStoreUnavailableError);
    expect((error as Error).message).toMatch(new RegExp(`Redis at redis://127\\.0\\.0\\.1:${port} is unreachable: .*ECONNREFUSED`));
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("answers UNAVAILABLE while Redis is down and recovers (writes and tailing) when it is back", async () => {
    const port = await freePort();
    let server = await startRedisServer(port);
    cleanups.push(() => stopProcess(server));
    const url = `redis://127.0.0.1:${port}`;
    const logger = quietLogger();
    const writer = await RedisUserStore.open({ backend: "redis", url, keyPrefix: "p:", commandTimeoutMs: 500, logger });
    cleanups.push(() => writer.close());
    const reader = await RedisUserStore.open({ backend: "redis", url, keyPrefix: "p:", logger });
    cleanups.push(() => reader.close());
    const received: UserEvent[] = [];
    const errors: Error[] = [];
    const subscription = reader.subscribe((events) => received.push(...events), { onError: (e) => errors.push(e) });
    await subscription.ready;
    await writer.append([watch("u", "before", 1)]);
    await waitFor(() => received.length === 1, 5000, "the first event");

    await stopProcess(server);
    const started = Date.now();
    const failure = await writer.append([watch("u", "during", 2)]).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(UserStoreUnavailableError);
    expect((failure as Error).message).toMatch(/Redis at redis:\/\/127\.0\.0\.1:\d+ unavailable \(append\)/);
    await expect(writer.get("u")).rejects.toBeInstanceOf(UserStoreUnavailableError);
    expect(Date.now() - started).toBeLessThan(2000);
    await waitFor(() => errors.length > 0, 10_000, "the subscriber's onError");
    expect(errors[0]).toBeInstanceOf(UserStoreUnavailableError);

    server = await startRedisServer(port);
    // The client reconnects on its own (backoff at most 2 s); retry the append until it lands.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await writer.append([watch("u", "after", 3)]);
        break;
      } catch (error) {
        if (!(error instanceof UserStoreUnavailableError) || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    // The restarted server kept nothing (no persistence); the new write is there and tailed.
    expect((await writer.get("u"))!.watches.map((w) => w.itemId)).toEqual(["after"]);
    await waitFor(() => received.some((e) => e.kind === "watch" && e.itemId === "after"), 10_000, "tailing to resume");
    subscription.unsubscribe();
  });
});
