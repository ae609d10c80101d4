import { describe, expect, it } from "vitest";
import { onsets, type LevelResult } from "./serve-burst.js";

const level = (concurrency: number, degraded: number, shed: number, errors = 0): LevelResult => ({
  concurrency,
  calls: 100,
  whole: 100 - degraded - shed - errors,
  degraded,
  shed,
  errors,
  answeredP50Ms: 1,
  answeredP99Ms: 2,
  shedP99Ms: 0,
});

describe("onsets", () => {
  it("names the first concurrency at which more than 5 % of the calls behave so", () => {
    const levels = [level(1, 0, 0), level(8, 5, 0), level(16, 6, 0), level(48, 30, 2), level(100, 20, 60, 1), level(200, 10, 80, 6)];
    expect(onsets(levels)).toEqual({ degraded: 16, shed: 100, errors: 200 });
    expect(onsets([level(1, 0, 0)])).toEqual({ degraded: null, shed: null, errors: null });
  });
});
