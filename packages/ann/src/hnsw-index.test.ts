import { readFileSync, readdirSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BruteForceIndex } from "./brute-force-index.js";
import { IndexFormatError, InvalidArgumentError, ModelVersionMismatchError } from "./errors.js";
import { HnswIndex, loadHnswIndex, normQuantile } from "./hnsw-index.js";
import { loadIndex } from "./load-index.js";
import type { ItemVectors } from "./shard.js";
import { clusteredData, gaussian, mulberry32 } from "./synthetic.js";
import { overlap, row, tempDir } from "./test-helpers.js";

const DIM = 64;
const N = 10_000;
const QUERIES = 200;

/** Mean recall@k of `index` against exact search over the same items. */
function recallAt(index: HnswIndex, exact: BruteForceIndex, queries: Float32Array, k: number): number {
  let sum = 0;
  const n = queries.length / DIM;
  for (let i = 0; i < n; i++) {
    const q = row(queries, DIM, i);
    sum += overlap(index.search(q, k), exact.search(q, k));
  }
  return sum / n;
}

describe("HnswIndex on 10k clustered 64-d vectors", () => {
  const data = clusteredData({ items: N, queries: QUERIES, dim: DIM, seed: 7 });
  const items: ItemVectors = { ids: Array.from({ length: N }, (_, i) => `item-${i}`), vectors: data.items, dim: DIM };
  let hnsw: HnswIndex;
  let exact: BruteForceIndex;
  const tmp = tempDir("hnsw");

  beforeAll(() => {
    hnsw = HnswIndex.build(items, { modelVersion: "m1" });
    exact = BruteForceIndex.build(items, { modelVersion: "m1" });
  });
  afterAll(() => tmp.cleanup());

  it("uses the 99th-percentile norm as Φ", () => {
    expect(hnsw.normBound).toBeCloseTo(normQuantile(data.items, DIM, 0.99), 6);
    expect(hnsw.size()).toBe(N);
  });

  it("reaches recall@100 ≥ 0.95 and recall@10 ≥ 0.98 at the default ef", () => {
    expect(hnsw.ef).toBe(100);
    expect(recallAt(hnsw, exact, data.queries, 100)).toBeGreaterThanOrEqual(0.95);
    expect(recallAt(hnsw, exact, data.queries, 10)).toBeGreaterThanOrEqual(0.98);
  });

  it("returns dot products sorted by score, matching exact scores to float32 precision", () => {
    const q = row(data.queries, DIM, 3);
    const hits = hnsw.search(q, 50);
    expect(hits).toHaveLength(50);
    for (let i = 1; i < hits.length; i++) expect(hits[i - 1]!.score).toBeGreaterThanOrEqual(hits[i]!.score);
    for (const hit of hits.slice(0, 5)) {
      const v = exact.vectorOf(hit.id)!;
      let dot = 0;
      for (let j = 0; j < DIM; j++) dot += v[j]! * q[j]!;
      expect(Math.abs(hit.score - dot)).toBeLessThan(1e-5 * Math.max(1, Math.abs(dot)));
    }
  });

  it("gives the same results after save and load, with ef restored", async () => {
    hnsw.ef = 150;
    await hnsw.save(tmp.dir);
    const loaded = await loadHnswIndex(tmp.dir, { expectedModelVersion: "m1", expectedDim: DIM });
    expect(loaded.ef).toBe(150);
    expect(loaded.size()).toBe(N);
    expect(loaded.normBound).toBe(hnsw.normBound);
    for (let i = 0; i < 20; i++) {
      const q = row(data.queries, DIM, i);
      expect(loaded.search(q, 100)).toEqual(hnsw.search(q, 100));
    }
    expect(recallAt(loaded, exact, data.queries, 100)).toBeGreaterThanOrEqual(0.95);
    const generic = await loadIndex(tmp.dir);
    expect(generic.kind).toBe("hnsw");
    hnsw.ef = 100;
  });

  it("fills k when many of the best matches are excluded", () => {
    const q = row(data.queries, DIM, 11);
    const top = exact.search(q, 30);
    const exclude = new Set(top.slice(0, 20).map((h) => h.id));
    const hits = hnsw.search(q, 100, exclude);
    expect(hits).toHaveLength(100);
    for (const h of hits) expect(exclude.has(h.id)).toBe(false);
    expect(overlap(hits, exact.search(q, 100, exclude))).toBeGreaterThanOrEqual(0.9);
  });

  it("honours an exclude set larger than k (filter path)", () => {
    const q = row(data.queries, DIM, 12);
    const exclude = new Set(exact.search(q, 500).map((h) => h.id));
    const hits = hnsw.search(q, 10, exclude);
    expect(hits).toHaveLength(10);
    for (const h of hits) expect(exclude.has(h.id)).toBe(false);
    expect(overlap(hits, exact.search(q, 10, exclude))).toBeGreaterThanOrEqual(0.8);
  });

  it("refuses a model-version or dimension mismatch at load", async () => {
    await expect(loadHnswIndex(tmp.dir, { expectedModelVersion: "m2" })).rejects.toBeInstanceOf(ModelVersionMismatchError);
    await expect(loadHnswIndex(tmp.dir, { expectedDim: 32 })).rejects.toBeInstanceOf(IndexFormatError);
    await expect(BruteForceIndex.load(tmp.dir)).rejects.toThrow(/not brute-force/);
  });
});

/** A small index (fast to rebuild per test) and its exact twin. */
function small(n = 2000, seed = 3): { hnsw: HnswIndex; exact: BruteForceIndex; queries: Float32Array; items: ItemVectors } {
  const data = clusteredData({ items: n, queries: 50, dim: DIM, seed, clusters: 8 });
  const items: ItemVectors = { ids: Array.from({ length: n }, (_, i) => String(i)), vectors: data.items, dim: DIM };
  return {
    hnsw: HnswIndex.build(items, { modelVersion: "m1" }),
    exact: BruteForceIndex.build(items, { modelVersion: "m1" }),
    queries: data.queries,
    items,
  };
}

describe("HnswIndex mutations", () => {
  it("removes immediately: a removed best match is never returned and k is still filled", () => {
    const { hnsw, exact, queries } = small();
    for (let i = 0; i < 10; i++) {
      const q = row(queries, DIM, i);
      const best = hnsw.search(q, 1)[0]!;
      expect(hnsw.remove(best.id)).toBe(true);
      expect(exact.remove(best.id)).toBe(true);
      expect(hnsw.has(best.id)).toBe(false);
      const hits = hnsw.search(q, 100);
      expect(hits).toHaveLength(100);
      expect(hits.some((h) => h.id === best.id)).toBe(false);
    }
    expect(hnsw.size()).toBe(1990);
    expect(hnsw.remove("no-such-id")).toBe(false);
  });

  it("keeps k filled and deleted ids out when the whole neighbourhood of a query is removed", () => {
    const { hnsw, exact, queries } = small();
    const q = row(queries, DIM, 0);
    const removed = new Set(exact.search(q, 300).map((h) => h.id));
    for (const id of removed) {
      hnsw.remove(id);
      exact.remove(id);
    }
    for (let i = 0; i < 20; i++) {
      const hits = hnsw.search(row(queries, DIM, i), 100);
      expect(hits).toHaveLength(100);
      for (const h of hits) expect(removed.has(h.id)).toBe(false);
    }
    expect(overlap(hnsw.search(q, 100), exact.search(q, 100))).toBeGreaterThanOrEqual(0.8);
  });

  it("returns every live item when k exceeds the live count after heavy deletion", () => {
    const { hnsw } = small(300);
    for (let i = 0; i < 250; i++) hnsw.remove(String(i));
    const hits = hnsw.search(new Float32Array(DIM).fill(0.1), 1000);
    expect(hits.map((h) => h.id).sort()).toEqual(Array.from({ length: 50 }, (_, i) => String(250 + i)).sort());
  });

  it("makes an upserted new item findable, and an upsert of an existing id replaces its vector", () => {
    const { hnsw, queries } = small();
    const q = row(queries, DIM, 5);
    const boosted = Float32Array.from(q, (x) => x * 10);
    hnsw.upsert("fresh", boosted);
    const top = hnsw.search(q, 10)[0]!;
    expect(top.id).toBe("fresh");
    let dot = 0;
    for (let j = 0; j < DIM; j++) dot += boosted[j]! * q[j]!;
    expect(top.score).toBeCloseTo(dot, 1);

    // Replace: "fresh" now points away from q, and must drop out of its top 100.
    hnsw.upsert("fresh", Float32Array.from(q, (x) => -x));
    expect(hnsw.size()).toBe(2001);
    expect(hnsw.search(q, 100).some((h) => h.id === "fresh")).toBe(false);
    // Replace an old item so that it becomes the best match.
    hnsw.upsert("42", boosted);
    expect(hnsw.search(q, 10)[0]!.id).toBe("42");
  });

  it("reuses the slots of removed items and keeps them unfindable under their old id", () => {
    const { hnsw, queries } = small(500);
    const capacity = hnsw.capacity();
    const q = row(queries, DIM, 1);
    for (let i = 0; i < 100; i++) hnsw.remove(String(i));
    for (let i = 0; i < 100; i++) hnsw.upsert(`new-${i}`, row(queries, DIM, i % 50));
    expect(hnsw.capacity()).toBe(capacity);
    expect(hnsw.size()).toBe(500);
    const hits = hnsw.search(q, 500);
    expect(hits).toHaveLength(500);
    const ids = new Set(hits.map((h) => h.id));
    for (let i = 0; i < 100; i++) {
      expect(ids.has(String(i))).toBe(false);
      expect(ids.has(`new-${i}`)).toBe(true);
    }
  });

  it("grows its capacity automatically", () => {
    const index = new HnswIndex({ dim: 8, modelVersion: "m", maxElements: 4, normBound: 10 });
    const normal = gaussian(mulberry32(5));
    for (let i = 0; i < 100; i++) index.upsert(`x${i}`, Float32Array.from({ length: 8 }, normal));
    expect(index.capacity()).toBeGreaterThanOrEqual(100);
    expect(index.search(new Float32Array(8).fill(1), 100)).toHaveLength(100);
  });

  it("persists deletions and slot reuse across save/load", async () => {
    const tmp = tempDir("hnsw-del");
    try {
      const { hnsw, queries } = small(1000);
      const q = row(queries, DIM, 2);
      const best = hnsw.search(q, 5).map((h) => h.id);
      for (const id of best) hnsw.remove(id);
      await hnsw.save(tmp.dir);
      const loaded = await loadHnswIndex(tmp.dir);
      expect(loaded.size()).toBe(995);
      const meta = JSON.parse(readFileSync(join(tmp.dir, "index.json"), "utf8")) as { labels: (string | null)[] };
      expect(meta.labels.filter((l) => l === null)).toHaveLength(5);
      const hits = loaded.search(q, 100);
      expect(hits).toHaveLength(100);
      for (const id of best) expect(hits.some((h) => h.id === id)).toBe(false);
      const capacity = loaded.capacity();
      loaded.upsert("after-load", Float32Array.from(q, (x) => x * 10));
      expect(loaded.capacity()).toBe(capacity);
      expect(loaded.search(q, 1)[0]!.id).toBe("after-load");
      // A second save replaces the first atomically and leaves one data file.
      await loaded.save(tmp.dir);
      expect(readdirSync(tmp.dir).sort()).toEqual(["index.json", expect.stringMatching(/^hnsw-.*\.bin$/)].sort());
      expect((await loadHnswIndex(tmp.dir)).search(q, 1)[0]!.id).toBe("after-load");
    } finally {
      tmp.cleanup();
    }
  });

  it("serializes concurrent saves into one directory", async () => {
    const tmp = tempDir("hnsw-concurrent");
    try {
      const { hnsw, queries } = small(300);
      const first = hnsw.save(tmp.dir);
      hnsw.remove("0");
      const second = hnsw.save(tmp.dir);
      await Promise.all([first, second]);
      expect(readdirSync(tmp.dir).filter((f) => f.endsWith(".bin"))).toHaveLength(1);
      const loaded = await loadHnswIndex(tmp.dir);
      expect(loaded.size()).toBe(299);
      expect(loaded.search(row(queries, DIM, 0), 10)).toEqual(hnsw.search(row(queries, DIM, 0), 10));
    } finally {
      tmp.cleanup();
    }
  });

  it("works as a plain inner-product graph with normBound null", () => {
    const { items, exact, queries } = small();
    const plain = HnswIndex.build(items, { modelVersion: "m1", normBound: null, ef: 400 });
    expect(plain.normBound).toBeNull();
    const q = row(queries, DIM, 0);
    expect(overlap(plain.search(q, 10), exact.search(q, 10))).toBeGreaterThanOrEqual(0.8);
  });
});

describe("HnswIndex input validation", () => {
  const index = new HnswIndex({ dim: 4, modelVersion: "m", normBound: 5 });
  index.upsert("a", [1, 0, 0, 0]);

  it.each([
    ["wrong dimension", () => index.upsert("b", [1, 2, 3])],
    ["NaN", () => index.upsert("b", [1, NaN, 0, 0])],
    ["Infinity", () => index.search([Infinity, 0, 0, 0], 1)],
    ["float32 overflow", () => index.upsert("b", [1e39, 0, 0, 0])],
    ["non-numbers", () => index.upsert("b", ["1", 0, 0, 0] as unknown as number[])],
    ["empty id", () => index.upsert("", [1, 0, 0, 0])],
    ["non-string id", () => index.remove(7 as unknown as string)],
    ["k = 0", () => index.search([1, 0, 0, 0], 0)],
    ["k = 1001", () => index.search([1, 0, 0, 0], 1001)],
    ["fractional k", () => index.search([1, 0, 0, 0], 2.5)],
    ["exclude not a Set", () => index.search([1, 0, 0, 0], 1, ["a"] as unknown as Set<string>)],
    ["query of wrong dimension", () => index.search(new Float32Array(5), 1)],
    ["ef = 0", () => (index.ef = 0)],
  ])("rejects %s with InvalidArgumentError", (_name, act) => {
    let caught: unknown;
    try {
      act();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as InvalidArgumentError).code).toBe("INVALID_ARGUMENT");
    expect((caught as Error).message.length).toBeGreaterThan(10);
  });

  it("leaves the index unchanged after a rejected upsert", () => {
    expect(index.size()).toBe(1);
    expect(index.search([1, 0, 0, 0], 5)).toEqual([{ id: "a", score: 1 }]);
  });

  it("rejects bad construction options", () => {
    expect(() => new HnswIndex({ dim: 0, modelVersion: "m", normBound: 1 })).toThrow(InvalidArgumentError);
    expect(() => new HnswIndex({ dim: 4, modelVersion: "", normBound: 1 })).toThrow(InvalidArgumentError);
    expect(() => new HnswIndex({ dim: 4, modelVersion: "m", normBound: -1 })).toThrow(/normBound/);
    expect(() => new HnswIndex({ dim: 4, modelVersion: "m", normBound: 1, M: 1 })).toThrow(/M must be/);
    expect(() => HnswIndex.build({ ids: ["a"], vectors: new Float32Array(3), dim: 4 }, { modelVersion: "m" })).toThrow(
      /expected 1 ids × dim 4/,
    );
  });

  it("returns nothing from an empty index", () => {
    const empty = new HnswIndex({ dim: 4, modelVersion: "m", normBound: 1 });
    expect(empty.search([1, 0, 0, 0], 10)).toEqual([]);
  });
});

describe("loading damaged index directories", () => {
  it("reports a missing directory, bad JSON, a wrong format version and a truncated data file", async () => {
    const tmp = tempDir("hnsw-bad");
    try {
      await expect(loadHnswIndex(join(tmp.dir, "missing"))).rejects.toBeInstanceOf(IndexFormatError);
      const { hnsw } = small(200);
      await hnsw.save(tmp.dir);
      const metaPath = join(tmp.dir, "index.json");
      const good = readFileSync(metaPath, "utf8");

      writeFileSync(metaPath, "{not json");
      await expect(loadHnswIndex(tmp.dir)).rejects.toThrow(/not valid JSON/);

      writeFileSync(metaPath, JSON.stringify({ ...JSON.parse(good), formatVersion: 99 }));
      await expect(loadHnswIndex(tmp.dir)).rejects.toThrow(/unsupported formatVersion 99/);

      writeFileSync(metaPath, good);
      const file = (JSON.parse(good) as { file: string }).file;
      truncateSync(join(tmp.dir, file), 100);
      await expect(loadHnswIndex(tmp.dir)).rejects.toThrow(/has 100 bytes/);
    } finally {
      tmp.cleanup();
    }
  });
});
