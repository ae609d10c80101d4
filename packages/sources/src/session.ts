import type { ItemIndex } from "./item-index.js";
import {
  checkRequest,
  watchedSet,
  type Candidate,
  type CandidateSource,
  type SourceName,
  type SourceRequest,
  type SourceResult,
} from "./types.js";

/**
 * A session model seen from the candidate stage: the state after a short chronological list of
 * items (a logged-in user's recent watches, or an anonymous visitor's session), in the space of
 * the item vectors of the index it is searched in. Supplied by the caller (e.g. @recsys/sequence's
 * `sessionEncoder`) so that this package does not depend on the model; null when it has no state
 * for the items (e.g. none of them is in its vocabulary).
 */
export interface SessionEncoder {
  /** The most recent items it reads (older ones are ignored). */
  readonly maxLength: number;
  encode(items: ArrayLike<number>): Float32Array | null;
  /** The model's vector of an item (for "because"), or null when unknown. */
  itemVector?(item: number): Float32Array | null;
}

export interface SessionOptions {
  /** Defaults to "session". */
  readonly name?: SourceName;
  readonly index: ItemIndex;
  readonly encoder: SessionEncoder;
  /**
   * "because" is the session item, among the `becauseWindow` most recent, whose vector has the
   * largest dot product with the candidate's (needs `encoder.itemVector`). Default 5; 0 = none.
   */
  readonly becauseWindow?: number;
  /** Upload time of each item index (NaN when unknown): items uploaded at or after the request are skipped. */
  readonly uploadTimestamp?: ArrayLike<number>;
}

/** The reason shown for a session candidate, from the title of its `because` item. */
export function sessionReason(title: string | undefined): string {
  return title === undefined ? "Picked for this session" : `Because you just watched ${title}`;
}

/**
 * Next-item candidates from a sequence model over the request's most recent items (its state
 * follows every new watch with no retraining): nearest items to the session state by dot product,
 * skipping the history and excluded items. It reads nothing but the request, so it serves
 * anonymous sessions (no `user`) as well as logged-in users.
 */
export class SessionSource implements CandidateSource {
  readonly name: SourceName;
  private readonly index: ItemIndex;
  private readonly encoder: SessionEncoder;
  private readonly becauseWindow: number;
  private readonly uploads: ArrayLike<number> | undefined;

  constructor(options: SessionOptions) {
    this.name = options.name ?? "session";
    this.index = options.index;
    this.encoder = options.encoder;
    this.becauseWindow = options.becauseWindow ?? 5;
    if (!Number.isInteger(this.becauseWindow) || this.becauseWindow < 0)
      throw new RangeError(`becauseWindow must be a non-negative integer, got ${this.becauseWindow}`);
    this.uploads = options.uploadTimestamp;
  }

  candidates(request: SourceRequest): SourceResult {
    checkRequest(request);
    const history = request.history;
    if (request.budget === 0 || history.length === 0) return { source: this.name, candidates: [] };
    const start = Math.max(0, history.length - this.encoder.maxLength);
    const recent = Array.from({ length: history.length - start }, (_, k) => history[start + k]!);
    const state = this.encoder.encode(recent);
    if (state === null) return { source: this.name, candidates: [] };
    const watched = watchedSet(request);
    const exclude = request.exclude;
    const uploads = this.uploads;
    const asOf = request.asOf;
    const skip = (item: number): boolean =>
      watched.has(item) || exclude?.has(item) === true || (uploads !== undefined && uploads[item]! >= asOf);
    const found = this.index.search(state, request.budget, skip);
    return { source: this.name, candidates: this.withBecause(found, recent) };
  }

  private withBecause(found: Candidate[], recent: readonly number[]): Candidate[] {
    const vectorOf = this.encoder.itemVector?.bind(this.encoder);
    if (vectorOf === undefined || this.becauseWindow === 0) return found;
    const window = recent
      .slice(-this.becauseWindow)
      .map((item) => ({ item, v: vectorOf(item) }))
      .filter((h): h is { item: number; v: Float32Array } => h.v !== null);
    if (window.length === 0) return found;
    return found.map((c) => {
      const cv = vectorOf(c.item);
      if (cv === null) return c;
      let best = window[window.length - 1]!.item;
      let bestDot = -Infinity;
      for (let k = window.length - 1; k >= 0; k--) {
        // most recent first: an equal dot keeps the later item
        const h = window[k]!;
        let dot = 0;
        for (let j = 0; j < cv.length; j++) dot += cv[j]! * h.v[j]!;
        if (dot > bestDot) {
          bestDot = dot;
          best = h.item;
        }
      }
      return { ...c, because: best };
    });
  }
}
