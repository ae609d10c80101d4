/**
 * Typed gRPC errors. A handler throws `RpcError` (or uses a helper such as `invalidArgument`)
 * to answer with that status code and message; anything else it throws becomes INTERNAL with the
 * generic message "internal error", the cause being logged, never sent.
 */
import { Metadata, status } from "@grpc/grpc-js";

export { status };

/** The generic message sent with INTERNAL for unexpected errors. */
export const INTERNAL_ERROR_MESSAGE = "internal error";

export interface RpcErrorOptions {
  /** The underlying error, for the log only. */
  readonly cause?: unknown;
  /** Trailing metadata sent with the status. */
  readonly metadata?: Metadata;
}

/** An error answered to the caller with its code and message. */
export class RpcError extends Error {
  override readonly name = "RpcError";
  readonly metadata: Metadata | undefined;
  constructor(
    readonly code: status,
    message: string,
    options: RpcErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.metadata = options.metadata;
  }
}

export function invalidArgument(message: string, options?: RpcErrorOptions): RpcError {
  return new RpcError(status.INVALID_ARGUMENT, message, options);
}
export function notFound(message: string, options?: RpcErrorOptions): RpcError {
  return new RpcError(status.NOT_FOUND, message, options);
}
export function resourceExhausted(message: string, options?: RpcErrorOptions): RpcError {
  return new RpcError(status.RESOURCE_EXHAUSTED, message, options);
}
export function unavailable(message: string, options?: RpcErrorOptions): RpcError {
  return new RpcError(status.UNAVAILABLE, message, options);
}
export function failedPrecondition(message: string, options?: RpcErrorOptions): RpcError {
  return new RpcError(status.FAILED_PRECONDITION, message, options);
}
export function deadlineExceeded(message: string, options?: RpcErrorOptions): RpcError {
  return new RpcError(status.DEADLINE_EXCEEDED, message, options);
}

/** "INVALID_ARGUMENT" for status.INVALID_ARGUMENT, etc.; "UNKNOWN_<n>" for unknown numbers. */
export function statusName(code: number): string {
  return status[code] ?? `UNKNOWN_${code}`;
}

/**
 * Whether `error` is an error returned by a gRPC call (grpc-js ServiceError): it has a numeric
 * `code`, a string `details` and `metadata`.
 */
export function isServiceError(error: unknown): error is Error & { code: status; details: string; metadata: Metadata } {
  return (
    error instanceof Error &&
    typeof (error as { code?: unknown }).code === "number" &&
    typeof (error as { details?: unknown }).details === "string" &&
    (error as { metadata?: unknown }).metadata instanceof Metadata
  );
}
