/**
 * Helpers for this package's tests: a unique Redis key prefix per run, a Redis store that fails
 * the test (never skips) when the server is not there, and temporary directories.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RedisUserStore } from "./redis.js";
import type { RedisConfig, UserStoreLogger } from "./types.js";

/** The server the tests use; CI starts it (redis-server on 127.0.0.1:6379). */
export const TEST_REDIS_URL = process.env.RECSYS_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export function uniquePrefix(label: string): string {
  return `test:user-store:${label}:${process.pid}:${randomUUID().slice(0, 8)}:`;
}

/** Open a Redis store; if Redis is unreachable, throw an error saying so (the test fails). */
export async function openTestRedis(keyPrefix: string, extra: Partial<RedisConfig> = {}): Promise<RedisUserStore> {
  try {
    return await RedisUserStore.open({ backend: "redis", url: TEST_REDIS_URL, keyPrefix, logger: quietLogger(), ...extra });
  } catch (error) {
    throw new Error(
      `these tests need a Redis server at ${TEST_REDIS_URL} (start one with ` +
        `'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'): ${(error as Error).message}`,
      { cause: error },
    );
  }
}

export async function tempDir(label: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `user-store-${label}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** A logger that records lines instead of printing them. */
export function quietLogger(): UserStoreLogger & { lines: { level: string; message: string; fields: Record<string, unknown> }[] } {
  const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
  return {
    lines,
    warn: (fields, message) => void lines.push({ level: "warn", message, fields }),
    error: (fields, message) => void lines.push({ level: "error", message, fields }),
  };
}

/** Resolve when `condition()` holds, polling; reject after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
