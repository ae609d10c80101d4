import { describe, expect, it } from "vitest";
import { IntIntMap } from "./int-map.js";
import { rng } from "./test-helpers.js";

describe("IntIntMap", () => {
  it("behaves like a Map through growth", () => {
    const r = rng(1);
    const m = new IntIntMap(2);
    const ref = new Map<number, number>();
    for (let k = 0; k < 5000; k++) {
      const key = Math.floor(r() * 3000);
      const value = Math.floor(r() * 1e6);
      m.set(key, value);
      ref.set(key, value);
    }
    expect(m.size).toBe(ref.size);
    for (let key = 0; key < 3100; key++) expect(m.get(key)).toBe(ref.get(key) ?? -1);
    expect(() => m.set(-1, 0)).toThrow(/non-negative/);
  });
});
