/**
 * THE ranking feature encoder: training (the ranker's trainer) and serving (the pipeline, the
 * ranking service) both call {@link encodeCandidates}, so the features cannot drift apart.
 *
 * A RankingContext is resolved once per request ({@link resolveRankingUser}); each candidate then
 * costs O(its tags + its sources): {@link rawCandidateFeatures} computes the raw values and
 * {@link normalizeRaw} turns them into model inputs.
 */
import { CATEGORICAL_FEATURES, NUM_CATEGORICAL, Vocabulary } from "@recsys/features";
import { BASE_FEATURES, NULLABLE_FEATURES, type BaseFeature, type RankingSpace } from "./space.js";
import type { RankingCandidate, RankingContext } from "./types.js";
import { WIDE_SLOTS, wideCrosses, type WideUser } from "./wide.js";

/** Column of each base feature in a raw row (BASE_FEATURES order). */
const BASE = Object.fromEntries(BASE_FEATURES.map((f, j) => [f, j])) as Readonly<Record<BaseFeature, number>>;
/** NULLABLE_FEATURES as a flag per BASE_FEATURES column. */
const NULLABLE_BASE: readonly boolean[] = BASE_FEATURES.map((f) => NULLABLE_FEATURES.has(f));

/** A request's user, resolved against the space at request time `t`. */
export interface ResolvedRankingUser extends WideUser {
  readonly time: number;
  /** Item vocabulary ids of the last historyLength watches at or before t, oldest first. */
  readonly historyIds: Int32Array;
  /** Vocabulary ids in CATEGORICAL_FEATURES order (OOV when missing or unknown). */
  readonly categorical: Int32Array;
  readonly age: number;
  /** Watches at or before t. */
  readonly numWatches: number;
  /** Time of the latest watch at or before t, NaN without one. */
  readonly lastWatch: number;
  /** Catalogue channel code → time of the user's latest watch of it / number of watches of it. */
  readonly channelLast: ReadonlyMap<number, number>;
  readonly channelCount: ReadonlyMap<number, number>;
  /** Catalogue tag code → time of the latest watch having it. */
  readonly tagLast: ReadonlyMap<number, number>;
  /** Tag code → number of the last historyLength watches having it. */
  readonly tagRecent: ReadonlyMap<number, number>;
  readonly recentCount: number;
  /** External item id → impressions strictly before t. */
  readonly impressions: ReadonlyMap<string, number>;
}

/** Resolves a context at time `t`: only watches at or before t and impressions before t count. */
export function resolveRankingUser(space: RankingSpace, ctx: RankingContext, t: number): ResolvedRankingUser {
  if (!Number.isFinite(t)) throw new Error(`ranking: request time must be a finite Unix time, got ${t}`);
  const catalog = space.catalog;
  const visible = ctx.watches.filter((w) => {
    if (!Number.isFinite(w.timestamp)) throw new Error(`ranking context: watch of item "${w.itemId}" has no finite timestamp`);
    return w.timestamp <= t;
  });
  // Stable sort by time (contexts are usually chronological already).
  visible.sort((a, b) => a.timestamp - b.timestamp);
  const n = space.config.historyLength;
  const start = Math.max(0, visible.length - n);
  const historyIds = new Int32Array(visible.length - start);
  for (let k = start; k < visible.length; k++) historyIds[k - start] = space.features.items.id(visible[k]!.itemId);

  const channelLast = new Map<number, number>();
  const channelCount = new Map<number, number>();
  const tagLast = new Map<number, number>();
  const tagRecent = new Map<number, number>();
  // The channel of the last watch (-1 when unknown), found in the same pass.
  let lastChannel = -1;
  for (let k = 0; k < visible.length; k++) {
    const w = visible[k]!;
    const i = catalog.indexOf(w.itemId);
    if (i < 0) continue;
    const c = catalog.channel[i]!;
    if (k === visible.length - 1) lastChannel = c;
    if (c >= 0) {
      channelLast.set(c, w.timestamp);
      channelCount.set(c, (channelCount.get(c) ?? 0) + 1);
    }
    for (let p = catalog.tagOffsets[i]!; p < catalog.tagOffsets[i + 1]!; p++) {
      const g = catalog.tagCodes[p]!;
      tagLast.set(g, w.timestamp);
      if (k >= start) tagRecent.set(g, (tagRecent.get(g) ?? 0) + 1);
    }
  }
  let topTag = -1;
  let topCount = 0;
  for (const [g, count] of tagRecent) {
    if (count > topCount || (count === topCount && g < topTag)) {
      topTag = g;
      topCount = count;
    }
  }
  const impressions = new Map<string, number>();
  for (const imp of ctx.impressions ?? []) {
    if (imp.timestamp < t) impressions.set(imp.itemId, (impressions.get(imp.itemId) ?? 0) + 1);
  }
  const categorical = new Int32Array(NUM_CATEGORICAL);
  CATEGORICAL_FEATURES.forEach((f, j) => {
    categorical[j] = space.features.categorical(f).id(ctx[f]);
  });
  return {
    time: t,
    historyIds,
    categorical,
    age: typeof ctx.age === "number" && Number.isFinite(ctx.age) ? ctx.age : NaN,
    numWatches: visible.length,
    lastWatch: visible.length > 0 ? visible[visible.length - 1]!.timestamp : NaN,
    channelLast,
    channelCount,
    tagLast,
    tagRecent,
    recentCount: visible.length - start,
    impressions,
    lastItem: historyIds.length > 0 ? historyIds[historyIds.length - 1]! : -1,
    lastChannel,
    topTag,
  };
}

/**
 * Writes the raw feature vector (layout: RankingSpace) of one candidate at `out[offset..)`.
 * `catalogIndex` is the candidate's `space.catalog.indexOf(itemId)` when the caller already has
 * it (one string look-up in a catalogue-sized map per candidate instead of two).
 */
export function rawCandidateFeatures(
  space: RankingSpace,
  user: ResolvedRankingUser,
  candidate: RankingCandidate,
  out: Float64Array,
  offset: number,
  catalogIndex: number = space.catalog.indexOf(candidate.itemId),
): void {
  const t = user.time;
  const catalog = space.catalog;
  const i = catalogIndex;
  let sinceChannel = NaN;
  let channelWatches = 0;
  let sinceTag = NaN;
  let tagShare = 0;
  let itemAge = NaN;
  if (i >= 0) {
    const up = catalog.upload[i]!;
    if (Number.isFinite(up)) itemAge = t - up;
    const c = catalog.channel[i]!;
    if (c >= 0) {
      const last = user.channelLast.get(c);
      if (last !== undefined) sinceChannel = t - last;
      channelWatches = user.channelCount.get(c) ?? 0;
    }
    let latest = -Infinity;
    let most = 0;
    for (let p = catalog.tagOffsets[i]!; p < catalog.tagOffsets[i + 1]!; p++) {
      const g = catalog.tagCodes[p]!;
      const last = user.tagLast.get(g);
      if (last !== undefined && last > latest) latest = last;
      const recent = user.tagRecent.get(g) ?? 0;
      if (recent > most) most = recent;
    }
    if (latest > -Infinity) sinceTag = t - latest;
    tagShare = user.recentCount > 0 ? most / user.recentCount : 0;
  }
  // In BASE_FEATURES order (written in place: this runs for every candidate of every request).
  const stats = candidate.stats;
  out[offset + BASE.user_age] = user.age;
  out[offset + BASE.history_length] = user.numWatches;
  out[offset + BASE.since_last_watch] = t - user.lastWatch;
  out[offset + BASE.item_age] = itemAge;
  out[offset + BASE.item_watch_count] = stats.watchCount;
  out[offset + BASE.item_trending] = stats.trending;
  out[offset + BASE.since_channel] = sinceChannel;
  out[offset + BASE.channel_watches] = channelWatches;
  out[offset + BASE.since_tag] = sinceTag;
  out[offset + BASE.tag_share] = tagShare;
  out[offset + BASE.previous_impressions] = user.impressions.get(candidate.itemId) ?? 0;
  const p = offset + space.rawOffsets.provenance;
  const k = space.sources.length;
  for (let s = 0; s < 2 * k; s++) out[p + s] = NaN;
  let known = 0;
  for (const prov of candidate.provenance) {
    const s = space.sources.indexOf(prov.source);
    if (s < 0) continue;
    if (Number.isNaN(out[p + 2 * s]!)) known++;
    out[p + 2 * s] = prov.rank;
    out[p + 2 * s + 1] = prov.score;
  }
  out[offset + space.rawOffsets.numSources] = known;
  out[offset + space.rawOffsets.position] = candidate.position >= 0 ? candidate.position : NaN;
}

/** x̃, x̃², √x̃ at out[o..o+3). */
function triple(x: number, out: Float32Array, o: number): void {
  out[o] = x;
  out[o + 1] = x * x;
  out[o + 2] = Math.sqrt(x);
}

/** Normalises a raw vector (`raw[rawOffset..)`) into the model's continuous inputs (`out[offset..offset+width)`). */
export function normalizeRaw(space: RankingSpace, raw: Float64Array, rawOffset: number, out: Float32Array, offset: number): void {
  const n = space.normalizers;
  if (n === null) throw new Error("ranking: the feature space has no fitted normalisers");
  let o = offset;
  for (let j = 0; j < BASE_FEATURES.length; j++) {
    const x = raw[rawOffset + j]!;
    const missing = !Number.isFinite(x);
    triple(missing ? 0 : n.base[j]!.transform(x), out, o);
    o += 3;
    if (NULLABLE_BASE[j]) out[o++] = missing ? 1 : 0;
  }
  if (space.config.provenance) {
    const p = rawOffset + space.rawOffsets.provenance;
    for (let s = 0; s < space.sources.length; s++) {
      const rank = raw[p + 2 * s]!;
      if (Number.isNaN(rank)) {
        out.fill(0, o, o + 7);
      } else {
        out[o] = 1;
        triple(1 - n.rank[s]!.transform(rank), out, o + 1);
        const score = raw[p + 2 * s + 1]!;
        triple(Number.isFinite(score) ? n.score[s]!.transform(score) : 0, out, o + 4);
      }
      o += 7;
    }
    out[o++] = space.sources.length > 0 ? raw[rawOffset + space.rawOffsets.numSources]! / space.sources.length : 0;
    const pos = raw[rawOffset + space.rawOffsets.position]!;
    if (Number.isNaN(pos)) {
      triple(0, out, o);
      out[o + 3] = 1;
    } else {
      triple(1 - n.position.transform(pos), out, o);
      out[o + 3] = 0;
    }
    o += 4;
  }
  if (o - offset !== space.width) throw new Error(`ranking: encoded ${o - offset} columns, the space has ${space.width}`);
}

/**
 * Encoded model inputs, one row per candidate, in preallocated row-major buffers. Rows encoded by
 * one `encodeCandidates` call share the user's history: `group[row]` is the first row of that call.
 */
export class RankingBatch {
  readonly item: Int32Array;
  readonly history: Int32Array;
  readonly historyCount: Int32Array;
  readonly group: Int32Array;
  readonly categorical: Int32Array;
  readonly continuous: Float32Array;
  /** The wide part's hashed crosses, WIDE_SLOTS per row (-1 = empty slot; see ./wide.ts). */
  readonly wide: Int32Array;
  /** Rows filled. */
  size = 0;

  constructor(
    readonly capacity: number,
    readonly historyLength: number,
    readonly width: number,
  ) {
    this.item = new Int32Array(capacity);
    this.history = new Int32Array(capacity * historyLength);
    this.historyCount = new Int32Array(capacity);
    this.group = new Int32Array(capacity);
    this.categorical = new Int32Array(capacity * NUM_CATEGORICAL);
    this.continuous = new Float32Array(capacity * width);
    this.wide = new Int32Array(capacity * WIDE_SLOTS);
  }

  static forSpace(space: RankingSpace, capacity: number): RankingBatch {
    return new RankingBatch(capacity, space.config.historyLength, space.width);
  }
}

/** One encoded candidate (a copy of a batch row), for tests and debugging. */
export interface EncodedCandidate {
  readonly item: number;
  readonly history: Int32Array;
  readonly categorical: Int32Array;
  readonly continuous: Float32Array;
  readonly wide: Int32Array;
}

export function encodedRow(batch: RankingBatch, row: number): EncodedCandidate {
  const h = batch.historyLength;
  const w = batch.width;
  return {
    item: batch.item[row]!,
    history: batch.history.slice(row * h, row * h + batch.historyCount[row]!),
    categorical: batch.categorical.slice(row * NUM_CATEGORICAL, (row + 1) * NUM_CATEGORICAL),
    continuous: batch.continuous.slice(row * w, (row + 1) * w),
    wide: batch.wide.slice(row * WIDE_SLOTS, (row + 1) * WIDE_SLOTS),
  };
}

let rawScratch = new Float64Array(0);

/**
 * Encodes `candidates` for the user of `ctx` at request time `t`, appending one row per candidate
 * to `into` (from row `into.size`; a new batch of the right size when omitted). Returns the batch.
 */
export function encodeCandidates(
  space: RankingSpace,
  ctx: RankingContext,
  candidates: readonly RankingCandidate[],
  t: number,
  into?: RankingBatch,
): RankingBatch {
  const batch = into ?? RankingBatch.forSpace(space, Math.max(1, candidates.length));
  if (batch.historyLength !== space.config.historyLength || batch.width !== space.width)
    throw new Error("encodeCandidates: batch buffers do not match the feature space");
  const first = batch.size;
  if (first + candidates.length > batch.capacity)
    throw new Error(`encodeCandidates: ${first + candidates.length} rows exceed the batch capacity ${batch.capacity}`);
  const user = resolveRankingUser(space, ctx, t);
  const w = space.rawWidth;
  if (rawScratch.length < w) rawScratch = new Float64Array(w);
  const h = space.config.historyLength;
  candidates.forEach((c, k) => {
    const row = first + k;
    const i = space.catalog.indexOf(c.itemId);
    rawCandidateFeatures(space, user, c, rawScratch, 0, i);
    normalizeRaw(space, rawScratch, 0, batch.continuous, row * space.width);
    batch.item[row] = space.features.items.id(c.itemId);
    batch.history.set(user.historyIds, row * h);
    batch.historyCount[row] = user.historyIds.length;
    batch.group[row] = first;
    batch.categorical.set(user.categorical, row * NUM_CATEGORICAL);
    wideCrosses(
      user,
      {
        item: batch.item[row]!,
        catalogIndex: i,
        channel: i >= 0 ? space.catalog.channel[i]! : -1,
        sources: c.provenance.map((p) => ({ source: space.sources.indexOf(p.source), rank: p.rank })),
        position: c.position,
      },
      space.catalog.tagCodes,
      space.catalog.tagOffsets,
      batch.wide,
      row * WIDE_SLOTS,
    );
  });
  batch.size = first + candidates.length;
  return batch;
}

/** Raw feature vectors of `candidates` (rows × rawWidth), through the same code as encoding (for fitting normalisers). */
export function rawCandidates(
  space: RankingSpace,
  ctx: RankingContext,
  candidates: readonly RankingCandidate[],
  t: number,
  out: Float64Array,
  offset: number,
): void {
  const user = resolveRankingUser(space, ctx, t);
  candidates.forEach((c, k) => rawCandidateFeatures(space, user, c, out, offset + k * space.rawWidth));
}

/** True when the item is in the ranker's item vocabulary (has its own embedding). */
export function knownItem(space: RankingSpace, itemId: string): boolean {
  return space.features.items.id(itemId) !== Vocabulary.OOV;
}
