import { describe, expect, it } from "vitest";
import { cpuPerRequest, processCpuMs, referenceLoopMs } from "./serve-load.js";

describe("processCpuMs", () => {
  it.runIf(process.platform === "linux")("reads this process's CPU time, which grows with work", async () => {
    const start = await processCpuMs(process.pid);
    expect(start).toBeGreaterThan(0);
    const until = performance.now() + 150;
    let x = 0;
    while (performance.now() < until) x += Math.sqrt(x + 1);
    expect(x).toBeGreaterThan(0);
    const end = await processCpuMs(process.pid);
    expect(end!).toBeGreaterThan(start!);
  });

  it("is undefined for a process that does not exist", async () => {
    expect(await processCpuMs(2 ** 22 + 12345)).toBeUndefined();
  });
});

describe("cpuPerRequest", () => {
  it("divides each process's CPU time by the requests and skips unreadable ones", () => {
    const before = new Map<string, number | undefined>([["a", 100], ["b", undefined], ["c", 50]]);
    const after = new Map<string, number | undefined>([["a", 400], ["b", 90], ["c", undefined]]);
    expect(cpuPerRequest(before, after, 100)).toEqual({ a: 3 });
    expect(cpuPerRequest(before, after, 0)).toEqual({});
  });
});

describe("referenceLoopMs", () => {
  it("is a positive time that grows with the loop", () => {
    const short = referenceLoopMs(100_000, 1);
    const long = referenceLoopMs(20_000_000, 1);
    expect(short).toBeGreaterThan(0);
    expect(Number.isFinite(long)).toBe(true);
    expect(long).toBeGreaterThan(short);
  });
});
