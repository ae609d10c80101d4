/**
 * Recommend: user context -> (candidate generation -> retrieval fan-out) alongside the in-process
 * sources -> merge with provenance -> ranking -> filtering -> top N with reasons.
 *
 * Degradation: every downstream call has a deadline derived from the caller's (capped by the
 * stage's budget, keeping DEADLINE_MARGIN for the orchestrator's own work). A stage that fails or
 * is late is reported in `failed_stages` and the answer is built without it:
 * - user store down/late: served as an unknown user (non-personalised sources only);
 * - its check of the merged candidates against watches older than the stored list down/late:
 *   only the recent watches are filtered (reported as user_store);
 * - candidate generation down/late, or every retrieval shard down: no DNN candidates;
 * - some retrieval shards down: the DNN candidates of the others;
 * - a shard answering FAILED_PRECONDITION (its index is of another model version than the user
 *   vector): that shard's DNN candidates are skipped, never mixed across embedding spaces;
 * - ranking down/late: the merged candidates in merge order, score = 1 / (1 + position),
 *   expected watch time 0 (unknown).
 * The ranker gets the context (impression history included), the merged candidates in merge
 * order (the index is its merged-position feature) with provenance and, per item, the popular and
 * trending counts of the in-process sources at the serving time (`OnlineSources.itemStats`: the
 * statistics its training data read from the same sources).
 * Only when no source produced a candidate and some stage failed is the call answered UNAVAILABLE.
 */
import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  CandidateSource,
  MAX_EXCLUDED_ITEMS,
  MAX_SEARCH_K,
  type CandidateGenerationService,
  type RankingService,
  type RecommendRequest,
  type RecommendResponseSchema,
  type RetrievalService,
  type UserContext,
  type VersionInfoSchema,
} from "@recsys/gen";
import { compareIds, yieldToEventLoop } from "@recsys/data";
import {
  childCallOptions,
  isServiceError,
  SOURCE_ENUM_NAMES,
  status,
  statusName,
  unavailable,
  type CallContext,
  type Client,
  type Logger,
} from "@recsys/runtime";
import { mergeCandidates, type MergedCandidate, type SourceResult } from "@recsys/sources";
import { isUserStoreUnavailable, type UserState, type UserStore } from "@recsys/user-store";
import { nearestHistoryItem, type BundleInfo, type Catalogue } from "./catalogue.js";
import type { ServingClock } from "./clock.js";
import { contextFromState, itemFilter, secondsTimestamp, validateRecommendRequest } from "./context.js";
import { Exclusion } from "./exclusion.js";
import type { OrchestratorMetrics } from "./metrics.js";
import type { OnlineSources } from "./online.js";
import { toModelTime } from "./model-time.js";
import { anonymousContext, ANONYMOUS_RANK_USER_ID, isAnonymousSession, validateAnonymousSession } from "./anonymous.js";
import { reasonsFor } from "./reasons.js";
import { runSessionSource, type ServingSessionModel } from "./session-model.js";

/** Stage names used in failed_stages, stage_timings and the metrics. */
export const STAGE_USER_STORE = "user_store";
/** The user store's check of the merged candidates against watches older than the stored list. */
export const STAGE_EARLIER_WATCHES = "user_store/earlier_watches";
export const STAGE_CANDIDATE_GENERATION = "candidate_generation";
export const STAGE_RETRIEVAL = "retrieval";
export const STAGE_RANKING = "ranking";
export const STAGE_SOURCES = "sources";
export const STAGE_MERGE = "merge";
export const STAGE_TOTAL = "total";
/** The per-answer takedown check against the shared catalogue store. */
export const STAGE_CATALOGUE = "catalogue";
export function shardStage(shard: number): string {
  return `${STAGE_RETRIEVAL}/shard-${shard}`;
}

/** How many recent distinct watches explain a DNN candidate ("Because you watched X"). */
const REASON_HISTORY = 20;

export interface RecommendDeps {
  readonly catalogue: Catalogue;
  readonly online: OnlineSources;
  readonly clock: ServingClock;
  readonly store: UserStore;
  readonly candidateGeneration: Client<typeof CandidateGenerationService.method>;
  /** One client per shard, in shard order. */
  readonly retrieval: readonly Client<typeof RetrievalService.method>[];
  readonly ranking: Client<typeof RankingService.method>;
  readonly metrics: OrchestratorMetrics;
  /** The bundle currently loaded from MODEL_PATH (item embeddings for DNN reasons). */
  readonly bundle: () => BundleInfo;
  /** The bundle's session model (session-model.ts), when it has one: the "session" source. */
  readonly session?: () => ServingSessionModel | undefined;
  readonly logger: Logger;
  /**
   * Which of these ids are taken down now, asked of the shared catalogue store (Redis) before
   * answering, so that no replica serves an item once DeleteItems returned, even before the
   * change stream reached it. Absent for the embedded store (this process is the only writer).
   */
  readonly takedownCheck?: (ids: readonly string[]) => Promise<ReadonlySet<string>>;
  /** Serving time - the bundle's time line, seconds (model-time.ts); 0 or absent: the same. */
  readonly modelTimeOffset?: number;
  readonly budgets: {
    readonly userStoreMs: number;
    readonly candidateGenerationMs: number;
    readonly retrievalMs: number;
    readonly rankingMs: number;
    readonly marginMs: number;
    readonly dnn: number;
    readonly merged: number;
  };
}

type Failure = { stage: string; code: string; message: string };
type Timing = { stage: string; elapsedMs: number; itemCount: number };
type Version = MessageInitShape<typeof VersionInfoSchema>;

/** A downstream error as a failed stage: gRPC status name and its details, never a stack. */
function failureOf(stage: string, error: unknown): Failure {
  if (isServiceError(error)) return { stage, code: statusName(error.code), message: error.details || error.message };
  if (isUserStoreUnavailable(error)) return { stage, code: "UNAVAILABLE", message: error.message };
  if (error instanceof TimeoutError) return { stage, code: "DEADLINE_EXCEEDED", message: error.message };
  return { stage, code: "INTERNAL", message: error instanceof Error ? error.message : String(error) };
}

class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}

/** `promise`, or a TimeoutError after `ms` (the promise keeps running; its result is dropped). */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const limit = Math.max(0, Math.round(ms));
    const timer = setTimeout(() => reject(new TimeoutError(`${what} took longer than ${limit}ms`)), limit);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

interface DnnOutcome {
  /** Merged shard hits, best first. */
  readonly hits: { readonly id: string; readonly score: number }[];
  /** model_version of the user vector, when candidate generation answered. */
  readonly modelVersion: string | undefined;
}

const SOURCE_ENUM: Readonly<Record<string, CandidateSource>> = {
  dnn: CandidateSource.DNN,
  "co-watch": CandidateSource.CO_WATCH,
  popular: CandidateSource.POPULAR,
  trending: CandidateSource.TRENDING,
  "trending-geo": CandidateSource.TRENDING,
  fresh: CandidateSource.FRESH,
  search: CandidateSource.SEARCH,
};

/**
 * Sources' provenance as the proto's: rank 1-based; source_name = the @recsys/sources name, or,
 * with `omitEnumNames`, empty where the enum stands for the same name (ranking.proto).
 */
function protoProvenance(candidate: MergedCandidate, omitEnumNames = false) {
  return candidate.provenance.map((p) => {
    const source = SOURCE_ENUM[p.source] ?? CandidateSource.UNSPECIFIED;
    return {
      source,
      sourceName: omitEnumNames && SOURCE_ENUM_NAMES[source] === p.source ? "" : p.source,
      rank: p.rank + 1,
      score: p.score,
    };
  });
}

/**
 * Provenance for the ranker: source_name left empty where the enum stands for the same name (all
 * but "trending-geo"). A string fewer per entry to encode and decode: measured on a 150-candidate
 * RankRequest, create + encode 213 → 131 µs, decode 198 → 118 µs.
 */
export function rankProvenance(candidate: MergedCandidate) {
  return protoProvenance(candidate, true);
}

export class Recommender {
  constructor(private readonly deps: RecommendDeps) {}

  async recommend(request: RecommendRequest, ctx: CallContext): Promise<MessageInitShape<typeof RecommendResponseSchema>> {
    const { deps } = this;
    const { catalogue, online, metrics, budgets } = deps;
    const started = performance.now();
    // An anonymous session (anonymous.ts) is validated as a request of the reserved ranker user id.
    const session = isAnonymousSession(request) ? validateAnonymousSession(request) : undefined;
    const valid = validateRecommendRequest(session === undefined ? request : { ...request, userId: ANONYMOUS_RANK_USER_ID });
    const failures: Failure[] = [];
    const timings: Timing[] = [];
    const versions: Version[] = [];
    const time = (stage: string, since: number, itemCount: number): void => {
      const elapsedMs = performance.now() - since;
      timings.push({ stage, elapsedMs, itemCount });
      metrics.stageDuration.observe({ stage }, elapsedMs / 1000);
    };
    const now = deps.clock.now();

    // 1. The user's context: the caller's, else the stored one.
    let context: UserContext;
    let personalised: boolean;
    // The stored user has watches that left the stored list: merged candidates are checked.
    let earlierWatches = false;
    if (session !== undefined) {
      // Anonymous: the session is the history; the user store is never asked.
      context = anonymousContext(session, now);
      personalised = false;
    } else if (valid.context !== undefined) {
      context = valid.context.requestTime === undefined ? { ...valid.context, requestTime: secondsTimestamp(now) } : valid.context;
      personalised = true;
    } else {
      const t0 = performance.now();
      let state: UserState | undefined;
      try {
        state = await withTimeout(deps.store.get(valid.userId), this.userStoreBudgetMs(ctx), "user store read");
      } catch (error) {
        failures.push(failureOf(STAGE_USER_STORE, error));
      }
      time(STAGE_USER_STORE, t0, state?.watches.length ?? 0);
      context = contextFromState(valid.userId, state, now);
      earlierWatches = state?.hasEarlierWatches ?? false;
      // An unknown user (nothing stored) is a cold start: non-personalised sources only.
      personalised = state !== undefined;
    }
    // What the model stages get: the same context on the bundle's own time line.
    const modelContext = toModelTime(context, deps.modelTimeOffset ?? 0);
    const historyIds = context.watchHistory.map((w) => w.itemId);
    const watchedIds = new Set(historyIds);
    const excludedIds = new Set(valid.excluded);
    const watched = new Set<number>();
    const history: number[] = [];
    for (const id of historyIds) {
      const i = catalogue.indexOf(id);
      if (i === undefined) continue;
      history.push(i);
      watched.add(i);
    }
    const excluded = new Set<number>();
    for (const id of valid.excluded) {
      const i = catalogue.indexOf(id);
      if (i !== undefined) excluded.add(i);
    }
    const keep = itemFilter(catalogue, valid.filters);

    // 2. The DNN path runs while the in-process sources compute.
    const dnnBudget = Math.min(budgets.dnn, MAX_SEARCH_K);
    const dnnStarted = personalised && dnnBudget > 0;
    const dnnPromise: Promise<DnnOutcome> = dnnStarted
      ? this.dnn(modelContext, [...watchedIds, ...excludedIds], dnnBudget, ctx, failures, timings, versions, time)
      : Promise.resolve({ hits: [], modelVersion: undefined });
    // node:http2 writes a request to its socket from the event loop, not when it is made: without
    // this turn the EmbedUser request left only after the sources below had run (~0.5 ms at 1M
    // items), and candidate generation could not work alongside them.
    if (dnnStarted) await yieldToEventLoop();

    // 3. In-process sources (co-watch, popular, trending, trending-geo, fresh).
    const geo = catalogue.geoCode(context.geo);
    const knownUser = online.knownUserIndex(valid.userId);
    if (knownUser !== undefined) online.learnGeo(knownUser, geo);
    // Never nominated: excluded, taken down, and ids not in the catalogue (seen only in events).
    const exclusion = new Exclusion(
      [excluded, catalogue.deleted, catalogue.uncatalogued],
      keep === undefined ? undefined : (i) => !keep(i),
      catalogue.size,
    );
    const t3 = performance.now();
    const run = online.run({
      history,
      watched,
      asOf: now,
      budget: 0,
      ...(geo === undefined ? {} : { geo }),
      exclude: exclusion,
    });
    for (const t of run.timings) {
      timings.push({ stage: `${STAGE_SOURCES}/${t.source}`, elapsedMs: t.ms, itemCount: t.count });
      metrics.candidates.observe({ source: t.source }, t.count);
    }
    for (const e of run.errors) {
      failures.push({
        stage: `${STAGE_SOURCES}/${e.source}`,
        code: "INTERNAL",
        message: e.error instanceof Error ? e.error.message : String(e.error),
      });
    }
    const sessionResult = this.session(historyIds, now, exclusion, watched, timings, failures);
    time(STAGE_SOURCES, t3, run.results.reduce((n, r) => n + r.candidates.length, 0) + (sessionResult?.candidates.length ?? 0));

    const dnn = await dnnPromise;
    const dnnResult: SourceResult = {
      source: "dnn",
      candidates: dnn.hits.map((h) => ({ item: catalogue.intern(h.id), score: h.score })),
    };
    if (personalised && dnnBudget > 0) metrics.candidates.observe({ source: "dnn" }, dnnResult.candidates.length);

    // 4. Merge (watched, excluded, taken-down and filtered items dropped).
    const t4 = performance.now();
    let merged = mergeCandidates([...run.results, ...(sessionResult === undefined ? [] : [sessionResult]), dnnResult], {
      size: budgets.merged,
      watched,
      exclude: exclusion,
      weights: online.set.weights,
    }).filter((c) => {
      const id = catalogue.id(c.item);
      return !watchedIds.has(id) && !excludedIds.has(id);
    });
    time(STAGE_MERGE, t4, merged.length);
    if (earlierWatches && merged.length > 0) merged = await this.dropEarlierWatches(valid.userId, merged, ctx, failures, time);
    metrics.candidates.observe({ source: "merged" }, merged.length);
    if (merged.length === 0 && failures.length > 0) {
      for (const f of failures) metrics.degraded.inc({ stage: f.stage });
      throw unavailable(`no candidate source could answer: ${failures.map((f) => `${f.stage} ${f.code}: ${f.message}`).join("; ")}`);
    }

    // 5. Ranking, or merge order when the ranker fails.
    let ranked: { item: MergedCandidate; score: number; expectedWatchSeconds: number; features: Record<string, number> }[] = [];
    if (merged.length > 0) {
      const t5 = performance.now();
      try {
        const response = await deps.ranking.rank(
          {
            context: modelContext,
            candidates: merged.map((c) => ({
              itemId: catalogue.id(c.item),
              provenance: rankProvenance(c),
              stats: online.itemStats(c.item, now),
            })),
            debug: valid.debug,
          },
          childCallOptions(ctx.call, { budgetMs: budgets.rankingMs, marginMs: budgets.marginMs }),
        );
        const byId = new Map(merged.map((c) => [catalogue.id(c.item), c]));
        for (const item of response.items) {
          const candidate = byId.get(item.itemId);
          if (candidate === undefined) continue; // not a candidate: never trust the ranker to add items
          byId.delete(item.itemId);
          ranked.push({ item: candidate, score: item.score, expectedWatchSeconds: item.expectedWatchSeconds, features: item.features });
        }
        if (ranked.length === 0) throw new Error(`the ranker returned none of the ${merged.length} candidates`);
        if (response.version !== undefined) {
          versions.push(response.version);
          metrics.setModelVersion(STAGE_RANKING, response.version.modelVersion);
        }
      } catch (error) {
        failures.push(failureOf(STAGE_RANKING, error));
        ranked = merged.map((c, position) => ({ item: c, score: 1 / (1 + position), expectedWatchSeconds: 0, features: {} }));
      }
      time(STAGE_RANKING, t5, ranked.length);
    }

    // 6. Top N (the ranker may not drop anything we must drop: filtered again by id).
    let takenDown: ReadonlySet<string> = new Set();
    if (deps.takedownCheck !== undefined && ranked.length > 0) {
      const t6 = performance.now();
      try {
        takenDown = await withTimeout(
          deps.takedownCheck(ranked.map((r) => catalogue.id(r.item.item))),
          this.userStoreBudgetMs(ctx),
          "catalogue takedown check",
        );
      } catch (error) {
        // This replica's own list (updated from the change stream) still applies.
        failures.push(failureOf(STAGE_CATALOGUE, error));
      }
      time(STAGE_CATALOGUE, t6, takenDown.size);
    }
    const top = ranked
      .filter((r) => {
        const id = catalogue.id(r.item.item);
        return !watchedIds.has(id) && !excludedIds.has(id) && !catalogue.isDeletedId(id) && !takenDown.has(id);
      })
      .slice(0, valid.count);
    const bundle = deps.bundle();
    const explainDnn = dnn.modelVersion !== undefined && dnn.modelVersion === bundle.modelVersion;
    const recentHistory = [...new Set(historyIds.slice().reverse())].slice(0, REASON_HISTORY).reverse();
    const items = top.map((r) => {
      const id = catalogue.id(r.item.item);
      let dnnBecause: number | undefined;
      if (explainDnn && r.item.provenance.some((p) => p.source === "dnn")) {
        const nearest = nearestHistoryItem(bundle, id, recentHistory);
        if (nearest !== undefined) dnnBecause = catalogue.indexOf(nearest);
      }
      return {
        itemId: id,
        score: r.score,
        expectedWatchSeconds: r.expectedWatchSeconds,
        provenance: protoProvenance(r.item),
        reasons: reasonsFor(r.item.provenance, catalogue, r.item.item, dnnBecause),
        ...(valid.debug ? { features: r.features } : {}),
      };
    });

    versions.push({ component: "catalogue", modelVersion: bundle.modelVersion, indexVersion: catalogue.dataset.fingerprint.slice(0, 16) });
    for (const f of failures) metrics.degraded.inc({ stage: f.stage });
    time(STAGE_TOTAL, started, items.length);
    if (failures.length > 0) {
      ctx.logger.info({ failedStages: failures, items: items.length }, "degraded response");
    }
    return {
      items,
      versions,
      degraded: failures.length > 0,
      failedStages: failures,
      stageTimings: valid.debug ? timings : [],
      requestId: randomUUID(),
    };
  }

  /** The "session" source over the recent watches (session-model.ts), when the bundle has a session model. */
  private session(
    historyIds: readonly string[],
    asOf: number,
    exclusion: ReadonlySet<number>,
    watched: ReadonlySet<number>,
    timings: Timing[],
    failures: Failure[],
  ): SourceResult | undefined {
    const model = this.deps.session?.();
    if (model === undefined || historyIds.length === 0) return undefined;
    const skip = (i: number): boolean => watched.has(i) || exclusion.has(i);
    return runSessionSource(model, this.deps, { historyIds, asOf, budget: this.deps.budgets.dnn, skip }, timings, failures);
  }

  /** A user-store call's budget: like the gRPC stages', never past the caller's deadline minus the margin. */
  private userStoreBudgetMs(ctx: CallContext): number {
    const { budgets } = this.deps;
    return Math.min(budgets.userStoreMs, ctx.deadline - Date.now() - budgets.marginMs);
  }

  /**
   * `merged` without the items the user watched before the stored watch list (the user store
   * remembers their ids). When the store cannot answer in time, `merged` as it is, the failure
   * reported as the user store's: the recent watches are filtered all the same.
   */
  private async dropEarlierWatches(
    userId: string,
    merged: MergedCandidate[],
    ctx: CallContext,
    failures: Failure[],
    time: (stage: string, since: number, itemCount: number) => void,
  ): Promise<MergedCandidate[]> {
    const { deps } = this;
    const t0 = performance.now();
    try {
      const ids = merged.map((c) => deps.catalogue.id(c.item));
      const watched = await withTimeout(deps.store.watchedAmong(userId, ids), this.userStoreBudgetMs(ctx), "user store watched check");
      const kept = watched.size === 0 ? merged : merged.filter((_, i) => !watched.has(ids[i]!));
      time(STAGE_EARLIER_WATCHES, t0, merged.length - kept.length);
      return kept;
    } catch (error) {
      failures.push(failureOf(STAGE_USER_STORE, error));
      time(STAGE_EARLIER_WATCHES, t0, 0);
      return merged;
    }
  }

  /**
   * EmbedUser, then Search on every shard in parallel with the user vector's model_version;
   * shard hits merged by score (ties by id). Failures are appended to `failures`.
   */
  private async dnn(
    context: UserContext,
    exclude: readonly string[],
    k: number,
    ctx: CallContext,
    failures: Failure[],
    timings: Timing[],
    versions: Version[],
    time: (stage: string, since: number, itemCount: number) => void,
  ): Promise<DnnOutcome> {
    const { deps } = this;
    const { budgets, metrics } = deps;
    const t0 = performance.now();
    let userVector: number[];
    let modelVersion: string;
    try {
      const response = await deps.candidateGeneration.embedUser(
        { context },
        childCallOptions(ctx.call, { budgetMs: budgets.candidateGenerationMs, marginMs: budgets.marginMs }),
      );
      userVector = response.userVector;
      modelVersion = response.version?.modelVersion ?? "";
      if (response.version !== undefined) versions.push(response.version);
      metrics.setModelVersion(STAGE_CANDIDATE_GENERATION, modelVersion);
      time(STAGE_CANDIDATE_GENERATION, t0, 1);
    } catch (error) {
      failures.push(failureOf(STAGE_CANDIDATE_GENERATION, error));
      time(STAGE_CANDIDATE_GENERATION, t0, 0);
      return { hits: [], modelVersion: undefined };
    }

    // Search excludes what fits in its limit; the merge drops the rest.
    const excludedItemIds = exclude.slice(0, MAX_EXCLUDED_ITEMS);
    const searchK = Math.min(MAX_SEARCH_K, k + (exclude.length - excludedItemIds.length));
    const t1 = performance.now();
    const options = childCallOptions(ctx.call, { budgetMs: budgets.retrievalMs, marginMs: budgets.marginMs });
    const shards = await Promise.all(
      deps.retrieval.map(async (client, shard) => {
        const s0 = performance.now();
        try {
          const response = await client.search({ userVector, k: searchK, excludedItemIds, modelVersion }, options);
          return { shard, response, elapsedMs: performance.now() - s0 };
        } catch (error) {
          return { shard, error, elapsedMs: performance.now() - s0 };
        }
      }),
    );
    const all: { id: string; score: number }[] = [];
    for (const outcome of shards) {
      const stage = shardStage(outcome.shard);
      timings.push({ stage, elapsedMs: outcome.elapsedMs, itemCount: outcome.response?.items.length ?? 0 });
      metrics.stageDuration.observe({ stage }, outcome.elapsedMs / 1000);
      if (outcome.response !== undefined) {
        for (const hit of outcome.response.items) all.push({ id: hit.itemId, score: hit.score });
        if (outcome.response.version !== undefined) {
          versions.push(outcome.response.version);
          metrics.setModelVersion(stage, outcome.response.version.modelVersion);
        }
        continue;
      }
      const failure = failureOf(stage, outcome.error);
      if (isServiceError(outcome.error) && outcome.error.code === status.FAILED_PRECONDITION) {
        failure.message = `model version mismatch, DNN candidates of this shard skipped: ${failure.message}`;
      }
      failures.push(failure);
    }
    all.sort((a, b) => b.score - a.score || compareIds(a.id, b.id));
    const seen = new Set<string>();
    const hits: { id: string; score: number }[] = [];
    for (const hit of all) {
      if (hits.length >= searchK) break;
      if (seen.has(hit.id)) continue;
      seen.add(hit.id);
      hits.push(hit);
    }
    time(STAGE_RETRIEVAL, t1, hits.length);
    return { hits, modelVersion };
  }
}
