/**
 * watchModel: start-up failures, swap under load through a real gRPC server (no failed call,
 * calls finish on the model they started with), broken bundles keep the old model, metrics,
 * polling, onSwap and retire.
 */
import { mkdtemp, mkdir, readFile, rename, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RankingService } from "@recsys/gen";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connect, implement } from "@recsys/transport";
import { ConfigError } from "./config.js";
import { readManifestVersion, watchModel, type ModelWatcher } from "./reloadable.js";
import { startService } from "./service.js";
import { memoryLogger, metricValue, scrapeMetrics, testConfig } from "./testing/index.js";

/** A toy model: its version and a payload read from the bundle directory. */
interface Toy {
  readonly version: string;
  readonly payload: string;
  retired: boolean;
}

let root: string;
const watchers: ModelWatcher<Toy>[] = [];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "reloadable-"));
});

afterEach(async () => {
  await Promise.all(watchers.splice(0).map((w) => w.close()));
  await rm(root, { recursive: true, force: true });
});

async function writeBundle(name: string, version: string, payload: string | null): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  if (payload !== null) await writeFile(join(dir, "payload.txt"), payload);
  await writeFile(join(dir, "manifest.json"), JSON.stringify({ modelVersion: version }));
  return dir;
}

/** Flips the symlink `current` to `target` atomically (what a deploy does). */
async function publish(target: string): Promise<void> {
  const tmp = join(root, `current.${Math.random().toString(36).slice(2)}`);
  await symlink(target, tmp);
  await rename(tmp, join(root, "current"));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function loadToy(dir: string, delayMs = 0): Promise<Toy> {
  const version = await readManifestVersion(dir);
  if (delayMs > 0) await sleep(delayMs);
  const payload = await readFile(join(dir, "payload.txt"), "utf8"); // throws when the bundle is broken
  return { version, payload, retired: false };
}

async function watch(extra: { pollMs?: number; registry?: Registry; loadDelayMs?: number; onSwap?: (n: Toy, p: Toy) => void } = {}) {
  const logs = memoryLogger("reload_test");
  const watcher = await watchModel<Toy>({
    path: join(root, "current"),
    load: (dir) => loadToy(dir, extra.loadDelayMs ?? 0),
    versionOf: (toy) => toy.version,
    pollMs: extra.pollMs ?? 0,
    logger: logs.logger,
    stage: "reload_test",
    registry: extra.registry ?? new Registry(),
    retire: (toy) => {
      toy.retired = true;
    },
    retireDelayMs: 200,
    ...(extra.onSwap === undefined ? {} : { onSwap: extra.onSwap }),
  });
  watchers.push(watcher);
  return { watcher, logs };
}

describe("watchModel at start", () => {
  it("loads the model the path points to", async () => {
    await publish(await writeBundle("v1", "v1", "one"));
    const { watcher, logs } = await watch();
    expect(watcher.current()).toMatchObject({ version: "v1", payload: "one" });
    expect(watcher.version()).toBe("v1");
    expect(watcher.source()).toBe(join(root, "v1"));
    expect(logs.lines.some((l) => l.msg === "model loaded" && l.modelVersion === "v1")).toBe(true);
  });

  it("fails with a ConfigError naming the variable when the path does not exist", async () => {
    const error = await watch().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe("MODEL_PATH");
    expect((error as Error).message).toMatch(/^MODEL_PATH=.*current: no model there \(.*ENOENT/);
  });

  it("fails with the loader's reason when the bundle is broken", async () => {
    await publish(await writeBundle("bad", "v1", null));
    await expect(watch()).rejects.toThrow(/cannot load the model at .*current \(-> .*bad\): .*payload\.txt/);
  });
});

describe("watchModel reloads", () => {
  it("swaps under load through gRPC: no call fails, each call finishes on the model it started with", async () => {
    await publish(await writeBundle("v1", "v1", "one"));
    const { watcher } = await watch({ loadDelayMs: 30 });
    const service = await startService({
      stage: "reload_test",
      config: testConfig(),
      services: [
        implement(RankingService, {
          async rank(request) {
            const model = watcher.current(); // once per request
            await sleep(request.context?.userId === "slow" ? 150 : 3); // the swap may happen here
            if (model.retired) throw new Error("used a retired model");
            return { items: [], version: { component: "ranking", modelVersion: `${model.version}:${model.payload}` } };
          },
        }),
      ],
    });
    const client = connect(RankingService, service.address);
    try {
      let stop = false;
      const seen: string[] = [];
      const workers = Array.from({ length: 4 }, async () => {
        while (!stop) {
          const response = await client.rank({ context: { userId: "u" } });
          seen.push(response.version!.modelVersion);
        }
      });
      await sleep(50);
      const slow = client.rank({ context: { userId: "slow" } }); // starts on v1, ends after the swap
      await sleep(20);
      await publish(await writeBundle("v2", "v2", "two"));
      expect(await watcher.checkNow()).toBe("swapped");
      expect((await client.rank({ context: { userId: "u" } })).version!.modelVersion).toBe("v2:two");
      expect((await slow).version!.modelVersion).toBe("v1:one");
      await sleep(50);
      await publish(await writeBundle("v3", "v3", "three"));
      expect(await watcher.checkNow()).toBe("swapped");
      await sleep(50);
      stop = true;
      await Promise.all(workers); // any failed call rejects here
      expect(new Set(seen)).toEqual(new Set(["v1:one", "v2:two", "v3:three"]));
      expect(seen.length).toBeGreaterThan(20);
      expect((await client.rank({ context: { userId: "u" } })).version!.modelVersion).toBe("v3:three");
      expect(watcher.version()).toBe("v3");
    } finally {
      client.$close();
      await service.stop();
    }
  });

  it("keeps serving the old model when the new bundle is broken, and counts the failure once per retry interval", async () => {
    await publish(await writeBundle("v1", "v1", "one"));
    const registry = new Registry();
    const { watcher, logs } = await watch({ registry });
    const metrics = async () => registry.metrics();
    expect(metricValue(await metrics(), "recsys_reload_test_model_info", { model_version: "v1" })).toBe(1);

    await publish(await writeBundle("broken", "v2", null));
    expect(await watcher.checkNow()).toBe("failed");
    expect(watcher.current()).toMatchObject({ version: "v1", payload: "one", retired: false });
    expect(await watcher.checkNow()).toBe("skipped-failed");
    let text = await metrics();
    expect(metricValue(text, "recsys_reload_test_model_reload_failures_total")).toBe(1);
    expect(metricValue(text, "recsys_reload_test_model_info", { model_version: "v1" })).toBe(1);
    expect(logs.lines.some((l) => l.msg === "new model failed to load; the current model keeps serving" && l.modelVersion === "v2")).toBe(
      true,
    );

    // A missing manifest (e.g. mid-replacement of a directory) is a failure too.
    await publish(join(root, "nowhere"));
    expect(await watcher.checkNow()).toBe("failed");
    expect(watcher.version()).toBe("v1");

    // A good bundle afterwards is picked up.
    await publish(await writeBundle("v3", "v3", "three"));
    expect(await watcher.checkNow()).toBe("swapped");
    text = await metrics();
    expect(metricValue(text, "recsys_reload_test_model_reload_failures_total")).toBe(2);
    expect(metricValue(text, "recsys_reload_test_model_reloads_total")).toBe(1);
    expect(metricValue(text, "recsys_reload_test_model_info", { model_version: "v3" })).toBe(1);
    expect(metricValue(text, "recsys_reload_test_model_info", { model_version: "v1" })).toBeUndefined();
  });

  it("polls on its own, retires the old model after the delay and everything on close", async () => {
    await publish(await writeBundle("v1", "v1", "one"));
    const { watcher } = await watch({ pollMs: 20 });
    const first = watcher.current();
    expect(await watcher.checkNow()).toBe("unchanged");
    await publish(await writeBundle("v2", "v2", "two"));
    const deadline = Date.now() + 5000;
    while (watcher.version() !== "v2" && Date.now() < deadline) await sleep(10);
    expect(watcher.version()).toBe("v2");
    expect(first.retired).toBe(false); // still within retireDelayMs: late calls may hold it
    await sleep(300);
    expect(first.retired).toBe(true);
    const second = watcher.current();
    await watcher.close();
    expect(second.retired).toBe(true);
    expect(await watcher.checkNow()).toBe("closed");
  });

  it("calls onSwap with (next, previous) right before the swap, and abandons the swap when it throws", async () => {
    await publish(await writeBundle("v1", "v1", "one"));
    const calls: string[] = [];
    let refuse = true;
    const { watcher } = await watch({
      onSwap: (next, previous) => {
        calls.push(`${previous.version}->${next.version}`);
        if (refuse) throw new Error("not today");
      },
    });
    await publish(await writeBundle("v2", "v2", "two"));
    expect(await watcher.checkNow()).toBe("failed");
    expect(watcher.version()).toBe("v1");
    refuse = false;
    await publish(await writeBundle("v3", "v3", "three"));
    expect(await watcher.checkNow()).toBe("swapped");
    expect(calls).toEqual(["v1->v2", "v1->v3"]);
  });

  it("serves metrics through the stage registry", async () => {
    await publish(await writeBundle("v1", "v1", "one"));
    const registry = new Registry();
    await watch({ registry });
    const service = await startService({ stage: "reload_test", config: testConfig(), services: [], registry });
    try {
      const text = await scrapeMetrics(service.metricsPort);
      expect(metricValue(text, "recsys_reload_test_model_info", { model_version: "v1" })).toBe(1);
      expect(metricValue(text, "recsys_reload_test_model_reload_failures_total")).toBe(0);
    } finally {
      await service.stop();
    }
  });
});

describe("readManifestVersion", () => {
  it("parses a settled manifest once, and again when the file changes", async () => {
    const dir = await writeBundle("b", "v1", null);
    const file = join(dir, "manifest.json");
    const past = new Date(Date.now() - 60_000);
    await utimes(file, past, past);
    expect(await readManifestVersion(dir)).toBe("v1");
    // Same inode, size and mtime (a rewrite with the time put back): the stat says "unchanged", so
    // the file is not read again. This is what makes a probe cheap.
    await writeFile(file, JSON.stringify({ modelVersion: "v2" }));
    await utimes(file, past, past);
    expect(await readManifestVersion(dir)).toBe("v1");
    // Any real change of the file (here its mtime) is seen.
    await utimes(file, new Date(Date.now() - 30_000), new Date(Date.now() - 30_000));
    expect(await readManifestVersion(dir)).toBe("v2");
    // Another file at the path (a deploy renames a new one in): read.
    const next = join(dir, "manifest.next");
    await writeFile(next, JSON.stringify({ modelVersion: "v3" }));
    await utimes(next, past, past);
    await rename(next, file);
    expect(await readManifestVersion(dir)).toBe("v3");
  });

  it("reads a recently modified manifest at every probe (file times can be coarser than the writes)", async () => {
    const dir = await writeBundle("c", "v1", null);
    expect(await readManifestVersion(dir)).toBe("v1");
    await writeFile(join(dir, "manifest.json"), JSON.stringify({ modelVersion: "v2" })); // same size, same moment
    expect(await readManifestVersion(dir)).toBe("v2");
  });
});
