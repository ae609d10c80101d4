/**
 * The wide part of the Wide & Deep ranker (Cheng et al., "Wide & Deep Learning for Recommender
 * Systems", DLRS 2016): crossed categorical features of (user, candidate), hashed into one sparse
 * linear model. The crosses are computed by {@link encodeCandidates} (./encode.ts) for every
 * candidate, on the training and the serving path alike, from data at or before the request time.
 *
 * Slots of one candidate (WIDE_SLOTS values, -1 where a slot is empty):
 *   0            candidate item × the user's last watched item (item vocabulary ids)
 *   1            candidate channel × the channel of the user's last watch (both known)
 *   2 .. 2+T−1   each candidate tag (first WIDE_MAX_TAGS) × the user's top tag among the last
 *                historyLength watches (the most frequent; ties: the smallest code)
 *   then         each source that nominated it (first WIDE_MAX_SOURCES of the space's sources) ×
 *                the log2 bucket of its rank in that source
 *   last         the log2 bucket of the merged position (or "none") × the number of sources
 * Each value is a 31-bit hash of (cross id, a, b); the model takes it modulo its bucket count.
 */

export const WIDE_MAX_TAGS = 6;
export const WIDE_MAX_SOURCES = 8;
export const WIDE_SLOTS = 2 + WIDE_MAX_TAGS + WIDE_MAX_SOURCES + 1;

/** Cross ids (the first hash input), for readers of the slots. */
export const WIDE_CROSSES = [
  "item_x_last_item",
  "channel_x_last_channel",
  "tag_x_top_tag",
  "source_x_rank",
  "position_x_num_sources",
] as const;

const CROSS_ITEM = 1;
const CROSS_CHANNEL = 2;
const CROSS_TAG = 3;
const CROSS_SOURCE = 4;
const CROSS_POSITION = 5;

/** A 31-bit hash of three integers (MurmurHash3-style mixing; stable across platforms). */
export function hashCross(cross: number, a: number, b: number): number {
  let h = mixIn(0x9747b28c ^ cross, a);
  h = mixIn(h, b);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & 0x7fffffff;
}

/** One MurmurHash3 block step: the 32-bit key x mixed into the state h. */
function mixIn(h: number, x: number): number {
  let k = Math.imul(x | 0, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** floor(log2(x + 1)): 0 for 0, 1 for 1–2, 2 for 3–6, … */
export function log2Bucket(x: number): number {
  return Math.floor(Math.log2(Math.max(0, x) + 1));
}

/** What the crosses need of the user (part of ResolvedRankingUser). */
export interface WideUser {
  /** Item vocabulary id of the latest watch at or before t (OOV 0 for an unknown item), -1 without history. */
  readonly lastItem: number;
  /** Catalogue channel code of the latest watch, -1 when unknown or without history. */
  readonly lastChannel: number;
  /** Most frequent tag code among the last historyLength watches, -1 without one. */
  readonly topTag: number;
}

/** What the crosses need of the candidate. */
export interface WideCandidate {
  /** Item vocabulary id. */
  readonly item: number;
  /** Catalogue index, -1 when the item is not in the catalogue. */
  readonly catalogIndex: number;
  readonly channel: number;
  /** Source index in the space (sources the space does not know are skipped) and rank. */
  readonly sources: readonly { readonly source: number; readonly rank: number }[];
  /** Merged position, -1 when not in the merged list. */
  readonly position: number;
}

/** Writes the WIDE_SLOTS hashed crosses of one candidate at out[offset..). */
export function wideCrosses(
  user: WideUser,
  cand: WideCandidate,
  tagCodes: ArrayLike<number>,
  tagOffsets: ArrayLike<number>,
  out: Int32Array,
  offset: number,
): void {
  out.fill(-1, offset, offset + WIDE_SLOTS);
  if (user.lastItem >= 0) out[offset] = hashCross(CROSS_ITEM, cand.item, user.lastItem);
  if (cand.channel >= 0 && user.lastChannel >= 0) out[offset + 1] = hashCross(CROSS_CHANNEL, cand.channel, user.lastChannel);
  if (cand.catalogIndex >= 0 && user.topTag >= 0) {
    const from = tagOffsets[cand.catalogIndex]!;
    const to = Math.min(tagOffsets[cand.catalogIndex + 1]!, from + WIDE_MAX_TAGS);
    for (let p = from; p < to; p++) out[offset + 2 + p - from] = hashCross(CROSS_TAG, tagCodes[p]!, user.topTag);
  }
  let known = 0;
  for (const s of cand.sources) {
    if (s.source < 0 || s.source >= WIDE_MAX_SOURCES) continue;
    const slot = offset + 2 + WIDE_MAX_TAGS + s.source;
    if (out[slot] === -1) known++;
    out[slot] = hashCross(CROSS_SOURCE, s.source, log2Bucket(s.rank));
  }
  out[offset + WIDE_SLOTS - 1] = hashCross(CROSS_POSITION, cand.position >= 0 ? log2Bucket(cand.position) : -1, known);
}
