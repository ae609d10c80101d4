/**
 * Typed clients for downstream stages, over channels with production settings: keepalive pings
 * (dead connections are noticed within seconds, not at the next call), message size limits, and
 * round-robin load balancing over every address the name resolves to (a Kubernetes headless
 * Service with `dns:///ranking:50051` spreads calls across pods; the name is looked up again every
 * 30 s and after a failed connection).
 */
import * as grpc from "@grpc/grpc-js";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { createClient, type Client } from "./grpc-adapter.js";
import { GrpcJsTransport } from "./grpc-js-transport.js";
import { Http2Channel } from "./http2-channel.js";
import type { UnaryTransport } from "./transport.js";
import type { Encoding } from "./compression.js";
import { DEFAULT_OUTGOING_TIMEOUT_MS } from "./deadline.js";

export interface ConnectOptions {
  /** Largest message sent or received, bytes. Default 16 MiB. */
  readonly maxMessageBytes?: number;
  /** Interval between keepalive pings, ms. Default 30 000. */
  readonly keepaliveTimeMs?: number;
  /** How long to wait for a ping's answer before dropping the connection, ms. Default 10 000. */
  readonly keepaliveTimeoutMs?: number;
  /** Deadline of calls made without one, ms. Default DEFAULT_OUTGOING_TIMEOUT_MS (5000). */
  readonly defaultTimeoutMs?: number;
  /** Default "round_robin". */
  readonly loadBalancing?: "round_robin" | "pick_first";
  /** Default insecure (plaintext inside the cluster). Given: the grpc-js transport. */
  readonly credentials?: grpc.ChannelCredentials;
  /**
   * "http2" (default): `Http2Channel`, a lean unary client on node:http2. "grpc-js": the grpc-js
   * client (the serving benchmark's baseline; also what TLS credentials get).
   */
  readonly transport?: "http2" | "grpc-js";
  /**
   * Encoding of request messages: "identity" (default), "deflate" or "gzip". Answers in any of
   * the three are read either way.
   */
  readonly compression?: Encoding;
  /** Further grpc-js channel options, applied last (grpc-js transport only). */
  readonly channelOptions?: grpc.ChannelOptions;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** grpc-js's compression algorithm numbers (grpc.compressionAlgorithms). */
const COMPRESSION_ALGORITHMS: Record<Encoding, number> = { identity: 0, deflate: 1, gzip: 2 };

/** The grpc-js channel options `connect` uses with the grpc-js transport. */
export function channelOptions(options: ConnectOptions = {}): grpc.ChannelOptions {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  return {
    "grpc.max_send_message_length": maxMessageBytes,
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.keepalive_time_ms": options.keepaliveTimeMs ?? 30_000,
    "grpc.keepalive_timeout_ms": options.keepaliveTimeoutMs ?? 10_000,
    "grpc.keepalive_permit_without_calls": 1,
    // Channelz (per-call tracing counters) costs on every call and nothing here serves it.
    "grpc.enable_channelz": 0,
    "grpc.service_config": JSON.stringify({
      loadBalancingConfig: [{ [options.loadBalancing ?? "round_robin"]: {} }],
    }),
    ...(options.compression === undefined ? {} : { "grpc.default_compression_algorithm": COMPRESSION_ALGORITHMS[options.compression] }),
    ...options.channelOptions,
  };
}

/**
 * A typed client of `service` at `address` ("host:port", "[::1]:port" or "dns:///host:port").
 * Close it with `client.$close()`.
 *
 *   const ranking = connect(RankingService, config.RANKING_ADDRESS);
 *   const response = await ranking.rank({ context, candidates }, childCallOptions(ctx.call));
 *
 * Calls go over `Http2Channel` (a lean unary gRPC client on node:http2, see http2-channel.ts)
 * unless TLS `credentials` are given or `transport: "grpc-js"` is asked for.
 */
export function connect<S extends GenServiceMethods>(service: GenService<S>, address: string, options: ConnectOptions = {}): Client<S> {
  const transport: UnaryTransport =
    options.transport === "grpc-js" || options.credentials !== undefined
      ? new GrpcJsTransport(new grpc.Client(address, options.credentials ?? grpc.credentials.createInsecure(), channelOptions(options)))
      : new Http2Channel(address, {
          maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
          keepaliveTimeMs: options.keepaliveTimeMs ?? 30_000,
          keepaliveTimeoutMs: options.keepaliveTimeoutMs ?? 10_000,
          loadBalancing: options.loadBalancing ?? "round_robin",
          ...(options.compression === undefined ? {} : { compression: options.compression }),
        });
  return createClient(service, transport, {
    defaultTimeoutMs: options.defaultTimeoutMs ?? DEFAULT_OUTGOING_TIMEOUT_MS,
  });
}

/** Waits until the client has a connection (e.g. before a benchmark), or rejects. */
export function waitForReady(client: { readonly $transport: UnaryTransport }, timeoutMs: number): Promise<void> {
  return client.$transport.waitForReady(Date.now() + timeoutMs);
}
