import type { Dataset, EventLog } from "@recsys/data";
import { CoWatchSource, type CoWatchOptions } from "./co-watch.js";
import { DnnSource, type UserVectorProvider } from "./dnn.js";
import { FreshSource } from "./fresh.js";
import type { ItemIndex } from "./item-index.js";
import { PopularSource } from "./popular.js";
import { type SessionEncoder, SessionSource } from "./session.js";
import { SourceSet, type SourceSpec } from "./source-set.js";
import { TrendingSource } from "./trending.js";
import type { SourceName, SourceRequest, WatchEvent } from "./types.js";

const DAY = 86_400;

/** Configuration of the standard source set; every field has a default. */
export interface StandardSourcesOptions {
  /** Default budget of every source (a request's `budget` is used for sources without one). */
  readonly budgets?: Partial<Record<SourceName, number>>;
  /** Merge weights (items per round-robin round, default 1 each; see `mergeCandidates`). */
  readonly weights?: Partial<Record<SourceName, number>>;
  /** Merged list size. Default 300. */
  readonly mergedSize?: number;
  /** Co-watch settings, or false to leave the source out. */
  readonly coWatch?: Omit<CoWatchOptions, "numItems" | "name"> | false;
  /** Include most-popular. Default true. */
  readonly popular?: boolean;
  /** Trending half-life in seconds, or false to leave it out. Default 7 days. */
  readonly trendingHalfLifeSeconds?: number | false;
  /**
   * Per-geography trending ("trending-geo", same half-life), using the dataset's users.geo codes.
   * Default: true when at least one user has a geo code.
   */
  readonly trendingGeo?: boolean;
  /** Fresh-upload window in seconds, or false to leave it out. Default 30 days. No-op without upload times. */
  readonly freshWindowSeconds?: number | false;
  /** A session (sequence) model; no "session" source without it. */
  readonly session?: { readonly index: ItemIndex; readonly encoder: SessionEncoder };
  /** The candidate-generation network; no "dnn" source without it. */
  readonly dnn?: { readonly index: ItemIndex; readonly userVector: UserVectorProvider };
  readonly onSourceError?: "throw" | "skip";
  readonly pastRequests?: "throw" | "clamp";
}

/**
 * The default candidate stage: candidates per source and the merged size. The ranker is trained
 * behind it unless told otherwise (its manifest records what it was trained behind), and the
 * orchestrator serves with the ranker's recorded settings.
 */
export const DEFAULT_SOURCE_BUDGET = 100;
export const DEFAULT_MERGED_SIZE = 300;

/**
 * The standard sources for a dataset, with empty state: co-watch, popular, trending (global and
 * per geography), fresh (ordered by the global trending score) and, when given, dnn and session.
 * Feed it with `observeRows` (offline) or `SourceSet.observe` (online).
 */
export function createStandardSources(dataset: Dataset, options: StandardSourcesOptions = {}): SourceSet {
  const numItems = dataset.items.ids.length;
  const budgets = options.budgets ?? {};
  const weights = options.weights ?? {};
  const specs: SourceSpec[] = [];
  const add = (source: SourceSpec["source"]): void => {
    const budget = budgets[source.name];
    const weight = weights[source.name];
    specs.push({ source, ...(budget === undefined ? {} : { budget }), ...(weight === undefined ? {} : { weight }) });
  };
  if (options.dnn !== undefined) {
    add(new DnnSource({ index: options.dnn.index, userVector: options.dnn.userVector, uploadTimestamp: dataset.items.uploadTimestamp }));
  }
  if (options.session !== undefined) {
    add(
      new SessionSource({ index: options.session.index, encoder: options.session.encoder, uploadTimestamp: dataset.items.uploadTimestamp }),
    );
  }
  if (options.coWatch !== false) add(new CoWatchSource({ ...(options.coWatch ?? {}), numItems }));
  if (options.popular !== false) add(new PopularSource({ numItems }));
  const halfLife = options.trendingHalfLifeSeconds ?? 7 * DAY;
  let trending: TrendingSource | undefined;
  if (halfLife !== false) {
    trending = new TrendingSource({ halfLifeSeconds: halfLife });
    add(trending);
    const geoCodes = dataset.users.geo.codes;
    if (options.trendingGeo ?? geoCodes.some((g) => g >= 0)) {
      add(new TrendingSource({ halfLifeSeconds: halfLife, userGeo: (u) => (u < geoCodes.length ? geoCodes[u]! : -1) }));
    }
  }
  const freshWindow = options.freshWindowSeconds ?? 30 * DAY;
  if (freshWindow !== false) {
    add(
      new FreshSource({
        uploadTimestamp: dataset.items.uploadTimestamp,
        windowSeconds: freshWindow,
        ...(trending ? { popularity: trending } : {}),
      }),
    );
  }
  return new SourceSet(specs, {
    mergedSize: options.mergedSize ?? DEFAULT_MERGED_SIZE,
    ...(options.onSourceError === undefined ? {} : { onSourceError: options.onSourceError }),
    ...(options.pastRequests === undefined ? {} : { pastRequests: options.pastRequests }),
  });
}

/** Event-log `rows` sorted by (timestamp, row): the global time order used to feed sources. */
export function timeOrder(events: EventLog, rows: ArrayLike<number>): Int32Array {
  const order = Int32Array.from(rows);
  const ts = events.timestamp;
  order.sort((a, b) => ts[a]! - ts[b]! || a - b);
  return order;
}

/** The watch event of an event-log row. */
export function eventAt(events: EventLog, row: number): WatchEvent {
  return { user: events.user[row]!, item: events.item[row]!, timestamp: events.timestamp[row]! };
}

/**
 * Feeds the event-log `rows` (e.g. `trainingRows(split, "test")`) to `target` in global time
 * order. They become visible to requests after their timestamps.
 */
export function observeRows(target: { observe(event: WatchEvent): void }, dataset: Dataset, rows: ArrayLike<number>): void {
  for (const row of timeOrder(dataset.events, rows)) target.observe(eventAt(dataset.events, row));
}

/** `createStandardSources` fed with `rows`: the state a server starts from. */
export function buildStandardSources(dataset: Dataset, rows: ArrayLike<number>, options: StandardSourcesOptions = {}): SourceSet {
  const set = createStandardSources(dataset, options);
  observeRows(set, dataset, rows);
  return set;
}

/** A request for a dataset user (geo from users.geo when known). */
export function datasetRequest(
  dataset: Dataset,
  user: number,
  history: ArrayLike<number>,
  asOf: number,
  budget: number,
  extra: { readonly watched?: ReadonlySet<number>; readonly exclude?: ReadonlySet<number> } = {},
): SourceRequest {
  const geo = user < dataset.users.geo.codes.length ? dataset.users.geo.codes[user]! : -1;
  return { user, history, asOf, budget, ...(geo >= 0 ? { geo } : {}), ...extra };
}
