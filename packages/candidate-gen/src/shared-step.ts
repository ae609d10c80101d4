/**
 * The shared-memory layout of data-parallel training (see parallel.ts): everything both threads
 * read or write, as views of SharedArrayBuffers, plus the control words they synchronise on.
 */
import { EncodedBatch, type FeatureSpace } from "@recsys/features";
import type { ModelConfig } from "./config.js";
import type { CandidateGenModel } from "./model.js";
import { type SparseOptimizer, SparseTable } from "./sparse.js";
import type { StepInputs } from "./train-step.js";

/** Control word indices (Int32Array over a SharedArrayBuffer). */
export const CTRL = {
  /** Main → worker: sequence number of the step to compute; STOP to exit. */
  STEP: 0,
  /** Worker → main: step whose gradients (sparse exports, tower gradients, loss) are ready. */
  WORKER_GRADS: 1,
  /** Main → worker: step whose main-thread tower gradients are ready. */
  MAIN_GRADS: 2,
  /** Worker → main: step the worker has completely finished (it no longer reads step buffers). */
  WORKER_DONE: 3,
  /** Worker → main: 1 after the worker failed (message in the error buffer). */
  ERROR: 4,
  /** Rows in the batch. */
  ROWS: 5,
  /** First row of the worker's share (the main thread takes rows 0..SPLIT-1). */
  SPLIT: 6,
  /** Exported rows per table: main's from EXPORTS, the worker's from EXPORTS + number of tables. */
  EXPORTS: 8,
} as const;

export const STOP = -1;

/** Tables in a fixed order: watch, search, categorical…, output (absent when shared with watch), attention query and recency (attention pooling only). */
export interface TableShape {
  readonly name: string;
  readonly rows: number;
  readonly dim: number;
  /** Upper bound of rows one thread can touch in one step. */
  readonly maxTouched: number;
}

export interface SharedBuffers {
  readonly ctrl: SharedArrayBuffer;
  /** [0] main loss sum, [1] worker loss sum, [2] learning-rate scale. */
  readonly scalars: SharedArrayBuffer;
  readonly error: SharedArrayBuffer;
  readonly batch: SharedArrayBuffer;
  readonly labels: SharedArrayBuffer;
  readonly labelOffsets: SharedArrayBuffer;
  readonly negatives: SharedArrayBuffer;
  readonly negativeOffsets: SharedArrayBuffer;
  /** Flattened tower gradients: slot 0 (main), slot 1 (worker). */
  readonly towerGrads: SharedArrayBuffer;
  readonly tables: readonly SharedArrayBuffer[];
  /** Optimiser state per table ([m, v]; m is empty when the optimiser has none). */
  readonly state: readonly (readonly [SharedArrayBuffer, SharedArrayBuffer])[];
  /** Sparse-gradient exports per thread (0 main, 1 worker), per table. */
  readonly exportRows: readonly (readonly SharedArrayBuffer[])[];
  readonly exportGrads: readonly (readonly SharedArrayBuffer[])[];
}

export interface SharedViews {
  readonly ctrl: Int32Array;
  readonly scalars: Float64Array;
  readonly error: Uint8Array;
  readonly inputs: StepInputs & { readonly batch: EncodedBatch };
  readonly towerGrads: readonly [Float32Array, Float32Array];
  readonly tables: readonly Float32Array[];
  readonly state: readonly (readonly [Float32Array | null, Float32Array])[];
  readonly exportRows: readonly (readonly Int32Array[])[];
  readonly exportGrads: readonly (readonly Float32Array[])[];
}

export function tableShapes(space: FeatureSpace, config: ModelConfig, batchSize: number, negatives: number): TableShape[] {
  const n = space.config.historyLength;
  const m = space.config.searchLength;
  const shapes: TableShape[] = [
    {
      name: "watch",
      rows: space.items.size,
      dim: config.embeddingDim,
      maxTouched: Math.min(space.items.size, batchSize * n + (config.sharedItemEmbeddings ? batchSize + negatives : 0)),
    },
    { name: "search", rows: space.tokens.size, dim: config.searchDim, maxTouched: Math.min(space.tokens.size, batchSize * Math.max(m, 1)) },
    { name: "gender", rows: space.gender.size, dim: config.categoricalDim, maxTouched: Math.min(space.gender.size, batchSize) },
    { name: "occupation", rows: space.occupation.size, dim: config.categoricalDim, maxTouched: Math.min(space.occupation.size, batchSize) },
    { name: "geo", rows: space.geo.size, dim: config.categoricalDim, maxTouched: Math.min(space.geo.size, batchSize) },
  ];
  if (!config.sharedItemEmbeddings)
    shapes.push({
      name: "output",
      rows: space.items.size,
      dim: config.embeddingDim,
      maxTouched: Math.min(space.items.size, batchSize + negatives),
    });
  if (config.historyPooling === "attention") {
    shapes.push({ name: "attention_query", rows: 1, dim: config.embeddingDim, maxTouched: 1 });
    shapes.push({ name: "attention_recency", rows: n, dim: 1, maxTouched: n });
  }
  return shapes;
}

export function towerSize(inputDim: number, tower: readonly number[]): number {
  let size = 0;
  let inDim = inputDim;
  for (const out of tower) {
    size += inDim * out + out;
    inDim = out;
  }
  return size;
}

export function allocateShared(
  space: FeatureSpace,
  shapes: readonly TableShape[],
  batchSize: number,
  negatives: number,
  towerFloats: number,
  optimizer: SparseOptimizer,
): SharedBuffers {
  const sab = (bytes: number): SharedArrayBuffer => new SharedArrayBuffer(Math.max(8, bytes));
  const exports = (): { rows: SharedArrayBuffer[]; grads: SharedArrayBuffer[] } => ({
    rows: shapes.map((t) => sab(4 * t.maxTouched)),
    grads: shapes.map((t) => sab(4 * t.maxTouched * t.dim)),
  });
  const ex = [exports(), exports()];
  return {
    ctrl: sab(4 * (CTRL.EXPORTS + 2 * shapes.length)),
    scalars: sab(8 * 3),
    error: sab(2048),
    batch: sab(EncodedBatch.byteLength(batchSize, space.config.historyLength, space.config.searchLength)),
    labels: sab(4 * batchSize),
    labelOffsets: sab(4 * batchSize),
    negatives: sab(4 * negatives),
    negativeOffsets: sab(4 * negatives),
    towerGrads: sab(4 * 2 * towerFloats),
    tables: shapes.map((t) => sab(4 * t.rows * t.dim)),
    state: shapes.map((t) => {
      const [m, v] = SparseTable.stateSizes(optimizer, t.rows, t.dim);
      return [sab(4 * m), sab(4 * v)] as const;
    }),
    exportRows: ex.map((e) => e.rows),
    exportGrads: ex.map((e) => e.grads),
  };
}

export function viewsOf(
  b: SharedBuffers,
  shapes: readonly TableShape[],
  optimizer: SparseOptimizer,
  historyLength: number,
  searchLength: number,
  batchSize: number,
  negatives: number,
  towerFloats: number,
): SharedViews {
  return {
    ctrl: new Int32Array(b.ctrl),
    scalars: new Float64Array(b.scalars),
    error: new Uint8Array(b.error),
    inputs: {
      batch: new EncodedBatch(batchSize, historyLength, searchLength, b.batch),
      labels: new Int32Array(b.labels),
      labelOffsets: new Float32Array(b.labelOffsets),
      negatives: new Int32Array(b.negatives, 0, negatives),
      negativeOffsets: new Float32Array(b.negativeOffsets, 0, negatives),
    },
    towerGrads: [new Float32Array(b.towerGrads, 0, towerFloats), new Float32Array(b.towerGrads, 4 * towerFloats, towerFloats)],
    tables: b.tables.map((t) => new Float32Array(t)),
    state: b.state.map(([m, v], i) => {
      const [ms, vs] = SparseTable.stateSizes(optimizer, shapes[i]!.rows, shapes[i]!.dim);
      return [ms > 0 ? new Float32Array(m, 0, ms) : null, new Float32Array(v, 0, vs)] as const;
    }),
    exportRows: b.exportRows.map((set) => set.map((t) => new Int32Array(t))),
    exportGrads: b.exportGrads.map((set) => set.map((t) => new Float32Array(t))),
  };
}

/** The model's tables in `tableShapes` order. */
export function tablesInOrder(model: CandidateGenModel, shapes: readonly TableShape[]): SparseTable[] {
  return shapes.map((s) => {
    switch (s.name) {
      case "watch":
        return model.watch;
      case "search":
        return model.search;
      case "output":
        return model.output;
      case "attention_query":
        return model.attnQuery!;
      case "attention_recency":
        return model.attnRecency!;
      default: {
        const j = ["gender", "occupation", "geo"].indexOf(s.name);
        if (j < 0) throw new Error(`unknown table ${s.name}`);
        return model.categorical[j]!;
      }
    }
  });
}

/**
 * Copies this thread's accumulated sparse gradients to its export buffers (the other thread
 * imports the rows of its partition from them, see importOther).
 */
export function exportOwn(views: SharedViews, tables: readonly SparseTable[], thread: 0 | 1): void {
  const n = tables.length;
  tables.forEach((t, i) => {
    views.ctrl[CTRL.EXPORTS + thread * n + i] = t.exportGrads(views.exportRows[thread]![i]!, views.exportGrads[thread]![i]!);
  });
}

/**
 * Adds the other thread's exported gradients of this thread's partition of the rows
 * (row % 2 === thread). Each thread then updates only its partition: the two threads write
 * disjoint rows of the shared tables and optimiser state, so there is no race.
 */
export function importOther(views: SharedViews, tables: readonly SparseTable[], thread: 0 | 1): void {
  const n = tables.length;
  const other = 1 - thread;
  const partition = { parts: 2, part: thread };
  tables.forEach((t, i) => {
    t.importGrads(views.exportRows[other]![i]!, views.exportGrads[other]![i]!, views.ctrl[CTRL.EXPORTS + other * n + i]!, partition);
  });
}

/**
 * Blocks until ctrl[index] === expected (Atomics.wait, allowed on Node's main thread too),
 * throwing if the other side reported an error.
 */
export function waitFor(ctrl: Int32Array, index: number, expected: number, error: Uint8Array): void {
  for (;;) {
    const v = Atomics.load(ctrl, index);
    if (v === expected) return;
    if (Atomics.load(ctrl, CTRL.ERROR) !== 0) {
      const end = error.indexOf(0);
      throw new Error(`training worker failed: ${new TextDecoder().decode(error.slice(0, end < 0 ? error.length : end))}`);
    }
    Atomics.wait(ctrl, index, v, 1000);
  }
}

export function signal(ctrl: Int32Array, index: number, value: number): void {
  Atomics.store(ctrl, index, value);
  Atomics.notify(ctrl, index);
}

export function writeError(ctrl: Int32Array, error: Uint8Array, message: string): void {
  const bytes = new TextEncoder().encode(message).subarray(0, error.length - 1);
  error.fill(0);
  error.set(bytes);
  Atomics.store(ctrl, CTRL.ERROR, 1);
  for (let i = 0; i < ctrl.length; i++) Atomics.notify(ctrl, i);
}
