/**
 * Typed errors, each with a gRPC-style `code` the orchestrator maps to a status:
 * INVALID_ARGUMENT (bad input, nothing stored), UNAVAILABLE (backend down or store unusable:
 * retry later or degrade), INTERNAL (anything else, e.g. a corrupt file or unexpected reply).
 */

export type UserStoreErrorCode = "INVALID_ARGUMENT" | "UNAVAILABLE" | "INTERNAL";

export class UserStoreError extends Error {
  override name = "UserStoreError";
  constructor(
    readonly code: UserStoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Input rejected before anything was stored; `field` names it, e.g. "events[3].itemId". */
export class UserStoreValidationError extends UserStoreError {
  override name = "UserStoreValidationError";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super("INVALID_ARGUMENT", message);
  }
}

/** The backend cannot serve the call now (Redis unreachable or slow, log not writable). */
export class UserStoreUnavailableError extends UserStoreError {
  override name = "UserStoreUnavailableError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("UNAVAILABLE", message, options);
  }
}

export function isUserStoreUnavailable(error: unknown): error is UserStoreUnavailableError {
  return error instanceof UserStoreError && error.code === "UNAVAILABLE";
}

export function isUserStoreValidationError(error: unknown): error is UserStoreValidationError {
  return error instanceof UserStoreValidationError;
}
