import { describe, expect, it } from "vitest";
import { status } from "@recsys/transport";
import { requireValidTimestamp, timestampSeconds, validTimestamp } from "./validate.js";

describe("timestamps", () => {
  it("converts seconds and nanos to Unix seconds", () => {
    expect(timestampSeconds({ seconds: 1_700_000_000n, nanos: 500_000_000 })).toBe(1_700_000_000.5);
    expect(requireValidTimestamp({ seconds: 12n, nanos: 250_000_000 }, "t")).toBe(12.25);
  });

  it("refuses nanos outside 0..999999999 with the field's name, and validTimestamp agrees", () => {
    for (const nanos of [-1, 1_000_000_000, 0.5]) {
      const ts = { seconds: 1n, nanos };
      expect(validTimestamp(ts)).toBe(false);
      expect(() => requireValidTimestamp(ts, "context.request_time")).toThrow(
        expect.objectContaining({
          code: status.INVALID_ARGUMENT,
          message: `context.request_time.nanos must be in 0..999999999, got ${nanos}`,
        }),
      );
    }
    for (const nanos of [0, 999_999_999]) expect(validTimestamp({ seconds: -5n, nanos })).toBe(true);
  });
});
