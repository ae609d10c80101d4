import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { BruteForceIndex } from "./brute-force-index.js";
import { AnnError, InvalidArgumentError } from "./errors.js";
import { HNSW_DEFAULTS, HnswIndex, loadHnswIndex } from "./hnsw-index.js";
import { META_FILE } from "./persist.js";
import { clusteredData } from "./synthetic.js";
import type { SearchHit } from "./vector-index.js";

export interface BenchAnnOptions {
  readonly items: number;
  readonly dim: number;
  /** Number of query vectors (each is searched once per ef). */
  readonly queries: number;
  /** Query-time ef values to measure. */
  readonly efs: readonly number[];
  /** Results per query; recall is recall@k. Default 100. */
  readonly k?: number;
  readonly M?: number;
  readonly efConstruction?: number;
  /** Seed of the synthetic data (the HNSW seed stays at its default). Default 1. */
  readonly seed?: number;
  /** Data shape, see `clusteredData` (defaults: items/500 clusters, noise 0.75, norm spread 0.25). */
  readonly clusters?: number;
  readonly noise?: number;
  /**
   * Fraction of the items (largest norms) searched exactly outside the graph (see
   * `HnswBuildOptions.headFraction`); default the index default (0.03), or 0 when normQuantile is given.
   */
  readonly headFraction?: number;
  /** Single graph (headFraction 0): Φ quantile of the inner-product reduction, or null for a plain inner-product graph. */
  readonly normQuantile?: number | null;
  /**
   * When set, the built index is saved here, loaded back, and searches run on the loaded copy
   * (so load time and the loaded index's recall are measured).
   */
  readonly indexDir?: string;
  /** With indexDir: load an index previously saved there for the same data and parameters instead of building. */
  readonly reuseIndex?: boolean;
  /** Progress lines (build progress every 10%). */
  readonly log?: (line: string) => void;
}

export interface BenchAnnEfResult {
  readonly ef: number;
  /** Mean over queries of |HNSW top-k ∩ exact top-k| / k. */
  readonly recall: number;
  /** Sequential single-threaded queries per second. */
  readonly qps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface BenchAnnResult {
  readonly data: {
    readonly kind: "clustered";
    readonly items: number;
    readonly dim: number;
    readonly clusters: number;
    readonly noise: number;
    readonly queries: number;
    readonly seed: number;
  };
  readonly k: number;
  readonly M: number;
  readonly efConstruction: number;
  /** Φ of the reduction (null: plain inner-product graph). */
  readonly normBound: number | null;
  /** Items in the exact head (0: single graph). */
  readonly headSize: number;
  /** Wall-clock seconds to insert all items one by one (undefined when a saved index was reused). */
  readonly buildSeconds: number | undefined;
  /** CPU seconds (user + system) of this process during the build: less sensitive to a busy machine. */
  readonly buildCpuSeconds: number | undefined;
  readonly saveSeconds: number | undefined;
  readonly loadSeconds: number | undefined;
  /** Size of the saved directory (hnswlib file + index.json). */
  readonly indexBytes: number | undefined;
  /** Exact search over the same items, for comparison. */
  readonly bruteForce: { readonly qps: number; readonly p50Ms: number };
  readonly results: readonly BenchAnnEfResult[];
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

function timeQueries(
  queries: Float32Array,
  dim: number,
  run: (q: Float32Array) => SearchHit[],
): { hits: SearchHit[][]; qps: number; p50Ms: number; p99Ms: number } {
  const n = queries.length / dim;
  const hits: SearchHit[][] = [];
  const latency = new Float64Array(n);
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    hits.push(run(queries.subarray(i * dim, (i + 1) * dim)));
    latency[i] = performance.now() - t;
  }
  const seconds = (performance.now() - start) / 1000;
  latency.sort();
  return { hits, qps: n / seconds, p50Ms: percentile(latency, 0.5), p99Ms: percentile(latency, 0.99) };
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) total += statSync(join(dir, name)).size;
  return total;
}

/**
 * Builds an HNSW index over clustered synthetic vectors, then for each ef measures recall@k
 * against exact brute-force search and sequential queries/second. Timings are wall clock on a
 * shared machine: compare them within one run, not across machines.
 */
export async function benchAnn(options: BenchAnnOptions): Promise<BenchAnnResult> {
  const { items, dim, queries: numQueries, efs } = options;
  const k = options.k ?? 100;
  const M = options.M ?? HNSW_DEFAULTS.M;
  const efConstruction = options.efConstruction ?? HNSW_DEFAULTS.efConstruction;
  const seed = options.seed ?? 1;
  const noise = options.noise ?? 0.75;
  const quantile = options.normQuantile;
  const headFraction = options.headFraction ?? (quantile === undefined ? HNSW_DEFAULTS.headFraction : 0);
  const log = options.log ?? (() => {});
  if (!Number.isInteger(items) || items < 1) throw new InvalidArgumentError("items must be a positive integer");
  if (!Number.isInteger(numQueries) || numQueries < 1) throw new InvalidArgumentError("queries must be a positive integer");
  if (efs.length === 0) throw new InvalidArgumentError("efs must not be empty");

  const data = clusteredData({
    items,
    queries: numQueries,
    dim,
    noise,
    seed,
    ...(options.clusters !== undefined ? { clusters: options.clusters } : {}),
  });
  const ids = Array.from({ length: items }, (_, i) => String(i));
  const modelVersion = `bench-clustered-${items}x${dim}-c${data.clusters}-n${noise}-s${seed}-M${M}-efc${efConstruction}-${headFraction > 0 ? `h${headFraction}` : `q${quantile ?? HNSW_DEFAULTS.normQuantile}`}`;
  const itemVectors = { ids, vectors: data.items, dim };

  let index: HnswIndex | undefined;
  let buildSeconds: number | undefined;
  let buildCpuSeconds: number | undefined;
  let saveSeconds: number | undefined;
  let loadSeconds: number | undefined;
  let indexBytes: number | undefined;
  const dir = options.indexDir;
  if (dir !== undefined && options.reuseIndex === true && existsSync(join(dir, META_FILE))) {
    const t = performance.now();
    try {
      index = await loadHnswIndex(dir, { expectedModelVersion: modelVersion, expectedDim: dim });
      loadSeconds = (performance.now() - t) / 1000;
      indexBytes = dirBytes(dir);
      log(`reused saved index in ${dir} (${loadSeconds.toFixed(1)} s to load)`);
    } catch (err) {
      if (!(err instanceof AnnError)) throw err;
      log(`cannot reuse ${dir} (${err.message}); building`);
    }
  }
  if (index === undefined) {
    const t = performance.now();
    const cpu = process.cpuUsage();
    const step = Math.max(1, Math.floor(items / 10));
    const built = HnswIndex.build(itemVectors, {
      modelVersion,
      M,
      efConstruction,
      headFraction,
      ...(quantile === null ? { normBound: null } : quantile === undefined ? {} : { normQuantile: quantile }),
      onProgress: (done, total) => {
        if (done % step === 0 || done === total) log(`built ${done}/${total} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      },
    });
    buildSeconds = (performance.now() - t) / 1000;
    const used = process.cpuUsage(cpu);
    buildCpuSeconds = (used.user + used.system) / 1e6;
    log(`build: ${buildSeconds.toFixed(1)} s wall, ${buildCpuSeconds.toFixed(1)} s CPU`);
    index = built;
    if (dir !== undefined) {
      let s = performance.now();
      await built.save(dir);
      saveSeconds = (performance.now() - s) / 1000;
      indexBytes = dirBytes(dir);
      s = performance.now();
      index = await loadHnswIndex(dir, { expectedModelVersion: modelVersion });
      loadSeconds = (performance.now() - s) / 1000;
      log(`saved ${indexBytes} bytes in ${saveSeconds.toFixed(1)} s, loaded in ${loadSeconds.toFixed(1)} s`);
    }
  }

  const exact = BruteForceIndex.build(itemVectors, { modelVersion });
  const truth = timeQueries(data.queries, dim, (q) => exact.search(q, k));
  log(`brute force: ${truth.qps.toFixed(1)} q/s`);

  const results: BenchAnnEfResult[] = [];
  for (const ef of efs) {
    index.ef = ef;
    // Warm-up so the first ef does not pay for cold caches.
    timeQueries(data.queries.subarray(0, Math.min(numQueries, 20) * dim), dim, (q) => index.search(q, k));
    const run = timeQueries(data.queries, dim, (q) => index.search(q, k));
    let found = 0;
    for (let i = 0; i < numQueries; i++) {
      const want = new Set(truth.hits[i]!.map((h) => h.id));
      for (const h of run.hits[i]!) if (want.has(h.id)) found++;
    }
    const recall = found / (numQueries * k);
    results.push({ ef, recall, qps: run.qps, p50Ms: run.p50Ms, p99Ms: run.p99Ms });
    log(
      `ef=${ef}: recall@${k}=${recall.toFixed(4)} ${run.qps.toFixed(0)} q/s p50=${run.p50Ms.toFixed(2)} ms p99=${run.p99Ms.toFixed(2)} ms`,
    );
  }

  return {
    data: { kind: "clustered", items, dim, clusters: data.clusters, noise, queries: numQueries, seed },
    k,
    M,
    efConstruction,
    normBound: index.normBound,
    headSize: index.headSize(),
    buildSeconds,
    buildCpuSeconds,
    saveSeconds,
    loadSeconds,
    indexBytes,
    bruteForce: { qps: truth.qps, p50Ms: truth.p50Ms },
    results,
  };
}
