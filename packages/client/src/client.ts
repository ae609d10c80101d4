/**
 * `RecsysClient`: the public API (`recsys.v1.RecommenderService` and `recsys.v1.CatalogueService`,
 * both served by the orchestrator on one address) as typed methods, over one connection of the
 * runtime's gRPC transport (`Http2Channel`: keepalive, round-robin over
 * every address of a `dns:///` name, re-resolution; grpc-js with TLS credentials).
 *
 * Every call has a deadline (`timeoutMs`, default 1 s, or an absolute `deadline`), shared by all
 * its attempts and sent to the server, which passes it downstream. Idempotent methods are retried
 * on UNAVAILABLE with exponential backoff and full jitter (see retry.ts) while the deadline
 * allows; the others only when the call asks for it. Failures reject with `RecsysError`.
 */
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { Metadata, type ChannelCredentials } from "@grpc/grpc-js";
import {
  CatalogueService,
  MAX_RECORD_EVENTS,
  RecommenderService,
  type CatalogueServiceDeleteItemsResponse,
  type CatalogueServiceGetItemsResponse,
  type CatalogueServiceUpsertItemsResponse,
  type RecommendResponse,
  type RecordEventsResponse,
} from "@recsys/gen";
import { connect, createClient, type Client } from "@recsys/runtime";
import { ErrorCode, RecsysError, toRecsysError } from "./errors.js";
import { impressionEvents, type ImpressionOptions } from "./events.js";
import { DEFAULT_RETRY_POLICY, backoffMs, checkRetryPolicy, sleep, type RetryPolicy } from "./retry.js";

type RecommenderApi = typeof RecommenderService.method;
type CatalogueApi = typeof CatalogueService.method;
type Api = RecommenderApi & CatalogueApi;
/** A method of either service, by its name in the generated code ("recommend", "upsertItems", …). */
export type MethodName = keyof Api;

// Methods are called by name across both services: two services sharing a method name would be
// ambiguous, so that fails to compile here.
const distinctMethodNames: [keyof RecommenderApi & keyof CatalogueApi] extends [never] ? true : never = true;
void distinctMethodNames;
export type RequestOf<M extends MethodName> = MessageInitShape<Api[M]["input"]>;
export type ResponseOf<M extends MethodName> = MessageShape<Api[M]["output"]>;

/**
 * Whether a method may safely reach the server twice, hence be retried by default. Every method of
 * both services must be listed (a new one fails to compile until it is).
 *
 * - Recommend reads only: a retry returns another list (request_id differs), nothing changes.
 * - RecordEvents is NOT idempotent: the orchestrator appends every event it accepts and has no
 *   event id to drop a duplicate by, so a watch sent twice counts twice (history, co-watch,
 *   trending) and an impression sent twice raises the ranker's "previous impressions" feature.
 *   The transport already re-sends a call the server never saw (refused stream, GOAWAY, no
 *   connection yet), which is safe; anything else (a timeout, a dropped connection, UNAVAILABLE
 *   from the user store) may or may not have been applied, so the client does not retry it
 *   unless the call says `retry: true` (at least once delivery: a duplicate over a loss).
 *
 * CatalogueService (catalogue.proto):
 * - UpsertItems is idempotent by contract: it replaces each item whole, so the same call applied
 *   twice leaves the same state (the server's `updated_at` differs; so does the upload time of an
 *   item sent without `uploaded_at`, which the server stamps on receipt: give it to make a retry
 *   exact). A shard failure answers UNAVAILABLE after the item is stored ("retry").
 * - DeleteItems is idempotent by contract: a takedown of a taken-down (or unknown) id is one
 *   again. UNAVAILABLE when a retrieval shard could not drop the items (stored and enforced by
 *   the orchestrators meanwhile): retrying is what the server asks for.
 * - GetItems reads only.
 */
export const IDEMPOTENT = {
  recommend: true,
  recordEvents: false,
  upsertItems: true,
  deleteItems: true,
  getItems: true,
} as const satisfies Record<MethodName, boolean>;

/** The service that serves each method. */
const SERVICE_OF: Readonly<Record<MethodName, "recommender" | "catalogue">> = {
  ...(Object.fromEntries(Object.keys(RecommenderService.method).map((key) => [key, "recommender"])) as Record<
    keyof RecommenderApi,
    "recommender"
  >),
  ...(Object.fromEntries(Object.keys(CatalogueService.method).map((key) => [key, "catalogue"])) as Record<keyof CatalogueApi, "catalogue">),
};

/** The proto name of each method, for errors and logs. */
const METHOD_NAMES: Readonly<Record<MethodName, string>> = Object.fromEntries(
  [...Object.entries(RecommenderService.method), ...Object.entries(CatalogueService.method)].map(([key, method]) => [key, method.name]),
) as Record<MethodName, string>;

export interface RecsysClientOptions {
  /** The orchestrator: "host:port", "[::1]:port" or "dns:///name:port" (every address is used, round-robin). */
  readonly address: string;
  /** Deadline of a call made without one, ms from the call (all attempts included). Default 1000. */
  readonly timeoutMs?: number;
  /** Retry policy of idempotent calls (fields not given keep their default); `false`: never retry. */
  readonly retry?: Partial<RetryPolicy> | false;
  /** Metadata sent with every call (e.g. `{ authorization: "Bearer …" }`). */
  readonly metadata?: Readonly<Record<string, string>>;
  /** TLS credentials (`grpc.credentials.createSsl(…)`); the calls then go through grpc-js. Default plaintext. */
  readonly credentials?: ChannelCredentials;
  /** "http2" (default, the runtime's own client) or "grpc-js". */
  readonly transport?: "http2" | "grpc-js";
  /** Largest message sent or received, bytes. Default 16 MiB. */
  readonly maxMessageBytes?: number;
  /** Called before each retry (for logs or metrics). */
  readonly onRetry?: (event: RetryEvent) => void;
  /** Source of randomness for the jitter (tests make it deterministic). Default Math.random. */
  readonly random?: () => number;
}

export interface RetryEvent {
  readonly method: string;
  /** The attempt that failed, 1-based. */
  readonly attempt: number;
  readonly error: RecsysError;
  /** How long the client waits before the next attempt, ms. */
  readonly backoffMs: number;
}

export interface CallOptions {
  /** Deadline, ms from now (all attempts included). Default: the client's `timeoutMs`. */
  readonly timeoutMs?: number;
  /** Absolute deadline (Date or epoch ms); wins over `timeoutMs`. */
  readonly deadline?: Date | number;
  /** Cancels the call (and any wait before a retry); it then rejects with CANCELLED. */
  readonly signal?: AbortSignal;
  /** Metadata of this call, over the client's. */
  readonly metadata?: Readonly<Record<string, string>>;
  /**
   * `true`: retry even a method that is not idempotent (with the client's policy); `false`: never;
   * a partial policy: retry with it. Default: the client's policy for idempotent methods only.
   */
  readonly retry?: boolean | Partial<RetryPolicy>;
}

export class RecsysClient {
  private readonly recommender: Client<RecommenderApi>;
  private readonly catalogue: Client<CatalogueApi>;
  private readonly timeoutMs: number;
  private readonly policy: RetryPolicy | undefined;
  private readonly metadata: Readonly<Record<string, string>>;
  private readonly onRetry: ((event: RetryEvent) => void) | undefined;
  private readonly random: () => number;

  constructor(options: RecsysClientOptions) {
    this.timeoutMs = options.timeoutMs ?? 1000;
    if (!(Number.isFinite(this.timeoutMs) && this.timeoutMs > 0))
      throw new RangeError(`timeoutMs must be a positive number, got ${options.timeoutMs}`);
    this.policy = options.retry === false ? undefined : checkRetryPolicy({ ...DEFAULT_RETRY_POLICY, ...options.retry });
    this.metadata = options.metadata ?? {};
    this.onRetry = options.onRetry;
    this.random = options.random ?? Math.random;
    this.recommender = connect(RecommenderService, options.address, {
      ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
      ...(options.transport !== undefined ? { transport: options.transport } : {}),
      ...(options.maxMessageBytes !== undefined ? { maxMessageBytes: options.maxMessageBytes } : {}),
      defaultTimeoutMs: this.timeoutMs,
    });
    // The same orchestrator: the catalogue calls share the recommender's connection(s).
    this.catalogue = createClient(CatalogueService, this.recommender.$transport, { defaultTimeoutMs: this.timeoutMs });
  }

  /** Recommends `count` items to `userId` (see RecommendRequest in recommender.proto). Retried on UNAVAILABLE. */
  recommend(request: RequestOf<"recommend">, options?: CallOptions): Promise<RecommendResponse> {
    return this.invoke("recommend", request, options);
  }

  /** Records watches, searches and impressions (at most MAX_RECORD_EVENTS). Not retried unless `retry: true`. */
  recordEvents(request: RequestOf<"recordEvents">, options?: CallOptions): Promise<RecordEventsResponse> {
    return this.invoke("recordEvents", request, options);
  }

  /**
   * Adds or replaces catalogue items (at most MAX_CATALOGUE_ITEMS); when it resolves they are
   * stored, returned by GetItems and recommendable. Idempotent: retried on UNAVAILABLE. It fans
   * out to every retrieval shard (and the first one after a start or a new model waits for the
   * content-embedding table): give it a longer deadline than a Recommend, e.g. `{ timeoutMs: 10_000 }`.
   */
  upsertItems(request: RequestOf<"upsertItems">, options?: CallOptions): Promise<CatalogueServiceUpsertItemsResponse> {
    return this.invoke("upsertItems", request, options);
  }

  /**
   * Takes items down (at most MAX_CATALOGUE_ITEMS ids); when it resolves, no replica returns them
   * again. Idempotent: retried on UNAVAILABLE. Fans out to every retrieval shard, as upsertItems.
   */
  deleteItems(request: RequestOf<"deleteItems">, options?: CallOptions): Promise<CatalogueServiceDeleteItemsResponse> {
    return this.invoke("deleteItems", request, options);
  }

  /** Reads items back (found ones in request order, and which of the ids are taken down). Retried on UNAVAILABLE. */
  getItems(request: RequestOf<"getItems">, options?: CallOptions): Promise<CatalogueServiceGetItemsResponse> {
    return this.invoke("getItems", request, options);
  }

  // A new method of either service is one line in IDEMPOTENT (required) and a shorthand here.

  /**
   * Records that the items of `response` were shown to `userId` (one impression per item, with
   * its 1-based position and the response's request_id), so that the ranker learns from what was
   * shown and not watched. Call it once the list has been shown (or is sent to be shown); resolves
   * with the number of events stored. Like RecordEvents, not retried unless `retry: true`.
   */
  async recordImpressions(
    userId: string,
    response: Pick<RecommendResponse, "items" | "requestId">,
    options: ImpressionOptions & CallOptions = {},
  ): Promise<number> {
    const events = impressionEvents(userId, response, options);
    let accepted = 0;
    for (let start = 0; start < events.length; start += MAX_RECORD_EVENTS) {
      accepted += (await this.recordEvents({ events: events.slice(start, start + MAX_RECORD_EVENTS) }, options)).accepted;
    }
    return accepted;
  }

  /** Resolves once a connection to the orchestrator is up; rejects after `timeoutMs`. */
  async waitForReady(timeoutMs: number): Promise<void> {
    try {
      await this.recommender.$transport.waitForReady(Date.now() + timeoutMs);
    } catch (error) {
      throw toRecsysError(error, "waitForReady", 1);
    }
  }

  /** Closes the connections; calls in flight finish. */
  close(): void {
    // One transport under both stubs.
    this.recommender.$close();
  }

  private policyFor(method: MethodName, retry: CallOptions["retry"]): RetryPolicy | undefined {
    if (retry === false) return undefined;
    if (retry === undefined) return IDEMPOTENT[method] ? this.policy : undefined;
    if (retry === true) return this.policy ?? DEFAULT_RETRY_POLICY;
    return checkRetryPolicy({ ...(this.policy ?? DEFAULT_RETRY_POLICY), ...retry });
  }

  /**
   * Calls any method of RecommenderService or CatalogueService by its name in the generated
   * service (`"recommend"`, `"recordEvents"`, `"upsertItems"`, …) with the deadline and retry rules above; the named methods are shorthands
   * for it. The gateway forwards every method through it.
   */
  async invoke<M extends MethodName>(method: M, request: RequestOf<M>, options: CallOptions = {}): Promise<ResponseOf<M>> {
    const name = METHOD_NAMES[method];
    const deadline =
      options.deadline !== undefined
        ? options.deadline instanceof Date
          ? options.deadline.getTime()
          : options.deadline
        : Date.now() + (options.timeoutMs ?? this.timeoutMs);
    const policy = this.policyFor(method, options.retry);
    const metadata = new Metadata();
    for (const [key, value] of Object.entries({ ...this.metadata, ...options.metadata })) metadata.set(key, value);
    const stub = SERVICE_OF[method] === "catalogue" ? this.catalogue : this.recommender;
    const send = (stub as unknown as Record<MethodName, unknown>)[method] as (
      request: RequestOf<M>,
      options: { deadline: number; metadata: Metadata; signal?: AbortSignal },
    ) => Promise<ResponseOf<M>>;
    for (let attempt = 1; ; attempt++) {
      try {
        return await send(request, { deadline, metadata, ...(options.signal !== undefined ? { signal: options.signal } : {}) });
      } catch (thrown) {
        const error = toRecsysError(thrown, name, attempt);
        if (policy === undefined || attempt >= policy.maxAttempts || !policy.retryableCodes.includes(error.code)) throw error;
        if (options.signal?.aborted) throw error;
        const wait = backoffMs(policy, attempt, this.random);
        // No retry that could not finish in time: the caller gets the real error now, not a timeout later.
        if (Date.now() + wait >= deadline) throw error;
        this.onRetry?.({ method: name, attempt, error, backoffMs: wait });
        try {
          await sleep(wait, options.signal);
        } catch {
          throw new RecsysError(ErrorCode.Cancelled, `cancelled while waiting to retry after: ${error.details}`, name, attempt, {
            cause: error,
          });
        }
      }
    }
  }
}

/** A client of the orchestrator at `options.address`. Close it with `close()`. */
export function createRecsysClient(options: RecsysClientOptions): RecsysClient {
  return new RecsysClient(options);
}
