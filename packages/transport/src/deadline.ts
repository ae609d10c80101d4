/**
 * Deadline helpers: every outgoing call is bounded, and a call made while serving an incoming
 * one never outlives it.
 *
 *   const ranked = await ranking.rank(request, childCallOptions(ctx.call, { budgetMs: 80 }));
 *
 * gives the downstream call the deadline min(now + 80ms, caller's deadline - margin) and links it
 * to the incoming call (grpc-js `parent` + propagate flags), so that cancelling the incoming call
 * cancels it too.
 */
import * as grpc from "@grpc/grpc-js";
import type { CallOptions } from "./transport.js";
import { deadlineExceeded } from "./errors.js";

/** Deadline of an outgoing call made with no incoming call and no explicit budget. */
export const DEFAULT_OUTGOING_TIMEOUT_MS = 5000;
/** Time kept back from the caller's deadline for our own work after the downstream answers. */
export const DEFAULT_DEADLINE_MARGIN_MS = 5;

type AnyServerCall = Pick<grpc.ServerUnaryCall<unknown, unknown>, "getDeadline">;

/** The deadline of a grpc-js Deadline value as epoch milliseconds (Infinity when none). */
export function deadlineMs(deadline: grpc.Deadline): number {
  if (deadline instanceof Date) return deadline.getTime();
  return deadline;
}

/** The incoming call's deadline as epoch milliseconds; Infinity when the caller set none. */
export function callDeadlineMs(call: AnyServerCall): number {
  return deadlineMs(call.getDeadline());
}

/** Milliseconds left before the incoming call's deadline (may be negative; Infinity if none). */
export function remainingMs(call: AnyServerCall, now: number = Date.now()): number {
  return callDeadlineMs(call) - now;
}

/** Throws DEADLINE_EXCEEDED when the caller's deadline has already passed. */
export function rejectIfExpired(call: AnyServerCall, now: number = Date.now()): void {
  const left = remainingMs(call, now);
  if (left <= 0) {
    throw deadlineExceeded(`deadline passed ${Math.round(-left)}ms before the call was handled`);
  }
}

export interface ChildDeadlineOptions {
  /** Longest this downstream stage may take, in ms. Default DEFAULT_OUTGOING_TIMEOUT_MS. */
  readonly budgetMs?: number;
  /** Subtracted from the parent's remaining time. Default DEFAULT_DEADLINE_MARGIN_MS. */
  readonly marginMs?: number;
  /** Clock, for tests. */
  readonly now?: number;
}

/**
 * The deadline (epoch ms) of a downstream call: now + budget, but no later than the parent's
 * deadline minus the margin. Without a parent: now + budget. Never earlier than now, so an
 * expired parent yields a call that fails at once with DEADLINE_EXCEEDED.
 */
export function childDeadline(parent: AnyServerCall | undefined, options: ChildDeadlineOptions = {}): number {
  const now = options.now ?? Date.now();
  const budget = now + (options.budgetMs ?? DEFAULT_OUTGOING_TIMEOUT_MS);
  if (parent === undefined) return budget;
  const parentDeadline = callDeadlineMs(parent);
  if (!Number.isFinite(parentDeadline)) return budget;
  return Math.max(now, Math.min(budget, parentDeadline - (options.marginMs ?? DEFAULT_DEADLINE_MARGIN_MS)));
}

/**
 * Call options for a downstream call made while serving `parent`: the child deadline above,
 * `parent` set and the deadline and cancellation propagated.
 */
export function childCallOptions(
  parent: grpc.ServerUnaryCall<unknown, unknown>,
  options: ChildDeadlineOptions & { readonly metadata?: grpc.Metadata; readonly signal?: AbortSignal } = {},
): CallOptions {
  return {
    deadline: childDeadline(parent, options),
    parent,
    propagate: grpc.propagate.DEFAULTS,
    ...(options.metadata === undefined ? {} : { metadata: options.metadata }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
}

/** Call options for a call made outside any incoming call (startup, background jobs). */
export function defaultCallOptions(timeoutMs: number = DEFAULT_OUTGOING_TIMEOUT_MS): CallOptions {
  return { deadline: Date.now() + timeoutMs };
}
