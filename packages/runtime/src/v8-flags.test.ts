import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { RUNTIME_V8_FLAGS, SERVING_NODE_FLAGS, applyServingV8Flags } from "./v8-flags.js";

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
