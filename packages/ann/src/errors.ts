/**
 * Typed errors of the ANN package. `code` is the gRPC status name the service layer should
 * answer with, so the mapping is a lookup rather than a guess from the message.
 */
export type AnnErrorCode = "INVALID_ARGUMENT" | "FAILED_PRECONDITION";

export class AnnError extends Error {
  readonly code: AnnErrorCode;

  constructor(code: AnnErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A caller-supplied value is malformed: wrong dimension, non-finite value, k out of range, ... */
export class InvalidArgumentError extends AnnError {
  constructor(message: string) {
    super("INVALID_ARGUMENT", message);
  }
}

/** Saved index files are missing, corrupted, truncated or of an unsupported format. */
export class IndexFormatError extends AnnError {
  constructor(message: string, options?: ErrorOptions) {
    super("FAILED_PRECONDITION", message, options);
  }
}

/**
 * The saved index was built from item vectors of a different model version than the caller
 * expects (e.g. the loaded user tower): scores would be meaningless, so loading is refused.
 */
export class ModelVersionMismatchError extends AnnError {
  readonly expected: string;
  readonly actual: string;

  constructor(expected: string, actual: string) {
    super("FAILED_PRECONDITION", `index was built from model version "${actual}" but model version "${expected}" is expected`);
    this.expected = expected;
    this.actual = actual;
  }
}
