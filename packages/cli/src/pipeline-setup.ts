/**
 * How `recsys train-ranker` and `recsys evaluate` assemble the candidate stage in front of the
 * ranker: the standard candidate sources of @recsys/sources plus the bundle's "dnn" source (and
 * the "session" source when the bundle holds a session model: ./session-pipeline.ts), with one
 * per-source budget and one merged size (stored in the ranker's manifest with its source list, so
 * evaluation rebuilds exactly the candidate stage the ranker was trained behind).
 */
import { join } from "node:path";
import type { CandidateGenBundle } from "@recsys/candidate-gen";
import type { Dataset } from "@recsys/data";
import { dnnFromBundle, type PipelineSettings } from "@recsys/ranking";
import { createStandardSources, DEFAULT_MERGED_SIZE, DEFAULT_SOURCE_BUDGET, type SourceSet } from "@recsys/sources";

export const DEFAULT_PIPELINE: PipelineSettings = { budget: DEFAULT_SOURCE_BUDGET, mergedSize: DEFAULT_MERGED_SIZE };

/** A fresh (empty) standard source set with the bundle's dnn source. */
export function createPipelineSources(dataset: Dataset, bundle: CandidateGenBundle, settings: PipelineSettings): SourceSet {
  return createStandardSources(dataset, { mergedSize: settings.mergedSize, dnn: dnnFromBundle(bundle, dataset) });
}

/** Where a ranker lives inside a candidate-gen bundle directory: ranker/ or, without provenance features, ranker-noprov/. */
export function rankerDir(modelDir: string, provenance: boolean): string {
  return join(modelDir, provenance ? "ranker" : "ranker-noprov");
}

/**
 * Where `recsys train-ranker --no-session` puts the ranker trained without the session source
 * (the comparison `recsys evaluate` reports as "pipeline_with_session_nosession_ranker").
 */
export function noSessionRankerDir(modelDir: string): string {
  return join(modelDir, "ranker-nosession");
}
