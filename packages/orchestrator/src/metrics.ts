/**
 * The orchestrator's own metrics (the runtime adds the per-RPC ones):
 *
 * - `recsys_orchestrator_degraded_responses_total{stage}`: responses answered without `stage`
 *   (one increment per failed stage of a degraded response).
 * - `recsys_orchestrator_stage_duration_seconds{stage}`: time spent in each stage of Recommend
 *   (user_store, user_store/earlier_watches, candidate_generation, retrieval/shard-<i>, retrieval, sources, ranking, total).
 * - `recsys_orchestrator_candidates{source}`: candidates each source contributed per request,
 *   and `merged` for the merged list (histogram).
 * - `recsys_orchestrator_model_version_info{stage,model_version}` = 1 for the model version each
 *   downstream stage last answered with (the previous one is removed when it changes), so an
 *   alert can compare candidate_generation with every retrieval shard.
 * - `recsys_orchestrator_recorded_events_total{kind}`: events stored by RecordEvents.
 * - `recsys_orchestrator_replicated_events_total`: watch events learnt from other replicas.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { LATENCY_BUCKETS_SECONDS } from "@recsys/runtime";
import { STAGE } from "./config.js";

export const METRIC_LABEL_STAGE = "stage";
export const METRIC_LABEL_SOURCE = "source";
export const METRIC_LABEL_MODEL_VERSION = "model_version";
export const METRIC_LABEL_KIND = "kind";

/** Buckets of the per-request candidate counts. */
const CANDIDATE_BUCKETS = [0, 1, 5, 10, 25, 50, 100, 200, 300, 500, 1000, 2000];

export interface OrchestratorMetrics {
  readonly degraded: Counter<typeof METRIC_LABEL_STAGE>;
  readonly stageDuration: Histogram<typeof METRIC_LABEL_STAGE>;
  readonly candidates: Histogram<typeof METRIC_LABEL_SOURCE>;
  readonly modelVersion: Gauge<typeof METRIC_LABEL_STAGE | typeof METRIC_LABEL_MODEL_VERSION>;
  readonly recordedEvents: Counter<typeof METRIC_LABEL_KIND>;
  readonly replicatedEvents: Counter;
  /** Records the model version a stage answered with (replacing the one it had). */
  setModelVersion(stage: string, modelVersion: string): void;
}

export function createOrchestratorMetrics(registry: Registry): OrchestratorMetrics {
  const prefix = `recsys_${STAGE}`;
  const degraded = new Counter({
    name: `${prefix}_degraded_responses_total`,
    help: "Recommend responses answered without a stage that failed or was late, by stage",
    labelNames: [METRIC_LABEL_STAGE] as const,
    registers: [registry],
  });
  const stageDuration = new Histogram({
    name: `${prefix}_stage_duration_seconds`,
    help: "Time spent in each stage of Recommend, in seconds",
    labelNames: [METRIC_LABEL_STAGE] as const,
    buckets: [...LATENCY_BUCKETS_SECONDS],
    registers: [registry],
  });
  const candidates = new Histogram({
    name: `${prefix}_candidates`,
    help: "Candidates contributed per Recommend by each source (source=merged: the merged list)",
    labelNames: [METRIC_LABEL_SOURCE] as const,
    buckets: CANDIDATE_BUCKETS,
    registers: [registry],
  });
  const modelVersion = new Gauge({
    name: `${prefix}_model_version_info`,
    help: "1 for the model version each downstream stage last answered with",
    labelNames: [METRIC_LABEL_STAGE, METRIC_LABEL_MODEL_VERSION] as const,
    registers: [registry],
  });
  const recordedEvents = new Counter({
    name: `${prefix}_recorded_events_total`,
    help: "Events stored by RecordEvents, by kind",
    labelNames: [METRIC_LABEL_KIND] as const,
    registers: [registry],
  });
  const replicatedEvents = new Counter({
    name: `${prefix}_replicated_events_total`,
    help: "Watch events recorded by other replicas and applied to this replica's candidate sources",
    registers: [registry],
  });
  const current = new Map<string, string>();
  return {
    degraded,
    stageDuration,
    candidates,
    modelVersion,
    recordedEvents,
    replicatedEvents,
    setModelVersion(stage, version) {
      const previous = current.get(stage);
      if (previous === version) return;
      if (previous !== undefined) modelVersion.remove({ [METRIC_LABEL_STAGE]: stage, [METRIC_LABEL_MODEL_VERSION]: previous });
      current.set(stage, version);
      modelVersion.set({ [METRIC_LABEL_STAGE]: stage, [METRIC_LABEL_MODEL_VERSION]: version }, 1);
    },
  };
}
