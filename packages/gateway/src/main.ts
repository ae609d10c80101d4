#!/usr/bin/env node
/**
 * recsys-gateway: the public API as JSON over HTTP (Connect) and gRPC-Web, in front of the
 * orchestrator. Configured by environment variables (config.ts); JSON logs on stdout; /metrics on
 * METRICS_PORT; GET /healthz on the API port; on SIGTERM or SIGINT it answers /healthz with 503,
 * stops accepting connections and waits up to DRAIN_TIMEOUT for the calls in flight.
 */
import { runGateway } from "./server.js";

runGateway().catch((error: unknown) => {
  process.stderr.write(`recsys-gateway: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
