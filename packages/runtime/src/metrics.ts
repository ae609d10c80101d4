/**
 * Prometheus metrics of a service, on their own registry (several services can share a process in
 * tests) and their own HTTP port (`GET /metrics`).
 *
 * Names: `recsys_<stage>_grpc_requests_total{method,code}` and
 * `recsys_<stage>_grpc_request_duration_seconds{method}`,
 * `recsys_<stage>_grpc_requests_in_flight` (calls being handled, all methods), plus prom-client's default process
 * metrics. `method` is the gRPC path without the leading slash
 * ("recsys.v1.RankingService/Rank"), `code` the status name ("OK", "INVALID_ARGUMENT", ...).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export const METRIC_LABEL_METHOD = "method";
export const METRIC_LABEL_CODE = "code";

/** Latency buckets in seconds: 1ms .. 10s. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const STAGE_PATTERN = /^[a-z][a-z0-9_]*$/;

/** Checks a stage name is usable in metric names ("ranking", "candidate_generation"). */
export function assertStageName(stage: string): void {
  if (!STAGE_PATTERN.test(stage)) {
    throw new Error(`stage name "${stage}" must match ${STAGE_PATTERN} (it is part of metric names)`);
  }
}

export interface RpcMetrics {
  readonly registry: Registry;
  readonly requests: Counter<typeof METRIC_LABEL_METHOD | typeof METRIC_LABEL_CODE>;
  readonly duration: Histogram<typeof METRIC_LABEL_METHOD>;
  readonly inFlight: Gauge;
  /** Records one finished call. */
  observe(method: string, code: string, seconds: number): void;
}

/** Creates the per-RPC metrics (and the default process metrics) on `registry`. */
export function createRpcMetrics(stage: string, registry: Registry = new Registry()): RpcMetrics {
  assertStageName(stage);
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: `recsys_${stage}_grpc_requests_total`,
    help: `gRPC requests handled by the ${stage} service, by method and status code`,
    labelNames: [METRIC_LABEL_METHOD, METRIC_LABEL_CODE] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: `recsys_${stage}_grpc_request_duration_seconds`,
    help: `Latency of gRPC requests handled by the ${stage} service, by method`,
    labelNames: [METRIC_LABEL_METHOD] as const,
    buckets: [...LATENCY_BUCKETS_SECONDS],
    registers: [registry],
  });
  const inFlight = new Gauge({
    name: `recsys_${stage}_grpc_requests_in_flight`,
    help: `gRPC requests being handled by the ${stage} service`,
    registers: [registry],
  });
  return {
    registry,
    requests,
    duration,
    inFlight,
    observe(method, code, seconds) {
      requests.inc({ [METRIC_LABEL_METHOD]: method, [METRIC_LABEL_CODE]: code });
      duration.observe({ [METRIC_LABEL_METHOD]: method }, seconds);
    },
  };
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves `registry` at `GET /metrics` on host:port (port 0 = any free port, read back). */
export function startMetricsServer(registry: Registry, port: number, host: string): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "").split("?")[0];
    if (request.method !== "GET" || path !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found: try GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (body) => response.writeHead(200, { "content-type": registry.contentType }).end(body),
      (error: unknown) => {
        response.writeHead(500, { "content-type": "text/plain" }).end("metrics collection failed\n");
        server.emit("metricsError", error);
      },
    );
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
