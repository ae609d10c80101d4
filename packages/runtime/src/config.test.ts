import { describe, expect, it } from "vitest";
import { ConfigError, describeSchema, env, loadConfig, parseDurationMs, runtimeConfigSchema } from "./config.js";

const schema = {
  NAME: env.string({ required: true }),
  COUNT: env.int({ default: 10, min: 1, max: 100 }),
  RATIO: env.number({ default: 0.5, min: 0, max: 1 }),
  PORT: env.port({ default: 8080 }),
  ENDPOINT: env.url(),
  MODE: env.enum(["fast", "exact"], { default: "fast" }),
  VERBOSE: env.bool({ default: false }),
  TIMEOUT: env.duration({ default: 1000 }),
  PEERS: env.list({ default: [] }),
};

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("applies defaults and parses every kind", () => {
    const config = loadConfig(schema, { NAME: "ranking" });
    expect(config).toEqual({
      NAME: "ranking",
      COUNT: 10,
      RATIO: 0.5,
      PORT: 8080,
      ENDPOINT: undefined,
      MODE: "fast",
      VERBOSE: false,
      TIMEOUT: 1000,
      PEERS: [],
    });
    const parsed = loadConfig(schema, {
      NAME: " x ",
      COUNT: "42",
      RATIO: "0.25",
      PORT: "0",
      ENDPOINT: "http://feature-store:8080/v1",
      MODE: "exact",
      VERBOSE: "YES",
      TIMEOUT: "1.5s",
      PEERS: "a:1, b:2,,c:3 ",
    });
    expect(parsed).toEqual({
      NAME: "x",
      COUNT: 42,
      RATIO: 0.25,
      PORT: 0,
      ENDPOINT: "http://feature-store:8080/v1",
      MODE: "exact",
      VERBOSE: true,
      TIMEOUT: 1500,
      PEERS: ["a:1", "b:2", "c:3"],
    });
  });

  it("returns a frozen object", () => {
    const config = loadConfig(schema, { NAME: "x" });
    expect(Object.isFrozen(config)).toBe(true);
    expect(() => {
      (config as { NAME: string }).NAME = "y";
    }).toThrow(TypeError);
  });

  it("treats an empty value as unset", () => {
    expect(loadConfig(schema, { NAME: "x", COUNT: "" }).COUNT).toBe(10);
    expect(errorOf(() => loadConfig(schema, { NAME: "  " })).variable).toBe("NAME");
  });

  it("names the missing required variable", () => {
    const error = errorOf(() => loadConfig(schema, {}));
    expect(error.variable).toBe("NAME");
    expect(error.message).toBe("NAME is required but not set");
  });

  it.each([
    ["COUNT", "ten", /COUNT is invalid: expected an integer, got "ten"/],
    ["COUNT", "1000", /COUNT is invalid: expected an integer in 1..100, got 1000/],
    ["COUNT", "1.5", /COUNT is invalid: expected an integer/],
    ["RATIO", "2", /RATIO is invalid: expected a number in 0..1/],
    ["RATIO", "NaN", /RATIO is invalid: expected a number/],
    ["PORT", "65536", /PORT is invalid: expected an integer in 0..65535/],
    ["PORT", "-1", /PORT is invalid/],
    ["ENDPOINT", "not a url", /ENDPOINT is invalid: expected an absolute URL/],
    ["MODE", "slow", /MODE is invalid: expected one of fast, exact, got "slow"/],
    ["VERBOSE", "maybe", /VERBOSE is invalid: expected true or false/],
    ["TIMEOUT", "5 minutes", /TIMEOUT is invalid: expected a duration/],
  ])("rejects %s=%s naming the variable", (name, value, message) => {
    const error = errorOf(() => loadConfig(schema, { NAME: "x", [name]: value }));
    expect(error.variable).toBe(name);
    expect(error.message).toMatch(message);
  });

  it("types optional variables as possibly undefined and the rest as values", () => {
    const config = loadConfig(schema, { NAME: "x" });
    // Compile-time checks: these assignments only type-check with the intended types.
    const name: string = config.NAME;
    const count: number = config.COUNT;
    const mode: "fast" | "exact" = config.MODE;
    const endpoint: string | undefined = config.ENDPOINT;
    const peers: readonly string[] = config.PEERS;
    expect([name, count, mode, endpoint, peers.length]).toEqual(["x", 10, "fast", undefined, 0]);
  });
});

describe("parseDurationMs", () => {
  it.each([
    ["250", 250],
    ["250ms", 250],
    ["2s", 2000],
    ["0.5s", 500],
    ["3m", 180_000],
    ["1h", 3_600_000],
  ])("%s = %d ms", (raw, ms) => {
    expect(parseDurationMs(raw)).toBe(ms);
  });
});

describe("schema introspection", () => {
  it("lists the runtime variables with their kinds and defaults", () => {
    expect(Object.keys(runtimeConfigSchema)).toEqual([
      "GRPC_HOST",
      "GRPC_PORT",
      "METRICS_PORT",
      "LOG_LEVEL",
      "GRPC_MAX_MESSAGE_BYTES",
      "GRPC_REFLECTION",
      "GRPC_SERVER",
      "GRPC_MAX_CONNECTION_AGE",
      "SHUTDOWN_DELAY",
      "DRAIN_TIMEOUT",
      "SHUTDOWN_TIMEOUT",
    ]);
    const rows = describeSchema(schema);
    expect(rows.find((row) => row.name === "NAME")).toMatchObject({ kind: "string", required: true });
    expect(rows.find((row) => row.name === "MODE")).toMatchObject({ kind: "enum", default: "fast" });
  });

  it("loads the runtime defaults from an empty environment", () => {
    expect(loadConfig(runtimeConfigSchema, {})).toMatchObject({
      GRPC_PORT: 50051,
      METRICS_PORT: 9464,
      LOG_LEVEL: "info",
      GRPC_REFLECTION: true,
      GRPC_MAX_CONNECTION_AGE: 300_000,
      DRAIN_TIMEOUT: 15_000,
    });
  });
});
