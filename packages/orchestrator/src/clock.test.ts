import { describe, expect, it } from "vitest";
import { ServingClock } from "./clock.js";

describe("ServingClock", () => {
  it("continues from the dataset's end at wall speed in dataset mode", () => {
    let wall = 2_000_000_000;
    const clock = new ServingClock("dataset", 900_000_000, 2_000_000_000, () => wall);
    expect(clock.now()).toBe(900_000_000);
    wall += 60;
    expect(clock.now()).toBe(900_000_060);
  });

  it("never repeats or goes back, so an event recorded at now is before the next request", () => {
    let wall = 100;
    const clock = new ServingClock("wall", 0, 0, () => wall);
    const a = clock.now();
    const b = clock.now();
    wall = 99; // the system clock stepped back
    const c = clock.now();
    expect(b).toBeGreaterThan(a);
    expect(c).toBeGreaterThan(b);
  });
});
