/**
 * Http2Server's grpc-timeout parsing. The server's calls (raw HTTP/2 framing, deadlines, size
 * limits, compression, status messages, streaming) are tested end to end against served stages in
 * packages/runtime/src/http2-server.test.ts.
 */
import { describe, expect, it } from "vitest";
import { parseGrpcTimeout } from "./http2-server.js";

describe("parseGrpcTimeout", () => {
  it("reads every unit and rejects malformed values", () => {
    expect(parseGrpcTimeout("100m")).toBe(100);
    expect(parseGrpcTimeout("5S")).toBe(5000);
    expect(parseGrpcTimeout("2M")).toBe(120_000);
    expect(parseGrpcTimeout("1H")).toBe(3_600_000);
    expect(parseGrpcTimeout("2500u")).toBe(2.5);
    expect(parseGrpcTimeout("3000000n")).toBe(3);
    expect(parseGrpcTimeout("123456789m")).toBeUndefined(); // more than 8 digits
    expect(parseGrpcTimeout("10x")).toBeUndefined();
    expect(parseGrpcTimeout(undefined)).toBeUndefined();
  });
});
