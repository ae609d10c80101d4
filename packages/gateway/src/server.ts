/**
 * Starting and stopping the gateway's HTTP server.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Registry } from "prom-client";
import { createRecsysClient } from "@recsys/client";
import {
  ConfigError,
  createLogger,
  createRpcMetrics,
  loadConfig,
  startMetricsServer,
  type Logger,
  type MetricsServer,
} from "@recsys/runtime";
import { STAGE, configSchema, type GatewayConfig } from "./config.js";
import { createGatewayHandler } from "./gateway.js";

export interface RunningGateway {
  /** The bound API port (the real one when GATEWAY_PORT was 0). */
  readonly port: number;
  readonly metricsPort: number;
  /** "http://127.0.0.1:<port>" when bound to every address, else "http://<host>:<port>". */
  readonly url: string;
  /** Stops accepting, waits up to DRAIN_TIMEOUT for calls in flight, closes the client. */
  stop(): Promise<void>;
}

export async function startGateway(
  config: GatewayConfig,
  logger: Logger = createLogger({ service: STAGE, level: config.LOG_LEVEL }),
): Promise<RunningGateway> {
  const registry = new Registry();
  const metrics = createRpcMetrics(STAGE, registry);
  const recsys = createRecsysClient({
    address: config.ORCHESTRATOR_ADDRESS,
    timeoutMs: config.GATEWAY_TIMEOUT,
    onRetry: (event) => logger.warn({ method: event.method, attempt: event.attempt, code: event.error.code }, "retrying the orchestrator"),
  });
  let serving = true;
  const server: Server = createServer(
    createGatewayHandler({
      recsys,
      defaultTimeoutMs: config.GATEWAY_TIMEOUT,
      maxTimeoutMs: config.GATEWAY_MAX_TIMEOUT,
      corsOrigins: config.GATEWAY_CORS_ORIGINS,
      maxBodyBytes: config.GATEWAY_MAX_BODY_BYTES,
      catalogue: config.GATEWAY_CATALOGUE,
      logger,
      metrics,
      serving: () => serving,
    }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.GATEWAY_PORT, config.GATEWAY_HOST, () => {
      server.off("error", reject);
      resolve();
    });
  });
  let metricsServer: MetricsServer;
  try {
    metricsServer = await startMetricsServer(registry, config.METRICS_PORT, config.GATEWAY_HOST);
  } catch (error) {
    server.close();
    recsys.close();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  const host = config.GATEWAY_HOST === "0.0.0.0" || config.GATEWAY_HOST === "::" ? "127.0.0.1" : config.GATEWAY_HOST;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  logger.info({ url, orchestrator: config.ORCHESTRATOR_ADDRESS, metricsPort: metricsServer.port }, "gateway serving");
  let stopped: Promise<void> | undefined;
  return {
    port,
    metricsPort: metricsServer.port,
    url,
    stop() {
      stopped ??= (async () => {
        serving = false;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const drained = await Promise.race([
          closed.then(() => true),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), config.DRAIN_TIMEOUT).unref()),
        ]);
        if (!drained) {
          logger.warn({ drainTimeoutMs: config.DRAIN_TIMEOUT }, "calls still in flight after DRAIN_TIMEOUT: closing their connections");
          server.closeAllConnections();
          await closed;
        }
        recsys.close();
        await metricsServer.close();
        logger.info("gateway stopped");
      })();
      return stopped;
    },
  };
}

/** Reads the configuration, starts the gateway and stops it on SIGTERM / SIGINT. */
export async function runGateway(environment: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config: GatewayConfig;
  try {
    config = loadConfig(configSchema, environment);
  } catch (error) {
    if (error instanceof ConfigError) throw new Error(`configuration: ${error.message}`);
    throw error;
  }
  const logger = createLogger({ service: STAGE, level: config.LOG_LEVEL });
  const gateway = await startGateway(config, logger);
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, "stopping");
    gateway.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "stop failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
}
