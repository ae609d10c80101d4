import { readFileSync, readdirSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BruteForceIndex } from "./brute-force-index.js";
import { IndexFormatError, InvalidArgumentError, ModelVersionMismatchError } from "./errors.js";
import { HNSW_DEFAULTS, HnswIndex, loadHnswIndex, normQuantile } from "./hnsw-index.js";
import { loadIndex } from "./load-index.js";
import type { ItemVectors } from "./shard.js";
import { clusteredData, gaussian, mulberry32 } from "./synthetic.js";
import { overlap, row, tempDir } from "./test-helpers.js";
import { compareHits } from "./vector-index.js";

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

  it("keeps the 3% of items of largest norm in an exact head, Φ = the 0.97 quantile of the norms", () => {
    expect(hnsw.exactHead).toBe(true);
    expect(hnsw.normBound).toBe(normQuantile(data.items, DIM, 0.97));
    let above = 0;
    for (let i = 0; i < N; i++) if (Math.hypot(...row(data.items, DIM, i)) > hnsw.normBound!) above++;
    expect(hnsw.headSize()).toBe(above);
    expect(hnsw.headSize()).toBeGreaterThanOrEqual(0.029 * N);
    expect(hnsw.headSize()).toBeLessThanOrEqual(0.031 * N);
    expect(hnsw.size()).toBe(N);
  });

  it("with headFraction 0: one graph, Φ = the 99th-percentile norm (the previous default)", () => {
    const single = HnswIndex.build(
      { ids: items.ids.slice(0, 2000), vectors: items.vectors.subarray(0, 2000 * DIM), dim: DIM },
      { modelVersion: "m1", headFraction: 0 },
    );
    expect(single.exactHead).toBe(false);
    expect(single.headSize()).toBe(0);
    expect(single.normBound).toBe(normQuantile(items.vectors.subarray(0, 2000 * DIM), DIM, 0.99));
    expect(single.size()).toBe(2000);
  });

  it("reaches recall@100 ≥ 0.95 and recall@10 ≥ 0.98 at the default ef", () => {
    expect(hnsw.ef).toBe(HNSW_DEFAULTS.ef);
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
function small(
  n = 2000,
  seed = 3,
  options: { readonly headFraction?: number } = {},
): { hnsw: HnswIndex; exact: BruteForceIndex; queries: Float32Array; items: ItemVectors } {
  const data = clusteredData({ items: n, queries: 50, dim: DIM, seed, clusters: 8 });
  const items: ItemVectors = { ids: Array.from({ length: n }, (_, i) => String(i)), vectors: data.items, dim: DIM };
  return {
    hnsw: HnswIndex.build(items, { modelVersion: "m1", ...options }),
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
    hnsw.upsert(
      "fresh",
      Float32Array.from(q, (x) => -x),
    );
    expect(hnsw.size()).toBe(2001);
    expect(hnsw.search(q, 100).some((h) => h.id === "fresh")).toBe(false);
    // Replace an old item so that it becomes the best match.
    hnsw.upsert("42", boosted);
    expect(hnsw.search(q, 10)[0]!.id).toBe("42");
  });

  it("reuses the graph slots of removed items and keeps them unfindable under their old id (single graph)", () => {
    const { hnsw, queries } = small(500, 3, { headFraction: 0 });
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

  it("persists deletions and slot reuse across save/load (single graph)", async () => {
    const tmp = tempDir("hnsw-del");
    try {
      const { hnsw, queries } = small(1000, 3, { headFraction: 0 });
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
      loaded.upsert(
        "after-load",
        Float32Array.from(q, (x) => x * 10),
      );
      expect(loaded.capacity()).toBe(capacity);
      expect(loaded.search(q, 1)[0]!.id).toBe("after-load");
      // A second save replaces the first atomically and leaves one data file.
      const loadedAt = loaded.savedAt;
      expect(loadedAt).toBe((meta as unknown as { savedAt: string }).savedAt);
      await new Promise((resolve) => setTimeout(resolve, 5));
      await loaded.save(tmp.dir);
      expect(loaded.savedAt).not.toBe(loadedAt);
      expect(loaded.savedAt).toBe((JSON.parse(readFileSync(join(tmp.dir, "index.json"), "utf8")) as { savedAt: string }).savedAt);
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
      // One hnswlib file and one head file: the first save's files are gone.
      expect(
        readdirSync(tmp.dir)
          .filter((f) => f.endsWith(".bin"))
          .sort(),
      ).toEqual([expect.stringMatching(/^head-.*\.bin$/), expect.stringMatching(/^hnsw-.*\.bin$/)]);
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

/**
 * Clustered vectors plus a shared "popularity" direction u: item += p·u with p lognormal
 * (σ 1.5), query += 2u. As with trained YouTube-DNN embeddings, every user's true top 100 is then
 * dominated by the high-norm (popular) items — about a fifth of it above the 99th-percentile
 * norm here (30% on the real model) — which a single graph links badly.
 */
function popularityData(n: number, queries: number, seed: number): { items: ItemVectors; queries: Float32Array } {
  const dim = 32;
  const data = clusteredData({ items: n, queries, dim, seed, clusters: 10, noise: 1, normSpread: 0 });
  const normal = gaussian(mulberry32(seed + 1));
  const u = Float32Array.from({ length: dim }, normal);
  const length = Math.hypot(...u);
  for (let j = 0; j < dim; j++) u[j]! /= length;
  for (let i = 0; i < n; i++) {
    const p = Math.exp(1.5 * normal());
    for (let j = 0; j < dim; j++) data.items[i * dim + j]! += p * u[j]!;
  }
  for (let i = 0; i < queries; i++) for (let j = 0; j < dim; j++) data.queries[i * dim + j]! += 2 * u[j]!;
  return { items: { ids: Array.from({ length: n }, (_, i) => `p${i}`), vectors: data.items, dim }, queries: data.queries };
}

/** Mean recall@k over the rows of `queries` (any dimension). */
function recallOf(index: HnswIndex, exact: BruteForceIndex, queries: Float32Array, k: number): number {
  const dim = index.dim;
  let sum = 0;
  const n = queries.length / dim;
  for (let i = 0; i < n; i++) {
    const q = row(queries, dim, i);
    sum += overlap(index.search(q, k), exact.search(q, k));
  }
  return sum / n;
}

describe("HnswIndex norm split (exact head of the largest norms, graph over the rest)", () => {
  const { items, queries } = popularityData(3000, 100, 2);
  let split: HnswIndex;
  let single: HnswIndex;
  let exact: BruteForceIndex;
  const tmp = tempDir("hnsw-split");

  beforeAll(() => {
    split = HnswIndex.build(items, { modelVersion: "m1" });
    single = HnswIndex.build(items, { modelVersion: "m1", headFraction: 0 });
    exact = BruteForceIndex.build(items, { modelVersion: "m1" });
  });
  afterAll(() => tmp.cleanup());

  it("beats the single graph (Φ = p99, the previous default) on recall@100 when high-norm items dominate", () => {
    const p99 = normQuantile(items.vectors, items.dim, 0.99);
    let above = 0;
    for (let i = 0; i < 100; i++) {
      for (const hit of exact.search(row(queries, items.dim, i), 100)) if (Math.hypot(...exact.vectorOf(hit.id)!) > p99) above++;
    }
    expect(above / 10_000).toBeGreaterThan(0.1); // the data has the property the split is for
    expect(split.headSize()).toBe(90);
    const splitRecall = recallOf(split, exact, queries, 100);
    const singleRecall = recallOf(single, exact, queries, 100);
    // Measured: 0.99 vs 0.79 (ef 100).
    expect(splitRecall).toBeGreaterThanOrEqual(0.95);
    expect(singleRecall).toBeLessThan(0.9);
  });

  it("keeps its results and recall after save and load, head included", async () => {
    await split.save(tmp.dir);
    expect(readdirSync(tmp.dir).sort()).toEqual(
      ["index.json", expect.stringMatching(/^head-.*\.bin$/), expect.stringMatching(/^hnsw-.*\.bin$/)].sort(),
    );
    const meta = JSON.parse(readFileSync(join(tmp.dir, "index.json"), "utf8")) as {
      formatVersion: number;
      size: number;
      labels: (string | null)[];
      head: { labels: string[]; fileBytes: number };
    };
    expect(meta.formatVersion).toBe(2);
    expect(meta.head.labels).toHaveLength(90);
    expect(meta.head.fileBytes).toBe(90 * items.dim * 4);
    expect(meta.labels.length + meta.head.labels.length).toBe(3000);
    expect(meta.size).toBe(3000);
    const loaded = await loadHnswIndex(tmp.dir, { expectedModelVersion: "m1", expectedDim: items.dim });
    expect(loaded.exactHead).toBe(true);
    expect(loaded.normBound).toBe(split.normBound);
    expect(loaded.headSize()).toBe(90);
    expect(loaded.size()).toBe(3000);
    for (let i = 0; i < 20; i++) {
      const q = row(queries, items.dim, i);
      expect(loaded.search(q, 100)).toEqual(split.search(q, 100));
    }
    expect(recallOf(loaded, exact, queries, 100)).toBeGreaterThanOrEqual(0.95);
    const generic = await loadIndex(tmp.dir);
    expect(generic.size()).toBe(3000);
  });

  it("moves upserted items across the head/graph boundary and removes from either part", () => {
    const index = HnswIndex.build(items, { modelVersion: "m1" });
    const twin = BruteForceIndex.build(items, { modelVersion: "m1" });
    const upsert = (id: string, v: Float32Array): void => {
      index.upsert(id, v);
      twin.upsert(id, v);
    };
    const phi = index.normBound!;
    const dim = items.dim;
    const q = row(queries, dim, 0);
    const minusQ = q.map((x) => -x);
    const norms = items.ids.map((_, i) => Math.hypot(...row(items.vectors, dim, i)));
    const maxNorm = Math.max(...norms);
    const scaled = (v: Float32Array, norm: number): Float32Array => {
      const length = Math.hypot(...v);
      return v.map((x) => (x * norm) / length);
    };
    const headSize = index.headSize();
    const graphId = items.ids[norms.findIndex((n) => n < phi)]!;
    const headId = items.ids[norms.findIndex((n) => n > phi)]!;

    // A graph item grown above Φ enters the head (and leaves the graph): it is the best match of q.
    upsert(graphId, scaled(q, maxNorm * 2));
    expect(index.headSize()).toBe(headSize + 1);
    expect(index.size()).toBe(3000);
    expect(index.search(q, 1)[0]!.id).toBe(graphId);
    // Back below Φ it returns to the graph, now the item of norm Φ/1.001 closest to −q.
    upsert(graphId, scaled(minusQ, phi / 1.001));
    expect(index.headSize()).toBe(headSize);
    expect(index.size()).toBe(3000);
    expect(index.search(q, 100).some((h) => h.id === graphId)).toBe(false);
    expect(index.search(minusQ, 10).map((h) => h.id)).toContain(graphId);
    expect(twin.search(minusQ, 10).map((h) => h.id)).toContain(graphId);
    // A head item shrunk below Φ joins the graph, still findable.
    upsert(headId, scaled(q, phi / 1.001));
    expect(index.headSize()).toBe(headSize - 1);
    expect(overlap(index.search(q, 100), twin.search(q, 100))).toBeGreaterThanOrEqual(0.9);
    expect(twin.search(q, 100).some((h) => h.id === headId)).toBe(true);
    expect(index.search(q, 100).some((h) => h.id === headId)).toBe(true);
    // New ids go where their norm says.
    upsert("new-big", scaled(q, phi * 2));
    upsert("new-small", scaled(q, phi / 2));
    expect(index.headSize()).toBe(headSize);
    expect(index.size()).toBe(3002);
    expect(index.has("new-big") && index.has("new-small")).toBe(true);

    // Remove from both parts: the best items (head and graph) of several queries.
    const removed = new Set<string>(["new-big", "new-small", headId, graphId]);
    for (let i = 0; i < 10; i++) for (const hit of index.search(row(queries, dim, i), 30)) removed.add(hit.id);
    let fromHead = 0;
    for (const id of removed) {
      if (Math.hypot(...twin.vectorOf(id)!) > phi) fromHead++;
      const before = index.headSize();
      expect(index.remove(id)).toBe(true);
      twin.remove(id);
      expect(index.has(id)).toBe(false);
      expect(index.remove(id)).toBe(false);
      expect(index.headSize()).toBeLessThanOrEqual(before);
    }
    expect(fromHead).toBeGreaterThan(10);
    expect(fromHead).toBeLessThan(removed.size);
    expect(index.headSize()).toBe(headSize - fromHead);
    expect(index.size()).toBe(3002 - removed.size);
    for (let i = 0; i < 30; i++) {
      const qi = row(queries, dim, i);
      const hits = index.search(qi, 100);
      expect(hits).toHaveLength(100);
      for (const h of hits) expect(removed.has(h.id)).toBe(false);
      for (let j = 1; j < hits.length; j++) expect(compareHits(hits[j - 1]!, hits[j]!)).toBeLessThan(0);
      expect(overlap(hits, twin.search(qi, 100))).toBeGreaterThanOrEqual(0.8);
    }
    // Asking for more than is left: every live item exactly once.
    for (let i = 0; i < 2800; i++) index.remove(`p${i}`);
    const left = index.size();
    expect(left).toBeLessThan(200);
    const all = index.search(q, 1000);
    expect(all).toHaveLength(left);
    expect(new Set(all.map((h) => h.id)).size).toBe(left);
    for (const h of all) expect(removed.has(h.id)).toBe(false);
  });

  it("fills k from both parts when the whole head and more are excluded", () => {
    const q = row(queries, items.dim, 5);
    const headIds = exact
      .search(q, 1000)
      .filter((h) => Math.hypot(...exact.vectorOf(h.id)!) > split.normBound!)
      .map((h) => h.id);
    expect(headIds).toHaveLength(90);
    for (const exclude of [new Set(headIds.slice(0, 50)), new Set([...headIds, ...exact.search(q, 200).map((h) => h.id)])]) {
      const hits = split.search(q, 100, exclude);
      expect(hits).toHaveLength(100);
      for (const h of hits) expect(exclude.has(h.id)).toBe(false);
      expect(overlap(hits, exact.search(q, 100, exclude))).toBeGreaterThanOrEqual(0.9);
    }
  });

  it("returns every live item of a tiny index whatever the split", () => {
    const index = HnswIndex.build(
      { ids: ["a", "b", "c", "d"], vectors: Float32Array.from([1, 0, 0, 2, 3, 3, 0.5, 0.5]), dim: 2 },
      { modelVersion: "m", headFraction: 0.5 },
    );
    // Norms 1, 2, 4.24, 0.71: Φ = the median (nearest rank) = 1, head = {b, c}.
    expect(index.normBound).toBe(1);
    expect(index.headSize()).toBe(2);
    expect(index.search([1, 1], 10).map((h) => h.id)).toEqual(["c", "b", "a", "d"]);
    expect(index.search([1, 1], 10, new Set(["c", "a"])).map((h) => h.id)).toEqual(["b", "d"]);
    index.remove("c");
    index.remove("a");
    expect(index.search([1, 1], 2).map((h) => h.id)).toEqual(["b", "d"]);
  });

  it("rejects conflicting or out-of-range split options", () => {
    expect(() => HnswIndex.build(items, { modelVersion: "m", headFraction: 0.03, normQuantile: 0.99 })).toThrow(/headFraction 0/);
    expect(() => HnswIndex.build(items, { modelVersion: "m", headFraction: 0.03, normBound: null })).toThrow(InvalidArgumentError);
    expect(() => HnswIndex.build(items, { modelVersion: "m", headFraction: 1 })).toThrow(/headFraction must be in \[0, 1\)/);
    expect(() => HnswIndex.build(items, { modelVersion: "m", headFraction: -0.1 })).toThrow(InvalidArgumentError);
    expect(() => new HnswIndex({ dim: 4, modelVersion: "m", normBound: null, exactHead: true })).toThrow(/numeric normBound/);
  });

  it("refuses an HNSW index of format version 1 (rebuild it) and still reads a brute-force one", async () => {
    const dir = tempDir("hnsw-v1");
    try {
      const { hnsw } = small(200, 3, { headFraction: 0 });
      await hnsw.save(dir.dir);
      const metaPath = join(dir.dir, "index.json");
      const meta = JSON.parse(readFileSync(metaPath, "utf8")) as Record<string, unknown>;
      writeFileSync(metaPath, JSON.stringify({ ...meta, formatVersion: 1 }));
      await expect(loadHnswIndex(dir.dir)).rejects.toBeInstanceOf(IndexFormatError);
      await expect(loadIndex(dir.dir)).rejects.toThrow(/formatVersion 1 HNSW index .*rebuild it/);

      const bf = BruteForceIndex.build(items, { modelVersion: "m1" });
      await bf.save(dir.dir);
      const bfMeta = JSON.parse(readFileSync(metaPath, "utf8")) as Record<string, unknown>;
      writeFileSync(metaPath, JSON.stringify({ ...bfMeta, formatVersion: 1 }));
      const loaded = await loadIndex(dir.dir);
      expect(loaded.kind).toBe("brute-force");
      expect(loaded.size()).toBe(3000);
    } finally {
      dir.cleanup();
    }
  });

  it("reports a damaged head file", async () => {
    const dir = tempDir("hnsw-head-bad");
    try {
      await split.save(dir.dir);
      const meta = JSON.parse(readFileSync(join(dir.dir, "index.json"), "utf8")) as { head: { file: string } };
      truncateSync(join(dir.dir, meta.head.file), 100);
      await expect(loadHnswIndex(dir.dir)).rejects.toThrow(/has 100 bytes/);
    } finally {
      dir.cleanup();
    }
  });
});
