import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { benchAnn } from "./bench.js";
import { tempDir } from "./test-helpers.js";

describe("benchAnn", () => {
  it("measures recall and throughput per ef, and reuses a saved index", async () => {
    const tmp = tempDir("bench");
    try {
      const options = { items: 3000, dim: 32, queries: 40, efs: [10, 200], k: 50, indexDir: tmp.dir };
      const first = await benchAnn(options);
      expect(first.data.kind).toBe("clustered");
      expect(first.buildSeconds).toBeGreaterThan(0);
      expect(first.loadSeconds).toBeGreaterThanOrEqual(0);
      expect(first.indexBytes).toBeGreaterThan(3000 * 33 * 4);
      expect(existsSync(join(tmp.dir, "index.json"))).toBe(true);
      expect(first.results.map((r) => r.ef)).toEqual([10, 200]);
      for (const r of first.results) {
        expect(r.recall).toBeGreaterThan(0);
        expect(r.recall).toBeLessThanOrEqual(1);
        expect(r.qps).toBeGreaterThan(0);
        expect(r.p99Ms).toBeGreaterThanOrEqual(r.p50Ms);
      }
      expect(first.results[1]!.recall).toBeGreaterThanOrEqual(0.95);
      expect(first.bruteForce.qps).toBeGreaterThan(0);

      const again = await benchAnn({ ...options, reuseIndex: true });
      expect(again.buildSeconds).toBeUndefined();
      expect(again.results.map((r) => r.recall)).toEqual(first.results.map((r) => r.recall));

      // Different data parameters: the saved index is for another "model version" and is rebuilt.
      const other = await benchAnn({ ...options, seed: 9, reuseIndex: true, efs: [200] });
      expect(other.buildSeconds).toBeGreaterThan(0);
    } finally {
      tmp.cleanup();
    }
  });
});
