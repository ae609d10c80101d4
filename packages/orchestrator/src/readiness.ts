/**
 * Readiness from the downstream stages. Every `intervalMs` the orchestrator asks each stage it
 * calls (candidate generation, every retrieval shard, ranking) for its gRPC health; a stage that
 * does not answer SERVING is down from the first failed check. Once one has been down for longer
 * than `downAfterMs` (STAGE_DOWN_NOT_READY_AFTER, default 30 s), the orchestrator's readiness
 * turns NOT_SERVING; it is SERVING again as soon as every stage answers.
 *
 * Readiness is the health of the service `recsys.v1.RecommenderService` (a Kubernetes
 * readinessProbe with `grpc: {port: 50051, service: recsys.v1.RecommenderService}`); liveness,
 * the server's overall health (service ""), does not change: a stage being down is no reason to
 * restart the orchestrator, which keeps answering degraded meanwhile. Each stage's state is on
 * /metrics as `recsys_orchestrator_stage_up{stage}` (1 up, 0 down).
 */
import { Gauge, type Registry } from "prom-client";
import { checkHealth } from "@recsys/runtime";
import { STAGE } from "./config.js";

export interface WatchedStage {
  /** As in failed_stages: "candidate_generation", "retrieval/shard-0", "ranking". */
  readonly name: string;
  readonly address: string;
}

export interface StageDown {
  readonly stage: string;
  readonly address: string;
  readonly downForMs: number;
}

export interface ReadinessOptions {
  readonly stages: readonly WatchedStage[];
  readonly intervalMs: number;
  /** Down longer than this: not ready. 0 = readiness never follows the stages. */
  readonly downAfterMs: number;
  readonly registry?: Registry;
  /** Asks one stage; default the runtime's checkHealth (service ""). */
  readonly check?: (address: string, timeoutMs: number) => Promise<string>;
}

export class StageReadiness {
  private readonly downSince = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private ready = true;
  private onChange: ((ready: boolean, down: readonly StageDown[]) => void) | undefined;
  private readonly up: Gauge<"stage"> | undefined;
  private checking: Promise<void> | undefined;

  constructor(private readonly options: ReadinessOptions) {
    if (options.registry !== undefined) {
      this.up = new Gauge({
        name: `recsys_${STAGE}_stage_up`,
        help: "1 when the downstream stage answered its last health check SERVING, else 0",
        labelNames: ["stage"] as const,
        registers: [options.registry],
      });
      for (const stage of options.stages) this.up.set({ stage: stage.name }, 1);
    }
  }

  /** Starts checking; `onChange` is told each time readiness flips. */
  start(onChange: (ready: boolean, down: readonly StageDown[]) => void): void {
    this.onChange = onChange;
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.checkNow(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.onChange = undefined;
  }

  isReady(): boolean {
    return this.ready;
  }

  /** The stages down now, and for how long. */
  down(now = Date.now()): StageDown[] {
    return this.options.stages
      .filter((s) => this.downSince.has(s.name))
      .map((s) => ({ stage: s.name, address: s.address, downForMs: now - this.downSince.get(s.name)! }));
  }

  /** One round of checks (the timer calls it; tests call it directly). */
  checkNow(): Promise<void> {
    this.checking ??= this.round().finally(() => (this.checking = undefined));
    return this.checking;
  }

  private async round(): Promise<void> {
    const check = this.options.check ?? ((address, timeoutMs) => checkHealth(address, { timeoutMs }));
    const timeoutMs = Math.max(500, Math.min(2000, this.options.intervalMs));
    await Promise.all(
      this.options.stages.map(async (stage) => {
        const answer = await check(stage.address, timeoutMs).catch(() => "UNREACHABLE");
        if (answer === "SERVING") this.downSince.delete(stage.name);
        else if (!this.downSince.has(stage.name)) this.downSince.set(stage.name, Date.now());
        this.up?.set({ stage: stage.name }, answer === "SERVING" ? 1 : 0);
      }),
    );
    const now = Date.now();
    const down = this.down(now);
    const ready = this.options.downAfterMs <= 0 || down.every((d) => d.downForMs <= this.options.downAfterMs);
    if (ready !== this.ready) {
      this.ready = ready;
      this.onChange?.(ready, down);
    }
  }
}
