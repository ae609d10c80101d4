/**
 * Measures both backends on this machine:
 *
 *   node packages/user-store/dist/bench-main.js [--redis-url URL] [--dir DIR] [--duration-ms N] [--json]
 *
 * Embedded: a fresh directory under DIR (default the OS temp directory), removed afterwards.
 * Redis: a unique key prefix, deleted afterwards.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { benchUserStore, formatBenchResult, type UserStoreBenchResult } from "./bench.js";
import { EmbeddedUserStore } from "./embedded.js";
import { RedisUserStore } from "./redis.js";

const { values } = parseArgs({
  options: {
    "redis-url": { type: "string", default: "redis://127.0.0.1:6379" },
    dir: { type: "string", default: tmpdir() },
    "duration-ms": { type: "string", default: "1000" },
    json: { type: "boolean", default: false },
  },
});
const durationMs = Number(values["duration-ms"]);
const results: UserStoreBenchResult[] = [];

const dir = await mkdtemp(join(values.dir, "user-store-bench-"));
try {
  const embedded = await EmbeddedUserStore.open({ backend: "embedded", path: dir });
  results.push(await benchUserStore(embedded, { durationMs }));
  await embedded.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}

const redis = await RedisUserStore.open({
  backend: "redis",
  url: values["redis-url"],
  keyPrefix: `bench:user-store:${randomUUID().slice(0, 8)}:`,
});
try {
  results.push(await benchUserStore(redis, { durationMs }));
} finally {
  await redis.deleteAllKeys();
  await redis.close();
}

if (values.json) console.log(JSON.stringify(results, null, 2));
else for (const result of results) console.log(formatBenchResult(result));
