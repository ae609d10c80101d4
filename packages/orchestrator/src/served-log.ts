/**
 * The served-impressions log: every Recommend answer appended to the user store's events log as a
 * `served` event (request id, user, items with their 1-based positions and provenance, the model
 * version of every component consulted), the ranker's training data (impressions the system
 * really showed; watches recorded later join on request id and time).
 *
 * Appends are batched off the answer's path: answers are queued and written in one append per
 * `flushMs` (or once `maxBatch` are queued), so Recommend never waits for a disk sync or a Redis
 * round trip. An answer is lost only if the process dies within that window, or if the store
 * refuses the append (counted in recsys_orchestrator_served_log_failures_total and logged; the
 * queue is bounded by `maxQueued`, beyond which answers are dropped and counted).
 */
import type { Logger } from "@recsys/runtime";
import type { ServedEvent, UserEvent, UserStore } from "@recsys/user-store";
import type { Counter } from "prom-client";

export interface ServedAnswer {
  readonly userId: string;
  readonly requestId: string;
  readonly timestamp: number;
  readonly items: readonly {
    readonly itemId: string;
    readonly provenance: readonly { readonly sourceName: string; readonly source: number; readonly rank: number; readonly score: number }[];
  }[];
  readonly versions: readonly { readonly component: string; readonly modelVersion: string }[];
}

/** Component -> model version; repeated components (retrieval shards) numbered: retrieval, retrieval#2, ... */
export function modelVersionsOf(versions: ServedAnswer["versions"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of versions) {
    let key = v.component;
    for (let n = 2; key in out; n++) key = `${v.component}#${n}`;
    out[key] = v.modelVersion;
  }
  return out;
}

export function servedEvent(answer: ServedAnswer): ServedEvent & { kind: "served" } {
  return {
    kind: "served",
    userId: answer.userId,
    timestamp: answer.timestamp,
    requestId: answer.requestId,
    items: answer.items.map((item, i) => ({
      itemId: item.itemId,
      position: i + 1,
      provenance: item.provenance.map((p) => ({
        source: p.sourceName !== "" ? p.sourceName : String(p.source),
        rank: p.rank,
        score: p.score,
      })),
    })),
    modelVersions: modelVersionsOf(answer.versions),
  };
}

export interface ServedLogOptions {
  readonly flushMs?: number;
  readonly maxBatch?: number;
  readonly maxQueued?: number;
}

export class ServedLog {
  private queue: UserEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly flushMs: number;
  private readonly maxBatch: number;
  private readonly maxQueued: number;
  /** Answers appended (tests, metrics). */
  logged = 0;

  constructor(
    private readonly store: UserStore,
    private readonly logger: Logger,
    private readonly failures: Counter<string> | undefined,
    options: ServedLogOptions = {},
  ) {
    this.flushMs = options.flushMs ?? 50;
    this.maxBatch = Math.min(options.maxBatch ?? 500, store.limits.maxEventsPerAppend);
    this.maxQueued = options.maxQueued ?? 20_000;
  }

  /** Queues one answer (never throws, never waits). */
  log(answer: ServedAnswer): void {
    if (this.closed) return;
    if (this.queue.length >= this.maxQueued) {
      this.failures?.inc({ reason: "queue_full" });
      return;
    }
    this.queue.push(servedEvent(answer));
    if (this.queue.length >= this.maxBatch) this.flushSoon(0);
    else this.flushSoon(this.flushMs);
  }

  private flushSoon(ms: number): void {
    if (this.timer !== undefined) {
      if (ms > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, ms);
    this.timer.unref();
  }

  /** Appends everything queued; resolves when written (or failed: counted and logged). */
  flush(): Promise<void> {
    const run = async (): Promise<void> => {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          await this.store.append(batch);
          this.logged += batch.length;
        } catch (error) {
          this.failures?.inc({ reason: "store" }, batch.length);
          this.logger.warn({ err: error, answers: batch.length }, "served answers not logged");
        }
      }
    };
    this.flushing = this.flushing.then(run);
    return this.flushing;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.flush();
  }
}
