/**
 * What `recsys status` shows for each stage of a running stack: its liveness (gRPC health of
 * the server, service ""), for the orchestrator its readiness (health of
 * recsys.v1.RecommenderService: NOT_SERVING once a downstream stage has been down longer than
 * STAGE_DOWN_NOT_READY_AFTER), the model version it serves (its `recsys_<stage>_model_info`
 * gauge on /metrics), the launcher's restart count and state, and its pid.
 */
import { checkHealth, isServiceError, statusName } from "@recsys/runtime";
import { formatColumns } from "./stack-format.js";
import { processAlive, type StackState, type StackStateStage } from "./stack-state.js";

export const READINESS_SERVICE = "recsys.v1.RecommenderService";

export interface StageHealth {
  readonly name: string;
  readonly address: string;
  readonly pid: number;
  readonly alive: boolean;
  /** SERVING / NOT_SERVING, or the failure ("UNAVAILABLE: ..."). */
  readonly health: string;
  /** Orchestrator only: the health of recsys.v1.RecommenderService. */
  readonly ready?: string;
  /** The model version on /metrics, or "" when none is exported or /metrics did not answer. */
  readonly version: string;
  readonly restarts: number;
  readonly state: string;
}

async function health(address: string, service: string, timeoutMs: number): Promise<string> {
  try {
    return await checkHealth(address, { service, timeoutMs });
  } catch (error) {
    return isServiceError(error) ? `${statusName(error.code)}` : (error as Error).message;
  }
}

/** The `model_version` label of a `..._model_info{...} 1` line; "" when there is none. */
export function modelVersionOf(metricsText: string): string {
  const match = /^recsys_[a-z0-9_]+_model_info\{[^}]*model_version="([^"]*)"[^}]*\}\s+1\b/m.exec(metricsText);
  return match?.[1] ?? "";
}

async function version(metricsUrl: string, timeoutMs: number): Promise<string> {
  try {
    const response = await fetch(metricsUrl, { signal: AbortSignal.timeout(timeoutMs) });
    return response.ok ? modelVersionOf(await response.text()) : "";
  } catch {
    return "";
  }
}

export async function stageHealth(stage: StackStateStage, timeoutMs = 2000): Promise<StageHealth> {
  const isOrchestrator = stage.name === "orchestrator";
  const [liveness, ready, modelVersion] = await Promise.all([
    health(stage.address, "", timeoutMs),
    isOrchestrator ? health(stage.address, READINESS_SERVICE, timeoutMs) : Promise.resolve(undefined),
    version(stage.metricsUrl, timeoutMs),
  ]);
  return {
    name: stage.name,
    address: stage.address,
    pid: stage.pid,
    alive: processAlive(stage.pid),
    health: liveness,
    ...(ready === undefined ? {} : { ready }),
    version: modelVersion,
    restarts: stage.restarts ?? 0,
    state: stage.state ?? "serving",
  };
}

export async function stackHealth(state: StackState, timeoutMs = 2000): Promise<StageHealth[]> {
  return Promise.all(state.stages.map((stage) => stageHealth(stage, timeoutMs)));
}

export function formatStackHealth(stages: readonly StageHealth[]): string {
  const rows = stages.map((s) => [
    s.name,
    s.health,
    s.ready ?? "-",
    s.version === "" ? "-" : s.version,
    String(s.restarts),
    s.alive ? s.state : "exited",
    String(s.pid),
    s.address,
  ]);
  return formatColumns(["stage", "health", "ready", "version", "restarts", "state", "pid", "address"], rows, new Set([4, 6]));
}
