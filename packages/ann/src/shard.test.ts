import { describe, expect, it } from "vitest";
import { BruteForceIndex } from "./brute-force-index.js";
import { InvalidArgumentError } from "./errors.js";
import { HnswIndex } from "./hnsw-index.js";
import { buildShard, mergeShardHits, shardHash, shardItems, shardOf } from "./shard.js";
import { clusteredData } from "./synthetic.js";
import { row } from "./test-helpers.js";

describe("shardOf", () => {
  it("matches an independent implementation (FNV-1a over UTF-8 + fmix32; values from Python)", () => {
    expect(shardHash("1")).toBe(1428125071);
    expect(shardHash("42")).toBe(686566589);
    expect(shardHash("item-7")).toBe(3404525177);
    expect(shardHash("vidéo")).toBe(3769251357);
    expect(shardHash("🎬x")).toBe(3388627946);
    expect(shardOf("abc", 8)).toBe(482950588 % 8);
  });

  it("is deterministic and in range", () => {
    for (let i = 0; i < 1000; i++) {
      const s = shardOf(String(i), 7);
      expect(s).toBe(shardOf(String(i), 7));
      expect(s).toBeGreaterThanOrEqual(0);
      expect(s).toBeLessThan(7);
    }
    expect(shardOf("anything", 1)).toBe(0);
  });

  it.each([2, 3, 4, 7, 16])("balances 100k sequential ids over %i shards within 3 percent", (numShards) => {
    const counts = new Array<number>(numShards).fill(0);
    for (let i = 0; i < 100_000; i++) counts[shardOf(String(i), numShards)]!++;
    const mean = 100_000 / numShards;
    for (const c of counts) expect(Math.abs(c - mean) / mean).toBeLessThan(0.03);
  });

  it("rejects bad shard counts and ids", () => {
    expect(() => shardOf("a", 0)).toThrow(InvalidArgumentError);
    expect(() => shardOf("a", 1.5)).toThrow(InvalidArgumentError);
    expect(() => shardOf("", 2)).toThrow(InvalidArgumentError);
  });
});

describe("buildShard and mergeShardHits", () => {
  const dim = 16;
  const n = 3000;
  const data = clusteredData({ items: n, queries: 10, dim, seed: 2 });
  const items = { ids: Array.from({ length: n }, (_, i) => `v${i}`), vectors: data.items, dim };

  it("partitions the items: shards are disjoint, cover everything and keep the vectors", () => {
    const seen = new Set<string>();
    for (let s = 0; s < 3; s++) {
      const part = shardItems(items, s, 3);
      for (let j = 0; j < part.ids.length; j++) {
        const id = part.ids[j]!;
        expect(shardOf(id, 3)).toBe(s);
        expect(seen.has(id)).toBe(false);
        seen.add(id);
        const i = Number(id.slice(1));
        expect(Array.from(row(part.vectors, dim, j))).toEqual(Array.from(row(data.items, dim, i)));
      }
    }
    expect(seen.size).toBe(n);
    expect(() => shardItems(items, 3, 3)).toThrow(/shard must be an integer in 0\.\.2/);
  });

  it("merging exact per-shard results equals searching everything", () => {
    const full = BruteForceIndex.build(items, { modelVersion: "m" });
    const shards = [0, 1, 2, 3].map((s) => buildShard(items, s, 4, (part) => BruteForceIndex.build(part, { modelVersion: "m" })));
    expect(shards.reduce((sum, s) => sum + s.size(), 0)).toBe(n);
    for (let i = 0; i < 10; i++) {
      const q = row(data.queries, dim, i);
      expect(
        mergeShardHits(
          shards.map((s) => s.search(q, 50)),
          50,
        ),
      ).toEqual(full.search(q, 50));
    }
  });

  it("builds HNSW shards", () => {
    const shard = buildShard(items, 1, 2, (part) => HnswIndex.build(part, { modelVersion: "m" }));
    expect(shard.size()).toBe(shardItems(items, 1, 2).ids.length);
    for (const hit of shard.search(row(data.queries, dim, 0), 20)) expect(shardOf(hit.id, 2)).toBe(1);
  });

  it("keeps the best score of an id seen in several shards", () => {
    const merged = mergeShardHits(
      [
        [
          { id: "a", score: 1 },
          { id: "b", score: 0.5 },
        ],
        [
          { id: "a", score: 2 },
          { id: "c", score: 0.5 },
        ],
      ],
      3,
    );
    expect(merged).toEqual([
      { id: "a", score: 2 },
      { id: "b", score: 0.5 },
      { id: "c", score: 0.5 },
    ]);
  });
});
