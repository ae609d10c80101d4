import { describe, expect, it } from "vitest";
import { DEFAULT_RETRY_POLICY, backoffMs } from "./retry.js";

describe("backoffMs", () => {
  const policy = { ...DEFAULT_RETRY_POLICY, initialBackoffMs: 50, multiplier: 2, maxBackoffMs: 300 };

  it("draws uniformly below a bound that grows by the multiplier up to the cap", () => {
    expect([1, 2, 3, 4, 5].map((retry) => backoffMs(policy, retry, () => 1))).toEqual([50, 100, 200, 300, 300]);
    expect(backoffMs(policy, 3, () => 0)).toBe(0);
    expect(backoffMs(policy, 3, () => 0.25)).toBe(50);
  });

  it("spreads the retries of callers that failed together (full jitter)", () => {
    const draws = Array.from({ length: 2000 }, () => backoffMs(policy, 2));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThanOrEqual(100);
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    expect(mean).toBeGreaterThan(40);
    expect(mean).toBeLessThan(60);
  });
});
