/**
 * @recsys/transport: gRPC over node:http2 for the recsys stages: a unary client (`Http2Channel`),
 * a server (`Http2Server`), typed clients and handler signatures for protobuf-es services
 * (`createClient`, `implement`), deadlines, compression and status codes. grpc-js is the
 * alternative on both sides (`GrpcJsTransport`, grpc.Server). See README.md.
 */
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
export {
  Http2Server,
  Http2ServerCall,
  parseGrpcTimeout,
  type GrpcServer,
  type Http2ServerOptions,
} from "./http2-server.js";
export { ACCEPT_ENCODING, compress, decompress, DecompressedTooLarge, type Encoding } from "./compression.js";
export { serviceError, type CallOptions, type UnaryCallOptions, type UnaryTransport } from "./transport.js";
