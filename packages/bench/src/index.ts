export { measureTraining, REFERENCE_SIZE } from "./train-bench.js";
export type { TrainBenchResult } from "./train-bench.js";
export { naiveDenseExamplesPerSecond } from "./naive-dense.js";
export { ml100kDir, repoRoot } from "./paths.js";
