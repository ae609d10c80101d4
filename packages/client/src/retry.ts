/**
 * Retries with exponential backoff and full jitter, inside the call's deadline.
 *
 * Attempt n (n = 1 for the first retry) waits a uniformly random time in
 * [0, min(maxBackoffMs, initialBackoffMs × multiplier^(n−1))] ("full jitter": callers that failed
 * together do not come back together). Every attempt shares the call's one deadline: a retry is
 * made only when the backoff ends before the deadline, so a retried call never takes longer than
 * the caller allowed, and the last error is what the caller gets.
 */
import { ErrorCode } from "./errors.js";

export interface RetryPolicy {
  /** Attempts in all, the first included (1 = no retry). Default 3. */
  readonly maxAttempts: number;
  /** Upper bound of the first backoff, ms. Default 50. */
  readonly initialBackoffMs: number;
  /** Cap of the backoff's upper bound, ms. Default 1000. */
  readonly maxBackoffMs: number;
  /** Growth of the upper bound per attempt. Default 2. */
  readonly multiplier: number;
  /** Codes that are retried. Default: UNAVAILABLE only (the server did not answer, or said to come back). */
  readonly retryableCodes: readonly ErrorCode[];
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  maxAttempts: 3,
  initialBackoffMs: 50,
  maxBackoffMs: 1000,
  multiplier: 2,
  retryableCodes: Object.freeze([ErrorCode.Unavailable]),
});

/** `policy` with every field checked; throws a RangeError naming the bad one. */
export function checkRetryPolicy(policy: RetryPolicy): RetryPolicy {
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) {
    throw new RangeError(`retry.maxAttempts must be an integer >= 1, got ${policy.maxAttempts}`);
  }
  for (const key of ["initialBackoffMs", "maxBackoffMs"] as const) {
    if (!(Number.isFinite(policy[key]) && policy[key] >= 0))
      throw new RangeError(`retry.${key} must be a finite number >= 0, got ${policy[key]}`);
  }
  if (!(Number.isFinite(policy.multiplier) && policy.multiplier >= 1)) {
    throw new RangeError(`retry.multiplier must be a finite number >= 1, got ${policy.multiplier}`);
  }
  return policy;
}

/** The backoff before retry number `retry` (1-based): uniform in [0, bound]. */
export function backoffMs(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const bound = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** (retry - 1));
  return random() * bound;
}

/** Resolves after `ms`, or rejects with `signal`'s reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
