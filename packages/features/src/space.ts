import type { Dataset } from "@recsys/data";
import { contextFromDataset, type UserContext } from "./context.js";
import { QuantileNormalizer, type QuantileNormalizerJson } from "./quantile.js";
import { queryTokens } from "./tokens.js";
import { countTokens, Vocabulary, type VocabularyJson } from "./vocabulary.js";

/** Feature settings, fixed when the space is fitted and stored with it. */
export interface FeatureConfig {
  /** Watch-history window: the last N watches before the example. */
  readonly historyLength: number;
  /** Search window: the last M search tokens (unigrams and bigrams) before the example. */
  readonly searchLength: number;
  /** Minimum training watches for an item to get its own id (others share the OOV bucket). */
  readonly itemMinCount: number;
  /** Minimum occurrences of a search token in training queries. */
  readonly tokenMinCount: number;
  /** Minimum training users for a geography value (others share the OOV bucket). */
  readonly geoMinCount: number;
  /** Maximum boundaries kept by each quantile normaliser. */
  readonly quantiles: number;
}

export const DEFAULT_FEATURE_CONFIG: FeatureConfig = {
  // 20 recent watches beat 50 on ml-100k validation (and cost 2.5x less to pool and update).
  historyLength: 20,
  searchLength: 32,
  itemMinCount: 1,
  tokenMinCount: 2,
  geoMinCount: 2,
  quantiles: 1000,
};

/** Categorical user features, in the order of {@link EncodedBatch.categorical} columns. */
export const CATEGORICAL_FEATURES = ["gender", "occupation", "geo"] as const;
export type CategoricalFeature = (typeof CATEGORICAL_FEATURES)[number];

/**
 * Continuous features, in the order of {@link EncodedBatch.continuous} columns: each normalised
 * value x̃ in [0, 1) is followed by x̃² and √x̃; `age_missing` is 1 when the age is unknown (the
 * three age columns are then 0).
 */
export const CONTINUOUS_FEATURES = [
  "example_age",
  "example_age_sq",
  "example_age_sqrt",
  "age",
  "age_sq",
  "age_sqrt",
  "age_missing",
] as const;
export const NUM_CONTINUOUS = CONTINUOUS_FEATURES.length;
export const NUM_CATEGORICAL = CATEGORICAL_FEATURES.length;

export interface FeatureSpaceJson {
  readonly version: 1;
  readonly config: FeatureConfig;
  /** End of the training window (Unix seconds): the latest training event. */
  readonly windowEnd: number;
  readonly items: VocabularyJson;
  readonly tokens: VocabularyJson;
  readonly gender: VocabularyJson;
  readonly occupation: VocabularyJson;
  readonly geo: VocabularyJson;
  readonly exampleAge: QuantileNormalizerJson;
  readonly age: QuantileNormalizerJson;
}

/** All vocabularies and normalisers: everything needed to turn a UserContext into model inputs. */
export class FeatureSpace {
  constructor(
    readonly config: FeatureConfig,
    /** End of the training window (Unix seconds); example age = windowEnd − example time. */
    readonly windowEnd: number,
    readonly items: Vocabulary,
    readonly tokens: Vocabulary,
    readonly gender: Vocabulary,
    readonly occupation: Vocabulary,
    readonly geo: Vocabulary,
    readonly exampleAge: QuantileNormalizer,
    readonly age: QuantileNormalizer,
  ) {}

  categorical(feature: CategoricalFeature): Vocabulary {
    return this[feature];
  }

  toJSON(): FeatureSpaceJson {
    return {
      version: 1,
      config: this.config,
      windowEnd: this.windowEnd,
      items: this.items.toJSON(),
      tokens: this.tokens.toJSON(),
      gender: this.gender.toJSON(),
      occupation: this.occupation.toJSON(),
      geo: this.geo.toJSON(),
      exampleAge: this.exampleAge.toJSON(),
      age: this.age.toJSON(),
    };
  }

  static fromJSON(json: FeatureSpaceJson): FeatureSpace {
    FeatureSpace.checkJSON(json);
    return FeatureSpace.fromParts(json, Vocabulary.fromJSON(json.items), Vocabulary.fromJSON(json.tokens));
  }

  /**
   * {@link fromJSON} with the item and search-token vocabularies indexed in slices, yielding to
   * the event loop between them (`Vocabulary.fromJSONInSlices`): for stages that load a model
   * while they serve.
   */
  static async fromJSONInSlices(json: FeatureSpaceJson): Promise<FeatureSpace> {
    FeatureSpace.checkJSON(json);
    return FeatureSpace.fromParts(json, await Vocabulary.fromJSONInSlices(json.items), await Vocabulary.fromJSONInSlices(json.tokens));
  }

  private static checkJSON(json: FeatureSpaceJson): void {
    if (json === null || typeof json !== "object" || json.version !== 1)
      throw new Error("FeatureSpace.fromJSON: unsupported or missing version (expected 1)");
  }

  private static fromParts(json: FeatureSpaceJson, items: Vocabulary, tokens: Vocabulary): FeatureSpace {
    return new FeatureSpace(
      { ...DEFAULT_FEATURE_CONFIG, ...json.config },
      json.windowEnd,
      items,
      tokens,
      Vocabulary.fromJSON(json.gender),
      Vocabulary.fromJSON(json.occupation),
      Vocabulary.fromJSON(json.geo),
      QuantileNormalizer.fromJSON(json.exampleAge),
      QuantileNormalizer.fromJSON(json.age),
    );
  }
}

function validateConfig(c: FeatureConfig): void {
  for (const key of ["historyLength", "searchLength", "itemMinCount", "tokenMinCount", "geoMinCount", "quantiles"] as const) {
    const v = c[key];
    const min = key === "searchLength" ? 0 : 1;
    if (!Number.isInteger(v) || v < min) throw new Error(`feature config: ${key} must be an integer >= ${min}, got ${v}`);
  }
}

/**
 * Fits the feature space on training event-log rows only (so nothing from held-out events leaks
 * into vocabularies or normalisers): item vocabulary from the rows' items, demographics and age
 * from the users having rows, search tokens from those users' queries up to their last training
 * event, example ages from the rows' timestamps.
 */
export function fitFeatureSpace(dataset: Dataset, rows: ArrayLike<number>, config: Partial<FeatureConfig> = {}): FeatureSpace {
  const cfg: FeatureConfig = { ...DEFAULT_FEATURE_CONFIG, ...config };
  validateConfig(cfg);
  const { events, users, items, searches } = dataset;
  if (rows.length === 0) throw new Error("fitFeatureSpace: no training rows");
  const numUsers = users.ids.length;

  const itemCounts = new Map<string, number>();
  const lastTime = new Float64Array(numUsers).fill(-Infinity);
  let windowEnd = -Infinity;
  for (let k = 0; k < rows.length; k++) {
    const r = rows[k]!;
    const id = items.ids[events.item[r]!]!;
    itemCounts.set(id, (itemCounts.get(id) ?? 0) + 1);
    const t = events.timestamp[r]!;
    const u = events.user[r]!;
    if (t > lastTime[u]!) lastTime[u] = t;
    if (t > windowEnd) windowEnd = t;
  }

  const exampleAges = new Float64Array(rows.length);
  for (let k = 0; k < rows.length; k++) exampleAges[k] = windowEnd - events.timestamp[rows[k]!]!;

  const cats: Record<CategoricalFeature, Map<string, number>> = { gender: new Map(), occupation: new Map(), geo: new Map() };
  const ages: number[] = [];
  const tokenCounts = new Map<string, number>();
  for (let u = 0; u < numUsers; u++) {
    if (lastTime[u] === -Infinity) continue;
    for (const f of CATEGORICAL_FEATURES) {
      const col = users[f];
      const c = col.codes[u]!;
      if (c >= 0) countTokens([col.values[c]!], cats[f]);
    }
    if (!Number.isNaN(users.age[u]!)) ages.push(users.age[u]!);
    if (searches.user.length > 0) {
      for (let s = searches.userOffsets[u]!; s < searches.userOffsets[u + 1]!; s++) {
        if (searches.timestamp[s]! <= lastTime[u]!) countTokens(queryTokens(searches.query[s]!), tokenCounts);
      }
    }
  }

  return new FeatureSpace(
    cfg,
    windowEnd,
    Vocabulary.fromCounts(itemCounts, cfg.itemMinCount),
    Vocabulary.fromCounts(tokenCounts, cfg.tokenMinCount),
    Vocabulary.fromCounts(cats.gender, 1),
    Vocabulary.fromCounts(cats.occupation, 1),
    Vocabulary.fromCounts(cats.geo, cfg.geoMinCount),
    QuantileNormalizer.fit(exampleAges, cfg.quantiles),
    QuantileNormalizer.fit(ages, cfg.quantiles),
  );
}

/**
 * A user context with external ids resolved to vocabulary ids (the expensive, allocating part of
 * encoding, done once per user). {@link encodeResolved} then encodes any example of it cheaply.
 */
export interface ResolvedUser {
  /** Item vocabulary ids of the watches, chronological. */
  readonly watchIds: Int32Array;
  readonly watchTimes: Float64Array;
  /** Query times, chronological; the token ids of query q are searchTokens[searchOffsets[q]..searchOffsets[q+1]). */
  readonly searchTimes: Float64Array;
  readonly searchOffsets: Int32Array;
  readonly searchTokens: Int32Array;
  /** Vocabulary ids in CATEGORICAL_FEATURES order (OOV when missing or unknown). */
  readonly categorical: Int32Array;
  /** Age in years, NaN when unknown. */
  readonly age: number;
}

function isChronological<T extends { readonly timestamp: number }>(xs: readonly T[]): boolean {
  for (let i = 1; i < xs.length; i++) if (xs[i]!.timestamp < xs[i - 1]!.timestamp) return false;
  return true;
}

/** Resolves a context's external ids (watches and searches are stably sorted by time if needed). */
export function resolveUser(space: FeatureSpace, ctx: UserContext): ResolvedUser {
  const watches = isChronological(ctx.watches) ? ctx.watches : [...ctx.watches].sort((a, b) => a.timestamp - b.timestamp);
  const watchIds = new Int32Array(watches.length);
  const watchTimes = new Float64Array(watches.length);
  for (let i = 0; i < watches.length; i++) {
    const w = watches[i]!;
    if (!Number.isFinite(w.timestamp)) throw new Error(`user context: watch ${i} (item "${w.itemId}") has no finite timestamp`);
    watchIds[i] = space.items.id(w.itemId);
    watchTimes[i] = w.timestamp;
  }
  const searches = isChronological(ctx.searches) ? ctx.searches : [...ctx.searches].sort((a, b) => a.timestamp - b.timestamp);
  const searchTimes = new Float64Array(searches.length);
  const searchOffsets = new Int32Array(searches.length + 1);
  const tokenIds: number[] = [];
  for (let q = 0; q < searches.length; q++) {
    searchTimes[q] = searches[q]!.timestamp;
    for (const t of queryTokens(searches[q]!.query)) tokenIds.push(space.tokens.id(t));
    searchOffsets[q + 1] = tokenIds.length;
  }
  const categorical = new Int32Array(NUM_CATEGORICAL);
  CATEGORICAL_FEATURES.forEach((f, j) => {
    categorical[j] = space.categorical(f).id(ctx[f]);
  });
  const age = typeof ctx.age === "number" && Number.isFinite(ctx.age) ? ctx.age : NaN;
  return { watchIds, watchTimes, searchTimes, searchOffsets, searchTokens: Int32Array.from(tokenIds), categorical, age };
}

/**
 * Encoded model inputs for a batch of examples, in preallocated row-major buffers (reused across
 * batches by the trainer). Row b: the last `watchCount[b]` watch ids (oldest first, at most
 * historyLength) at watchIds[b*historyLength ..], the last `searchCount[b]` search-token ids at
 * searchIds[b*searchLength ..], NUM_CATEGORICAL vocabulary ids and NUM_CONTINUOUS values.
 */
export class EncodedBatch {
  readonly watchIds: Int32Array;
  readonly watchCount: Int32Array;
  readonly searchIds: Int32Array;
  readonly searchCount: Int32Array;
  readonly categorical: Int32Array;
  readonly continuous: Float32Array;
  /** Rows filled. */
  size = 0;

  /**
   * `buffer` (optional) backs every array, e.g. a SharedArrayBuffer of
   * {@link EncodedBatch.byteLength} bytes so that worker threads see the same batch.
   */
  constructor(
    readonly capacity: number,
    readonly historyLength: number,
    readonly searchLength: number,
    buffer?: ArrayBufferLike,
  ) {
    const sizes = EncodedBatch.layout(capacity, historyLength, searchLength);
    const buf = buffer ?? new ArrayBuffer(sizes.bytes);
    if (buf.byteLength < sizes.bytes) throw new Error(`EncodedBatch: buffer of ${buf.byteLength} bytes, needs ${sizes.bytes}`);
    let o = 0;
    const ints = (n: number): Int32Array => {
      const a = new Int32Array(buf, o, n);
      o += 4 * n;
      return a;
    };
    this.watchIds = ints(sizes.watchIds);
    this.watchCount = ints(capacity);
    this.searchIds = ints(sizes.searchIds);
    this.searchCount = ints(capacity);
    this.categorical = ints(capacity * NUM_CATEGORICAL);
    this.continuous = new Float32Array(buf, o, capacity * NUM_CONTINUOUS);
  }

  private static layout(
    capacity: number,
    historyLength: number,
    searchLength: number,
  ): { watchIds: number; searchIds: number; bytes: number } {
    const watchIds = capacity * historyLength;
    const searchIds = capacity * Math.max(searchLength, 0);
    return { watchIds, searchIds, bytes: 4 * (watchIds + searchIds + capacity * (2 + NUM_CATEGORICAL + NUM_CONTINUOUS)) };
  }

  /** Bytes needed to back a batch of this shape. */
  static byteLength(capacity: number, historyLength: number, searchLength: number): number {
    return EncodedBatch.layout(capacity, historyLength, searchLength).bytes;
  }

  static forSpace(space: FeatureSpace, capacity: number, buffer?: ArrayBufferLike): EncodedBatch {
    return new EncodedBatch(capacity, space.config.historyLength, space.config.searchLength, buffer);
  }
}

/**
 * THE feature encoder (training and serving both end here). Encodes the example of a resolved
 * user whose visible watches are the first `visible` ones, requested at `requestTime`, into row
 * `row` of `out`:
 * - watch history: the last historyLength of watches[0 .. visible) — never the label or anything
 *   after it, as the caller passes the label's position (training) or all past watches (serving);
 * - search tokens: tokens of queries strictly before requestTime, the most recent searchLength;
 * - categorical ids; continuous: example age = windowEnd − exampleTime (clamped at 0; 0 when
 *   exampleTime is undefined, as at serving), and age, each quantile-normalised with x̃² and √x̃.
 */
export function encodeResolved(
  space: FeatureSpace,
  user: ResolvedUser,
  visible: number,
  requestTime: number,
  exampleTime: number | undefined,
  out: EncodedBatch,
  row: number,
): void {
  const n = space.config.historyLength;
  const m = space.config.searchLength;
  if (out.historyLength !== n || out.searchLength !== m)
    throw new Error("encodeResolved: batch buffers do not match the feature space config");
  if (row < 0 || row >= out.capacity) throw new Error(`encodeResolved: row ${row} out of the batch capacity ${out.capacity}`);
  if (visible < 0 || visible > user.watchIds.length) throw new Error(`encodeResolved: visible=${visible} out of range`);

  const start = Math.max(0, visible - n);
  const count = visible - start;
  out.watchIds.set(user.watchIds.subarray(start, visible), row * n);
  out.watchCount[row] = count;

  let searchCount = 0;
  if (m > 0) {
    // Queries strictly before the request: q < qEnd.
    let qEnd = user.searchTimes.length;
    while (qEnd > 0 && user.searchTimes[qEnd - 1]! >= requestTime) qEnd--;
    const tokEnd = user.searchOffsets[qEnd]!;
    const tokStart = Math.max(0, tokEnd - m);
    searchCount = tokEnd - tokStart;
    out.searchIds.set(user.searchTokens.subarray(tokStart, tokEnd), row * m);
  }
  out.searchCount[row] = searchCount;

  out.categorical.set(user.categorical, row * NUM_CATEGORICAL);

  const c = row * NUM_CONTINUOUS;
  const age = exampleTime === undefined ? 0 : Math.max(0, space.windowEnd - exampleTime);
  space.exampleAge.features(age, out.continuous, c);
  if (Number.isNaN(user.age)) {
    out.continuous[c + 3] = 0;
    out.continuous[c + 4] = 0;
    out.continuous[c + 5] = 0;
    out.continuous[c + 6] = 1;
  } else {
    space.age.features(user.age, out.continuous, c + 3);
    out.continuous[c + 6] = 0;
  }
  if (row >= out.size) out.size = row + 1;
}

/** One encoded user (a copy of one {@link EncodedBatch} row). */
export interface EncodedUser {
  /** Item vocabulary ids of the history window, oldest first. */
  readonly watchIds: Int32Array;
  readonly searchIds: Int32Array;
  readonly categorical: Int32Array;
  readonly continuous: Float32Array;
}

/** Number of watches at or before `requestTime` (watches are chronological). */
export function visibleWatches(user: ResolvedUser, requestTime: number): number {
  let v = user.watchTimes.length;
  while (v > 0 && user.watchTimes[v - 1]! > requestTime) v--;
  return v;
}

/**
 * Encodes a user context: all watches up to ctx.requestTime are visible, example age from
 * `exampleTime` (omit at serving: age 0). Writes into `out` row `row` when given (batched
 * serving), and returns the encoded row.
 */
export function encodeUser(
  space: FeatureSpace,
  ctx: UserContext,
  exampleTime?: number,
  out?: { batch: EncodedBatch; row: number },
): EncodedUser {
  const resolved = resolveUser(space, ctx);
  const batch = out?.batch ?? EncodedBatch.forSpace(space, 1);
  const row = out?.row ?? 0;
  encodeResolved(space, resolved, visibleWatches(resolved, ctx.requestTime), ctx.requestTime, exampleTime, batch, row);
  return encodedRow(batch, row);
}

/** A copy of one row of a batch. */
export function encodedRow(batch: EncodedBatch, row: number): EncodedUser {
  const n = batch.historyLength;
  const m = batch.searchLength;
  return {
    watchIds: batch.watchIds.slice(row * n, row * n + batch.watchCount[row]!),
    searchIds: batch.searchIds.slice(row * m, row * m + batch.searchCount[row]!),
    categorical: batch.categorical.slice(row * NUM_CATEGORICAL, (row + 1) * NUM_CATEGORICAL),
    continuous: batch.continuous.slice(row * NUM_CONTINUOUS, (row + 1) * NUM_CONTINUOUS),
  };
}

/**
 * The resolved context of dataset user `user` over their training rows `rows` (chronological),
 * with searches up to `asOf`: the trainer resolves each user once and encodes example t with
 * {@link encodeResolved}(space, resolved, t, time of row t, time of row t, ...), which gives the
 * same encoding as {@link encodeUser} on contextFromDataset(dataset, user, rows[0..t), time of t).
 */
export function resolveDatasetUser(
  space: FeatureSpace,
  dataset: Dataset,
  user: number,
  rows: ArrayLike<number>,
  asOf: number,
): ResolvedUser {
  return resolveUser(space, contextFromDataset(dataset, user, rows, asOf));
}
