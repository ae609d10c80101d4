/**
 * Http2Channel's target parsing. The channel's calls (deadlines, cancellation, size limits,
 * compression, name resolution, keepalive, connection recycling) are tested end to end against
 * served stages in packages/runtime/src/http2-channel.test.ts.
 */
import { describe, expect, it } from "vitest";
import { parseTarget } from "./http2-channel.js";

describe("parseTarget", () => {
  it("takes host:port, [ipv6]:port and dns targets", () => {
    expect(parseTarget("127.0.0.1:50051")).toEqual({ host: "127.0.0.1", port: 50051, authority: "127.0.0.1:50051" });
    expect(parseTarget("[::1]:8080")).toEqual({ host: "::1", port: 8080, authority: "[::1]:8080" });
    expect(parseTarget("dns:///ranking.recsys.svc:50051")).toEqual({
      host: "ranking.recsys.svc",
      port: 50051,
      authority: "ranking.recsys.svc:50051",
    });
    expect(parseTarget("dns:ranking:7")).toEqual({ host: "ranking", port: 7, authority: "ranking:7" });
  });

  it("refuses targets without a port or with another authority", () => {
    expect(() => parseTarget("ranking")).toThrow(/expected host:port/);
    expect(() => parseTarget("dns://8.8.8.8/ranking:50051")).toThrow(/expected host:port/);
    expect(() => parseTarget("ranking:0")).toThrow(/out of range/);
    expect(() => parseTarget("::1:50051")).toThrow(/expected host:port/);
  });
});
