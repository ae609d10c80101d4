import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BruteForceIndex } from "./brute-force-index.js";
import { IndexFormatError } from "./errors.js";
import { ExactHead } from "./exact-head.js";
import { mulberry32 } from "./synthetic.js";
import { tempDir } from "./test-helpers.js";

const DIM = 8;

/** Small-integer vectors: float32 and float64 dot products are exact, and ties are frequent. */
function intVector(rand: () => number): Float32Array {
  return Float32Array.from({ length: DIM }, () => Math.floor(rand() * 5) - 2);
}

function nativeQuery(q: Float32Array): number[] {
  const point = Array.from(q);
  point.push(0);
  return point;
}

describe("ExactHead (hnswlib BruteforceSearch)", () => {
  it("matches BruteForceIndex exactly (ids, scores, tie order) through random upserts, removals, exclusions and rebuilds", () => {
    const rand = mulberry32(11);
    const head = new ExactHead(DIM);
    const twin = new BruteForceIndex({ dim: DIM, modelVersion: "m" });
    let rebuilds = 0;
    let maxDead = 0;
    let lastCapacity = head.capacity();
    for (let step = 0; step < 4000; step++) {
      const id = `i${Math.floor(rand() * 700)}`;
      // Phases: grow, then mostly remove (dead rows, compaction), then churn.
      const removeP = step < 1500 ? 0.15 : step < 2500 ? 0.8 : 0.45;
      if (rand() < removeP) {
        expect(head.remove(id)).toBe(twin.remove(id));
      } else {
        const v = intVector(rand);
        head.upsert(id, v);
        twin.upsert(id, v);
      }
      expect(head.size()).toBe(twin.size());
      maxDead = Math.max(maxDead, head.rows() - head.size());
      if (head.rows() < head.size() || head.capacity() !== lastCapacity) rebuilds++;
      lastCapacity = head.capacity();
      if (step % 40 === 0) {
        const q = intVector(rand);
        const live = twin.ids();
        for (const k of [1, 7, 100, 1000]) {
          for (const excludeSize of [0, 5, 80, 400]) {
            const exclude = excludeSize === 0 ? undefined : new Set<string>();
            for (let i = 0; i < excludeSize && live.length > 0; i++) exclude!.add(live[Math.floor(rand() * live.length)]!);
            exclude?.add("not-in-head");
            expect(head.search(nativeQuery(q), k, exclude)).toEqual(twin.search(q, k, exclude));
          }
        }
      }
    }
    expect(rebuilds).toBeGreaterThan(2);
    // Dead rows were numerous enough to take the filtered path, and compaction bounded them.
    expect(maxDead).toBeGreaterThan(64);
    expect(maxDead).toBeLessThanOrEqual(Math.max(16, 700 / 4) + 1);
  });

  it("reuses dead rows for new ids and keeps removed ids out", () => {
    const head = new ExactHead(2);
    for (let i = 0; i < 10; i++) head.upsert(`a${i}`, Float32Array.from([i, 1]));
    expect(head.rows()).toBe(10);
    for (let i = 0; i < 5; i++) head.remove(`a${i + 5}`); // the five best for (1, 0)
    expect(head.rows()).toBe(10);
    expect(head.search([1, 0, 0], 3).map((h) => h.id)).toEqual(["a4", "a3", "a2"]);
    for (let i = 0; i < 5; i++) head.upsert(`b${i}`, Float32Array.from([-i, 1]));
    expect(head.rows()).toBe(10);
    expect(head.size()).toBe(10);
    expect(head.search([1, 0, 0], 20).map((h) => h.id)).toEqual(["a4", "a3", "a2", "a1", "a0", "b0", "b1", "b2", "b3", "b4"]);
    expect(head.search([1, 0, 0], 2, new Set(["a4", "a2"])).map((h) => h.id)).toEqual(["a3", "a1"]);
  });

  it("round-trips through writeRows / readRows (live rows only) and reports a damaged file", async () => {
    const tmp = tempDir("head");
    try {
      const rand = mulberry32(5);
      const head = new ExactHead(DIM);
      for (let i = 0; i < 300; i++) head.upsert(`x${i}`, intVector(rand));
      for (let i = 0; i < 300; i += 7) head.remove(`x${i}`);
      const path = join(tmp.dir, "head.bin");
      head.writeRows(path);
      const ids = head.ids();
      expect(ids).toHaveLength(head.size());
      const loaded = await ExactHead.readRows(path, ids, DIM);
      expect(loaded.rows()).toBe(head.size());
      for (let i = 0; i < 20; i++) {
        const q = nativeQuery(intVector(rand));
        expect(loaded.search(q, 50)).toEqual(head.search(q, 50));
      }
      await expect(ExactHead.readRows(path, ids.slice(1), DIM)).rejects.toBeInstanceOf(IndexFormatError);
      await expect(ExactHead.readRows(path, [ids[0]!, ...ids.slice(0, -1)], DIM)).rejects.toThrow(/appears twice/);
      await expect(ExactHead.readRows(path, ids.slice(1), DIM)).rejects.toThrow(/head\.bin has \d+ bytes, expected \d+×\d+ float32 values/);
      // A NaN in row 3 (little-endian float32 0x7fc00000).
      const bytes = readFileSync(path);
      bytes.writeFloatLE(Number.NaN, (3 * DIM + 1) * 4);
      writeFileSync(path, bytes);
      await expect(ExactHead.readRows(path, ids, DIM)).rejects.toThrow(/head\.bin: non-finite value at row 3/);
    } finally {
      tmp.cleanup();
    }
  });
});
