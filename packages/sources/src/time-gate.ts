import type { WatchEvent } from "./types.js";

/**
 * The guard that makes "no future leakage" a property of every stateful source.
 *
 * A source never applies an event to its state directly: it hands it to its gate with `observe`,
 * and before answering a request at time `t` it calls `advanceTo(t)`, which applies the pending
 * events with timestamp strictly before `t`, in time order (ties in arrival order). Invariant:
 * after `advanceTo(t)` the state holds every observed event with timestamp < t and none with
 * timestamp >= t. Time only moves forward: `advanceTo` with an earlier time throws, because
 * applied events cannot be taken back.
 *
 * An event observed with a timestamp before the current clock (a late event) is applied at once:
 * every later request is at or after the clock, so it is in their past. It may be applied after
 * events that happened later than it (order-sensitive sources such as co-watch see it late).
 *
 * Offline replay feeds events in time order and asks at increasing times; online, the
 * orchestrator observes events as they arrive (timestamp = now) and asks at `asOf = now`: an
 * event recorded in the current second becomes visible to requests of the next second.
 */
export class TimeGate {
  private clockValue = -Infinity;
  private pending: WatchEvent[] = [];
  private head = 0;
  private sorted = true;

  constructor(private readonly apply: (event: WatchEvent) => void) {}

  /** Every applied event is before this time; no pending event is. `-Infinity` before any query. */
  get clock(): number {
    return this.clockValue;
  }

  /** Number of observed events not applied yet. */
  get pendingCount(): number {
    return this.pending.length - this.head;
  }

  observe(event: WatchEvent): void {
    checkEvent(event);
    if (event.timestamp < this.clockValue) {
      this.apply(event);
      return;
    }
    const last = this.pending.length > this.head ? this.pending[this.pending.length - 1]! : undefined;
    if (last !== undefined && event.timestamp < last.timestamp) this.sorted = false;
    this.pending.push(event);
  }

  /** Applies every pending event with timestamp < `time`; throws if `time` is before the clock. */
  advanceTo(time: number): void {
    if (Number.isNaN(time)) throw new RangeError("cannot advance a source to time NaN");
    if (time < this.clockValue) {
      throw new RangeError(
        `cannot answer at time ${time}: this source already applied events up to time ${this.clockValue} ` +
          "(requests to a stateful source must come in non-decreasing time order)",
      );
    }
    this.clockValue = time;
    if (this.head === this.pending.length) return;
    if (!this.sorted) {
      // Array.prototype.sort is stable: equal timestamps keep arrival order.
      const rest = this.pending.slice(this.head).sort((a, b) => a.timestamp - b.timestamp);
      this.pending = rest;
      this.head = 0;
      this.sorted = true;
    }
    const pending = this.pending;
    let k = this.head;
    while (k < pending.length && pending[k]!.timestamp < time) this.apply(pending[k++]!);
    this.head = k;
    if (this.head === pending.length) {
      this.pending = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > pending.length) {
      this.pending = pending.slice(this.head);
      this.head = 0;
    }
  }
}

export function checkEvent(event: WatchEvent): void {
  if (!Number.isInteger(event.user) || event.user < 0) throw new RangeError(`event.user must be a user index, got ${event.user}`);
  if (!Number.isInteger(event.item) || event.item < 0) throw new RangeError(`event.item must be an item index, got ${event.item}`);
  if (!Number.isFinite(event.timestamp)) throw new RangeError(`event.timestamp must be a finite Unix time, got ${event.timestamp}`);
}
