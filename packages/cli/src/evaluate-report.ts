/**
 * Pure parts of `recsys evaluate`: the leak / compatibility check of a model against the
 * dataset and split, and the report (JSON object and readable table).
 */
import type { ScorerResult, Target } from "@recsys/eval";

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
): string | null {
  const retrain = (holdout: "test" | "val"): string =>
    `retrain it with: recsys train --dataset ${datasetSpec} --out ${modelDir}${holdout === "val" ? " --holdout val" : ""}`;
  if (manifest.datasetFingerprint !== datasetFingerprint) {
    return (
      `model ${modelDir} was trained on dataset "${manifest.datasetSpec}" (fingerprint ${manifest.datasetFingerprint.slice(0, 12)}…), ` +
      `which differs from "${datasetSpec}" (fingerprint ${datasetFingerprint.slice(0, 12)}…); ` +
      `its item indices and held-out events would not match — ${retrain(target)}`
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

export interface EvaluationReport {
  readonly dataset: string;
  readonly protocol: "lastout";
  readonly split: Target;
  readonly users: number;
  readonly model: Readonly<Record<string, number>>;
  readonly baselines: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly train: { readonly examples_per_second: number; readonly seconds: number };
}

/** Assembles the report: `results` holds the model first, then the baselines. */
export function buildReport(
  dataset: string,
  split: Target,
  users: number,
  model: ScorerResult,
  baselines: readonly ScorerResult[],
  train: { examplesPerSecond: number; seconds: number },
): EvaluationReport {
  const finite = (v: number): number => (Number.isFinite(v) ? v : 0);
  return {
    dataset,
    protocol: "lastout",
    split,
    users,
    model: { ...model.metrics },
    baselines: Object.fromEntries(baselines.map((b) => [b.name, { ...b.metrics }])),
    train: { examples_per_second: finite(train.examplesPerSecond), seconds: finite(train.seconds) },
  };
}

/** A fixed-width table: one row per metric, one column per scorer. */
export function formatTable(report: EvaluationReport, metricOrder: readonly string[], modelVersion?: string): string {
  const columns: [string, Readonly<Record<string, number>>][] = [["model", report.model], ...Object.entries(report.baselines)];
  const width = Math.max(12, ...columns.map(([name]) => name.length + 2));
  const lines = [
    `dataset   ${report.dataset}`,
    `protocol  lastout (leave-last-out, full ranking, ties by item id; split: ${report.split})`,
    `users     ${report.users} evaluated`,
    ...(modelVersion === undefined ? [] : [`model     ${modelVersion}`]),
    `training  ${report.train.seconds.toFixed(1)} s, ${Math.round(report.train.examples_per_second)} examples/s`,
    "",
    "metric".padEnd(14) + columns.map(([name]) => name.padStart(width)).join(""),
  ];
  for (const m of metricOrder) {
    lines.push(m.padEnd(14) + columns.map(([, metrics]) => (metrics[m] ?? NaN).toFixed(4).padStart(width)).join(""));
  }
  return lines.join("\n") + "\n";
}
