import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { getHeapStatistics } from "node:v8";
import { RUNTIME_V8_FLAGS, SERVING_NODE_FLAGS, applyServingV8Flags, collectStartupGarbage, runtimeFlagsToApply } from "./v8-flags.js";

describe("SERVING_NODE_FLAGS", () => {
  it("are flags this node accepts on its command line (a misspelt one makes node exit with 'bad option')", () => {
    const out = execFileSync(process.execPath, [...SERVING_NODE_FLAGS, "-e", "process.stdout.write('started')"], { encoding: "utf8" });
    expect(out).toBe("started");
  });

  it("start with the ones applyServingV8Flags sets at run time", () => {
    expect(SERVING_NODE_FLAGS.slice(0, RUNTIME_V8_FLAGS.length)).toEqual([...RUNTIME_V8_FLAGS]);
    expect(() => applyServingV8Flags()).not.toThrow();
  });
});

describe("runtimeFlagsToApply", () => {
  it("leaves out the flags the command line sets, in either sense and spelling", () => {
    expect(runtimeFlagsToApply([])).toEqual([...RUNTIME_V8_FLAGS]);
    expect(runtimeFlagsToApply(["--heap-growing-percent=300", "--inspect"])).toEqual([
      "--no-allocation-site-pretenuring",
      "--no-memory-reducer",
    ]);
    expect(runtimeFlagsToApply(["--allocation_site_pretenuring", "--memory-reducer"])).toEqual(["--heap-growing-percent=100"]);
    expect(runtimeFlagsToApply([...SERVING_NODE_FLAGS])).toEqual([]);
  });
});

describe("collectStartupGarbage", () => {
  it("frees unreachable objects at once and leaves no gc global behind", () => {
    let garbage: { i: number }[] | undefined = Array.from({ length: 1_000_000 }, (_, i) => ({ i }));
    const withGarbage = getHeapStatistics().used_heap_size;
    expect(garbage.length).toBe(1_000_000);
    garbage = undefined;
    const { heapUsedBytes } = collectStartupGarbage();
    // A million small objects and their array: well over 20 MB.
    expect(withGarbage - heapUsedBytes).toBeGreaterThan(20_000_000);
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });
});
