/**
 * Test helpers for services built on the runtime (`@recsys/runtime/testing`): a config bound to
 * 127.0.0.1 on free ports with short shutdown timeouts, a logger that keeps its lines in memory,
 * /metrics scraping, and the error of a call expected to fail.
 */
import type { ServiceError } from "@grpc/grpc-js";
import { loadConfig, runtimeConfigSchema, type RuntimeConfig } from "../config.js";
import { isServiceError } from "@recsys/transport";
import { createLogger, type Logger } from "../logger.js";

/** Runtime config for tests: 127.0.0.1, port 0 for gRPC and metrics, silent-fast shutdown. */
export function testConfig(overrides: Partial<RuntimeConfig> = {}): RuntimeConfig {
  const base = loadConfig(runtimeConfigSchema, {
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    METRICS_PORT: "0",
    LOG_LEVEL: "silent",
    DRAIN_TIMEOUT: "2s",
    SHUTDOWN_TIMEOUT: "1s",
  });
  return Object.freeze({ ...base, ...overrides });
}

export interface MemoryLogger {
  readonly logger: Logger;
  /** Every line logged so far, parsed. */
  readonly lines: Array<Record<string, unknown>>;
  /** Every line logged so far, raw JSON text. */
  text(): string;
}

/** A pino logger at `level` (default "debug") whose lines are kept in memory. */
export function memoryLogger(service: string, level: "debug" | "info" | "warn" = "debug"): MemoryLogger {
  const raw: string[] = [];
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    service,
    level,
    destination: {
      write(line: string) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  });
  return { logger, lines, text: () => raw.join("") };
}

/** GET http://127.0.0.1:<port>/metrics as text. */
export async function scrapeMetrics(port: number, host = "127.0.0.1"): Promise<string> {
  const response = await fetch(`http://${host}:${port}/metrics`);
  if (!response.ok) throw new Error(`GET /metrics: HTTP ${response.status}`);
  return response.text();
}

/**
 * The value of one sample in Prometheus text output, e.g.
 * metricValue(text, "recsys_ranking_grpc_requests_total", { method: "...", code: "OK" });
 * undefined when absent. Labels must match exactly (all of them, any order).
 */
export function metricValue(text: string, name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  const wanted = Object.entries(labels)
    .map(([key, value]) => `${key}="${value}"`)
    .sort()
    .join(",");
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const found = (match[2] ?? "")
      .split(/,(?=[a-zA-Z_][a-zA-Z0-9_]*=")/)
      .filter((pair) => pair !== "")
      .sort()
      .join(",");
    if (found === wanted) return Number(match[3]);
  }
  return undefined;
}

/** The ServiceError `promise` rejects with; throws when it resolves or rejects with anything else. */
export async function rejection(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    if (isServiceError(error)) return error;
    throw error;
  }
  throw new Error("expected the call to fail");
}
