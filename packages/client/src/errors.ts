/**
 * The errors every call of the client rejects with: one class, `RecsysError`, whose `code` is a
 * gRPC status name from `ErrorCode`, so that callers can switch on it:
 *
 *   try {
 *     return await recsys.recommend({ userId, count: 10 });
 *   } catch (error) {
 *     if (!isRecsysError(error)) throw error;
 *     switch (error.code) {
 *       case ErrorCode.InvalidArgument: return badRequest(error.message);
 *       case ErrorCode.Unavailable:
 *       case ErrorCode.DeadlineExceeded: return fallbackList();
 *       default: throw error;
 *     }
 *   }
 */
import { isServiceError, statusName } from "@recsys/runtime";

/** gRPC status codes by name (the values are the names gRPC and Connect use on the wire). */
export const ErrorCode = {
  Cancelled: "CANCELLED",
  Unknown: "UNKNOWN",
  InvalidArgument: "INVALID_ARGUMENT",
  DeadlineExceeded: "DEADLINE_EXCEEDED",
  NotFound: "NOT_FOUND",
  AlreadyExists: "ALREADY_EXISTS",
  PermissionDenied: "PERMISSION_DENIED",
  ResourceExhausted: "RESOURCE_EXHAUSTED",
  FailedPrecondition: "FAILED_PRECONDITION",
  Aborted: "ABORTED",
  OutOfRange: "OUT_OF_RANGE",
  Unimplemented: "UNIMPLEMENTED",
  Internal: "INTERNAL",
  Unavailable: "UNAVAILABLE",
  DataLoss: "DATA_LOSS",
  Unauthenticated: "UNAUTHENTICATED",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The numeric gRPC status of each code (as in grpc-js `status` and Connect's `Code`). */
export const GRPC_STATUS: Readonly<Record<ErrorCode, number>> = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

const CODES = new Set<string>(Object.values(ErrorCode));

/** A failed call of the recsys API. */
export class RecsysError extends Error {
  override readonly name = "RecsysError";
  constructor(
    /** What went wrong, as a gRPC status name. */
    readonly code: ErrorCode,
    /** The server's (or the transport's) message, without the code. */
    readonly details: string,
    /** The method that failed, e.g. "Recommend". */
    readonly method: string,
    /** How many attempts were made (1 when the call was not retried). */
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(`${method}: ${code}: ${details}${attempts > 1 ? ` (after ${attempts} attempts)` : ""}`, options);
  }

  /** The numeric gRPC status. */
  get grpcStatus(): number {
    return GRPC_STATUS[this.code];
  }
}

export function isRecsysError(error: unknown): error is RecsysError {
  return error instanceof RecsysError;
}

/** The ErrorCode of a gRPC status number (UNKNOWN for numbers outside the table). */
export function errorCodeOf(grpcStatus: number): ErrorCode {
  const name = statusName(grpcStatus);
  return CODES.has(name) ? (name as ErrorCode) : ErrorCode.Unknown;
}

/** `error` (anything a transport or encoder threw) as a RecsysError of `method`. */
export function toRecsysError(error: unknown, method: string, attempts: number): RecsysError {
  if (error instanceof RecsysError) return error;
  if (isServiceError(error)) return new RecsysError(errorCodeOf(error.code), error.details, method, attempts, { cause: error });
  // The request could not be encoded (e.g. a field of the wrong type): the caller's mistake.
  const message = error instanceof Error ? error.message : String(error);
  return new RecsysError(ErrorCode.InvalidArgument, `the request could not be encoded: ${message}`, method, attempts, { cause: error });
}
