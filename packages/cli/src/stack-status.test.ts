import { describe, expect, it } from "vitest";
import { formatStackHealth, modelVersionOf } from "./stack-status.js";

describe("recsys status", () => {
  it("reads the served model version from a stage's /metrics", () => {
    const text = [
      "# HELP recsys_ranking_model_info The model version being served",
      "# TYPE recsys_ranking_model_info gauge",
      'recsys_ranking_model_info{model_version="rank-20261207-abc"} 1',
      "recsys_ranking_grpc_requests_in_flight 0",
    ].join("\n");
    expect(modelVersionOf(text)).toBe("rank-20261207-abc");
    expect(modelVersionOf("recsys_ranking_grpc_requests_in_flight 0\n")).toBe("");
  });

  it("prints one row per stage with health, readiness, version, restarts, state and pid", () => {
    const out = formatStackHealth([
      { name: "ranking", address: "127.0.0.1:1", pid: 10, alive: true, health: "SERVING", version: "r1", restarts: 2, state: "serving" },
      {
        name: "orchestrator",
        address: "127.0.0.1:2",
        pid: 11,
        alive: false,
        health: "UNAVAILABLE",
        ready: "UNAVAILABLE",
        version: "",
        restarts: 0,
        state: "restarting",
      },
    ]);
    const lines = out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^stage\s+health\s+ready\s+version\s+restarts\s+state\s+pid\s+address$/);
    expect(lines[1]).toMatch(/^ranking\s+SERVING\s+-\s+r1\s+2\s+serving\s+10\s+127\.0\.0\.1:1$/);
    expect(lines[2]).toMatch(/^orchestrator\s+UNAVAILABLE\s+UNAVAILABLE\s+-\s+0\s+exited\s+11\s+127\.0\.0\.1:2$/);
  });
});
