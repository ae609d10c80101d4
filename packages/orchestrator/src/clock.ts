/**
 * The serving clock: the time (Unix seconds) requests are served at and events are recorded at
 * when they carry none.
 *
 * - "wall": the system clock. For live data.
 * - "dataset": time continues from the end of the dataset the sources were built from: the clock
 *   reads `datasetEnd + (wall now - origin)`. Served over a historical dataset (ml-100k ends in
 *   1998) with the wall clock, every trending count would have decayed to nothing and no item
 *   would be fresh. `origin` (the wall time the clock started) is kept in the user store's
 *   metadata, so replicas sharing a Redis store agree on the time and a restart does not move the
 *   clock back before events already recorded.
 *
 * Readings are strictly increasing within the process (sub-millisecond resolution, and at least
 * 1 µs apart), so an event recorded at "now" is always before the next request's "now": the
 * sources only show events strictly before the request time.
 */

/** Wall clock in Unix seconds with sub-millisecond resolution. */
export function wallSeconds(): number {
  return (performance.timeOrigin + performance.now()) / 1000;
}

export class ServingClock {
  private last = -Infinity;

  constructor(
    readonly mode: "dataset" | "wall",
    /** Dataset mode: the serving time at `origin`. */
    private readonly datasetStart = 0,
    /** Dataset mode: the wall time (Unix seconds) the dataset clock started at. */
    private readonly origin = 0,
    private readonly wall: () => number = wallSeconds,
  ) {}

  /**
   * A wall-clock time (Unix seconds) on the serving clock: itself with the wall clock; shifted by
   * the dataset clock's fixed offset (datasetStart - origin) with the dataset clock, so a client
   * stamping events with the real time is understood by a server continuing a historical
   * dataset's time line.
   */
  fromWall(seconds: number): number {
    return this.mode === "wall" ? seconds : seconds + (this.datasetStart - this.origin);
  }

  /** The wall clock now (Unix seconds), whatever the mode. */
  wallNow(): number {
    return this.wall();
  }

  /** The current serving time, Unix seconds, strictly after every earlier reading. */
  now(): number {
    const raw = this.mode === "wall" ? this.wall() : this.datasetStart + (this.wall() - this.origin);
    this.last = Math.max(raw, this.last + 1e-6);
    return this.last;
  }
}
