/**
 * The service lifecycle every stage uses identically.
 *
 * `startService` binds a gRPC server with the given services (every handler wrapped: metrics,
 * in-flight count, deadline check, error mapping), the standard health service, optional server
 * reflection, and a Prometheus /metrics HTTP server. `stop()` shuts it down gracefully:
 * health NOT_SERVING -> optional delay -> wait for in-flight calls (up to DRAIN_TIMEOUT) ->
 * tryShutdown -> forceShutdown after SHUTDOWN_TIMEOUT.
 *
 * `runService` is what a stage's main calls: it loads the configuration (exit 1 with a message
 * naming the variable on error), builds the handlers, starts the service and turns SIGTERM /
 * SIGINT into `stop()` followed by exit 0 (or 1 when the shutdown had to be forced).
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type MessageShape } from "@bufbuild/protobuf";
import { Registry } from "prom-client";
import { ConfigError, loadConfig, type ConfigOf, type ConfigSchema, type RuntimeConfig, runtimeConfigSchema } from "./config.js";
import { checkContractRules } from "./contract-rules.js";
import {
  type CallContext,
  callDeadlineMs,
  grpcImplementation,
  type GrpcServer,
  Http2Server,
  INTERNAL_ERROR_MESSAGE,
  invalidArgument,
  isServiceError,
  methodPath,
  rejectIfExpired,
  RpcError,
  serviceDefinition,
  type ServiceRegistration,
  statusName,
  type UnaryHandler,
} from "@recsys/transport";
import { HealthImplementation, type ServingStatus } from "./health.js";
import { createLogger, type Logger } from "./logger.js";
import { createRpcMetrics, startMetricsServer, type MetricsServer, type RpcMetrics } from "./metrics.js";
import { createReflectionService } from "./reflection.js";
import { applyServingV8Flags, collectStartupGarbage } from "./v8-flags.js";

export interface StartServiceOptions {
  /** Stage name: metric prefix `recsys_<stage>_` and the `service` field of logs. */
  readonly stage: string;
  /** The runtime part of the configuration (a stage's own config object, which spreads it). */
  readonly config: RuntimeConfig;
  readonly services: readonly ServiceRegistration[];
  /** Default: a pino logger at config.LOG_LEVEL on stdout. */
  readonly logger?: Logger;
  /** Default: a new registry. Pass one to add the stage's own metrics to /metrics. */
  readonly registry?: Registry;
}

export interface ShutdownResult {
  /** Every in-flight call finished before DRAIN_TIMEOUT. */
  readonly drained: boolean;
  /** The server had to be force-closed after SHUTDOWN_TIMEOUT. */
  readonly forced: boolean;
}

export interface RunningService {
  readonly stage: string;
  /** The bound gRPC port (the real one when config.GRPC_PORT was 0). */
  readonly port: number;
  /** The bound /metrics port. */
  readonly metricsPort: number;
  /** An address local clients can dial, e.g. "127.0.0.1:50051". */
  readonly address: string;
  readonly logger: Logger;
  readonly metrics: RpcMetrics;
  /** The gRPC server (GRPC_SERVER: the runtime's Http2Server or a grpc.Server). */
  readonly server: GrpcServer;
  /** Calls currently being handled. */
  inFlight(): number;
  /**
   * Sets the health of one service ("recsys.v1.RankingService") or, with no name, of the server
   * as a whole and every service.
   */
  setServing(status: ServingStatus, serviceName?: string): void;
  /** Graceful shutdown; idempotent (later calls return the same promise). */
  stop(reason?: string): Promise<ShutdownResult>;
}

/** Status codes caused by the caller: logged at debug level, the rest at warn. */
const CLIENT_CODES = new Set<grpc.status>([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.ALREADY_EXISTS,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.OUT_OF_RANGE,
  grpc.status.CANCELLED,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.UNAUTHENTICATED,
  grpc.status.PERMISSION_DENIED,
]);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function localAddress(host: string, port: number): string {
  if (host === "0.0.0.0" || host === "") return `127.0.0.1:${port}`;
  if (host === "::" || host === "[::]") return `[::1]:${port}`;
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

function bindAddress(host: string, port: number): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

export async function startService(options: StartServiceOptions): Promise<RunningService> {
  const { stage, config } = options;
  const logger = options.logger ?? createLogger({ service: stage, level: config.LOG_LEVEL });
  const metrics = createRpcMetrics(stage, options.registry ?? new Registry());

  let inFlight = 0;
  let idleWaiters: Array<() => void> = [];
  const callFinished = (): void => {
    inFlight -= 1;
    metrics.inFlight.set(inFlight);
    if (inFlight === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const wake of waiters) wake();
    }
  };

  /**
   * The request message, decoded here rather than by grpc-js: grpc-js keeps what its deserializer
   * returns in per-call objects (the call's `request`, its listener's closure), and once one of
   * those has been promoted to the old generation, a minor GC cannot free the message it points
   * to: every decoded request then survived to the next major GC (measured on the ranking stage at
   * 100 req/s: ~80 KB promoted per Rank call, ~7 ms per scavenge). Decoded here, the message is
   * referenced only from this call's own short-lived closures. Bytes that are not a valid message
   * are the caller's error: INVALID_ARGUMENT.
   */
  const decodeRequest = (method: DescMethod, bytes: Buffer): MessageShape<DescMessage> => {
    try {
      return fromBinary(method.input, bytes);
    } catch (error) {
      throw invalidArgument(
        `the request is not a valid ${method.input.typeName}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  };

  const wrap = (method: DescMethod, handler: UnaryHandler<DescMessage, DescMessage>) => {
    const path = methodPath(method);
    const label = path.slice(1);
    return (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void => {
      const started = process.hrtime.bigint();
      // The per-call child logger is made only when something is logged (most calls log nothing).
      let childLogger: Logger | undefined;
      const callLogger = (): Logger => (childLogger ??= logger.child({ method: label }));
      const deadline = callDeadlineMs(call);
      // Made when a handler first reads ctx.signal (the stages' handlers do not: an AbortController
      // per call was a measurable part of a call's garbage).
      let abort: AbortController | undefined;
      let endedByCaller: string | undefined;
      const onCancelled = (): void => {
        endedByCaller = Date.now() >= deadline ? "DEADLINE_EXCEEDED" : "CANCELLED";
        abort?.abort();
      };
      call.on("cancelled", onCancelled);
      inFlight += 1;
      metrics.inFlight.set(inFlight);
      let finished = false;
      const finish = (code: grpc.status, error: Partial<grpc.StatusObject> | null, response?: Buffer): void => {
        if (finished) return;
        finished = true;
        call.off("cancelled", onCancelled);
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        metrics.observe(label, endedByCaller ?? statusName(code), seconds);
        callFinished();
        if (error === null) callback(null, response);
        else callback(error);
      };
      const context: CallContext = {
        call: call as grpc.ServerUnaryCall<unknown, unknown>,
        method: path,
        get logger() {
          return callLogger();
        },
        deadline,
        get signal() {
          if (abort === undefined) {
            abort = new AbortController();
            if (endedByCaller !== undefined) abort.abort();
          }
          return abort.signal;
        },
        metadata: call.metadata,
      };
      Promise.resolve()
        .then(() => {
          rejectIfExpired(call);
          const request = decodeRequest(method, call.request);
          // The contracts' rules (@recsys/gen rules.ts), the same for every method of every stage.
          checkContractRules(method.input, request);
          return handler(request, context);
        })
        // Serialized here rather than by grpc-js, so that a response that cannot be encoded
        // becomes a logged INTERNAL error instead of an encoder message sent to the caller.
        .then((init) => {
          const bytes = toBinary(method.output, create(method.output, init));
          return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        })
        .then(
          (response) => finish(grpc.status.OK, null, response),
          (error: unknown) => {
            if (error instanceof RpcError) {
              const level = CLIENT_CODES.has(error.code) ? "debug" : "warn";
              callLogger()[level](
                { code: statusName(error.code), ...(error.cause === undefined ? {} : { err: error.cause }) },
                error.message,
              );
              finish(error.code, {
                code: error.code,
                details: error.message,
                ...(error.metadata === undefined ? {} : { metadata: error.metadata }),
              });
              return;
            }
            if (isServiceError(error) && error.code === grpc.status.DEADLINE_EXCEEDED) {
              // A downstream call the handler let through ran out of time. Its deadline is derived
              // from this call's (childCallOptions: the caller's minus a margin), so it fires just
              // before the caller's own: the caller's answer is DEADLINE_EXCEEDED, not INTERNAL.
              const details = `a downstream call exceeded its deadline: ${error.details}`;
              callLogger().warn({ code: "DEADLINE_EXCEEDED", err: error }, details);
              finish(grpc.status.DEADLINE_EXCEEDED, { code: grpc.status.DEADLINE_EXCEEDED, details });
              return;
            }
            callLogger().error({ err: error }, "handler failed");
            finish(grpc.status.INTERNAL, { code: grpc.status.INTERNAL, details: INTERNAL_ERROR_MESSAGE });
          },
        );
    };
  };

  // Connections are recycled after GRPC_MAX_CONNECTION_AGE: callers that resolve a headless
  // Service's pods only when they connect (grpc-js) reach the pods a scale-out adds.
  const server: GrpcServer =
    config.GRPC_SERVER === "http2"
      ? new Http2Server({
          maxReceiveMessageBytes: config.GRPC_MAX_MESSAGE_BYTES,
          maxSendMessageBytes: config.GRPC_MAX_MESSAGE_BYTES,
          maxConnectionAgeMs: config.GRPC_MAX_CONNECTION_AGE,
          maxConnectionAgeGraceMs: config.DRAIN_TIMEOUT,
        })
      : new grpc.Server({
          "grpc.max_receive_message_length": config.GRPC_MAX_MESSAGE_BYTES,
          "grpc.max_send_message_length": config.GRPC_MAX_MESSAGE_BYTES,
          ...(config.GRPC_MAX_CONNECTION_AGE > 0
            ? { "grpc.max_connection_age_ms": config.GRPC_MAX_CONNECTION_AGE, "grpc.max_connection_age_grace_ms": config.DRAIN_TIMEOUT }
            : {}),
          // Channelz stays on: with "grpc.enable_channelz": 0, grpc-js 1.14 does not track
          // sessions, so forceShutdown() cannot cancel stuck calls (the forced-close test catches it).
        });
  const serviceNames = options.services.map((registration) => registration.service.typeName);
  for (const registration of options.services) {
    // grpc-js passes request bytes and sends response bytes: the wrap decodes and encodes (see
    // decodeRequest).
    const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    for (const [name, method] of Object.entries(serviceDefinition(registration.service))) {
      definition[name] = { ...method, requestDeserialize: (bytes) => bytes, responseSerialize: (bytes) => bytes as Buffer };
    }
    server.addService(definition, grpcImplementation(registration, wrap));
  }
  const health = new HealthImplementation({ "": "NOT_SERVING" });
  for (const name of serviceNames) health.setStatus(name, "NOT_SERVING");
  health.addToServer(server);
  if (config.GRPC_REFLECTION) {
    createReflectionService(options.services.map((registration) => registration.service)).addToServer(server);
  }

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(bindAddress(config.GRPC_HOST, config.GRPC_PORT), grpc.ServerCredentials.createInsecure(), (error, boundPort) =>
      error ? reject(error) : resolve(boundPort),
    );
  });
  let metricsServer: MetricsServer;
  try {
    metricsServer = await startMetricsServer(metrics.registry, config.METRICS_PORT, config.GRPC_HOST);
  } catch (error) {
    server.forceShutdown();
    throw error;
  }

  const setServing = (status: ServingStatus, serviceName?: string): void => {
    if (serviceName !== undefined) {
      health.setStatus(serviceName, status);
      return;
    }
    health.setStatus("", status);
    for (const name of serviceNames) health.setStatus(name, status);
  };
  setServing("SERVING");
  logger.info({ port, metricsPort: metricsServer.port, services: serviceNames }, "serving");

  const waitForIdle = (timeoutMs: number): Promise<boolean> => {
    if (inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        idleWaiters = idleWaiters.filter((wake) => wake !== onIdle);
        resolve(false);
      }, timeoutMs);
      const onIdle = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      idleWaiters.push(onIdle);
    });
  };

  const shutdownServer = (timeoutMs: number): Promise<boolean> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve(true);
      }, timeoutMs);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve(false);
      });
    });

  let stopping: Promise<ShutdownResult> | undefined;
  const stop = (reason = "stop requested"): Promise<ShutdownResult> => {
    stopping ??= (async () => {
      logger.info({ reason, inFlight }, "shutting down: health NOT_SERVING");
      setServing("NOT_SERVING");
      if (config.SHUTDOWN_DELAY > 0) await sleep(config.SHUTDOWN_DELAY);
      const drained = await waitForIdle(config.DRAIN_TIMEOUT);
      if (!drained) logger.warn({ inFlight }, "drain timeout: closing with calls in flight");
      const forced = await shutdownServer(config.SHUTDOWN_TIMEOUT);
      if (forced) logger.warn("graceful shutdown timed out: forced");
      await metricsServer.close();
      logger.info({ drained, forced }, "stopped");
      return { drained, forced };
    })();
    return stopping;
  };

  return {
    stage,
    port,
    metricsPort: metricsServer.port,
    address: localAddress(config.GRPC_HOST, port),
    logger,
    metrics,
    server,
    inFlight: () => inFlight,
    setServing,
    stop,
  };
}

/** What `runService` hands to the stage's setup function. */
export interface ServiceSetup<C> {
  readonly config: C;
  readonly logger: Logger;
  /** The registry served at /metrics: register the stage's own metrics here. */
  readonly registry: Registry;
}

export interface RunServiceOptions<S extends ConfigSchema> {
  readonly stage: string;
  /** The stage's schema; spread `runtimeConfigSchema` into it. */
  readonly configSchema: S;
  /** Loads models, opens clients, ... and returns the services to serve. */
  readonly setup: (setup: ServiceSetup<ConfigOf<S>>) => Promise<readonly ServiceRegistration[]> | readonly ServiceRegistration[];
  /** Default process.env. */
  readonly environment?: Readonly<Record<string, string | undefined>>;
  /** Called after a graceful stop, before the process exits (close clients, flush, ...). */
  readonly onStop?: () => Promise<void> | void;
}

/**
 * The main of a stage: config -> setup -> startService, SIGTERM/SIGINT -> stop -> exit.
 * Exits 1 with the reason on stderr (config) or in the log (setup, bind) when startup fails.
 */
export async function runService<S extends typeof runtimeConfigSchema>(options: RunServiceOptions<S>): Promise<RunningService> {
  let config: ConfigOf<S>;
  try {
    config = loadConfig(options.configSchema, options.environment);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${options.stage}: configuration error: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const v8Flags = applyServingV8Flags();
  const runtimeConfig = config as unknown as RuntimeConfig;
  const logger = createLogger({ service: options.stage, level: runtimeConfig.LOG_LEVEL });
  logger.debug({ applied: v8Flags, execArgv: process.execArgv }, "V8 flags set at run time");
  process.on("uncaughtException", (error) => {
    logger.fatal({ err: error }, "uncaught exception");
    process.exit(1);
  });
  process.on("unhandledRejection", (error) => {
    logger.fatal({ err: error }, "unhandled promise rejection");
    process.exit(1);
  });
  const registry = new Registry();
  let running: RunningService;
  try {
    const services = await options.setup({ config, logger, registry });
    // Before the first call: the setup's garbage goes now, and V8 schedules the next full GC from
    // the live heap (see collectStartupGarbage).
    const gc = collectStartupGarbage();
    logger.info({ ms: Math.round(gc.ms), heapUsedMb: Math.round(gc.heapUsedBytes / 1e6) }, "start-up garbage collected");
    running = await startService({ stage: options.stage, config: runtimeConfig, services, logger, registry });
  } catch (error) {
    if (error instanceof ConfigError) {
      // A check setup made on the configuration (e.g. two variables that must agree).
      process.stderr.write(`${options.stage}: configuration error: ${error.message}\n`);
    }
    logger.fatal({ err: error }, "startup failed");
    process.exit(1);
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    running
      .stop(signal)
      .then(async (result) => {
        await options.onStop?.();
        process.exit(result.drained && !result.forced ? 0 : 1);
      })
      .catch((error: unknown) => {
        logger.fatal({ err: error }, "shutdown failed");
        process.exit(1);
      });
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  return running;
}
