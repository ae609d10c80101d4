/**
 * RecordEvents: validate, append to the user store (resolves once durable: fdatasync'ed or
 * acknowledged by Redis), then apply the watches to this replica's candidate sources, so the very
 * next Recommend reflects them (the watched item is excluded through the stored history, its
 * co-watch neighbours and the trending counts move).
 *
 * Replicas sharing a Redis store learn each other's watches through `store.subscribe`. The
 * subscription also delivers this replica's own appends; those were applied already, so each
 * watch appended here is remembered (`OwnEvents`) until its echo arrives and is then skipped:
 * no event is counted twice.
 */
import { MAX_QUERY_LENGTH, MAX_RECORD_EVENTS, type RecordEventsRequest, type UserEvent } from "@recsys/gen";
import {
  RpcError,
  invalidArgument,
  requireMaxItems,
  requireMaxLength,
  requireNonEmpty,
  requireValidTimestamp,
  status,
  unavailable,
} from "@recsys/runtime";
import { isUserStoreUnavailable, isUserStoreValidationError, type UserEvent as StoreEvent, type UserStore } from "@recsys/user-store";
import type { ServingClock } from "./clock.js";
import type { OrchestratorMetrics } from "./metrics.js";
import type { OnlineSources } from "./online.js";

/** Watches appended by this replica whose subscription echo has not arrived yet (a multiset). */
export class OwnEvents {
  private readonly pending = new Map<string, { count: number; expires: number }>();
  private lastSweep = 0;

  constructor(
    /** Forget an entry whose echo never came (stream trimmed, subscription down) after this long. */
    private readonly ttlMs = 10 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  private static key(event: { readonly userId: string; readonly itemId: string; readonly timestamp: number }): string {
    return `${event.userId}\u0000${event.itemId}\u0000${event.timestamp}`;
  }

  get size(): number {
    return this.pending.size;
  }

  add(events: readonly StoreEvent[]): void {
    const now = this.now();
    this.sweep(now);
    for (const event of events) {
      if (event.kind !== "watch") continue;
      const key = OwnEvents.key(event);
      const entry = this.pending.get(key);
      if (entry === undefined) this.pending.set(key, { count: 1, expires: now + this.ttlMs });
      else {
        entry.count++;
        entry.expires = now + this.ttlMs;
      }
    }
  }

  /** Takes back `events` (their append failed, so no echo will come). */
  remove(events: readonly StoreEvent[]): void {
    for (const event of events) if (event.kind === "watch") this.consume(event);
  }

  /** True (and forgotten) when `event` is one of ours. */
  consume(event: { readonly userId: string; readonly itemId: string; readonly timestamp: number }): boolean {
    const key = OwnEvents.key(event);
    const entry = this.pending.get(key);
    if (entry === undefined) return false;
    if (--entry.count === 0) this.pending.delete(key);
    return true;
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const [key, entry] of this.pending) if (entry.expires < now) this.pending.delete(key);
  }
}

/** Applies events delivered by the store's subscription (other replicas' watches). */
export function applyReplicatedEvents(
  events: readonly StoreEvent[],
  own: OwnEvents,
  online: OnlineSources,
  metrics: OrchestratorMetrics,
): void {
  for (const event of events) {
    if (event.kind !== "watch" || own.consume(event)) continue;
    online.observeWatch(event);
    metrics.replicatedEvents.inc();
  }
}

export interface RecordEventsDeps {
  readonly store: UserStore;
  readonly online: OnlineSources;
  readonly clock: ServingClock;
  readonly metrics: OrchestratorMetrics;
  /** Set when other replicas share the store (Redis): our own watches to skip in the subscription. */
  readonly own: OwnEvents | undefined;
  /** Events may be timestamped at most this far after the serving clock. */
  readonly maxClockSkewSeconds: number;
}

/** Largest timestamp the user store accepts (Unix seconds; milliseconds are rejected). */
const MAX_STORE_TIMESTAMP = 1e11;

/**
 * A dataset clock's view of real time: events stamped after the serving clock's now but not after
 * the wall clock's (plus the skew) are real-time stamps, shifted onto the serving time line.
 */
export interface WallTranslation {
  readonly wallNow: number;
  fromWall(seconds: number): number;
}

function eventTime(
  ts: { readonly seconds: bigint; readonly nanos: number } | undefined,
  field: string,
  now: number,
  maxSkew: number,
  wall?: WallTranslation,
): number {
  if (ts === undefined) return now;
  let seconds = requireValidTimestamp(ts as Parameters<typeof requireValidTimestamp>[0], field);
  if (wall !== undefined && seconds > now + maxSkew && seconds <= wall.wallNow + maxSkew) seconds = wall.fromWall(seconds);
  if (seconds < 0 || seconds > MAX_STORE_TIMESTAMP) throw invalidArgument(`${field} is out of range: ${seconds} Unix seconds`);
  if (seconds > now + maxSkew) {
    throw invalidArgument(
      `${field} is ${Math.round(seconds - now)} s after the server clock (${new Date(now * 1000).toISOString()}); ` +
        `events may be at most ${maxSkew} s ahead`,
    );
  }
  return seconds;
}

/** A proto UserEvent as the store's, validated; throws INVALID_ARGUMENT naming the field. */
export function toStoreEvent(event: UserEvent, i: number, now: number, maxSkew: number, wall?: WallTranslation): StoreEvent {
  const field = `events[${i}]`;
  const userId = requireNonEmpty(event.userId, `${field}.user_id`);
  requireMaxLength(event.clientId, `${field}.client_id`);
  switch (event.kind.case) {
    case "watch": {
      const watch = event.kind.value;
      const itemId = requireNonEmpty(watch.itemId, `${field}.watch.item_id`);
      const timestamp = eventTime(watch.watchedAt, `${field}.watch.watched_at`, now, maxSkew, wall);
      if (watch.watchSeconds !== undefined && !(Number.isFinite(watch.watchSeconds) && watch.watchSeconds >= 0)) {
        throw invalidArgument(`${field}.watch.watch_seconds must be a finite number >= 0, got ${watch.watchSeconds}`);
      }
      return {
        kind: "watch",
        userId,
        itemId,
        timestamp,
        ...(watch.watchSeconds !== undefined ? { watchSeconds: watch.watchSeconds } : {}),
        ...(event.clientId !== "" ? { clientId: event.clientId } : {}),
      };
    }
    case "search": {
      const search = event.kind.value;
      const query = requireNonEmpty(search.query, `${field}.search.query`, MAX_QUERY_LENGTH);
      if (query.trim() === "") throw invalidArgument(`${field}.search.query is blank`);
      return { kind: "search", userId, query, timestamp: eventTime(search.searchedAt, `${field}.search.searched_at`, now, maxSkew, wall) };
    }
    case "impression": {
      const impression = event.kind.value;
      const itemId = requireNonEmpty(impression.itemId, `${field}.impression.item_id`);
      const timestamp = eventTime(impression.shownAt, `${field}.impression.shown_at`, now, maxSkew, wall);
      requireMaxLength(impression.requestId, `${field}.impression.request_id`);
      return {
        kind: "impression",
        userId,
        itemId,
        timestamp,
        ...(impression.position > 0 ? { position: impression.position } : {}),
        ...(impression.requestId !== "" ? { requestId: impression.requestId } : {}),
      };
    }
    default:
      throw invalidArgument(`${field} has no watch, search or impression`);
  }
}

export async function recordEvents(deps: RecordEventsDeps, request: RecordEventsRequest): Promise<{ accepted: number }> {
  requireMaxItems(request.events, MAX_RECORD_EVENTS, "events");
  const now = deps.clock.now();
  const clock = deps.clock;
  const wall: WallTranslation | undefined =
    clock.mode === "dataset" ? { wallNow: clock.wallNow(), fromWall: (seconds) => clock.fromWall(seconds) } : undefined;
  const events = request.events.map((event, i) => toStoreEvent(event, i, now, deps.maxClockSkewSeconds, wall));
  if (events.length === 0) return { accepted: 0 };
  // Registered before the append: the echo may arrive before the append call returns.
  deps.own?.add(events);
  try {
    await deps.store.append(events);
  } catch (error) {
    deps.own?.remove(events);
    if (isUserStoreValidationError(error)) throw invalidArgument(error.message, { cause: error });
    if (isUserStoreUnavailable(error)) throw unavailable(`user store unavailable: ${error.message}`, { cause: error });
    throw new RpcError(status.INTERNAL, "user store failed", { cause: error });
  }
  const counts = { watch: 0, search: 0, impression: 0, served: 0 };
  for (const event of events) {
    counts[event.kind]++;
    if (event.kind === "watch") deps.online.observeWatch(event);
  }
  for (const [kind, n] of Object.entries(counts)) if (n > 0) deps.metrics.recordedEvents.inc({ kind }, n);
  return { accepted: events.length };
}
