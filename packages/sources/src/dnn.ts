import type { ItemIndex } from "./item-index.js";
import { checkRequest, watchedSet, type CandidateSource, type SourceName, type SourceRequest, type SourceResult } from "./types.js";

/**
 * The user vector of the candidate-generation network for a request (its history, demographics
 * and time), or null when it has none (e.g. the model is not loaded). Supplied by the caller so
 * that this package does not depend on the model.
 */
export type UserVectorProvider = (request: SourceRequest) => Float32Array | null;

export interface DnnOptions {
  /** Defaults to "dnn". */
  readonly name?: SourceName;
  readonly index: ItemIndex;
  readonly userVector: UserVectorProvider;
  /**
   * Upload time of each item index (NaN when unknown). When given, items uploaded at or after
   * the request time are skipped (the embedding matrix covers the whole catalogue).
   */
  readonly uploadTimestamp?: ArrayLike<number>;
}

/**
 * The deep candidate generator of the YouTube paper: nearest items to the user vector by dot
 * product (score = the dot product), skipping the history and excluded items.
 */
export class DnnSource implements CandidateSource {
  readonly name: SourceName;
  private readonly index: ItemIndex;
  private readonly userVector: UserVectorProvider;
  private readonly uploads: ArrayLike<number> | undefined;

  constructor(options: DnnOptions) {
    this.name = options.name ?? "dnn";
    this.index = options.index;
    this.userVector = options.userVector;
    this.uploads = options.uploadTimestamp;
  }

  candidates(request: SourceRequest): SourceResult {
    checkRequest(request);
    if (request.budget === 0) return { source: this.name, candidates: [] };
    const vector = this.userVector(request);
    if (vector === null) return { source: this.name, candidates: [] };
    const watched = watchedSet(request);
    const exclude = request.exclude;
    const uploads = this.uploads;
    const asOf = request.asOf;
    const skip = (item: number): boolean =>
      watched.has(item) || exclude?.has(item) === true || (uploads !== undefined && uploads[item]! >= asOf);
    return { source: this.name, candidates: this.index.search(vector, request.budget, skip) };
  }
}
