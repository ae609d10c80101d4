/**
 * What a typed client (grpc-adapter `createClient`) sends its calls through: request bytes in,
 * response bytes out, errors as grpc-js-shaped ServiceErrors. Two implementations:
 * `Http2Channel` (http2-channel.ts, what `connect` uses) and `GrpcJsTransport`
 * (grpc-js-transport.ts, for TLS credentials and as the baseline the serving benchmark compares).
 */
import * as grpc from "@grpc/grpc-js";
import { statusName } from "./errors.js";

/** What a unary call needs besides its path and request bytes. */
export interface UnaryCallOptions {
  /** Absolute deadline, epoch ms. */
  readonly deadline: number;
  readonly metadata?: grpc.Metadata | undefined;
  readonly signal?: AbortSignal | undefined;
  /** The incoming call this one is made for (deadline and cancellation per `propagate`). */
  readonly parent?: grpc.ServerUnaryCall<unknown, unknown> | undefined;
  readonly propagate?: number | undefined;
}

/** The transport under a typed client (see grpc-adapter `createClient`). */
export interface UnaryTransport {
  /** One unary call: resolves with the response message's bytes, rejects with a ServiceError. */
  unary(path: string, request: Uint8Array, options: UnaryCallOptions): Promise<Buffer>;
  /** Resolves once a connection is up, rejects when none is by `deadline` (epoch ms). */
  waitForReady(deadline: number): Promise<void>;
  close(): void;
}

/** A grpc-js-shaped ServiceError (code, details, metadata), as every client call rejects with. */
export function serviceError(code: grpc.status, details: string, metadata = new grpc.Metadata()): grpc.ServiceError {
  return Object.assign(new Error(`${code} ${statusName(code)}: ${details}`), { code, details, metadata });
}

/** Options of one client call. */
export interface CallOptions {
  /** Absolute deadline (Date or epoch ms). Default: now + the client's default timeout. */
  readonly deadline?: Date | number;
  /**
   * The incoming server call this call is made for. With the default `propagate` flags the
   * effective deadline is the earlier of `deadline` and the parent's, and cancelling the parent
   * cancels this call.
   */
  readonly parent?: grpc.ServerUnaryCall<unknown, unknown>;
  /** grpc.propagate flags; default grpc.propagate.DEFAULTS when a parent is given. */
  readonly propagate?: number;
  readonly metadata?: grpc.Metadata;
  /** Cancels the call when aborted (the promise rejects with CANCELLED). */
  readonly signal?: AbortSignal;
}
