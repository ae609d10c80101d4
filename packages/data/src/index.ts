export type * from "./types.js";
export { compareIds } from "./ids.js";
export { lastoutSplit, trainingRows } from "./split.js";
export type { Holdout, LastoutSplit } from "./split.js";
export { loadDataset, ACCEPTED_SPECS } from "./load.js";
export { generateSynthetic, parseSyntheticSpec, SYNTHETIC_DEFAULTS } from "./synthetic.js";
export type { SyntheticOptions } from "./synthetic.js";
export { parseCsv, CsvParser, CsvError } from "./csv.js";
export { Rng } from "./prng.js";
export { datasetFromEvents } from "./in-memory.js";
export type { EventRecord, InMemoryOptions } from "./in-memory.js";
export { Float32FileSizeError, readFloat32File } from "./float32-file.js";
export {
  describeJsonFileError,
  indexInSlices,
  JsonFileError,
  readJsonFile,
  yieldToEventLoop,
  type IndexOptions,
  type ReadJsonOptions,
} from "./json-file.js";
export {
  DEFAULT_STORE_PREFIX,
  datasetBefore,
  datasetFromStoreEvents,
  loadStoreDataset,
  parseStoreSpec,
  redactSpec,
  registerStoreOpener,
} from "./store.js";
export type { StoreCatalogueItem, StoreContents, StoreEvent, StoreLocation, StoreOpener, StoreProfile } from "./store.js";
