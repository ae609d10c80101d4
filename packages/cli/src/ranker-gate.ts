/**
 * The ranker's half of `recsys retrain`'s gate: the candidate ranker and the serving bundle's are
 * scored on the same held-out served answers, the `Recommend` answers logged at or after the
 * cut-off (neither ranker trained on them) whose watch window closed before the last known watch.
 * Each answer's shown items are labelled as the ranker learns from the served log
 * (@recsys/ranking buildServedExamples: watched within the window = positive, weight its watch
 * seconds; else negative, weight 1), with the logged provenance and the user's context and item
 * statistics at the answer's time.
 *
 * Figures:
 * - AUC: over every (watched, not watched) pair of shown items of the same answer, the fraction
 *   the ranker orders with the watched one first (a tie counts one half); what serving uses the
 *   ranker for is this ordering.
 * - weighted log-loss: the training objective (weighted logistic loss of the logits) averaged over
 *   the shown items by weight; printed, not gated (it also moves with calibration).
 * The gate refuses a candidate whose AUC is below the serving ranker's × (1 − margin).
 */
import type { Dataset } from "@recsys/data";
import { buildServedExamples, exampleCandidates, exampleContext, exampleCount, type Ranker, type RankingExamples } from "@recsys/ranking";
import { createStandardSources } from "@recsys/sources";

export interface RankerGateFigures {
  /** Answers with at least one shown item. */
  readonly answers: number;
  /** (watched, not watched) pairs within an answer. */
  readonly pairs: number;
  readonly auc: number;
  readonly logLoss: number;
}

/** The held-out served answers (at or after `cutoff`, window closed), as ranker examples; undefined without a served log. */
export function heldOutServedAnswers(
  dataset: Dataset,
  cutoff: number,
  options: { readonly windowSeconds: number; readonly maxAnswersPerUser: number; readonly mergedSize: number },
): RankingExamples | undefined {
  if (dataset.served === undefined || dataset.served.requestId.length === 0) return undefined;
  return buildServedExamples(dataset, {
    rows: Int32Array.from({ length: dataset.events.user.length }, (_, r) => r),
    sources: createStandardSources(dataset, { mergedSize: options.mergedSize }),
    windowSeconds: options.windowSeconds,
    maxExamplesPerUser: options.maxAnswersPerUser,
    from: cutoff,
  });
}

/** A ranker's AUC and weighted log-loss on the held-out answers (see the module comment). */
export function rankerFigures(ranker: Ranker, dataset: Dataset, examples: RankingExamples): RankerGateFigures {
  const n = exampleCount(examples);
  let concordant = 0;
  let pairs = 0;
  let loss = 0;
  let weights = 0;
  for (let e = 0; e < n; e++) {
    const scores = ranker.score(exampleContext(dataset, examples, e), exampleCandidates(dataset, examples, e), examples.asOf[e]!);
    const c0 = examples.candidateOffsets[e]!;
    for (let i = 0; i < scores.length; i++) {
      const s = scores[i]!;
      const y = examples.label[c0 + i]!;
      const w = examples.weight[c0 + i]!;
      // −log σ(s) = softplus(−s), −log(1 − σ(s)) = softplus(s), computed stably.
      const z = y === 1 ? -s : s;
      loss += w * (Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z))));
      weights += w;
      if (y !== 1) continue;
      for (let j = 0; j < scores.length; j++) {
        if (examples.label[c0 + j] === 1) continue;
        pairs++;
        const t = scores[j]!;
        concordant += s > t ? 1 : s === t ? 0.5 : 0;
      }
    }
  }
  return { answers: n, pairs, auc: pairs > 0 ? concordant / pairs : NaN, logLoss: weights > 0 ? loss / weights : NaN };
}

/** Why the candidate ranker may not replace the serving one (undefined: it may, or there is nothing to compare). */
export function rankerGateRefusal(candidate: RankerGateFigures, serving: RankerGateFigures, margin: number): string | undefined {
  if (!Number.isFinite(serving.auc)) return undefined;
  if (candidate.auc >= serving.auc * (1 - margin)) return undefined;
  return `the candidate ranker is worse than the serving one by more than the margin: AUC ${candidate.auc.toFixed(4)} < ${serving.auc.toFixed(4)} × (1 − ${margin})`;
}

export function formatRankerFigures(name: string, version: string, f: RankerGateFigures): string {
  return `${`ranker ${name}`.padEnd(16)} ${version.padEnd(32)} AUC ${f.auc.toFixed(4)}  weighted log-loss ${f.logLoss.toFixed(4)}  (${f.answers} held-out answers, ${f.pairs} pairs)`;
}
