export type * from "./types.js";
export { compareIds } from "./ids.js";
export { lastoutSplit, trainingRows } from "./split.js";
export type { Holdout, LastoutSplit } from "./split.js";
export { loadDataset, ACCEPTED_SPECS } from "./load.js";
