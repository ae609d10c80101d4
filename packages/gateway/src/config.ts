/**
 * The gateway's configuration, from the environment (validated by the runtime's loadConfig).
 */
import { LOG_LEVELS, env, type ConfigOf } from "@recsys/runtime";

export const STAGE = "gateway";

export const configSchema = {
  GATEWAY_HOST: env.string({ default: "0.0.0.0", description: "address the HTTP server binds" }),
  GATEWAY_PORT: env.port({ default: 8080, description: "HTTP port of the JSON / gRPC-Web API (0 = any free port)" }),
  METRICS_PORT: env.port({ default: 9464, description: "Prometheus /metrics HTTP port (0 = any free port)" }),
  LOG_LEVEL: env.enum(LOG_LEVELS, { default: "info", description: "pino log level" }),
  ORCHESTRATOR_ADDRESS: env.string({
    required: true,
    description: "the orchestrator's gRPC address: host:port or dns:///name:port (every address is used, round-robin)",
  }),
  GATEWAY_TIMEOUT: env.duration({
    default: 1000,
    description: "deadline of a call whose caller sent none (connect-timeout-ms / grpc-timeout)",
  }),
  GATEWAY_MAX_TIMEOUT: env.duration({ default: 10_000, description: "longest deadline a caller may ask for" }),
  GATEWAY_CORS_ORIGINS: env.list({
    default: [],
    description: "origins allowed to call from a browser (comma-separated, * for any); empty: no CORS headers",
  }),
  GATEWAY_CATALOGUE: env.bool({
    default: true,
    description: "also serve recsys.v1.CatalogueService (item uploads and takedowns: turn it off where the gateway is public)",
  }),
  GATEWAY_MAX_BODY_BYTES: env.int({ default: 4 * 1024 * 1024, min: 1024, description: "largest request body" }),
  DRAIN_TIMEOUT: env.duration({ default: 15_000, description: "after SIGTERM, longest wait for calls in flight" }),
};

export type GatewayConfig = ConfigOf<typeof configSchema>;
