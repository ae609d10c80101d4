export { measureTraining, PYTORCH_REFERENCE_EXAMPLES_PER_SECOND, REFERENCE_SIZE } from "./train-bench.js";
export type { TrainBenchResult } from "./train-bench.js";
export { naiveDenseExamplesPerSecond } from "./naive-dense.js";
export { ml100kDir, repoRoot } from "./paths.js";
