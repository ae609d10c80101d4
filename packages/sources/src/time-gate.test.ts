import { describe, expect, it } from "vitest";
import { TimeGate } from "./time-gate.js";
import type { WatchEvent } from "./types.js";

function gate(): { gate: TimeGate; applied: WatchEvent[] } {
  const applied: WatchEvent[] = [];
  return { gate: new TimeGate((e) => applied.push(e)), applied };
}

describe("TimeGate", () => {
  it("applies exactly the events strictly before the time asked, in time order", () => {
    const { gate: g, applied } = gate();
    g.observe({ user: 0, item: 1, timestamp: 20 });
    g.observe({ user: 0, item: 2, timestamp: 10 }); // out of order
    g.observe({ user: 0, item: 3, timestamp: 10 });
    g.observe({ user: 0, item: 4, timestamp: 30 });
    g.advanceTo(10);
    expect(applied).toEqual([]);
    g.advanceTo(20);
    expect(applied.map((e) => e.item)).toEqual([2, 3]); // equal times keep arrival order
    g.advanceTo(30.5);
    expect(applied.map((e) => e.item)).toEqual([2, 3, 1, 4]);
    expect(g.pendingCount).toBe(0);
  });

  it("refuses to go back in time and applies late events at once", () => {
    const { gate: g, applied } = gate();
    g.advanceTo(100);
    expect(() => g.advanceTo(99)).toThrow(/non-decreasing time order/);
    g.observe({ user: 0, item: 7, timestamp: 50 });
    expect(applied.map((e) => e.item)).toEqual([7]);
    g.observe({ user: 0, item: 8, timestamp: 100 });
    expect(applied.map((e) => e.item)).toEqual([7]);
    expect(g.clock).toBe(100);
  });

  it("rejects malformed events", () => {
    const { gate: g } = gate();
    expect(() => g.observe({ user: -1, item: 0, timestamp: 0 })).toThrow(/event.user/);
    expect(() => g.observe({ user: 0, item: 1.5, timestamp: 0 })).toThrow(/event.item/);
    expect(() => g.observe({ user: 0, item: 0, timestamp: Number.NaN })).toThrow(/event.timestamp/);
    expect(() => g.advanceTo(Number.NaN)).toThrow(/NaN/);
  });
});
