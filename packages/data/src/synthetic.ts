/**
 * `synthetic:KEY=VALUE,...` — the project's seeded, deterministic generator of a YouTube-like
 * watch log (same spec → identical dataset and fingerprint, on any machine).
 *
 * Model (all randomness from ./prng.ts, one independent stream per user):
 * - K latent **topics**, each with a name (tag), a vocabulary of `words` pseudo-words (used in
 *   tags, titles and search queries), a popularity, a preferred audience age, a gender skew and a
 *   typical video duration.
 * - **Users** get a region (`geo`, Zipf-distributed), age, gender and an age-dependent occupation;
 *   their sparse interest mixture (1–5 topics, random weights) is drawn from a topic prior shifted
 *   by region, age, gender and occupation, so demographics and geography are informative.
 * - **Channels** specialise in one topic; **items** belong to a channel (Zipf channel sizes), have
 *   the channel's topic 85% of the time, sometimes a secondary topic, a duration, a Pareto
 *   popularity prior and an upload time: `backlog` of the catalogue before the period, the rest
 *   uniformly over it, so new items arrive all the time. Consecutive uploads of a channel on the
 *   same topic form **series** (episode n+1 follows episode n).
 * - **Sessions**: each user joins at a random time in the first 80% of the period and has
 *   sessions spread over the rest of it. At each step the user is shown a slate of `slate` items
 *   available at that moment and not yet watched: the next episode of the last watched series
 *   ("up next"), items of the session's topic, of the user's other interests, of the last watched
 *   channel, popular items (often restricted to the last 14 days) and random items. The user
 *   examines positions top-down (cascade with position bias) and clicks with a probability rising
 *   with interest in the item's topics, the session topic, channel loyalty, series continuation,
 *   freshness and popularity; the first click ends the slate. A click is a watch event whose
 *   weight is the watch time in seconds (a fraction of the duration growing with affinity).
 *   The session topic follows the clicked item, which gives the log its sequential structure.
 * - **Searches**: a session starts with a search with probability `search` (and a search may
 *   follow a slate without clicks): the query is 1–3 words of one interest topic (sometimes with
 *   the topic name), and the following slate shows items of that topic.
 * - **Impressions** (every slate position shown, clicked or not) are kept for the last
 *   `impressions` slate positions of each user (0 = none), to bound memory at scale.
 *
 * Defaults (`synthetic:` alone): users=5000, items=2000, events=40 (mean watches per user,
 * log-normally spread, at least 1), topics=20, channels=items/20, days=90, slate=8,
 * impressions=50, search=0.2, regions=30, words=12, backlog=0.25, start=1600000000, seed=1.
 * Ids are decimal strings "1".."N" (so index = id - 1).
 *
 * Memory: the generator holds the output columns plus O(items) sampling tables and O(events of
 * one user) scratch; no per-event objects. Events are preallocated from the per-user watch
 * budgets drawn up front (a user who ignores too many slates in a row ends a session early, so the
 * log can be slightly shorter than the budget; the columns are then views of the allocation).
 */
import { fingerprint, standardCounts } from "./build.js";
import { Growable } from "./columns.js";
import { Rng } from "./prng.js";
import type { Dataset, EventLog, ImpressionLog, ItemTable, SearchLog, UserTable } from "./types.js";

export interface SyntheticOptions {
  readonly users: number;
  readonly items: number;
  readonly seed: number;
  readonly topics: number;
  /** 0 = automatic (items / 20, at least 1). */
  readonly channels: number;
  /** Mean watch events per user. */
  readonly events: number;
  readonly days: number;
  /** Unix seconds at which the period starts. */
  readonly start: number;
  /** Items per slate (impressions per step). */
  readonly slate: number;
  /** Impressions kept per user (the most recent ones); 0 keeps none. */
  readonly impressions: number;
  /** Probability that a session starts with a search. */
  readonly search: number;
  readonly regions: number;
  /** Vocabulary words per topic. */
  readonly words: number;
  /** Fraction of the catalogue uploaded before the period starts. */
  readonly backlog: number;
}

export const SYNTHETIC_DEFAULTS: SyntheticOptions = {
  users: 5000,
  items: 2000,
  seed: 1,
  topics: 20,
  channels: 0,
  events: 40,
  days: 90,
  start: 1_600_000_000,
  slate: 8,
  impressions: 50,
  search: 0.2,
  regions: 30,
  words: 12,
  backlog: 0.25,
};

interface KeyRule {
  readonly min: number;
  readonly max: number;
  readonly integer: boolean;
  readonly help: string;
}

const RULES: Record<keyof SyntheticOptions, KeyRule> = {
  users: { min: 1, max: 50_000_000, integer: true, help: "number of users" },
  items: { min: 1, max: 50_000_000, integer: true, help: "number of items" },
  seed: { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true, help: "random seed" },
  topics: { min: 1, max: 1000, integer: true, help: "latent topics" },
  channels: { min: 0, max: 50_000_000, integer: true, help: "channels (0 = items/20)" },
  events: { min: 1, max: 100_000, integer: false, help: "mean watch events per user" },
  days: { min: 1, max: 100_000, integer: false, help: "length of the period in days" },
  start: { min: 0, max: 4_000_000_000, integer: true, help: "Unix seconds at which the period starts" },
  slate: { min: 1, max: 100, integer: true, help: "items shown per step" },
  impressions: { min: 0, max: 1_000_000, integer: true, help: "impressions kept per user (0 = none)" },
  search: { min: 0, max: 1, integer: false, help: "probability a session starts with a search" },
  regions: { min: 1, max: 10_000, integer: true, help: "geographic regions" },
  words: { min: 2, max: 1000, integer: true, help: "vocabulary words per topic" },
  backlog: { min: 0, max: 1, integer: false, help: "fraction of items uploaded before the period" },
};

/** Parses the part after "synthetic:" ("" → defaults). */
export function parseSyntheticSpec(text: string): SyntheticOptions {
  const out: Record<string, number> = { ...SYNTHETIC_DEFAULTS };
  const seen = new Set<string>();
  const accepted = Object.entries(RULES)
    .map(([k, r]) => `${k} (${r.help})`)
    .join(", ");
  for (const part of text.split(",")) {
    const p = part.trim();
    if (p === "") continue;
    const eq = p.indexOf("=");
    if (eq < 0) throw new Error(`synthetic: "${p}" is not KEY=VALUE; keys: ${accepted}`);
    const key = p.slice(0, eq).trim();
    const raw = p.slice(eq + 1).trim();
    const rule = RULES[key as keyof SyntheticOptions];
    if (rule === undefined) throw new Error(`synthetic: unknown key "${key}"; keys: ${accepted}`);
    if (seen.has(key)) throw new Error(`synthetic: key "${key}" given twice`);
    seen.add(key);
    const v = raw === "" ? NaN : Number(raw);
    if (!Number.isFinite(v)) throw new Error(`synthetic: ${key}="${raw}" is not a number`);
    if (rule.integer && !Number.isInteger(v)) throw new Error(`synthetic: ${key}=${raw} must be an integer`);
    if (v < rule.min || v > rule.max) throw new Error(`synthetic: ${key}=${raw} is out of range [${rule.min}, ${rule.max}]`);
    out[key] = v;
  }
  return out as unknown as SyntheticOptions;
}

const TOPIC_NAMES = [
  "music",
  "gaming",
  "cooking",
  "sports",
  "news",
  "comedy",
  "science",
  "travel",
  "fitness",
  "fashion",
  "tech",
  "movies",
  "education",
  "cars",
  "animals",
  "diy",
  "finance",
  "history",
  "art",
  "kids",
  "beauty",
  "politics",
  "nature",
  "health",
  "space",
  "anime",
  "books",
  "dance",
  "photography",
  "gardening",
];
const OCCUPATIONS = [
  "administrator",
  "artist",
  "educator",
  "engineer",
  "executive",
  "healthcare",
  "homemaker",
  "lawyer",
  "marketing",
  "other",
  "programmer",
  "retired",
  "salesman",
  "scientist",
  "student",
  "technician",
  "writer",
];
const STUDENT = OCCUPATIONS.indexOf("student");
const RETIRED = OCCUPATIONS.indexOf("retired");
const CONSONANTS = "bdfgklmnprstvz";
const VOWELS = "aeiou";
const DAY = 86_400;
const MAX_TOPICS_PER_USER = 5;
const MAX_MISSES = 25;
const FRESH_WINDOW = 14 * DAY;

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/** Cumulative weights → index of the first entry > r·total (binary search). */
function sampleCumulative(cum: Float64Array, rng: Rng): number {
  const r = rng.next() * cum[cum.length - 1]!;
  let lo = 0;
  let hi = cum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cum[mid]! > r) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function cumulative(weights: ArrayLike<number>): Float64Array {
  const cum = new Float64Array(weights.length);
  let s = 0;
  for (let k = 0; k < weights.length; k++) cum[k] = s += weights[k]!;
  return cum;
}

const BLOCK_BITS = 6;
const BLOCK = 1 << BLOCK_BITS;

/** Last value of every block of 64 entries: the coarse level of `firstAbove`. */
function blockLasts(values: Float64Array): Float64Array {
  const blocks = Math.ceil(values.length / BLOCK);
  const out = new Float64Array(blocks);
  for (let b = 0; b < blocks; b++) out[b] = values[Math.min(values.length, (b + 1) * BLOCK) - 1]!;
  return out;
}

/**
 * First k in [lo, hi) with values[k] > x (hi when none), for values non-decreasing on [lo, hi).
 * Two levels — a binary search over block maxima, then within one block of 64 — so that large
 * catalogues touch a few cache lines instead of ~20 scattered ones.
 */
function firstAbove(values: Float64Array, lasts: Float64Array, lo: number, hi: number, x: number): number {
  if (lo >= hi) return hi;
  // Blocks whose last entry lies in [lo, hi - 1): their maxima are sorted and inside the range.
  let a = lo >> BLOCK_BITS;
  let b = (hi - 1) >> BLOCK_BITS;
  while (a < b) {
    const mid = (a + b) >>> 1;
    if (lasts[mid]! > x) b = mid;
    else a = mid + 1;
  }
  let l = Math.max(lo, a << BLOCK_BITS);
  let h = Math.min(hi, (a + 1) << BLOCK_BITS);
  while (l < h) {
    const mid = (l + h) >>> 1;
    if (values[mid]! > x) h = mid;
    else l = mid + 1;
  }
  return l;
}

/**
 * Items grouped (by topic, by channel, or one global group), each group in upload order, with
 * running popularity sums so that "an item of group g available at t, proportional to
 * popularity, optionally uploaded in the last 14 days" is a few two-level searches. The
 * availability bound of each group is memoised for the last time asked (a slate asks many times).
 */
class Sampler {
  private readonly cum: Float64Array;
  private readonly cumLasts: Float64Array;
  private readonly up: Float64Array;
  private readonly upLasts: Float64Array;
  private readonly memoT: Float64Array;
  private readonly memoHi: Int32Array;
  private readonly memoFresh: Int32Array;

  constructor(
    private readonly order: Int32Array,
    private readonly offsets: Int32Array,
    upload: Float64Array,
    pop: Float32Array,
  ) {
    this.cum = new Float64Array(order.length);
    this.up = new Float64Array(order.length);
    let s = 0;
    for (let k = 0; k < order.length; k++) {
      this.cum[k] = s += pop[order[k]!]!;
      this.up[k] = upload[order[k]!]!;
    }
    this.cumLasts = blockLasts(this.cum);
    this.upLasts = blockLasts(this.up);
    this.memoT = new Float64Array(offsets.length - 1).fill(Infinity);
    this.memoHi = new Int32Array(offsets.length - 1);
    this.memoFresh = new Int32Array(offsets.length - 1);
  }

  /**
   * End of group g's items uploaded at or before t; also memoises the start of the fresh window.
   * A user's clock only moves forward, so the memo is usually advanced by a few steps.
   */
  private available(g: number, t: number): number {
    const last = this.memoT[g]!;
    if (last === t) return this.memoHi[g]!;
    const lo = this.offsets[g]!;
    const end = this.offsets[g + 1]!;
    const freshAbove = t - FRESH_WINDOW - 1; // uploads are whole seconds: ">= t - W" is "> t - W - 1"
    let hi: number;
    let fresh: number;
    if (last < t) {
      hi = this.memoHi[g]!;
      for (let steps = 0; hi < end && this.up[hi]! <= t; steps++, hi++) {
        if (steps === 8) {
          hi = firstAbove(this.up, this.upLasts, hi, end, t);
          break;
        }
      }
      fresh = this.memoFresh[g]!;
      for (let steps = 0; fresh < hi && this.up[fresh]! <= freshAbove; steps++, fresh++) {
        if (steps === 8) {
          fresh = firstAbove(this.up, this.upLasts, fresh, hi, freshAbove);
          break;
        }
      }
    } else {
      hi = firstAbove(this.up, this.upLasts, lo, end, t);
      fresh = firstAbove(this.up, this.upLasts, lo, hi, freshAbove);
    }
    this.memoT[g] = t;
    this.memoHi[g] = hi;
    this.memoFresh[g] = fresh;
    return hi;
  }

  /** Popularity-weighted item of group g available at t (integer seconds), or -1. */
  sample(g: number, t: number, fresh: boolean, rng: Rng): number {
    let lo = this.offsets[g]!;
    const hi = this.available(g, t);
    if (hi <= lo) return -1;
    if (fresh && this.memoFresh[g]! < hi) lo = this.memoFresh[g]!;
    const base = lo > 0 ? this.cum[lo - 1]! : 0;
    const r = base + rng.next() * (this.cum[hi - 1]! - base);
    return this.order[Math.min(hi - 1, firstAbove(this.cum, this.cumLasts, lo, hi, r))]!;
  }

  /** Uniformly random item of group g available at t, or -1. */
  uniform(g: number, t: number, rng: Rng): number {
    const lo = this.offsets[g]!;
    const hi = this.available(g, t);
    return hi <= lo ? -1 : this.order[lo + rng.int(hi - lo)]!;
  }
}

/** Stable grouping of `order` by `group[item]` (counting sort). */
function groupBy(order: Int32Array, group: Int32Array, groups: number): { order: Int32Array; offsets: Int32Array } {
  const offsets = new Int32Array(groups + 1);
  for (let k = 0; k < order.length; k++) offsets[group[order[k]!]! + 1]!++;
  for (let g = 0; g < groups; g++) offsets[g + 1]! += offsets[g]!;
  const cursor = offsets.slice(0, groups);
  const out = new Int32Array(order.length);
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!;
    out[cursor[group[i]!]!++] = i;
  }
  return { order: out, offsets };
}

function makeWords(rng: Rng, count: number): string[] {
  const seen = new Set<string>([...TOPIC_NAMES]);
  const out: string[] = [];
  while (out.length < count) {
    const syllables = 2 + rng.int(2);
    let w = "";
    for (let s = 0; s < syllables; s++) w += CONSONANTS[rng.int(CONSONANTS.length)]! + VOWELS[rng.int(VOWELS.length)]!;
    if (rng.next() < 0.4) w += CONSONANTS[rng.int(CONSONANTS.length)]!;
    if (!seen.has(w)) {
      seen.add(w);
      out.push(w);
    }
  }
  return out;
}

/**
 * A set of the current user's watched items: open addressing in a table sized for the largest
 * watch budget, so lookups stay in L1 cache instead of touching a per-item array of 1M entries.
 */
class WatchedSet {
  private readonly keys: Int32Array;
  private readonly slots: Int32Array;
  private readonly shift: number;
  private count = 0;

  constructor(capacity: number) {
    let bits = 4;
    while (1 << bits < 2 * capacity + 2) bits++;
    this.keys = new Int32Array(1 << bits).fill(-1);
    this.slots = new Int32Array(capacity + 1);
    this.shift = 32 - bits;
  }

  has(item: number): boolean {
    const mask = this.keys.length - 1;
    for (let h = Math.imul(item, 0x9e3779b1) >>> this.shift; ; h = (h + 1) & mask) {
      const k = this.keys[h]!;
      if (k === item) return true;
      if (k === -1) return false;
    }
  }

  add(item: number): void {
    const mask = this.keys.length - 1;
    let h = Math.imul(item, 0x9e3779b1) >>> this.shift;
    while (this.keys[h] !== -1) {
      if (this.keys[h] === item) return;
      h = (h + 1) & mask;
    }
    this.keys[h] = item;
    this.slots[this.count++] = h;
  }

  clear(): void {
    for (let k = 0; k < this.count; k++) this.keys[this.slots[k]!] = -1;
    this.count = 0;
  }
}

function inSlate(slate: Int32Array, n: number, item: number): boolean {
  for (let q = 0; q < n; q++) if (slate[q] === item) return true;
  return false;
}

/** The user's interest weight in topic k (0 when not an interest). */
function interestOf(k: number, topics: Int32Array, weights: Float64Array, m: number): number {
  for (let j = 0; j < m; j++) if (topics[j] === k) return weights[j]!;
  return 0;
}

/** A topic drawn from the user's interest mixture. */
function pickInterest(topics: Int32Array, weights: Float64Array, m: number, rng: Rng): number {
  let r = rng.next();
  for (let j = 0; j < m - 1; j++) if ((r -= weights[j]!) < 0) return topics[j]!;
  return topics[m - 1]!;
}

/** 1–3 distinct words of the topic's vocabulary, preceded by the topic name 30% of the time. */
function makeQuery(topic: number, topicNames: readonly string[], words: readonly string[], V: number, rng: Rng): string {
  const parts: string[] = [];
  if (rng.next() < 0.3) parts.push(topicNames[topic]!);
  const length = parts.length + 1 + rng.int(Math.min(3, V));
  while (parts.length < length) {
    const w = words[topic * V + rng.int(V)]!;
    if (!parts.includes(w)) parts.push(w);
  }
  return parts.join(" ");
}

export function generateSynthetic(spec: string, o: SyntheticOptions): Dataset {
  const K = o.topics;
  const V = o.words;
  const N = o.items;
  const U = o.users;
  const C = o.channels > 0 ? Math.min(o.channels, N) : Math.max(1, Math.round(N / 20));
  const R = o.regions;
  const start = o.start;
  const period = o.days * DAY;
  const end = start + period;
  const g = new Rng(o.seed, 0, 0);

  // ---- Topics.
  const topicNames = Array.from({ length: K }, (_, k) => (k < TOPIC_NAMES.length ? TOPIC_NAMES[k]! : `topic${k + 1}`));
  const words = makeWords(g, K * V); // words of topic k: words[k*V .. (k+1)*V)
  const topicPop = new Float64Array(K);
  const topicAge = new Float64Array(K);
  const topicFemale = new Float64Array(K);
  const topicDuration = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    topicPop[k] = 1 / Math.pow(k + 1, 0.7);
    topicAge[k] = 15 + 45 * g.next();
    topicFemale[k] = Math.exp(0.6 * g.normal());
    topicDuration[k] = Math.min(3600, Math.max(60, 300 * Math.exp(0.9 * g.normal())));
  }
  const topicCum = cumulative(topicPop);

  // ---- Regions (geo) and occupation effects on topics.
  const regionWidth = String(R).length;
  const regionNames = Array.from({ length: R }, (_, r) => `r${pad(r + 1, regionWidth)}`);
  const regionCum = cumulative(Array.from({ length: R }, (_, r) => 1 / (r + 1)));
  const regionBias = new Float64Array(R * K);
  for (let r = 0; r < R; r++) {
    for (let k = 0; k < K; k++) regionBias[r * K + k] = Math.exp(0.8 * g.normal());
    for (let f = 0; f < Math.min(2, K); f++) regionBias[r * K + g.int(K)]! *= 4;
  }
  const occupationBias = new Float64Array(OCCUPATIONS.length * K);
  for (let x = 0; x < occupationBias.length; x++) occupationBias[x] = Math.exp(0.5 * g.normal());

  // ---- Channels.
  const channelTopic = new Int32Array(C);
  for (let c = 0; c < C; c++) channelTopic[c] = sampleCumulative(topicCum, g);
  const channelCum = cumulative(Array.from({ length: C }, (_, c) => 1 / Math.pow(c + 1, 0.8)));

  // ---- Items.
  const itemChannel = new Int32Array(N);
  const itemTopic = new Int32Array(N);
  const itemTopic2 = new Int32Array(N).fill(-1);
  const upload = new Float64Array(N);
  const pop = new Float32Array(N);
  const duration = new Float32Array(N);
  for (let i = 0; i < N; i++) {
    const c = sampleCumulative(channelCum, g);
    itemChannel[i] = c;
    const k = g.next() < 0.85 ? channelTopic[c]! : sampleCumulative(topicCum, g);
    itemTopic[i] = k;
    if (K > 1 && g.next() < 0.25) itemTopic2[i] = (k + 1 + g.int(K - 1)) % K;
    upload[i] = Math.floor(g.next() < o.backlog ? start - 365 * DAY * g.next() : start + period * g.next());
    pop[i] = Math.min(1000, Math.pow(1 - g.next(), -1 / 1.3));
    duration[i] = Math.round(Math.min(4 * 3600, Math.max(15, topicDuration[k]! * Math.exp(0.5 * g.normal()))));
  }

  // Series: consecutive uploads of a channel on one topic; episodes share title words.
  const byChannelOrder = Int32Array.from({ length: N }, (_, i) => i).sort(
    (a, b) => itemChannel[a]! - itemChannel[b]! || upload[a]! - upload[b]! || a - b,
  );
  const nextInSeries = new Int32Array(N).fill(-1);
  const episode = new Int32Array(N);
  const word1 = new Int32Array(N);
  const word2 = new Int32Array(N);
  for (let k = 0; k < N; k++) {
    const i = byChannelOrder[k]!;
    const prev = k > 0 ? byChannelOrder[k - 1]! : -1;
    if (prev >= 0 && itemChannel[prev] === itemChannel[i] && itemTopic[prev] === itemTopic[i] && g.next() < 0.6) {
      nextInSeries[prev] = i;
      episode[i] = episode[prev]! + 1;
      word1[i] = word1[prev]!;
      word2[i] = word2[prev]!;
    } else {
      episode[i] = 1;
      const base = itemTopic[i]! * V;
      word1[i] = base + g.int(V);
      word2[i] = base + ((word1[i]! - base + 1 + g.int(V - 1)) % V);
    }
  }
  const channelGroups = groupBy(byChannelOrder, itemChannel, C);
  const byUpload = Int32Array.from({ length: N }, (_, i) => i).sort((a, b) => upload[a]! - upload[b]! || a - b);
  const topicGroups = groupBy(byUpload, itemTopic, K);
  const globalSampler = new Sampler(byUpload, Int32Array.of(0, N), upload, pop);
  const topicSampler = new Sampler(topicGroups.order, topicGroups.offsets, upload, pop);
  const channelSampler = new Sampler(channelGroups.order, channelGroups.offsets, upload, pop);

  // Tags: topic name, the two title words, the secondary topic's name. Values: topic names, then words.
  const tagOffsets = new Int32Array(N + 1);
  const tagCodesAll = new Int32Array(4 * N);
  let nt = 0;
  for (let i = 0; i < N; i++) {
    tagCodesAll[nt++] = itemTopic[i]!;
    tagCodesAll[nt++] = K + word1[i]!;
    tagCodesAll[nt++] = K + word2[i]!;
    if (itemTopic2[i]! >= 0) tagCodesAll[nt++] = itemTopic2[i]!;
    tagOffsets[i + 1] = nt;
  }
  const titles = new Array<string>(N);
  // join, not a template literal: a template literal of 13 characters or more is a tree of
  // concatenated strings (three heap objects per title, a million titles in every process that
  // loads the catalogue, marked by every full GC); join makes one flat string.
  for (let i = 0; i < N; i++) titles[i] = [words[word1[i]!], words[word2[i]!], episode[i]].join(" ");
  const channelWidth = String(C).length;
  const items: ItemTable = {
    ids: Array.from({ length: N }, (_, i) => String(i + 1)),
    titles,
    tagOffsets,
    tagCodes: tagCodesAll.slice(0, nt),
    tagValues: [...topicNames, ...words],
    channel: { codes: itemChannel, values: Array.from({ length: C }, (_, c) => `channel${pad(c + 1, channelWidth)}`) },
    uploadTimestamp: upload,
    durationSeconds: duration,
  };

  // ---- Per-user watch budgets (stream 1), drawn first to size the event columns.
  const budget = new Int32Array(U);
  let capacity = 0;
  const cap = Math.max(1, Math.min(Math.floor(N * 0.8), Math.ceil(o.events * 20)));
  for (let u = 0; u < U; u++) {
    const r = new Rng(o.seed, 1, u);
    const ln = Math.exp(0.9 * r.normal() - 0.405); // mean 1
    budget[u] = Math.max(1, Math.min(cap, Math.round(1 + (o.events - 1) * ln)));
    capacity += budget[u]!;
  }

  const evUser = new Int32Array(capacity);
  const evItem = new Int32Array(capacity);
  const evTime = new Float64Array(capacity);
  const evWeight = new Float32Array(capacity);
  const userOffsets = new Int32Array(U + 1);
  let ne = 0;

  const age = new Float32Array(U);
  const gender = new Int32Array(U);
  const occupation = new Int32Array(U);
  const geo = new Int32Array(U);

  const searchUser = new Growable(Int32Array);
  const searchTime = new Growable(Float64Array);
  const searchQuery: string[] = [];
  const searchOffsets = new Int32Array(U + 1);

  const keepImpressions = o.impressions;
  const impUser = new Growable(Int32Array);
  const impItem = new Growable(Int32Array);
  const impTime = new Growable(Float64Array);
  const impClicked = new Growable(Uint8Array);
  const impWatch = new Growable(Float32Array);
  const impOffsets = new Int32Array(U + 1);
  // Ring buffer of one user's most recent impressions.
  const ringItem = new Int32Array(keepImpressions);
  const ringTime = new Float64Array(keepImpressions);
  const ringClicked = new Uint8Array(keepImpressions);
  const ringWatch = new Float32Array(keepImpressions);
  let slates = 0;

  // Per-user scratch (no per-user allocation beyond the RNG; stamps avoid clearing).
  const prior = new Float64Array(K);
  const userTopic = new Int32Array(MAX_TOPICS_PER_USER);
  const userWeight = new Float64Array(MAX_TOPICS_PER_USER);
  const sessionStarts = new Float64Array(cap + 1);
  const sessionLengths = new Int32Array(cap + 1);
  const slate = new Int32Array(o.slate);
  const watched = new WatchedSet(cap);
  const channelUser = new Int32Array(C).fill(-1);
  const channelWatches = new Int32Array(C);
  const examine = Float64Array.from({ length: o.slate }, (_, p) => 1 / Math.pow(1 + p, 0.7));
  // The click model reads several attributes of random items: one 32-byte record per item
  // (topic, secondary topic, channel, upload time, popularity term) costs one cache miss, not five.
  const STRIDE = 4;
  const packed = new Float64Array(N * STRIDE);
  for (let i = 0; i < N; i++) {
    packed[i * STRIDE] = itemTopic[i]! + 4096 * (itemTopic2[i]! + 1);
    packed[i * STRIDE + 1] = itemChannel[i]!;
    packed[i * STRIDE + 2] = upload[i]!;
    packed[i * STRIDE + 3] = 0.25 * Math.log(pop[i]!);
  }
  const recordSearch = (u: number, time: number, query: string): void => {
    searchUser.push(u);
    searchTime.push(time);
    searchQuery.push(query);
  };

  for (let u = 0; u < U; u++) {
    const rng = new Rng(o.seed, 2, u);
    userOffsets[u] = ne;
    searchOffsets[u] = searchUser.length;
    impOffsets[u] = impUser.length;

    // Demographics.
    const region = sampleCumulative(regionCum, rng);
    const a = 13 + Math.round(55 * Math.pow(rng.next(), 1.4));
    const female = rng.next() < 0.5;
    let occ: number;
    if (a < 23 && rng.next() < 0.7) occ = STUDENT;
    else if (a >= 62 && rng.next() < 0.6) occ = RETIRED;
    else {
      do occ = rng.int(OCCUPATIONS.length);
      while (occ === STUDENT || occ === RETIRED);
    }
    age[u] = a;
    gender[u] = female ? 0 : 1;
    occupation[u] = occ;
    geo[u] = region;

    // Interests: 1–5 topics drawn without replacement from the demographic prior.
    for (let k = 0; k < K; k++) {
      const d = (a - topicAge[k]!) / 12;
      const sex = female ? topicFemale[k]! : 1 / topicFemale[k]!;
      prior[k] = topicPop[k]! * regionBias[region * K + k]! * occupationBias[occ * K + k]! * sex * (Math.exp(-0.5 * d * d) + 0.1);
    }
    const m = Math.min(K, MAX_TOPICS_PER_USER, 1 + Math.floor(rng.exp() * 1.2));
    let weightSum = 0;
    for (let j = 0; j < m; j++) {
      let total = 0;
      for (let k = 0; k < K; k++) total += prior[k]!;
      let r = rng.next() * total;
      let k = 0;
      while (k < K - 1 && (r -= prior[k]!) >= 0) k++;
      userTopic[j] = k;
      prior[k] = 0;
      userWeight[j] = rng.exp();
      weightSum += userWeight[j]!;
    }
    for (let j = 0; j < m; j++) userWeight[j]! /= weightSum;

    // Sessions: lengths (mean 5) up to the budget; start times uniform over the user's window.
    const want = budget[u]!;
    let ns = 0;
    for (let left = want; left > 0; ns++) {
      const len = Math.min(left, 1 + Math.floor(rng.exp() * 4));
      sessionLengths[ns] = len;
      left -= len;
    }
    const userStart = start + 0.8 * period * rng.next();
    const span = Math.max(3600, end - 3600 - userStart);
    let acc = 0;
    for (let s = 0; s <= ns; s++) sessionStarts[s] = acc += rng.exp();
    for (let s = 0; s < ns; s++) sessionStarts[s] = Math.floor(userStart + (span * sessionStarts[s]!) / acc);

    watched.clear();
    let impCount = 0;
    let t = 0;
    let lastItem = -1;
    for (let s = 0; s < ns; s++) {
      t = Math.max(t + 60, sessionStarts[s]!);
      let sessionTopic = pickInterest(userTopic, userWeight, m, rng);
      let searchMode = false;
      if (rng.next() < o.search) {
        recordSearch(u, t, makeQuery(sessionTopic, topicNames, words, V, rng));
        t += 5 + rng.int(25);
        searchMode = true;
      }
      let got = 0;
      let misses = 0;
      while (got < sessionLengths[s]! && misses < MAX_MISSES) {
        // Build the slate: up next, session topic, other interests, last channel, popular, random.
        let n = 0;
        if (lastItem >= 0 && !searchMode) {
          const nx = nextInSeries[lastItem]!;
          if (nx >= 0 && upload[nx]! <= t && !watched.has(nx) && rng.next() < 0.8) slate[n++] = nx;
        }
        for (let attempt = 0; n < o.slate && attempt < 3 * o.slate; attempt++) {
          const r = rng.next();
          let sampler = topicSampler;
          let group = sessionTopic;
          let uniform = false;
          if (searchMode || r < 0.3) group = sessionTopic;
          else if (r < 0.5) group = pickInterest(userTopic, userWeight, m, rng);
          else if (r < 0.65 && lastItem >= 0) {
            sampler = channelSampler;
            group = itemChannel[lastItem]!;
          } else {
            sampler = globalSampler;
            group = 0;
            uniform = r >= 0.9;
          }
          let i = uniform ? sampler.uniform(group, t, rng) : sampler.sample(group, t, rng.next() < 0.3, rng);
          // An already watched or shown item: one uniform retry in the same group.
          if (i >= 0 && (watched.has(i) || inSlate(slate, n, i))) i = sampler.uniform(group, t, rng);
          if (i < 0 || watched.has(i) || inSlate(slate, n, i)) continue;
          slate[n++] = i;
        }
        if (n === 0) {
          misses++;
          t += 30;
          continue;
        }
        slates++;
        // Cascade click model: examine top-down, click with position bias × attractiveness.
        let clicked = -1;
        let aff = 0;
        for (let p = 0; p < n; p++) {
          const i = slate[p]!;
          const topics = packed[i * STRIDE]!;
          const k1 = topics % 4096;
          const k2 = Math.floor(topics / 4096) - 1;
          const af = interestOf(k1, userTopic, userWeight, m) + (k2 >= 0 ? 0.3 * interestOf(k2, userTopic, userWeight, m) : 0);
          const c = packed[i * STRIDE + 1]!;
          const loyal = channelUser[c] === u ? channelWatches[c]! : 0;
          const utility =
            -3.2 +
            4 * af +
            (k1 === sessionTopic ? 0.8 : 0) +
            0.5 * Math.log1p(loyal) +
            (lastItem >= 0 && nextInSeries[lastItem] === i ? 2 : 0) +
            Math.exp(-(t - packed[i * STRIDE + 2]!) / (7 * DAY)) +
            packed[i * STRIDE + 3]! +
            1.2 * (rng.next() - 0.5);
          if (rng.next() * (1 + Math.exp(-utility)) < examine[p]!) {
            clicked = p;
            aff = af;
            break;
          }
        }
        let watchSeconds = 0;
        if (clicked >= 0) {
          const i = slate[clicked]!;
          const series = lastItem >= 0 && nextInSeries[lastItem] === i ? 0.5 : 0;
          const fraction = 1 / (1 + Math.exp(-(-0.5 + 2.5 * aff + series + 1.6 * (rng.next() - 0.5))));
          watchSeconds = Math.max(1, Math.round(duration[i]! * fraction));
        }
        if (keepImpressions > 0) {
          for (let p = 0; p < n; p++) {
            const slot = impCount++ % keepImpressions;
            ringItem[slot] = slate[p]!;
            ringTime[slot] = t;
            ringClicked[slot] = p === clicked ? 1 : 0;
            ringWatch[slot] = p === clicked ? watchSeconds : 0;
          }
        }
        if (clicked < 0) {
          misses++;
          t += 10 + rng.int(30);
          if (rng.next() < 0.5 * o.search) {
            sessionTopic = pickInterest(userTopic, userWeight, m, rng);
            recordSearch(u, t, makeQuery(sessionTopic, topicNames, words, V, rng));
            t += 5 + rng.int(25);
            searchMode = true;
          }
          continue;
        }
        const i = slate[clicked]!;
        evUser[ne] = u;
        evItem[ne] = i;
        evTime[ne] = t;
        evWeight[ne] = watchSeconds;
        ne++;
        got++;
        misses = 0;
        searchMode = false;
        watched.add(i);
        const c = itemChannel[i]!;
        if (channelUser[c] !== u) {
          channelUser[c] = u;
          channelWatches[c] = 0;
        }
        channelWatches[c]!++;
        lastItem = i;
        sessionTopic = itemTopic[i]!;
        t += watchSeconds + 3 + rng.int(30);
      }
    }
    if (keepImpressions > 0) {
      const kept = Math.min(impCount, keepImpressions);
      for (let q = impCount - kept; q < impCount; q++) {
        const slot = q % keepImpressions;
        impUser.push(u);
        impItem.push(ringItem[slot]!);
        impTime.push(ringTime[slot]!);
        impClicked.push(ringClicked[slot]!);
        impWatch.push(ringWatch[slot]!);
      }
    }
  }
  userOffsets[U] = ne;
  searchOffsets[U] = searchUser.length;
  impOffsets[U] = impUser.length;

  const view = <T extends Int32Array | Float64Array | Float32Array>(a: T): T =>
    (ne === capacity ? a : ne > capacity * 0.9 ? a.subarray(0, ne) : a.slice(0, ne)) as T;
  const events: EventLog = {
    user: view(evUser),
    item: view(evItem),
    timestamp: view(evTime),
    weight: view(evWeight),
    userOffsets,
  };
  const users: UserTable = {
    ids: Array.from({ length: U }, (_, u) => String(u + 1)),
    age,
    gender: { codes: gender, values: ["F", "M"] },
    occupation: { codes: occupation, values: OCCUPATIONS },
    geo: { codes: geo, values: regionNames },
  };
  const searches: SearchLog = {
    user: searchUser.toArray(),
    timestamp: searchTime.toArray(),
    query: searchQuery,
    userOffsets: searchOffsets,
  };
  const impressions: ImpressionLog = {
    user: impUser.toArray(),
    item: impItem.toArray(),
    timestamp: impTime.toArray(),
    clicked: impClicked.toArray(),
    watchSeconds: impWatch.toArray(),
    userOffsets: impOffsets,
  };
  return {
    spec,
    fingerprint: fingerprint(users, items, events, searches, impressions),
    users,
    items,
    events,
    searches,
    impressions,
    report: {
      counts: {
        ...standardCounts(users, items, events, searches),
        impressions: impressions.user.length,
        slates_shown: slates,
        watch_budget: capacity,
        channels: C,
        topics: K,
      },
      warnings: [],
    },
  };
}
