/**
 * Deadline helpers: the arithmetic of child deadlines and expiry. Propagation through real servers
 * (client -> candidate generation -> ranking) is tested in packages/runtime/src/deadline.test.ts.
 */
import { describe, expect, it } from "vitest";
import { childDeadline, DEFAULT_DEADLINE_MARGIN_MS, DEFAULT_OUTGOING_TIMEOUT_MS, rejectIfExpired, remainingMs } from "./deadline.js";
import { RpcError, status } from "./errors.js";

const fakeCall = (deadline: Date | number) => ({ getDeadline: () => deadline });

describe("childDeadline", () => {
  const now = 1_000_000;

  it("is capped by the parent's deadline minus the margin", () => {
    expect(childDeadline(fakeCall(now + 300), { now, budgetMs: 1000 })).toBe(now + 300 - DEFAULT_DEADLINE_MARGIN_MS);
    expect(childDeadline(fakeCall(new Date(now + 300)), { now, budgetMs: 1000, marginMs: 50 })).toBe(now + 250);
  });

  it("is capped by the stage budget", () => {
    expect(childDeadline(fakeCall(now + 5000), { now, budgetMs: 80 })).toBe(now + 80);
  });

  it("uses the budget (or the default) when the parent has no deadline or there is no parent", () => {
    expect(childDeadline(fakeCall(Infinity), { now, budgetMs: 80 })).toBe(now + 80);
    expect(childDeadline(undefined, { now })).toBe(now + DEFAULT_OUTGOING_TIMEOUT_MS);
  });

  it("never lies in the past", () => {
    expect(childDeadline(fakeCall(now - 10), { now, budgetMs: 80 })).toBe(now);
  });

  it("rejectIfExpired throws DEADLINE_EXCEEDED only once the deadline has passed", () => {
    expect(() => rejectIfExpired(fakeCall(now + 1), now)).not.toThrow();
    expect(() => rejectIfExpired(fakeCall(Infinity), now)).not.toThrow();
    let thrown: unknown;
    try {
      rejectIfExpired(fakeCall(now - 20), now);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(RpcError);
    expect((thrown as RpcError).code).toBe(status.DEADLINE_EXCEEDED);
    expect(remainingMs(fakeCall(now + 7), now)).toBe(7);
  });
});
