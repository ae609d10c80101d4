/**
 * Embedded backend: durability across kill -9, torn-tail recovery, compaction and the lock.
 */
import { spawn } from "node:child_process";
import { appendFile, readdir, readFile, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { EmbeddedUserStore } from "./embedded.js";
import { UserStoreError, UserStoreUnavailableError } from "./errors.js";
import { quietLogger, tempDir } from "./test-helpers.js";
import type { UserEvent, UserStoreLimits } from "./types.js";

const FIXTURE = fileURLToPath(new URL("../fixtures/crash-writer.mjs", import.meta.url));
const UNBOUNDED: Partial<UserStoreLimits> = { maxWatches: 1_000_000, maxSearches: 1_000_000, maxImpressions: 1_000_000 };
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function dir(label: string): Promise<string> {
  const d = await tempDir(label);
  cleanups.push(d.remove);
  return d.path;
}

async function open(path: string, extra: { compactBytes?: number; limits?: Partial<UserStoreLimits> } = {}) {
  const logger = quietLogger();
  const store = await EmbeddedUserStore.open({ backend: "embedded", path, logger, ...extra });
  cleanups.push(() => store.close());
  return { store, logger };
}

const watch = (userId: string, itemId: string, timestamp: number): UserEvent => ({ kind: "watch", userId, itemId, timestamp });

async function walFiles(path: string): Promise<string[]> {
  return (await readdir(path)).filter((n) => n.startsWith("wal-")).sort();
}

/** Run the crash-writer fixture until it has printed `killAfterAcks` acks, then SIGKILL it. */
async function runAndKill(path: string, firstSeq: number, killAfterAcks: number, compactBytes: number): Promise<Set<number>> {
  const child = spawn(process.execPath, [FIXTURE, path, String(firstSeq), "8", String(compactBytes)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const acked = new Set<number>();
  let stderr = "";
  let buffered = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  child.stdout.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith("ack ")) continue;
      for (const seq of line.slice(4).split(",")) acked.add(Number(seq));
      if (acked.size >= killAfterAcks && child.exitCode === null && !child.killed) child.kill("SIGKILL");
    }
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const { code, signal } = await exited;
  clearTimeout(timer);
  expect(signal, `crash-writer should have been killed (exit code ${code}); stderr: ${stderr}`).toBe("SIGKILL");
  expect(acked.size, `crash-writer acknowledged too little before the kill; stderr: ${stderr}`).toBeGreaterThanOrEqual(killAfterAcks);
  return acked;
}

describe("embedded user store durability", () => {
  it("keeps every acknowledged event across kill -9, with compaction running", async () => {
    const path = await dir("crash");
    const compactBytes = 16 * 1024;
    const acked = new Set<number>();
    let nextSeq = 0;
    let sawSnapshot = false;
    // Several crashes on the same directory, each at a different moment, recovering in between.
    for (const killAfter of [300, 1500, 40, 900]) {
      for (const seq of await runAndKill(path, nextSeq, killAfter, compactBytes)) acked.add(seq);
      sawSnapshot ||= (await readdir(path)).some((n) => n.endsWith(".snap"));
      const { store } = await open(path, { limits: UNBOUNDED, compactBytes });
      const present: number[] = [];
      for (let u = 0; u < 17; u++) {
        for (const w of (await store.get(`u${u}`))?.watches ?? []) present.push(Number(w.itemId.slice(1)));
      }
      present.sort((a, b) => a - b);
      // Appends are logged in the order they were issued: what survives is a prefix 0..M-1 of
      // the issued sequence, holding every acknowledged event, each once.
      expect(present.length).toBe(new Set(present).size);
      expect(present.every((seq, i) => seq === i)).toBe(true);
      const missing = [...acked].filter((seq) => seq >= present.length);
      expect(missing, "acknowledged events lost").toEqual([]);
      nextSeq = present.length;
      await store.close();
    }
    expect(sawSnapshot, "compaction should have written a snapshot during the runs").toBe(true);
    expect(acked.size).toBeGreaterThanOrEqual(2740);
  });

  it("truncates a torn tail (garbage, cut record, zeros) and keeps earlier records", async () => {
    const path = await dir("torn");
    let { store } = await open(path);
    await store.append([watch("u", "a", 1)]);
    await store.append([watch("u", "b", 2), watch("v", "x", 2)]);
    await store.append([watch("u", "c", 3)]);
    await store.close();
    const [wal] = await walFiles(path);
    const file = join(path, wal!);
    const goodSize = (await stat(file)).size;

    // 1. Garbage after the last record (a half-written next record).
    await appendFile(file, Buffer.from([0x39, 0x00, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x7b, 0x22]));
    let logger;
    ({ store, logger } = await open(path));
    expect((await store.get("u"))!.watches.map((w) => w.itemId)).toEqual(["a", "b", "c"]);
    expect(logger.lines.some((l) => l.level === "warn" && /torn log tail/.test(l.message))).toBe(true);
    expect((await stat(file)).size).toBe(goodSize);
    await store.close();

    // 2. The last record cut short in both logs (a crash during the commit's writes): it is
    // dropped, the earlier ones stay, appends go on. (Cut in the user log only, the events log
    // would restore it: see events-log.test.ts.)
    await truncate(file, goodSize - 3);
    const eventsFile = join(path, "events.log");
    await truncate(eventsFile, (await stat(eventsFile)).size - 3);
    ({ store, logger } = await open(path));
    expect((await store.get("u"))!.watches.map((w) => w.itemId)).toEqual(["a", "b"]);
    expect((await store.get("v"))!.watches.map((w) => w.itemId)).toEqual(["x"]);
    expect(logger.lines.find((l) => /torn log tail/.test(l.message))!.fields).toMatchObject({
      droppedBytes: goodSize - 3 - (await stat(file)).size,
    });
    await store.append([watch("u", "d", 4)]);
    await store.close();

    // 3. A zero-filled tail (the file grew but the data never reached the disk).
    await appendFile(file, Buffer.alloc(4096));
    ({ store } = await open(path));
    expect((await store.get("u"))!.watches.map((w) => w.itemId)).toEqual(["a", "b", "d"]);
    await store.close();

    // 4. A flipped byte inside the last record's payload fails its CRC.
    const bytes = await readFile(file);
    bytes[bytes.length - 5] ^= 0xff;
    await writeFile(file, bytes);
    ({ store, logger } = await open(path));
    // The record is dropped from the user log, and restored from the events log, which holds it.
    expect((await store.get("u"))!.watches.map((w) => w.itemId)).toEqual(["a", "b", "d"]);
    expect(logger.lines.some((l) => /CRC mismatch/.test(l.message))).toBe(true);
    expect(logger.lines.some((l) => /applying its tail/.test(l.message))).toBe(true);
  });

  it("recovers a log whose creation was interrupted and refuses a corrupt snapshot", async () => {
    const path = await dir("partial");
    let { store } = await open(path);
    await store.append([watch("u", "a", 1)]);
    await store.compact();
    await store.close();
    // A new log generation whose header was only partly written.
    const wals = await walFiles(path);
    const next = Number(/wal-(\d+)\.log/.exec(wals.at(-1)!)![1]) + 1;
    await writeFile(join(path, `wal-${String(next).padStart(12, "0")}.log`), "RSU");
    ({ store } = await open(path));
    expect((await store.get("u"))!.watches.map((w) => w.itemId)).toEqual(["a"]);
    await store.append([watch("u", "b", 2)]);
    await store.close();
    ({ store } = await open(path));
    expect((await store.get("u"))!.watches.map((w) => w.itemId)).toEqual(["a", "b"]);
    await store.close();

    const snap = (await readdir(path)).find((n) => n.endsWith(".snap"))!;
    const bytes = await readFile(join(path, snap));
    bytes[bytes.length - 2] ^= 0xff;
    await writeFile(join(path, snap), bytes);
    const error = await EmbeddedUserStore.open({ backend: "embedded", path, logger: quietLogger() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserStoreError);
    expect((error as UserStoreError).code).toBe("INTERNAL");
    expect((error as Error).message).toMatch(/snapshot .* is corrupt/);
  });

  it("compacts: old logs removed, disk bounded, state unchanged across reopen", async () => {
    const path = await dir("compact");
    const limits = { maxWatches: 10, maxSearches: 5, maxImpressions: 10 };
    let { store } = await open(path, { compactBytes: 8 * 1024, limits });
    for (let round = 0; round < 60; round++) {
      // Ten appends at a time: they share commits, and the log rotates between commits.
      await Promise.all(
        Array.from({ length: 10 }, (_, j) => {
          const k = round * 10 + j;
          return store.append([
            watch(`u${k % 6}`, `i${k}`, k),
            { kind: "search", userId: `u${k % 6}`, query: `query ${k}`, timestamp: k },
            { kind: "impression", userId: `u${(k + 1) % 6}`, itemId: `i${k % 13}`, timestamp: k, position: 1 + (k % 10) },
          ]);
        }),
      );
    }
    await store.setProfile("u1", { age: 40 });
    await store.setMeta("seeded", "x");
    const before = await store.getMany(["u0", "u1", "u2", "u3", "u4", "u5"]);
    const sizes = await store.fileSizes();
    expect(sizes.logGeneration).toBeGreaterThan(3);
    await store.compact();
    await store.close();
    const files = await readdir(path);
    expect(files.filter((n) => n.endsWith(".snap"))).toHaveLength(1);
    expect(files.filter((n) => n.startsWith("wal-"))).toHaveLength(1);
    // The events log (every event ever appended) is never compacted: not counted here.
    const total = (await Promise.all(files.filter((n) => n !== "events.log").map((n) => stat(join(path, n))))).reduce(
      (s, f) => s + f.size,
      0,
    );
    expect(total).toBeLessThan(32 * 1024);
    ({ store } = await open(path, { limits }));
    expect(await store.getMany(["u0", "u1", "u2", "u3", "u4", "u5"])).toEqual(before);
    expect(await store.getMeta("seeded")).toBe("x");
    expect(before[1]!.profile).toEqual({ age: 40 });
    expect(before[0]!.watches.map((w) => w.itemId)).toEqual([
      "i540",
      "i546",
      "i552",
      "i558",
      "i564",
      "i570",
      "i576",
      "i582",
      "i588",
      "i594",
    ]);
    // The 90 watches that left u0's list are remembered through the snapshots and the reopen.
    expect(before[0]!.hasEarlierWatches).toBe(true);
    expect(await store.watchedAmong("u0", ["i0", "i6", "i534", "i594", "i1", "i595"])).toEqual(new Set(["i0", "i6", "i534", "i594"]));
  });

  it("batches concurrent appends into shared commits, each resolved only when durable", async () => {
    const path = await dir("group");
    const { store } = await open(path, { limits: UNBOUNDED });
    const seen: number[] = [];
    store.subscribe((events) => seen.push(events.length));
    await Promise.all(Array.from({ length: 200 }, (_, k) => store.append([watch("u", `i${k}`, k)])));
    // 200 appends issued together share a few write + fdatasync rounds; every one landed.
    expect(store.stats.records).toBe(200);
    expect(store.stats.commits).toBeLessThan(20);
    expect((await store.get("u"))!.watches).toHaveLength(200);
    expect(seen).toHaveLength(200);
    await store.close();
    const reopened = await open(path, { limits: UNBOUNDED });
    expect((await reopened.store.get("u"))!.watches.map((w) => w.itemId)).toEqual(Array.from({ length: 200 }, (_, k) => `i${k}`));
  });

  it("refuses a second open of a live store and takes over a dead process's lock", async () => {
    const path = await dir("lock");
    const { store } = await open(path);
    const error = await EmbeddedUserStore.open({ backend: "embedded", path }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserStoreUnavailableError);
    expect((error as Error).message).toMatch(/already open in process \d+ \(this process\)/);
    await store.append([watch("u", "a", 1)]);
    await store.close();
    // A lock left by a process that is gone.
    const dead = spawn(process.execPath, ["-e", ""]);
    const deadPid = dead.pid!;
    await new Promise((resolve) => dead.on("exit", resolve));
    await writeFile(join(path, "LOCK"), `${deadPid}\n`);
    const again = await open(path);
    expect((await again.store.get("u"))!.watches).toHaveLength(1);
  });
});
