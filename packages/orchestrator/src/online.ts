/**
 * The orchestrator's in-process candidate sources (@recsys/sources): co-watch, popular, trending
 * (global and per geography) and fresh, built from the dataset's training rows at startup and
 * kept current by RecordEvents (this replica's events at once, other replicas' through the user
 * store's subscription). The DNN source is not here: it is the candidate-generation + retrieval
 * services, merged with these by the orchestrator.
 *
 * Users get dense indices like items: the dataset's users first, users first seen online after.
 * An online user's geography is learnt from their profile when they are served, and counts for
 * "trending in your area" from then on.
 */
import type { Dataset } from "@recsys/data";
import {
  CoWatchSource,
  FreshSource,
  PopularSource,
  SourceSet,
  TrendingSource,
  observeRows,
  type SourceName,
  type SourceRequest,
  type SourceRun,
  type SourceSpec,
  type StatefulSource,
} from "@recsys/sources";
import type { Catalogue } from "./catalogue.js";

export interface OnlineSourcesOptions {
  /** Candidates per source; 0 (or absent) leaves the source out. */
  readonly budgets: Readonly<Partial<Record<SourceName, number>>>;
  readonly trendingHalfLifeSeconds: number;
  readonly freshWindowSeconds: number;
  /**
   * Watches of one item by one user counted at most this many times in every count (co-watch,
   * popular, trending, trending-geo, and so the ranker's item statistics): one user cannot make an
   * item popular or trending by watching it again and again. Default 1 (counts of distinct
   * viewers); 0 turns the cap off.
   */
  readonly perUserItemCap?: number;
  /**
   * Watches of one item from one client (the event's `clientId`: an app installation or device
   * as the caller knows it) counted at most this many times in the same counts, whatever user ids
   * they carry: one client cannot make an item popular with many fake users. Watches without a
   * client id are capped per user only. Default 3; 0 turns the cap off.
   */
  readonly perClientItemCap?: number;
}

/** The ranker's per-item statistics (the RankRequest's Candidate.stats). */
export interface ItemStats {
  /** All-time watch count from events strictly before the time asked. */
  readonly watchCount: number;
  /** Global trending score (exponentially decayed watch count) at the time asked. */
  readonly trending: number;
}

export class OnlineSources {
  readonly set: SourceSet;
  private readonly userIds = new Map<string, number>();
  private readonly dynamicGeo = new Map<number, number>();
  private readonly numDatasetUsers: number;
  private nextUser: number;
  private readonly coWatch: CoWatchSource | undefined;
  /**
   * Sources kept current although they are not candidate sources of the set (their budget is 0):
   * the trending counts ordering fresh uploads, and the popular and trending counts behind the
   * ranker's item statistics.
   */
  private readonly hidden: StatefulSource[] = [];
  /** The ranker's item statistics come from these two (in the set, or hidden). */
  private readonly statsPopular: PopularSource;
  private readonly statsTrending: TrendingSource;
  private readonly fresh: FreshSource | undefined;
  private readonly perUserItemCap: number;
  /** Per user: how many of their watches of each item were counted (only while under the cap). */
  private readonly counted = new Map<number, Map<number, number>>();
  private readonly perClientItemCap: number;
  /** Per client: how many watches of each item were counted (only while under the cap). */
  private readonly countedByClient = new Map<string, Map<number, number>>();
  /** Watches left out of the counts by the per-user cap (metrics, tests). */
  capped = 0;
  /** Watches left out of the counts by the per-client cap (metrics, tests). */
  clientCapped = 0;

  constructor(
    private readonly catalogue: Catalogue,
    options: OnlineSourcesOptions,
  ) {
    const dataset = catalogue.dataset;
    dataset.users.ids.forEach((id, u) => this.userIds.set(id, u));
    this.numDatasetUsers = dataset.users.ids.length;
    this.nextUser = this.numDatasetUsers;
    const geoCodes = dataset.users.geo.codes;
    const userGeo = (u: number): number => (u < this.numDatasetUsers ? geoCodes[u]! : (this.dynamicGeo.get(u) ?? -1));
    const specs: SourceSpec[] = [];
    const budget = (name: SourceName): number => options.budgets[name] ?? 0;
    const numItems = catalogue.size;
    if (budget("co-watch") > 0) {
      this.coWatch = new CoWatchSource({ numItems });
      specs.push({ source: this.coWatch, budget: budget("co-watch") });
    }
    // Popular and trending always exist: the ranker reads its item statistics from them.
    this.statsPopular = new PopularSource({ numItems });
    if (budget("popular") > 0) specs.push({ source: this.statsPopular, budget: budget("popular") });
    else this.hidden.push(this.statsPopular);
    // Fresh is ordered by the global trending score too.
    const trending = new TrendingSource({ halfLifeSeconds: options.trendingHalfLifeSeconds });
    this.statsTrending = trending;
    if (budget("trending") > 0) specs.push({ source: trending, budget: budget("trending") });
    else this.hidden.push(trending);
    if (budget("trending-geo") > 0) {
      specs.push({
        source: new TrendingSource({ halfLifeSeconds: options.trendingHalfLifeSeconds, userGeo }),
        budget: budget("trending-geo"),
      });
    }
    if (budget("fresh") > 0) {
      this.fresh = new FreshSource({
        uploadTimestamp: dataset.items.uploadTimestamp,
        windowSeconds: options.freshWindowSeconds,
        popularity: trending,
      });
      specs.push({ source: this.fresh, budget: budget("fresh") });
    }
    this.perUserItemCap = options.perUserItemCap ?? 1;
    if (!Number.isInteger(this.perUserItemCap) || this.perUserItemCap < 0) {
      throw new RangeError(`perUserItemCap must be an integer >= 0, got ${this.perUserItemCap}`);
    }
    this.perClientItemCap = options.perClientItemCap ?? 3;
    if (!Number.isInteger(this.perClientItemCap) || this.perClientItemCap < 0) {
      throw new RangeError(`perClientItemCap must be an integer >= 0, got ${this.perClientItemCap}`);
    }
    this.set = new SourceSet(specs, { mergedSize: 0, onSourceError: "skip", pastRequests: "clamp" });
  }

  /**
   * Loads the dataset rows (e.g. the training rows the bundle's holdout allows), in time order,
   * `timeOffset` seconds later (model-time.ts).
   */
  seed(dataset: Dataset, rows: ArrayLike<number>, timeOffset = 0): void {
    observeRows(timeOffset === 0 ? this : { observe: (e) => this.observe({ ...e, timestamp: e.timestamp + timeOffset }) }, dataset, rows);
  }

  /**
   * Applies every event observed before `asOf` (the sources apply events lazily, at the first
   * request after them): done once at startup so that the first request does not pay for the
   * whole seeding.
   */
  warmUp(asOf: number): void {
    this.set.run({ history: [], asOf, budget: 0 }, { mergedSize: 0 });
    this.itemStats(0, asOf);
  }

  /** The user's index, allocating the next one for a user never seen. */
  userIndex(userId: string): number {
    let u = this.userIds.get(userId);
    if (u === undefined) {
      u = this.nextUser++;
      this.userIds.set(userId, u);
    }
    return u;
  }

  /** The user's index when the user is in the dataset or has recorded watches. */
  knownUserIndex(userId: string): number | undefined {
    return this.userIds.get(userId);
  }

  /** Users first seen online whose geography is not known yet: [external id, index]. */
  usersWithoutGeo(): [string, number][] {
    const out: [string, number][] = [];
    for (const [id, u] of this.userIds) if (u >= this.numDatasetUsers && !this.dynamicGeo.has(u)) out.push([id, u]);
    return out;
  }

  /** Records the geography of a user first seen online (dataset users keep theirs). */
  learnGeo(user: number, geoCode: number | undefined): void {
    if (user >= this.numDatasetUsers && geoCode !== undefined && geoCode >= 0) this.dynamicGeo.set(user, geoCode);
  }

  /**
   * An item upserted through the catalogue API: a fresh candidate from its upload time (items of
   * the dataset keep the dataset's upload time in the fresh source; their metadata is replaced).
   */
  addItem(item: number, uploadTimestamp: number | undefined): void {
    if (uploadTimestamp !== undefined) this.fresh?.addUpload(item, uploadTimestamp);
  }

  /**
   * A watch (dense indices); visible to requests after `timestamp`. Subject to the per-user cap
   * and, when `clientId` is given, to the per-client cap; a watch left out by either cap counts
   * toward neither.
   */
  observe(event: { readonly user: number; readonly item: number; readonly timestamp: number }, clientId?: string): void {
    const userItems = this.perUserItemCap > 0 ? countsOf(this.counted, event.user) : undefined;
    const userCount = userItems?.get(event.item) ?? 0;
    if (userItems !== undefined && userCount >= this.perUserItemCap) {
      this.capped++;
      return;
    }
    const clientItems = this.perClientItemCap > 0 && clientId !== undefined ? countsOf(this.countedByClient, clientId) : undefined;
    const clientCount = clientItems?.get(event.item) ?? 0;
    if (clientItems !== undefined && clientCount >= this.perClientItemCap) {
      this.clientCapped++;
      return;
    }
    userItems?.set(event.item, userCount + 1);
    clientItems?.set(event.item, clientCount + 1);
    this.set.observe(event);
    for (const source of this.hidden) source.observe(event);
  }

  /** A watch by external ids (the item is interned into the catalogue). */
  observeWatch(watch: { readonly userId: string; readonly itemId: string; readonly timestamp: number; readonly clientId?: string }): void {
    this.observe(
      { user: this.userIndex(watch.userId), item: this.catalogue.intern(watch.itemId), timestamp: watch.timestamp },
      watch.clientId,
    );
  }

  run(request: SourceRequest): SourceRun {
    return this.set.run(request, { mergedSize: 0 });
  }

  /**
   * The ranker's statistics of `item` (catalogue index) at `asOf`, defined exactly as in the
   * ranker's training data (@recsys/ranking `sourceItemStats`): the popular source's all-time
   * count and the global trending source's decayed count, from events strictly before the time.
   * When a later request already advanced a source past `asOf` (requests interleave while they
   * wait for other stages), that source answers at its clock: a few milliseconds later.
   */
  itemStats(item: number, asOf: number): ItemStats {
    const popular = this.statsPopular;
    const trending = this.statsTrending;
    return {
      watchCount: popular.countAt(item, Math.max(asOf, popular.clock)),
      trending: trending.scoreAt(item, Math.max(asOf, trending.clock)),
    };
  }

  /** Names of the sources in the set (SOURCE_ORDER). */
  get names(): SourceName[] {
    return this.set.names;
  }

  /** The latest time the sources answered at. */
  get clock(): number {
    return this.set.clock;
  }

  /**
   * All-time watch count of an item as the co-watch source has it at `asOf` (tests and
   * diagnostics); undefined when co-watch is off or the item is unknown.
   */
  watchCount(itemId: string, asOf: number): number | undefined {
    const item = this.catalogue.indexOf(itemId);
    if (this.coWatch === undefined || item === undefined) return undefined;
    return this.coWatch.watchCountAt(item, Math.max(asOf, this.coWatch.clock));
  }
}

/** The item counts kept under `key`, created empty on first use. */
function countsOf<K>(counts: Map<K, Map<number, number>>, key: K): Map<number, number> {
  let items = counts.get(key);
  if (items === undefined) {
    items = new Map();
    counts.set(key, items);
  }
  return items;
}
