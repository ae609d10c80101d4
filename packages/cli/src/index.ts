/**
 * @recsys/cli as a library: the stack launcher and model helpers `recsys start` uses, for the
 * end-to-end tests (test/) and the serving benchmark (packages/bench). The command itself is
 * dist/main.js (`recsys`).
 */
export {
  STAGE_CANDIDATE_GENERATION,
  STAGE_ORCHESTRATOR,
  STAGE_RANKING,
  launchStack,
  retrievalStageName,
  stackPaths,
  stageEntry,
  type Stack,
  type StackOptions,
  type StackStageKind,
} from "./stack-launch.js";
export { freePorts, logTail, startStageProcess, type StageProcess, type StageProcessOptions } from "./stack-process.js";
export { ensureStackModel, reusableModel, trainStackModel, type Holdout, type StackModel, type StackModelSettings } from "./stack-model.js";
export { formatColumns, formatRecommendations, recommendationsJson, type FormatRecommendOptions } from "./stack-format.js";
export {
  DEFAULT_RUN_ROOT,
  STATE_FILE,
  processAlive,
  readStackState,
  readTitles,
  removeStackState,
  resolveAddress,
  stateFilePath,
  writeStackState,
  type ResolvedAddress,
  type StackState,
  type StackStateStage,
} from "./stack-state.js";
export { createPipelineSources, DEFAULT_PIPELINE, rankerDir } from "./pipeline-setup.js";
export {
  RETRAIN_DEFAULTS,
  flipSymlink,
  formatFigures,
  gateFigures,
  gateRefusal,
  heldOutTargets,
  holdoutCutoff,
  perUserGate,
  retrain,
  type GateFigures,
  type HeldOut,
  type PerUserGate,
  type RetrainOptions,
  type RetrainResult,
} from "./retrain.js";
export { embeddedStoreContents, openStoreContents } from "./store-opener.js";
