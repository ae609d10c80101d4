/**
 * Ranker training data from the served log (`Dataset.served`, a `store:` dataset): what the system
 * really showed, as the paper's ranker learns (Covington et al. 2016, section 4.2), instead of a
 * replay of the candidate sources.
 *
 * For every served request (a `Recommend` answer, logged with its items, positions and the
 * provenance each item was served with):
 * - the candidates are the items shown (see ServedLog.shown: the impressions the client recorded
 *   with the request id, or the whole answer when it recorded none for that request);
 * - a shown item the user watched within `windowSeconds` after the answer (request time <= watch
 *   time <= request time + window) is a positive weighted by its watch seconds (1 when the watch
 *   has none); a watch is credited to the latest answer that showed the item before it, once;
 * - a shown item not watched within the window is a negative of weight 1; answers whose window
 *   ends after the last known watch (`labelsUntil`) are left out, their labels being incomplete;
 * - the provenance features are the logged ones (source, rank, score as served). The merged
 *   position is not logged; it is estimated as the round-robin merge would have placed the item:
 *   min over its sources of rank × (number of sources in the answer) + the source's order
 *   (exact when no source list ran short and no watched item was dropped);
 * - the item statistics (watch count, trending) and the user's context are taken at the request
 *   time from the training rows strictly before it (the sources are time-gated).
 */
import type { Dataset, ServedLog } from "@recsys/data";
import { SOURCE_ORDER, type SourceSet } from "@recsys/sources";
import { sourceItemStats } from "./dataset-inputs.js";
import type { RankingExamples } from "./examples.js";

export interface ServedExampleOptions {
  /** Training event-log rows (the users' histories, and what the item statistics count). */
  readonly rows: ArrayLike<number>;
  /** A fresh source set (no events yet) holding "popular" and "trending": the item statistics. */
  readonly sources: SourceSet;
  /** A shown item watched at most this long after the answer is a positive. */
  readonly windowSeconds: number;
  /** At most this many requests per user (their last ones). */
  readonly maxExamplesPerUser: number;
  /** Requests need at least this many earlier rows of the user. Default 0. */
  readonly minHistory?: number;
  /**
   * Watches are known up to this time (default: the dataset's latest watch). Answers whose window
   * ends after it are left out: an item watched after it would be taken for a negative.
   */
  readonly labelsUntil?: number;
  /** Answers before this time are left out (held-out answers for evaluation). Default: none. */
  readonly from?: number;
}

/** The default attribution window: 6 hours. */
export const DEFAULT_WATCH_WINDOW_SECONDS = 6 * 3600;

export interface ServedExampleStats {
  readonly requests: number;
  readonly kept: number;
  readonly shown: number;
  readonly positives: number;
  /** Watches in the dataset credited to a shown item. */
  readonly creditedWatches: number;
  /** Answers left out because their window ends after `labelsUntil`. */
  readonly incompleteWindows: number;
  readonly seconds: number;
}

function sourceOrder(name: string): number {
  const k = (SOURCE_ORDER as readonly string[]).indexOf(name);
  return k < 0 ? SOURCE_ORDER.length : k;
}

/** Builds ranker examples from `dataset.served` (see the module comment). */
export function buildServedExamples(
  dataset: Dataset,
  options: ServedExampleOptions,
): RankingExamples & { readonly servedStats: ServedExampleStats } {
  const started = performance.now();
  const log: ServedLog | undefined = dataset.served;
  if (log === undefined || log.requestId.length === 0) {
    throw new Error(`dataset ${dataset.spec}: no served log (only store: datasets of a system that logged Recommend answers have one)`);
  }
  if (!(options.windowSeconds > 0) || !Number.isFinite(options.windowSeconds))
    throw new Error(`windowSeconds must be a positive number, got ${options.windowSeconds}`);
  if (!Number.isInteger(options.maxExamplesPerUser) || options.maxExamplesPerUser < 1)
    throw new Error(`maxExamplesPerUser must be a positive integer`);
  const minHistory = options.minHistory ?? 0;
  const events = dataset.events;
  const numUsers = dataset.users.ids.length;
  const window = options.windowSeconds;

  // Histories: rows by user, chronological.
  const userRows = Int32Array.from(options.rows).sort();
  const userOffsets = new Int32Array(numUsers + 1);
  for (const r of userRows) userOffsets[events.user[r]! + 1]!++;
  for (let u = 0; u < numUsers; u++) userOffsets[u + 1]! += userOffsets[u]!;

  // Shown impressions per (user, item): the request rows, ascending time.
  const numRequests = log.requestId.length;
  const numItems = dataset.items.ids.length;
  const pairKey = (user: number, item: number): number => user * numItems + item; // < 2^53 for 1M × 1M
  const shownAt = new Map<number, number[]>(); // (user, item) -> candidate rows
  const requestOf = new Int32Array(log.item.length);
  for (let r = 0; r < numRequests; r++) {
    for (let c = log.itemOffsets[r]!; c < log.itemOffsets[r + 1]!; c++) {
      requestOf[c] = r;
      if (log.shown[c] !== 1) continue;
      const key = pairKey(log.user[r]!, log.item[c]!);
      let list = shownAt.get(key);
      if (list === undefined) shownAt.set(key, (list = []));
      list.push(c);
    }
  }
  // Credit every watch (all events of the dataset: a re-watch is a watch too) to the latest
  // shown impression of its item at or before it, within the window.
  const positiveWeight = new Float32Array(log.item.length); // 0: not a positive
  let credited = 0;
  for (let e = 0; e < events.user.length; e++) {
    const list = shownAt.get(pairKey(events.user[e]!, events.item[e]!));
    if (list === undefined) continue;
    const t = events.timestamp[e]!;
    let best = -1;
    for (const c of list) {
      const tr = log.timestamp[requestOf[c]!]!;
      if (tr <= t && t - tr <= window) best = c;
      else if (tr > t) break;
    }
    if (best < 0 || positiveWeight[best]! > 0) continue;
    const w = events.weight[e]!;
    positiveWeight[best] = Number.isFinite(w) && w > 0 ? w : 1;
    credited++;
  }

  // Which requests: each user's last maxExamplesPerUser with a shown item and enough history.
  const historyAt = (u: number, asOf: number): number => {
    let n = 0;
    for (let k = userOffsets[u]!; k < userOffsets[u + 1]!; k++) {
      if (events.timestamp[userRows[k]!]! < asOf) n++;
      else break;
    }
    return n;
  };
  let labelsUntil = options.labelsUntil ?? -Infinity;
  if (options.labelsUntil === undefined) for (const t of events.timestamp) labelsUntil = Math.max(labelsUntil, t);
  let incomplete = 0;
  const perUser = new Int32Array(numUsers);
  const keep = new Uint8Array(numRequests);
  const from = options.from ?? -Infinity;
  for (let r = numRequests - 1; r >= 0; r--) {
    if (log.timestamp[r]! < from) continue;
    if (log.timestamp[r]! + window > labelsUntil) {
      incomplete++;
      continue;
    }
    const u = log.user[r]!;
    if (perUser[u]! >= options.maxExamplesPerUser) continue;
    let shown = false;
    for (let c = log.itemOffsets[r]!; c < log.itemOffsets[r + 1]! && !shown; c++) shown = log.shown[c] === 1;
    if (!shown || historyAt(u, log.timestamp[r]!) < minHistory) continue;
    keep[r] = 1;
    perUser[u]!++;
  }

  // Item statistics at each request's time from the training rows (time-gated, observed in time order).
  const sources = options.sources;
  const byTime = Int32Array.from(userRows).sort((a, b) => events.timestamp[a]! - events.timestamp[b]! || a - b);
  for (const r of byTime) sources.observe({ user: events.user[r]!, item: events.item[r]!, timestamp: events.timestamp[r]! });
  const stats = sourceItemStats(sources);

  // The feature space's sources: the set's, then any other source the log names.
  const names = [...sources.names];
  for (const s of log.sources) if (!names.includes(s)) names.push(s);
  const k = names.length;
  const logToName = log.sources.map((s) => names.indexOf(s));

  const exUser: number[] = [];
  const exAsOf: number[] = [];
  const exHistory: number[] = [];
  const offsets: number[] = [0];
  const cItem: number[] = [];
  const cLabel: number[] = [];
  const cWeight: number[] = [];
  const cPosition: number[] = [];
  const cCount: number[] = [];
  const cTrending: number[] = [];
  const cRank: number[] = [];
  const cScore: number[] = [];
  let shownCount = 0;
  let positives = 0;
  for (let r = 0; r < numRequests; r++) {
    if (keep[r] !== 1) continue;
    const u = log.user[r]!;
    const asOf = log.timestamp[r]!;
    const lo = log.itemOffsets[r]!;
    const hi = log.itemOffsets[r + 1]!;
    const answerSources = new Set<number>();
    for (let p = log.provenanceOffsets[lo]!; p < log.provenanceOffsets[hi]!; p++) answerSources.add(log.provenanceSource[p]!);
    const width = Math.max(1, answerSources.size);
    exUser.push(u);
    exAsOf.push(asOf);
    exHistory.push(historyAt(u, asOf));
    for (let c = lo; c < hi; c++) {
      if (log.shown[c] !== 1) continue;
      shownCount++;
      const item = log.item[c]!;
      const positive = positiveWeight[c]! > 0;
      if (positive) positives++;
      cItem.push(item);
      cLabel.push(positive ? 1 : 0);
      cWeight.push(positive ? positiveWeight[c]! : 1);
      const s = stats(item, asOf);
      cCount.push(s.watchCount);
      cTrending.push(s.trending);
      const base = cRank.length;
      for (let j = 0; j < k; j++) {
        cRank.push(NaN);
        cScore.push(NaN);
      }
      let position = Infinity;
      for (let p = log.provenanceOffsets[c]!; p < log.provenanceOffsets[c + 1]!; p++) {
        const j = logToName[log.provenanceSource[p]!]!;
        const rank = log.provenanceRank[p]!;
        if (Number.isNaN(cRank[base + j]!) || rank < cRank[base + j]!) {
          cRank[base + j] = rank;
          cScore[base + j] = log.provenanceScore[p]!;
        }
        position = Math.min(position, rank * width + sourceOrder(names[j]!));
      }
      cPosition.push(Number.isFinite(position) ? position : -1);
    }
    offsets.push(cItem.length);
  }
  const kept = exUser.length;
  return {
    sources: names,
    user: Int32Array.from(exUser),
    row: new Int32Array(kept).fill(-1),
    asOf: Float64Array.from(exAsOf),
    historyLength: Int32Array.from(exHistory),
    candidateOffsets: Int32Array.from(offsets),
    item: Int32Array.from(cItem),
    label: Uint8Array.from(cLabel),
    weight: Float32Array.from(cWeight),
    position: Int32Array.from(cPosition),
    watchCount: Float32Array.from(cCount),
    trending: Float64Array.from(cTrending),
    rank: Float32Array.from(cRank),
    score: Float64Array.from(cScore),
    userRows,
    userOffsets,
    stats: {
      replayed: numRequests,
      kept,
      positiveInMerged: positives,
      droppedMissed: 0,
      keptMissed: 0,
      slateNegatives: 0,
      seconds: (performance.now() - started) / 1000,
    },
    servedStats: {
      requests: numRequests,
      kept,
      shown: shownCount,
      positives,
      creditedWatches: credited,
      incompleteWindows: incomplete,
      seconds: (performance.now() - started) / 1000,
    },
  };
}
