/**
 * The in-memory dataset shared by training, evaluation and the offline candidate sources.
 *
 * Everything is columnar (typed arrays plus small string vocabularies) so that a catalogue of
 * 1M items and 1M users fits without one JS object per row.
 *
 * Index conventions (every package relies on them):
 * - Users and items are referred to by dense indices `0..n-1`.
 * - Item indices are assigned in ascending order of the external item id under `compareIds`
 *   (numeric order when both ids are canonical non-negative integers, code-unit order otherwise),
 *   so "ties broken by item id ascending" is "ties broken by item index ascending".
 * - User indices are assigned in ascending `compareIds` order of the external user id.
 * - Missing numeric values are `NaN`; missing categorical values are code `-1`.
 */

/** A categorical column: `codes[row]` indexes `values`, `-1` when missing. */
export interface CategoricalColumn {
  readonly codes: Int32Array;
  readonly values: readonly string[];
}

export interface UserTable {
  /** External ids, by user index. */
  readonly ids: readonly string[];
  /** Age in years, NaN when unknown. */
  readonly age: Float32Array;
  readonly gender: CategoricalColumn;
  readonly occupation: CategoricalColumn;
  /** Geography (for ml-100k the leading digits of the zip code). */
  readonly geo: CategoricalColumn;
}

export interface ItemTable {
  /** External ids, by item index. */
  readonly ids: readonly string[];
  /** Titles, by item index ("" when unknown). */
  readonly titles: readonly string[];
  /** Tags (genres, topics) as CSR: tags of item i are tagCodes[tagOffsets[i] .. tagOffsets[i+1]). */
  readonly tagOffsets: Int32Array;
  readonly tagCodes: Int32Array;
  readonly tagValues: readonly string[];
  readonly channel: CategoricalColumn;
  /** Unix seconds the item became available (upload or release), NaN when unknown. */
  readonly uploadTimestamp: Float64Array;
  /** Duration in seconds, NaN when unknown. */
  readonly durationSeconds: Float32Array;
}

/**
 * The interaction log: one row per watch event, sorted by
 * (user index, timestamp, item id as written under `compareIds`).
 * Duplicate (user, item) events are kept here; the evaluation protocol removes them.
 */
export interface EventLog {
  readonly user: Int32Array;
  readonly item: Int32Array;
  /** Unix seconds. */
  readonly timestamp: Float64Array;
  /**
   * Watch-time weight of the event: `watch_seconds` where the source has it, the rating for
   * ml-100k, NaN when the source has neither.
   */
  readonly weight: Float32Array;
  /** Row range of each user: events of user u are rows userOffsets[u] .. userOffsets[u+1]. */
  readonly userOffsets: Int32Array;
}

/** Search queries, sorted by (user index, timestamp). */
export interface SearchLog {
  readonly user: Int32Array;
  readonly timestamp: Float64Array;
  readonly query: readonly string[];
  readonly userOffsets: Int32Array;
}

/**
 * Impressions (an item shown to a user), where the source has them (the synthetic generator).
 * Sorted by (user index, timestamp).
 */
export interface ImpressionLog {
  readonly user: Int32Array;
  readonly item: Int32Array;
  readonly timestamp: Float64Array;
  /** 1 when the impression was clicked (and so also appears as a watch event), else 0. */
  readonly clicked: Uint8Array;
  /** Seconds watched after the click, 0 when not clicked. */
  readonly watchSeconds: Float32Array;
  readonly userOffsets: Int32Array;
}

/**
 * What the system served (`served` events of the store: one row per `Recommend` answer) joined
 * with what the client reported as shown (`impression` events carrying the request id). Only
 * `store:` datasets have it. Requests are sorted by (timestamp, request id); the items of request
 * r are rows `itemOffsets[r] .. itemOffsets[r+1]` in served order; the provenance of item row c is
 * rows `provenanceOffsets[c] .. provenanceOffsets[c+1]` (source code into `sources`, the source's
 * rank made 0-based like the sources' own (the log's is 1-based) and its score), as logged.
 */
export interface ServedLog {
  readonly requestId: readonly string[];
  /** User index of each request. */
  readonly user: Int32Array;
  /** Unix seconds of each answer. */
  readonly timestamp: Float64Array;
  /** The model versions that served each request (JSON object text, as logged). */
  readonly modelVersions: readonly string[];
  readonly itemOffsets: Int32Array;
  /** Item index of each served item (served items missing from the catalogue are left out). */
  readonly item: Int32Array;
  /** 1-based position in the answer. */
  readonly position: Int32Array;
  /**
   * 1 when the item counts as shown: the client recorded an impression of it with this request
   * id, or the client recorded no impression for the whole request (the answer is then taken as
   * shown in full). 0: served, but the client's impressions for the request leave it out.
   */
  readonly shown: Uint8Array;
  readonly provenanceOffsets: Int32Array;
  readonly provenanceSource: Int32Array;
  readonly provenanceRank: Float32Array;
  readonly provenanceScore: Float64Array;
  readonly sources: readonly string[];
}

/** What a loader skipped or repaired: nothing is dropped silently. */
export interface LoadReport {
  /** Human-readable counts, e.g. { "events": 100000, "duplicate_events": 0 }. */
  readonly counts: Readonly<Record<string, number>>;
  /** Warnings worth printing (e.g. "users.csv: 3 unknown users ignored"). */
  readonly warnings: readonly string[];
}

export interface Dataset {
  /** The specification it was loaded from, e.g. "ml100k:../shared/data/ml-100k". */
  readonly spec: string;
  /** Stable content hash of users, items and events (hex). */
  readonly fingerprint: string;
  readonly users: UserTable;
  readonly items: ItemTable;
  readonly events: EventLog;
  /** Empty logs (length 0) when the source has none. */
  readonly searches: SearchLog;
  readonly impressions: ImpressionLog;
  /** The served log (`store:` datasets only; see ServedLog). */
  readonly served?: ServedLog;
  readonly report: LoadReport;
}

/**
 * Scores every catalogue item for one user at one moment. Offline evaluation and the baselines
 * use it; the candidate-generation model provides one built from its bundle.
 */
export interface UserScorer {
  readonly name: string;
  /**
   * Fill `out` (length = number of items) with a score per item index for user `user`, whose
   * visible history is the event-log rows `historyRows` (chronological, deduplicated, never the
   * held-out event) and who is served at `asOf` (Unix seconds: the held-out event's timestamp).
   * Higher is better; the caller breaks ties by item index ascending and removes history items.
   */
  score(user: number, historyRows: Int32Array, asOf: number, out: Float32Array): void;
}
