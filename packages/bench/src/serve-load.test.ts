import { describe, expect, it } from "vitest";
import { cpuPerRequest, meanMsBetween, parseHistogramSums, processCpuMs, referenceLoopMs } from "./serve-load.js";

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
    const before = new Map<string, number | undefined>([
      ["a", 100],
      ["b", undefined],
      ["c", 50],
    ]);
    const after = new Map<string, number | undefined>([
      ["a", 400],
      ["b", 90],
      ["c", undefined],
    ]);
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

describe("parseHistogramSums", () => {
  it("adds up _sum and _count over the other labels, keyed by one label; meanMsBetween takes the difference", () => {
    const text = (sum: number, count: number) =>
      [
        "# TYPE recsys_x_grpc_request_duration_seconds histogram",
        `recsys_x_grpc_request_duration_seconds_bucket{le="0.001",method="a/B",code="OK"} 1`,
        `recsys_x_grpc_request_duration_seconds_sum{method="a/B",code="OK"} ${sum}`,
        `recsys_x_grpc_request_duration_seconds_count{method="a/B",code="OK"} ${count}`,
        `recsys_x_grpc_request_duration_seconds_sum{method="a/B",code="INTERNAL"} 0.5`,
        `recsys_x_grpc_request_duration_seconds_count{method="a/B",code="INTERNAL"} 1`,
        `recsys_x_grpc_request_duration_seconds_sum{method="c/D",code="OK"} 9`,
        `recsys_x_grpc_request_duration_seconds_count{method="c/D",code="OK"} 3`,
        `recsys_y_seconds_sum{method="a/B"} 100`,
      ].join("\n");
    const before = parseHistogramSums(text(1.5, 9), "recsys_x_grpc_request_duration_seconds", "method");
    expect(before.get("a/B")).toEqual({ sum: 2, count: 10 });
    expect(before.get("c/D")).toEqual({ sum: 9, count: 3 });
    const after = parseHistogramSums(text(3.5, 19), "recsys_x_grpc_request_duration_seconds", "method");
    expect(meanMsBetween(before.get("a/B"), after.get("a/B"))).toBeCloseTo(200); // 2 s over 10 calls
    expect(meanMsBetween(before.get("c/D"), after.get("c/D"))).toBeNaN(); // no calls in between
    expect(meanMsBetween(undefined, after.get("a/B"))).toBeCloseTo((4 / 20) * 1000);
  });
});
