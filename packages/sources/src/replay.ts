import type { Dataset } from "@recsys/data";
import { datasetRequest, eventAt, timeOrder } from "./dataset-sources.js";
import type { SourceSet, SourceTiming } from "./source-set.js";
import type { MergedCandidate, SourceResult } from "./types.js";

export interface ReplayOptions {
  /**
   * Event-log rows to replay (deduplicated per user, e.g. `trainingRows(split, "test")`): they are
   * both the events fed to the sources and the examples' positives.
   */
  readonly rows: ArrayLike<number>;
  /** Per-source budget of each request (sources with their own budget keep it). */
  readonly budget: number;
  /**
   * At most this many examples per user: the user's last ones (closest to serving conditions).
   * Default: no cap.
   */
  readonly maxExamplesPerUser?: number;
  /** Skip examples whose user has fewer earlier rows than this. Default 1. */
  readonly minHistory?: number;
}

/** One ranker training example: the candidates as they were just before a watch. */
export interface ReplayExample {
  readonly user: number;
  /** Event-log row of the watch (the positive). */
  readonly row: number;
  /** The watch's timestamp: sources saw only events strictly before it. */
  readonly asOf: number;
  /** Item index watched. */
  readonly positive: number;
  /** The user's earlier replayed items, chronological (a read-only view into a shared array). */
  readonly history: Int32Array;
  readonly results: readonly SourceResult[];
  readonly candidates: readonly MergedCandidate[];
  /** Position of `positive` in `candidates`, -1 when it was not retrieved. */
  readonly positiveIndex: number;
  readonly timings: readonly SourceTiming[];
}

/**
 * Replays `options.rows` in global time order (timestamp, then row) through `sources`, a new set
 * that has seen no events (e.g. `createStandardSources(dataset)`; a set that already answered a
 * request is refused): for each time t, first every selected
 * example at t is answered from the events strictly before t, then the rows at t are observed.
 * A user's history is their earlier rows in `rows` (same-second earlier rows included: the
 * user saw them, but the sources' counts do not include them yet).
 *
 * Lazy: yields one example at a time, so memory stays flat whatever the number of examples.
 */
export function* replayExamples(dataset: Dataset, sources: SourceSet, options: ReplayOptions): Generator<ReplayExample> {
  const events = dataset.events;
  const numUsers = dataset.users.ids.length;
  const maxPerUser = options.maxExamplesPerUser ?? Infinity;
  const minHistory = options.minHistory ?? 1;
  if (!(maxPerUser >= 0)) throw new RangeError(`maxExamplesPerUser must be >= 0, got ${maxPerUser}`);
  if (!Number.isInteger(minHistory) || minHistory < 0) throw new RangeError(`minHistory must be a non-negative integer, got ${minHistory}`);

  // Rows by user, chronological (event-log order is (user, timestamp, item)).
  const byUser = Int32Array.from(options.rows).sort();
  const offsets = new Int32Array(numUsers + 1);
  for (const row of byUser) offsets[events.user[row]! + 1]!++;
  for (let u = 0; u < numUsers; u++) offsets[u + 1]! += offsets[u]!;
  const items = Int32Array.from(byUser, (row) => events.item[row]!);
  const positionOf = new Map<number, number>();
  for (let k = 0; k < byUser.length; k++) {
    if (k > 0 && byUser[k] === byUser[k - 1]) throw new Error(`replayExamples: row ${byUser[k]} is listed twice`);
    positionOf.set(byUser[k]!, k);
  }
  // Selected examples: position >= minHistory within the user, the user's last `maxPerUser`.
  const selected = new Uint8Array(byUser.length);
  for (let u = 0; u < numUsers; u++) {
    const start = offsets[u]!;
    const end = offsets[u + 1]!;
    const first = Math.max(start + minHistory, end - maxPerUser);
    for (let k = first; k < end; k++) selected[k] = 1;
  }

  if (sources.clock !== -Infinity) throw new Error("replayExamples: needs a new source set (this one already answered requests)");
  const watched: (Set<number> | undefined)[] = new Array(numUsers);
  const order = timeOrder(events, byUser);
  let g = 0;
  while (g < order.length) {
    const time = events.timestamp[order[g]!]!;
    let end = g;
    while (end < order.length && events.timestamp[order[end]!]! === time) end++;
    for (let k = g; k < end; k++) {
      const row = order[k]!;
      const pos = positionOf.get(row)!;
      const user = events.user[row]!;
      let seen = watched[user];
      if (seen === undefined) {
        seen = new Set();
        watched[user] = seen;
      }
      if (selected[pos] === 1) {
        const history = items.subarray(offsets[user]!, pos);
        const run = sources.run(datasetRequest(dataset, user, history, time, options.budget, { watched: seen }));
        const positive = items[pos]!;
        yield {
          user,
          row,
          asOf: time,
          positive,
          history,
          results: run.results,
          candidates: run.merged,
          positiveIndex: run.merged.findIndex((c) => c.item === positive),
          timings: run.timings,
        };
      }
      seen.add(items[pos]!);
    }
    for (let k = g; k < end; k++) sources.observe(eventAt(events, order[k]!));
    g = end;
  }
}
