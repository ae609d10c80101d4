/**
 * The ranking feature space: vocabularies (from @recsys/features), the item catalogue, the list
 * of candidate sources, and the quantile normalisers of the continuous features, all fitted on
 * training data and stored with the ranker.
 */
import { FeatureSpace, type FeatureSpaceJson, QuantileNormalizer, type QuantileNormalizerJson } from "@recsys/features";
import { Catalog, type CatalogJson } from "./catalog.js";

/** Feature settings, fixed when the space is fitted. */
export interface RankingFeatureConfig {
  /** The user's last N watches whose embeddings are averaged. */
  readonly historyLength: number;
  /** Maximum boundaries of each quantile normaliser. */
  readonly quantiles: number;
  /** Provenance features (source multi-hot, per-source rank and score, number of sources, merged position). */
  readonly provenance: boolean;
}

export const DEFAULT_RANKING_FEATURE_CONFIG: RankingFeatureConfig = {
  historyLength: 50,
  quantiles: 500,
  provenance: true,
};

/**
 * Continuous features of a (user, candidate, time) that do not depend on provenance, in raw-vector
 * order. All are computed from data at or before the request time.
 * - user_age: years (missing when unknown)
 * - history_length: number of watches before the request
 * - since_last_watch: seconds since the user's last watch (missing without history)
 * - item_age: seconds since the item's upload (missing when unknown)
 * - item_watch_count: all-time watches of the item before the request
 * - item_trending: time-decayed watch count of the item at the request
 * - since_channel: seconds since the user last watched the item's channel (missing: never)
 * - channel_watches: the user's watches of the item's channel
 * - since_tag: seconds since the user last watched an item sharing a tag (genre) with it (missing: never)
 * - tag_share: largest fraction, over the item's tags, of the user's last historyLength watches having that tag
 * - previous_impressions: times the item was shown to the user before (0 without impression logs)
 */
export const BASE_FEATURES = [
  "user_age",
  "history_length",
  "since_last_watch",
  "item_age",
  "item_watch_count",
  "item_trending",
  "since_channel",
  "channel_watches",
  "since_tag",
  "tag_share",
  "previous_impressions",
] as const;
export type BaseFeature = (typeof BASE_FEATURES)[number];

/** Base features that can be missing: they get a missing indicator column. */
export const NULLABLE_FEATURES: ReadonlySet<BaseFeature> = new Set<BaseFeature>([
  "user_age",
  "since_last_watch",
  "item_age",
  "since_channel",
  "since_tag",
]);

export interface RankingNormalizers {
  /** One per BASE_FEATURES entry. */
  readonly base: readonly QuantileNormalizer[];
  /** Per source (in `sources` order): normaliser of the rank and of the score where present. */
  readonly rank: readonly QuantileNormalizer[];
  readonly score: readonly QuantileNormalizer[];
  readonly position: QuantileNormalizer;
}

export interface RankingSpaceJson {
  readonly version: 1;
  readonly config: RankingFeatureConfig;
  readonly features: FeatureSpaceJson;
  readonly catalog: CatalogJson;
  readonly sources: readonly string[];
  readonly normalizers: {
    readonly base: Readonly<Record<string, QuantileNormalizerJson>>;
    readonly rank: readonly QuantileNormalizerJson[];
    readonly score: readonly QuantileNormalizerJson[];
    readonly position: QuantileNormalizerJson;
  };
}

/**
 * Layout of the raw vector (before normalisation): BASE_FEATURES, then for each source its rank
 * and score (NaN when the source did not nominate the item), then the number of sources and the
 * merged position (NaN when not in the merged list).
 *
 * Layout of the encoded continuous vector (the model input): for each base feature x̃, x̃², √x̃
 * (x̃ its quantile-normalised value, 0 when missing) and, for nullable ones, a missing indicator;
 * then, with provenance: per source [present, q, q², √q, s̃, s̃², √s̃] where q = 1 − rank̃ (so that
 * the best rank is largest and the sentinel 0 of an absent source is below every present one) and
 * s̃ the normalised score; the number of sources / number of known sources; and for the merged
 * position [q, q², √q, missing] with q = 1 − positioñ.
 */
export class RankingSpace {
  readonly rawWidth: number;
  readonly width: number;
  /** Offsets in the raw vector. */
  readonly rawOffsets: { readonly provenance: number; readonly numSources: number; readonly position: number };

  constructor(
    readonly config: RankingFeatureConfig,
    readonly features: FeatureSpace,
    readonly catalog: Catalog,
    /** Source names known to the ranker, in SOURCE_ORDER; other sources' provenance is ignored. */
    readonly sources: readonly string[],
    /** Null while fitting (raw features only). */
    readonly normalizers: RankingNormalizers | null,
  ) {
    validateConfig(config);
    if (normalizers !== null) {
      if (normalizers.base.length !== BASE_FEATURES.length)
        throw new Error(`RankingSpace: ${normalizers.base.length} base normalisers, expected ${BASE_FEATURES.length}`);
      if (normalizers.rank.length !== sources.length || normalizers.score.length !== sources.length) {
        throw new Error(
          `RankingSpace: rank/score normalisers for ${normalizers.rank.length}/${normalizers.score.length} sources, expected ${sources.length}`,
        );
      }
    }
    const k = sources.length;
    const provenance = BASE_FEATURES.length;
    this.rawOffsets = { provenance, numSources: provenance + 2 * k, position: provenance + 2 * k + 1 };
    this.rawWidth = provenance + 2 * k + 2;
    this.width = this.columnNames().length;
  }

  /** Names of the encoded continuous columns, in order. */
  columnNames(): string[] {
    const names: string[] = [];
    for (const f of BASE_FEATURES) {
      names.push(f, `${f}_sq`, `${f}_sqrt`);
      if (NULLABLE_FEATURES.has(f)) names.push(`${f}_missing`);
    }
    if (this.config.provenance) {
      for (const s of this.sources) {
        names.push(
          `src_${s}`,
          `src_${s}_rank`,
          `src_${s}_rank_sq`,
          `src_${s}_rank_sqrt`,
          `src_${s}_score`,
          `src_${s}_score_sq`,
          `src_${s}_score_sqrt`,
        );
      }
      names.push("num_sources", "position", "position_sq", "position_sqrt", "position_missing");
    }
    return names;
  }

  /** The same space with fitted normalisers. */
  withNormalizers(normalizers: RankingNormalizers): RankingSpace {
    return new RankingSpace(this.config, this.features, this.catalog, this.sources, normalizers);
  }

  toJSON(): RankingSpaceJson {
    const n = this.normalizers;
    if (n === null) throw new Error("RankingSpace.toJSON: the space has no fitted normalisers");
    const base: Record<string, QuantileNormalizerJson> = {};
    BASE_FEATURES.forEach((f, j) => {
      base[f] = n.base[j]!.toJSON();
    });
    return {
      version: 1,
      config: this.config,
      features: this.features.toJSON(),
      catalog: this.catalog.toJSON(),
      sources: [...this.sources],
      normalizers: { base, rank: n.rank.map((q) => q.toJSON()), score: n.score.map((q) => q.toJSON()), position: n.position.toJSON() },
    };
  }

  static fromJSON(json: RankingSpaceJson): RankingSpace {
    RankingSpace.checkJSON(json);
    return RankingSpace.fromParts(json, FeatureSpace.fromJSON(json.features), Catalog.fromJSON(json.catalog));
  }

  /** {@link fromJSON} with the large vocabularies and the catalogue indexed in slices (a stage loads while it serves). */
  static async fromJSONInSlices(json: RankingSpaceJson): Promise<RankingSpace> {
    RankingSpace.checkJSON(json);
    return RankingSpace.fromParts(json, await FeatureSpace.fromJSONInSlices(json.features), await Catalog.fromJSONInSlices(json.catalog));
  }

  private static checkJSON(json: RankingSpaceJson): void {
    if (json === null || typeof json !== "object" || json.version !== 1)
      throw new Error("RankingSpace.fromJSON: unsupported or missing version (expected 1)");
  }

  private static fromParts(json: RankingSpaceJson, features: FeatureSpace, catalog: Catalog): RankingSpace {
    const base = BASE_FEATURES.map((f) => {
      const q = json.normalizers.base[f];
      if (q === undefined) throw new Error(`RankingSpace.fromJSON: no normaliser for feature "${f}"`);
      return QuantileNormalizer.fromJSON(q);
    });
    return new RankingSpace({ ...DEFAULT_RANKING_FEATURE_CONFIG, ...json.config }, features, catalog, json.sources, {
      base,
      rank: json.normalizers.rank.map((q) => QuantileNormalizer.fromJSON(q)),
      score: json.normalizers.score.map((q) => QuantileNormalizer.fromJSON(q)),
      position: QuantileNormalizer.fromJSON(json.normalizers.position),
    });
  }
}

function validateConfig(c: RankingFeatureConfig): void {
  if (!Number.isInteger(c.historyLength) || c.historyLength < 1)
    throw new Error(`ranking features: historyLength must be a positive integer, got ${c.historyLength}`);
  if (!Number.isInteger(c.quantiles) || c.quantiles < 1)
    throw new Error(`ranking features: quantiles must be a positive integer, got ${c.quantiles}`);
  if (typeof c.provenance !== "boolean") throw new Error("ranking features: provenance must be a boolean");
}

/**
 * Fits the normalisers on raw feature vectors of training candidates (`raw`: rows × rawWidth,
 * row-major, as written by `rawCandidateFeatures`). Missing values (NaN) are ignored.
 */
export function fitNormalizers(space: RankingSpace, raw: Float64Array, rows: number): RankingNormalizers {
  const w = space.rawWidth;
  if (raw.length < rows * w) throw new Error(`fitNormalizers: ${raw.length} values for ${rows} rows of ${w}`);
  const column = (c: number): Float64Array => {
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) out[r] = raw[r * w + c]!;
    return out;
  };
  const q = space.config.quantiles;
  const base = BASE_FEATURES.map((_, j) => QuantileNormalizer.fit(column(j), q));
  const p = space.rawOffsets.provenance;
  const rank = space.sources.map((_, s) => QuantileNormalizer.fit(column(p + 2 * s), q));
  const score = space.sources.map((_, s) => QuantileNormalizer.fit(column(p + 2 * s + 1), q));
  const position = QuantileNormalizer.fit(column(space.rawOffsets.position), q);
  return { base, rank, score, position };
}
