/**
 * Pure parts of `recsys evaluate`: the leak / compatibility check of a model against the
 * dataset and split, and the report (JSON object and readable table) with both protocols side by
 * side, per-user paired intervals for the comparisons the docs make, HR/NDCG curves and the
 * popularity profile of the recommendations (what `recsys report` draws).
 */
import {
  curves,
  pairedInterval,
  type PairedInterval,
  popularityDeciles,
  type Protocol,
  type ScorerResult,
  type Target,
} from "@recsys/eval";

/** The manifest fields evaluation relies on (a subset of @recsys/candidate-gen's manifest). */
export interface ManifestForEvaluation {
  readonly modelVersion: string;
  readonly datasetSpec: string;
  readonly datasetFingerprint: string;
  readonly holdout: "test" | "val" | "none";
  readonly train: { readonly examplesPerSecond: number; readonly seconds: number; readonly epochs: number };
}

/**
 * Why a model may not be evaluated on (dataset, target), or null when it may. A model must have
 * been trained on this exact dataset (same fingerprint) without the target events.
 */
export function refusalReason(
  manifest: ManifestForEvaluation,
  modelDir: string,
  datasetSpec: string,
  datasetFingerprint: string,
  target: Target,
  protocolFlags = "",
): string | null {
  const retrain = (holdout: "test" | "val"): string =>
    `retrain it with: recsys train --dataset ${datasetSpec} --out ${modelDir}${holdout === "val" ? " --holdout val" : ""}${protocolFlags}`;
  if (manifest.datasetFingerprint !== datasetFingerprint) {
    return (
      `model ${modelDir} was trained on dataset "${manifest.datasetSpec}" (fingerprint ${manifest.datasetFingerprint.slice(0, 12)}…), ` +
      `which differs from "${datasetSpec}" (fingerprint ${datasetFingerprint.slice(0, 12)}…); ` +
      `its item indices and held-out events would not match (a model is trained for one protocol's event order: lastout or lastout-shuffled with one tie seed) — ${retrain(target)}`
    );
  }
  if (manifest.holdout === "none") {
    return (
      `model ${modelDir} was trained with --holdout none (on every event, including the test and validation events), ` +
      `so evaluating it on ${target} events would leak the answers — ${retrain(target)}`
    );
  }
  if (manifest.holdout === "test" && target === "val") {
    return (
      `model ${modelDir} was trained with --holdout test, which includes the validation events, ` +
      `so evaluating it with --split val would leak the answers — ${retrain("val")}`
    );
  }
  return null;
}

/** One scorer's figures under one protocol. */
export interface ScorerEntry {
  /** hr@10, ndcg@10, hr@50, ndcg@50, mrr, coverage@10 (+ watch_dcg@10). */
  readonly metrics: Readonly<Record<string, number>>;
  /** HR@K and NDCG@K for K = 1..100 (index K − 1). */
  readonly curves: { readonly hr: readonly number[]; readonly ndcg: readonly number[] };
  /** Share of top-10 slots by item-popularity decile (0 = the 10 % most watched items in training). */
  readonly popularity_deciles: readonly number[];
  /**
   * 0-based rank of each evaluated user's target (users in dataset index order, the same in every
   * run on the same dataset): for paired comparisons across runs (e.g. two ranker settings).
   */
  readonly ranks: readonly number[];
}

export interface Comparison extends PairedInterval {
  /** "a − b". */
  readonly a: string;
  readonly b: string;
}

export interface ProtocolSection {
  readonly protocol: Protocol;
  /** Seed of the catalogue permutation that orders ties (lastout-shuffled), null under lastout. */
  readonly tie_seed: number | null;
  readonly users: number;
  /** Version of the candidate-gen bundle evaluated under this protocol (null: none given for it). */
  readonly model_version: string | null;
  /** Why the models were not evaluated under this protocol (no model trained for it), or null. */
  readonly models_skipped: string | null;
  /** Learned models: "youtube-dnn", and with a ranker "pipeline", "pipeline_without_provenance", "merged_order". */
  readonly models: Readonly<Record<string, ScorerEntry>>;
  /** Reference baselines ("most-popular", "item-knn", "item-knn@100") and the "next-id" diagnostic. */
  readonly baselines: Readonly<Record<string, ScorerEntry>>;
  /** Paired 95 % intervals over users of a − b (HR@10, NDCG@10). */
  readonly comparisons: readonly Comparison[];
  /** The pipeline's candidate recall, calibration and ranker (when a ranker was evaluated). */
  readonly pipeline?: PipelineDetails;
}

export interface PipelineDetails {
  readonly sources: Readonly<Record<string, { readonly recall: number; readonly budget: number; readonly size?: number }>>;
  /** Recall of the test item by each source's list cut at each budget (the report's recall-vs-budget curve). */
  readonly recall_by_budget: Readonly<Record<string, readonly { readonly budget: number; readonly recall: number }[]>>;
  readonly calibration: Readonly<
    Record<
      string,
      readonly {
        readonly predicted: number;
        readonly realisedWatch: number;
        readonly realisedOdds: number;
        readonly impressions: number;
        readonly positives: number;
      }[]
    >
  >;
  readonly ranker: {
    readonly modelVersion: string;
    readonly budget: number;
    readonly mergedSize: number;
    readonly seconds: number;
    readonly seed: number | null;
    /** The sources the ranker was trained behind (absent in reports written before they were recorded). */
    readonly sources?: readonly string[];
  };
  /** The ranker of "pipeline_with_session" (the bundle's ranker/), when the bundle holds a session model. */
  readonly session_ranker?: {
    readonly modelVersion: string;
    readonly sources: readonly string[];
    readonly sessionModel: { readonly kind: string; readonly savedAt: string } | null;
  };
}

export interface ModelInfo {
  readonly version: string;
  readonly seed: number | null;
  readonly epochs: number;
  readonly train: { readonly examples_per_second: number; readonly seconds: number };
}

export interface EvaluationReport {
  readonly dataset: string;
  readonly split: Target;
  readonly users: number;
  /** Seed of the lastout-shuffled permutation. */
  readonly tie_seed: number;
  /** The bundles evaluated, by protocol. */
  readonly model_info: Readonly<Partial<Record<Protocol, ModelInfo>>>;
  readonly protocols: Readonly<Partial<Record<Protocol, ProtocolSection>>>;
}

/** The metrics the comparisons are made on. */
export const COMPARED_METRICS = ["hr@10", "ndcg@10"] as const;

const MODEL_ORDER = [
  "youtube-dnn",
  "pipeline",
  "pipeline_without_provenance",
  "merged_order",
  "pipeline_with_session",
  "pipeline_with_session_nosession_ranker",
  "session_model",
];

/** The comparisons the docs make: pipeline vs DNN, with vs without provenance, each model vs each baseline. */
export function comparisonPairs(models: readonly string[], baselines: readonly string[]): [string, string][] {
  const has = (n: string): boolean => models.includes(n);
  const pairs: [string, string][] = [];
  if (has("pipeline") && has("youtube-dnn")) pairs.push(["pipeline", "youtube-dnn"]);
  if (has("pipeline") && has("pipeline_without_provenance")) pairs.push(["pipeline", "pipeline_without_provenance"]);
  if (has("pipeline") && has("merged_order")) pairs.push(["pipeline", "merged_order"]);
  // The session source: with the ranker trained behind it, with the one trained without it, and alone.
  if (has("pipeline_with_session") && has("pipeline")) pairs.push(["pipeline_with_session", "pipeline"]);
  if (has("pipeline_with_session") && has("pipeline_with_session_nosession_ranker"))
    pairs.push(["pipeline_with_session", "pipeline_with_session_nosession_ranker"]);
  if (has("pipeline_with_session_nosession_ranker") && has("pipeline")) pairs.push(["pipeline_with_session_nosession_ranker", "pipeline"]);
  if (has("pipeline_with_session") && has("session_model")) pairs.push(["pipeline_with_session", "session_model"]);
  for (const m of ["youtube-dnn", "pipeline"]) if (has(m)) for (const b of baselines) pairs.push([m, b]);
  return pairs;
}

/**
 * One protocol's section from the evaluator's results (models and baselines on the same users).
 * `popularity`: training-event count per item; `watch`: per evaluated user the realised watch time
 * of the target (for watch_dcg@10).
 */
export function buildSection(options: {
  readonly protocol: Protocol;
  readonly tieSeed: number | null;
  readonly users: number;
  readonly modelVersion: string | null;
  readonly modelsSkipped: string | null;
  readonly models: readonly ScorerResult[];
  readonly baselines: readonly ScorerResult[];
  readonly popularity: ArrayLike<number>;
  readonly watch: Float64Array;
  readonly pipeline?: PipelineDetails;
}): ProtocolSection {
  const entry = (r: ScorerResult): ScorerEntry => {
    let dcg = 0;
    for (let u = 0; u < r.ranks.length; u++) if (r.ranks[u]! < 10) dcg += options.watch[u]! / Math.log2(r.ranks[u]! + 2);
    return {
      metrics: { ...r.metrics, "watch_dcg@10": r.ranks.length > 0 ? dcg / r.ranks.length : NaN },
      curves: curves(r.ranks, 100),
      popularity_deciles: popularityDeciles(r.topCounts, options.popularity),
      ranks: Array.from(r.ranks),
    };
  };
  const byName = new Map([...options.models, ...options.baselines].map((r) => [r.name, r]));
  const comparisons: Comparison[] = [];
  for (const [a, b] of comparisonPairs(
    options.models.map((m) => m.name),
    options.baselines.map((m) => m.name),
  )) {
    for (const metric of COMPARED_METRICS)
      comparisons.push({ a, b, ...pairedInterval(byName.get(a)!.ranks, byName.get(b)!.ranks, metric) });
  }
  const models = [...options.models].sort((x, y) => MODEL_ORDER.indexOf(x.name) - MODEL_ORDER.indexOf(y.name));
  return {
    protocol: options.protocol,
    tie_seed: options.tieSeed,
    users: options.users,
    model_version: options.modelVersion,
    models_skipped: options.modelsSkipped,
    models: Object.fromEntries(models.map((r) => [r.name, entry(r)])),
    baselines: Object.fromEntries(options.baselines.map((r) => [r.name, entry(r)])),
    comparisons,
    ...(options.pipeline === undefined ? {} : { pipeline: options.pipeline }),
  };
}

/** The metrics of the tables, in order. */
export const TABLE_METRICS = ["hr@10", "ndcg@10", "hr@50", "ndcg@50", "mrr", "coverage@10", "watch_dcg@10"];

const fmt = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(4));

/** The readable report: one row per scorer, each protocol's metrics side by side; then intervals, recall, calibration. */
export function formatTable(report: EvaluationReport): string {
  const sections = Object.values(report.protocols).filter((s): s is ProtocolSection => s !== undefined);
  const lines = [
    `dataset   ${report.dataset}`,
    `split     ${report.split} (leave-last-out, full ranking; requests served at each user's last visible event)`,
    `users     ${report.users} evaluated`,
    `protocols ${sections.map((s) => (s.tie_seed === null ? `${s.protocol} (ties by item id)` : `${s.protocol} (ties by a permutation of the catalogue, seed ${s.tie_seed})`)).join("; ")}`,
  ];
  for (const [protocol, info] of Object.entries(report.model_info)) {
    if (info !== undefined)
      lines.push(
        `model     ${protocol}: ${info.version} (seed ${info.seed ?? "?"}, ${info.epochs} epochs, ${info.train.seconds.toFixed(1)} s, ${Math.round(info.train.examples_per_second)} examples/s)`,
      );
  }
  for (const s of sections) if (s.models_skipped !== null) lines.push(`note      ${s.protocol}: ${s.models_skipped}`);
  const names: string[] = [];
  for (const s of sections) for (const n of [...Object.keys(s.models), ...Object.keys(s.baselines)]) if (!names.includes(n)) names.push(n);
  const short: Record<string, string> = { "coverage@10": "cov@10", "watch_dcg@10": "wdcg@10" };
  const colW = 9;
  const nameW = Math.max(28, ...names.map((n) => n.length + 2));
  const block = TABLE_METRICS.length * colW;
  lines.push("", " ".repeat(nameW) + sections.map((s) => ` | ${s.protocol.padEnd(block - 1)}`).join(""));
  lines.push(
    "scorer".padEnd(nameW) +
      sections
        .map(
          () =>
            " | " +
            TABLE_METRICS.map((m) => (short[m] ?? m).padStart(colW))
              .join("")
              .slice(1),
        )
        .join(""),
  );
  for (const n of names) {
    lines.push(
      n.padEnd(nameW) +
        sections
          .map((s) => {
            const e = s.models[n] ?? s.baselines[n];
            return (
              " | " +
              TABLE_METRICS.map((m) => fmt(e?.metrics[m]).padStart(colW))
                .join("")
                .slice(1)
            );
          })
          .join(""),
    );
  }
  lines.push("", "next-id is a diagnostic, not a model: the items after the user's last visible item in id order (no learning).");
  for (const s of sections) {
    if (s.comparisons.length > 0) {
      lines.push("", `paired 95 % intervals over ${s.users} users (${s.protocol}), a − b:`);
      for (const c of s.comparisons) {
        const sign = c.lo > 0 ? "  a better" : c.hi < 0 ? "  b better" : "  within noise";
        lines.push(
          `  ${`${c.a} − ${c.b}`.padEnd(44)} ${c.metric.padEnd(8)} ${c.diff >= 0 ? "+" : ""}${c.diff.toFixed(4)}  [${c.lo.toFixed(4)}, ${c.hi.toFixed(4)}]${sign}`,
        );
      }
    }
    if (s.pipeline !== undefined) {
      const p = s.pipeline;
      lines.push(
        "",
        `pipeline (${s.protocol}): sources → merge (${p.ranker.budget} per source, ${p.ranker.mergedSize} merged) → ranker ${p.ranker.modelVersion}; items outside the merged list follow in merged order, then in tie order`,
      );
      lines.push("candidate recall of the target (the ranker's ceiling):");
      for (const [name, r] of Object.entries(p.sources))
        lines.push(`  ${name.padEnd(14)} ${r.recall.toFixed(4)}  (${r.size === undefined ? `budget ${r.budget}` : `size ${r.size}`})`);
      lines.push("calibration (held-out impressions by predicted exp(logit)): predicted / realised odds");
      for (const [name, buckets] of Object.entries(p.calibration))
        lines.push(`  ${name}: ${buckets.map((b) => `${b.predicted.toPrecision(3)}/${b.realisedOdds.toPrecision(3)}`).join("  ")}`);
    }
  }
  return lines.join("\n") + "\n";
}
