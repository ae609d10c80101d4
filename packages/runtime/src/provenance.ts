/**
 * recsys.v1 Provenance.source_name (common.proto): the name of the candidate source, matched by the
 * ranker against the sources its model was trained with; when empty, the name of the
 * CandidateSource value below. Shared by the orchestrator, which leaves it empty where the enum
 * stands for the same name, and the ranking service, which reads it.
 */
import { CandidateSource } from "@recsys/gen";

/** The @recsys/sources name each CandidateSource value stands for when source_name is empty. */
export const SOURCE_ENUM_NAMES: Readonly<Record<number, string>> = {
  [CandidateSource.DNN]: "dnn",
  [CandidateSource.CO_WATCH]: "co-watch",
  [CandidateSource.POPULAR]: "popular",
  [CandidateSource.TRENDING]: "trending",
  [CandidateSource.FRESH]: "fresh",
  [CandidateSource.SEARCH]: "search",
};
