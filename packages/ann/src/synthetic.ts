import { InvalidArgumentError } from "./errors.js";

/** mulberry32: a small, fast, seedable PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal sampler (Box–Muller) over a uniform source. */
export function gaussian(uniform: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = uniform();
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

export interface ClusteredDataOptions {
  readonly items: number;
  readonly queries: number;
  readonly dim: number;
  /** Number of clusters. Default: max(1, round(items / 500)) — clusters larger than a typical k. */
  readonly clusters?: number;
  /** Standard deviation of item/query noise around their cluster centre (centres ~ N(0, I)). Default 0.75. */
  readonly noise?: number;
  /** Standard deviation of the log of each item's norm multiplier (popularity-like norm spread). Default 0.25. */
  readonly normSpread?: number;
  readonly seed?: number;
}

/**
 * Synthetic stand-ins for candidate-generator embeddings, which are clustered (topics, genres)
 * with item norms that vary: cluster centres c ~ N(0, I); item = exp(normSpread·z)·(c + noise·ε);
 * query (user) = c' + noise·ε' for a random centre c'. Row-major Float32Arrays.
 * Uniform random vectors in 64-d would be the worst case for HNSW and unlike real embeddings.
 */
export function clusteredData(options: ClusteredDataOptions): { items: Float32Array; queries: Float32Array; clusters: number } {
  const { items, queries, dim } = options;
  for (const [name, v] of [
    ["items", items],
    ["queries", queries],
    ["dim", dim],
  ] as const) {
    if (!Number.isInteger(v) || v < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
  }
  const clusters = options.clusters ?? Math.max(1, Math.round(items / 500));
  if (!Number.isInteger(clusters) || clusters < 1) throw new InvalidArgumentError("clusters must be a positive integer");
  const noise = options.noise ?? 0.75;
  const normSpread = options.normSpread ?? 0.25;
  const uniform = mulberry32(options.seed ?? 1);
  const normal = gaussian(uniform);
  const centres = new Float32Array(clusters * dim);
  for (let i = 0; i < centres.length; i++) centres[i] = normal();
  const itemVectors = new Float32Array(items * dim);
  for (let i = 0; i < items; i++) {
    const c = Math.floor(uniform() * clusters) * dim;
    const scale = Math.exp(normSpread * normal());
    for (let j = 0; j < dim; j++) itemVectors[i * dim + j] = scale * (centres[c + j]! + noise * normal());
  }
  const queryVectors = new Float32Array(queries * dim);
  for (let i = 0; i < queries; i++) {
    const c = Math.floor(uniform() * clusters) * dim;
    for (let j = 0; j < dim; j++) queryVectors[i * dim + j] = centres[c + j]! + noise * normal();
  }
  return { items: itemVectors, queries: queryVectors, clusters };
}
