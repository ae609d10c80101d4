export type * from "./types.js";
export { compareIds } from "./ids.js";
export { lastoutSplit, trainingRows } from "./split.js";
export type { Holdout, LastoutSplit } from "./split.js";
export { loadDataset, ACCEPTED_SPECS } from "./load.js";
export { generateSynthetic, parseSyntheticSpec, SYNTHETIC_DEFAULTS } from "./synthetic.js";
export type { SyntheticOptions } from "./synthetic.js";
export { parseCsv, CsvParser, CsvError } from "./csv.js";
export { Rng } from "./prng.js";
