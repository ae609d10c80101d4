/**
 * Explicit load shedding of Recommend: at most `maxInFlight` calls are handled at once; a call
 * beyond that is answered at once with RESOURCE_EXHAUSTED and a retry hint (trailing metadata
 * `grpc-retry-pushback-ms`, the gRPC retry design's server pushback, and `retry-after-ms`), rather
 * than admitted to miss every stage budget with the others and come back degraded.
 *
 * The bound is MAX_IN_FLIGHT (0 = no bound). The serving benchmark's burst section measures at
 * which concurrency answers start to degrade on a given machine; the default sits below it on
 * the two-core development machine (docs/hardening.md). Shed calls are counted in
 * `recsys_orchestrator_shed_total{method}`; the calls admitted in
 * `recsys_orchestrator_admitted_in_flight`.
 */
import { Metadata } from "@grpc/grpc-js";
import { Counter, Gauge, type Registry } from "prom-client";
import { RpcError, status } from "@recsys/runtime";
import { STAGE } from "./config.js";

export interface LoadShedderOptions {
  /** Calls handled at once; 0 = unbounded. */
  readonly maxInFlight: number;
  /** The retry hint of a shed call, ms. */
  readonly retryAfterMs: number;
  readonly registry?: Registry;
}

export class LoadShedder {
  private inFlight = 0;
  private readonly shed: Counter<"method"> | undefined;
  private readonly admitted: Gauge | undefined;

  constructor(private readonly options: LoadShedderOptions) {
    if (options.registry !== undefined) {
      this.shed = new Counter({
        name: `recsys_${STAGE}_shed_total`,
        help: "Calls answered RESOURCE_EXHAUSTED at once because MAX_IN_FLIGHT calls were being handled, by method",
        labelNames: ["method"] as const,
        registers: [options.registry],
      });
      this.admitted = new Gauge({
        name: `${`recsys_${STAGE}`}_admitted_in_flight`,
        help: "Recommend calls admitted and being handled (bounded by MAX_IN_FLIGHT)",
        registers: [options.registry],
      });
    }
  }

  /** Calls being handled now. */
  get current(): number {
    return this.inFlight;
  }

  /** Runs `handler` if a slot is free; else throws RESOURCE_EXHAUSTED with the retry hint. */
  async run<T>(method: string, handler: () => Promise<T>): Promise<T> {
    const { maxInFlight, retryAfterMs } = this.options;
    if (maxInFlight > 0 && this.inFlight >= maxInFlight) {
      this.shed?.inc({ method });
      const metadata = new Metadata();
      metadata.set("grpc-retry-pushback-ms", String(retryAfterMs));
      metadata.set("retry-after-ms", String(retryAfterMs));
      throw new RpcError(
        status.RESOURCE_EXHAUSTED,
        `overloaded: ${this.inFlight} ${method} calls in flight (MAX_IN_FLIGHT=${maxInFlight}); retry after ${retryAfterMs} ms`,
        { metadata },
      );
    }
    this.inFlight += 1;
    this.admitted?.set(this.inFlight);
    try {
      return await handler();
    } finally {
      this.inFlight -= 1;
      this.admitted?.set(this.inFlight);
    }
  }
}
