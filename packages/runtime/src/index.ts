/**
 * @recsys/runtime: what every recsys gRPC stage is built on. See README.md.
 */
export {
  ConfigError,
  LOG_LEVELS,
  describeSchema,
  env,
  loadConfig,
  parseDurationMs,
  runtimeConfigSchema,
  type ConfigOf,
  type ConfigSchema,
  type RuntimeConfig,
  type VarKind,
  type VarSpec,
  type VariableDescription,
} from "./config.js";
export {
  INTERNAL_ERROR_MESSAGE,
  RpcError,
  deadlineExceeded,
  failedPrecondition,
  invalidArgument,
  isServiceError,
  notFound,
  resourceExhausted,
  status,
  statusName,
  unavailable,
  type RpcErrorOptions,
} from "./errors.js";
export {
  DEFAULT_CLIENT_TIMEOUT_MS,
  createClient,
  grpcImplementation,
  implement,
  methodPath,
  serviceDefinition,
  type CallContext,
  type CallOptions,
  type Client,
  type ClientOptions,
  type ServiceImplementation,
  type ServiceRegistration,
  type UnaryHandler,
} from "./grpc-adapter.js";
export {
  DEFAULT_DEADLINE_MARGIN_MS,
  DEFAULT_OUTGOING_TIMEOUT_MS,
  callDeadlineMs,
  childCallOptions,
  childDeadline,
  deadlineMs,
  defaultCallOptions,
  rejectIfExpired,
  remainingMs,
  type ChildDeadlineOptions,
} from "./deadline.js";
export {
  DEFAULT_MAX_MESSAGE_BYTES,
  channelOptions,
  connect,
  waitForReady,
  type ConnectOptions,
} from "./client.js";
export { GrpcJsTransport } from "./grpc-js-transport.js";
export { Http2Channel, parseTarget, type Http2ChannelOptions } from "./http2-channel.js";
export { checkContractRules } from "./contract-rules.js";
export { ACCEPT_ENCODING, compress, decompress, DecompressedTooLarge, type Encoding } from "./compression.js";
export { serviceError, type UnaryCallOptions, type UnaryTransport } from "./transport.js";
export {
  HEALTH_SERVICE_NAME,
  checkHealth,
  healthService,
  type CheckHealthOptions,
  type HealthStatus,
  type ServingStatus,
} from "./health.js";
export { createLogger, type Logger, type LoggerOptions } from "./logger.js";
export {
  LATENCY_BUCKETS_SECONDS,
  METRIC_LABEL_CODE,
  METRIC_LABEL_METHOD,
  assertStageName,
  createRpcMetrics,
  startMetricsServer,
  type MetricsServer,
  type RpcMetrics,
} from "./metrics.js";
export { SOURCE_ENUM_NAMES } from "./provenance.js";
export { createReflectionService, fileDescriptorProtos } from "./reflection.js";
export { applyServingV8Flags, collectStartupGarbage, RUNTIME_V8_FLAGS, SERVING_NODE_FLAGS } from "./v8-flags.js";
export {
  runService,
  startService,
  type RunServiceOptions,
  type RunningService,
  type ServiceSetup,
  type ShutdownResult,
  type StartServiceOptions,
} from "./service.js";
export {
  requireFinite,
  requireInRange,
  requireMaxItems,
  emptyOrTooLong,
  requireNonEmpty,
  requirePresent,
  requireUniqueIds,
  requireValidTimestamp,
  timestampSeconds,
  validTimestamp,
  validateUserContext,
} from "./validate.js";
export {
  DEFAULT_RETRY_FAILED_MS,
  MANIFEST_FILE,
  readManifestVersion,
  watchModel,
  type ModelWatcher,
  type ReloadOutcome,
  type WatchModelOptions,
} from "./reloadable.js";
