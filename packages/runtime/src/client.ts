/**
 * Typed clients for downstream stages, over channels with production settings: keepalive pings
 * (dead connections are noticed within seconds, not at the next call), message size limits, and
 * round-robin load balancing over every address the name resolves to (a Kubernetes headless
 * Service with `dns:///ranking:50051` spreads calls across pods).
 */
import * as grpc from "@grpc/grpc-js";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { createClient, type Client } from "./grpc-adapter.js";
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
  /** Default insecure (plaintext inside the cluster). */
  readonly credentials?: grpc.ChannelCredentials;
  /** Further grpc-js channel options, applied last. */
  readonly channelOptions?: grpc.ChannelOptions;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** The grpc-js channel options `connect` uses. */
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
    ...options.channelOptions,
  };
}

/**
 * A typed client of `service` at `address` ("host:port" or "dns:///host:port"). Close it with
 * `client.$close()`.
 *
 *   const ranking = connect(RankingService, config.RANKING_ADDRESS);
 *   const response = await ranking.rank({ context, candidates }, childCallOptions(ctx.call));
 */
export function connect<S extends GenServiceMethods>(
  service: GenService<S>,
  address: string,
  options: ConnectOptions = {},
): Client<S> {
  const grpcClient = new grpc.Client(
    address,
    options.credentials ?? grpc.credentials.createInsecure(),
    channelOptions(options),
  );
  return createClient(service, grpcClient, {
    defaultTimeoutMs: options.defaultTimeoutMs ?? DEFAULT_OUTGOING_TIMEOUT_MS,
  });
}

/** Waits until the client's channel is connected (e.g. before a benchmark), or rejects. */
export function waitForReady(client: { readonly $grpc: grpc.Client }, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.$grpc.waitForReady(Date.now() + timeoutMs, (error) => (error ? reject(error) : resolve()));
  });
}
