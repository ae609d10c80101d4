import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeJsonFileError, indexInSlices, JsonFileError, readJsonFile } from "./json-file.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "json-file-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, value: unknown): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, typeof value === "string" ? value : JSON.stringify(value));
  return file;
}

/** How many event-loop turns (setImmediate) pass while `work` runs after it is started. */
async function turnsDuring<T>(work: () => Promise<T>): Promise<{ result: T; turns: number }> {
  let turns = 0;
  let running = true;
  const spin = (): void => {
    if (!running) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  const started = turns;
  const result = await work();
  running = false;
  return { result, turns: turns - started };
}

describe("readJsonFile", () => {
  it("returns the parsed value with string arrays rebuilt, nulls kept, other keys dropped on request", async () => {
    const ids = Array.from({ length: 120_001 }, (_, i) => `item-${i}`);
    const value = {
      modelVersion: "v1",
      dim: 8,
      itemIds: ids,
      nested: { labels: ["a", null, "", "é 🎬", null] },
      odd: ["ok", "has\u0000separator"],
      mixed: ["a", 1],
      big: { unused: true },
    };
    const file = await write("manifest.json", value);
    expect(await readJsonFile(file)).toEqual(value);
    const read = (await readJsonFile(file, { strings: ["itemIds", "nested.labels", "odd", "mixed", "missing.path"] })) as typeof value;
    expect(read).toEqual(value);
    expect(read.itemIds).toHaveLength(120_001);
    expect(await readJsonFile(file, { keep: ["modelVersion", "dim", "nope"] })).toEqual({ modelVersion: "v1", dim: 8 });
  });

  it("turns number arrays into typed arrays when asked and when they fit", async () => {
    const file = await write("columns.json", { f: [1.5, null, -2], i: [1, -2, 3], big: [1, 2 ** 40], text: ["x"] });
    const read = (await readJsonFile(file, { numbers: { f: "float64", i: "int32", big: "int32", text: "int32" } })) as Record<
      string,
      unknown
    >;
    expect(read.f).toBeInstanceOf(Float64Array);
    expect(Array.from(read.f as Float64Array)).toEqual([1.5, NaN, -2]);
    expect(read.i).toEqual(Int32Array.from([1, -2, 3]));
    expect(read.big).toEqual([1, 2 ** 40]); // does not fit int32: left as it was
    expect(read.text).toEqual(["x"]);
  });

  it("rejects with the step that failed", async () => {
    const missing = await readJsonFile(join(dir, "absent.json")).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(JsonFileError);
    expect((missing as JsonFileError).step).toBe("read");
    expect((missing as JsonFileError).message).toMatch(/ENOENT/);
    const brokenFile = await write("broken.json", '{"a": [1, 2');
    const broken = await readJsonFile(brokenFile).catch((e: unknown) => e);
    expect((broken as JsonFileError).step).toBe("parse");
    expect(describeJsonFileError(brokenFile, broken)).toMatch(/broken\.json is not valid JSON: /);
    expect(describeJsonFileError("absent.json", missing)).toMatch(/^cannot read absent\.json: .*ENOENT/);
  });
});

describe("indexInSlices", () => {
  it("maps each id to its first position, yielding to the event loop between slices", async () => {
    const ids = Array.from({ length: 120_000 }, (_, i) => `id${i % 100_000}`);
    const { result, turns } = await turnsDuring(() => indexInSlices(ids));
    expect(result.size).toBe(100_000);
    expect(result.get("id0")).toBe(0);
    expect(result.get("id99999")).toBe(99_999);
    // 120k ids are three slices: the loop turned in between (a plain loop would give 0 turns).
    expect(turns).toBeGreaterThanOrEqual(2);
  });

  it("starts at `base` and throws what `duplicate` makes of a repeated id", async () => {
    const index = await indexInSlices(["a", "b"], { base: 1 });
    expect([...index]).toEqual([
      ["a", 1],
      ["b", 2],
    ]);
    await expect(indexInSlices(["a", "b", "a"], { duplicate: (id) => new Error(`twice: ${id}`) })).rejects.toThrow("twice: a");
  });
});
