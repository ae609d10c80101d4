import { mergeCandidates } from "./merge.js";
import {
  checkRequest,
  compareSources,
  isStateful,
  watchedSet,
  type CandidateSource,
  type MergedCandidate,
  type SourceName,
  type SourceRequest,
  type SourceResult,
  type WatchEvent,
} from "./types.js";

/** A source in a set, with its own budget (default: the request's `budget`) and merge weight. */
export interface SourceSpec {
  readonly source: CandidateSource;
  readonly budget?: number;
  /** Items it contributes per round of the merge's round-robin (default 1; see `mergeCandidates`). */
  readonly weight?: number;
}

export interface SourceSetOptions {
  /** Size of the merged list (default for `run`). */
  readonly mergedSize: number;
  /**
   * What `run` does when a source throws: "throw" (default; offline, failures must surface) or
   * "skip" (online: that source contributes nothing and the error is returned in `errors`).
   */
  readonly onSourceError?: "throw" | "skip";
  /**
   * What `run` does with a request earlier than the time a stateful source already answered at
   * (`clock`): "throw" (default; offline replay must never go back in time) or "clamp" (online:
   * concurrent requests and clock skew make `asOf` jitter; such a request is answered at the
   * clock, i.e. it also sees the events between its `asOf` and the clock, all in the past).
   */
  readonly pastRequests?: "throw" | "clamp";
}

export interface SourceTiming {
  readonly source: SourceName;
  /** Wall-clock milliseconds spent in the source. */
  readonly ms: number;
  /** Number of candidates it returned. */
  readonly count: number;
}

export interface SourceRun {
  /** The time the sources answered at: the request's `asOf`, or the clock when clamped. */
  readonly asOf: number;
  /** One result per source (in `SOURCE_ORDER`), each truncated to the source's budget. */
  readonly results: readonly SourceResult[];
  readonly merged: readonly MergedCandidate[];
  readonly timings: readonly SourceTiming[];
  readonly mergeMs: number;
  /** Sources that threw (only with onSourceError "skip"). */
  readonly errors: readonly { readonly source: SourceName; readonly error: unknown }[];
}

/**
 * The candidate-generation pipeline: a fixed set of named sources with budgets, fed with watch
 * events and asked for merged candidates. Used as is by the offline replay and by the orchestrator.
 */
export class SourceSet {
  readonly mergedSize: number;
  private readonly specs: readonly SourceSpec[];
  private readonly onSourceError: "throw" | "skip";
  private readonly pastRequests: "throw" | "clamp";

  constructor(sources: readonly (CandidateSource | SourceSpec)[], options: SourceSetOptions) {
    const specs = sources.map((s): SourceSpec => ("source" in s ? s : { source: s }));
    specs.sort((a, b) => compareSources(a.source.name, b.source.name));
    for (let k = 1; k < specs.length; k++) {
      if (specs[k]!.source.name === specs[k - 1]!.source.name) throw new Error(`two sources are named "${specs[k]!.source.name}"`);
    }
    for (const spec of specs) {
      if (spec.budget !== undefined && (!Number.isInteger(spec.budget) || spec.budget < 0)) {
        throw new RangeError(`budget of source "${spec.source.name}" must be a non-negative integer, got ${spec.budget}`);
      }
      if (spec.weight !== undefined && (!Number.isInteger(spec.weight) || spec.weight < 1)) {
        throw new RangeError(`merge weight of source "${spec.source.name}" must be a positive integer, got ${spec.weight}`);
      }
    }
    if (!Number.isInteger(options.mergedSize) || options.mergedSize < 0) {
      throw new RangeError(`mergedSize must be a non-negative integer, got ${options.mergedSize}`);
    }
    this.specs = specs;
    this.mergedSize = options.mergedSize;
    this.onSourceError = options.onSourceError ?? "throw";
    this.pastRequests = options.pastRequests ?? "throw";
  }

  /** The latest time any stateful source answered at (-Infinity before any request). */
  get clock(): number {
    let clock = -Infinity;
    for (const spec of this.specs) if (isStateful(spec.source)) clock = Math.max(clock, spec.source.clock);
    return clock;
  }

  /** Source names in `SOURCE_ORDER`. */
  get names(): SourceName[] {
    return this.specs.map((s) => s.source.name);
  }

  /** Merge weight of each source (see `mergeCandidates`). */
  get weights(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const spec of this.specs) out[spec.source.name] = spec.weight ?? 1;
    return out;
  }

  source(name: SourceName): CandidateSource | undefined {
    return this.specs.find((s) => s.source.name === name)?.source;
  }

  /** Feeds a watch event to every stateful source (it becomes visible to requests after its time). */
  observe(event: WatchEvent): void {
    for (const spec of this.specs) if (isStateful(spec.source)) spec.source.observe(event);
  }

  /**
   * Runs every source on `request` (each with its budget; history and excluded items removed)
   * and merges them into `mergedSize` (or `options.mergedSize`) candidates.
   */
  run(request: SourceRequest, options: { readonly mergedSize?: number } = {}): SourceRun {
    checkRequest(request);
    const watched = watchedSet(request);
    let asOf = request.asOf;
    if (this.pastRequests === "clamp") asOf = Math.max(asOf, this.clock);
    const shared: SourceRequest = request.watched === watched && asOf === request.asOf ? request : { ...request, watched, asOf };
    const results: SourceResult[] = [];
    const timings: SourceTiming[] = [];
    const errors: { source: SourceName; error: unknown }[] = [];
    for (const spec of this.specs) {
      const name = spec.source.name;
      const budget = spec.budget ?? request.budget;
      const asked = budget === shared.budget ? shared : { ...shared, budget };
      const started = performance.now();
      let result: SourceResult;
      try {
        result = spec.source.candidates(asked);
      } catch (error) {
        if (this.onSourceError === "throw") throw error;
        errors.push({ source: name, error });
        result = { source: name, candidates: [] };
      }
      const ms = performance.now() - started;
      if (result.source !== name) throw new Error(`source "${name}" answered as "${result.source}"`);
      if (result.candidates.length > budget) result = { source: name, candidates: result.candidates.slice(0, budget) };
      results.push(result);
      timings.push({ source: name, ms, count: result.candidates.length });
    }
    const started = performance.now();
    const merged = mergeCandidates(results, {
      size: options.mergedSize ?? this.mergedSize,
      watched,
      weights: this.weights,
      ...(request.exclude === undefined ? {} : { exclude: request.exclude }),
    });
    return { asOf, results, merged, timings, mergeMs: performance.now() - started, errors };
  }
}
