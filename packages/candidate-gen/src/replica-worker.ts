/**
 * The second thread of data-parallel training (see parallel.ts). It holds its own tfjs instance
 * and tower copy, views the shared embedding tables, and for each step: computes the forward and
 * backward pass of its share of the batch, exchanges sparse and tower gradients with the main
 * thread, updates its partition of the embedding rows (odd rows), and applies the summed tower
 * gradients (the same Adam update as the main thread, so both tower copies stay identical).
 */
import { parentPort, workerData } from "node:worker_threads";
import { FeatureSpace, type FeatureSpaceJson } from "@recsys/features";
import { initBackend } from "@recsys/tf";
import type { ModelConfig } from "./config.js";
import { CandidateGenModel } from "./model.js";
import {
  CTRL,
  exportOwn,
  importOther,
  type SharedBuffers,
  signal,
  STOP,
  type TableShape,
  tablesInOrder,
  viewsOf,
  waitFor,
  writeError,
} from "./shared-step.js";
import { flattenTower, type StepConfig, TrainStep } from "./train-step.js";

export interface ReplicaWorkerData {
  readonly buffers: SharedBuffers;
  readonly shapes: readonly TableShape[];
  readonly space: FeatureSpaceJson;
  readonly model: ModelConfig;
  readonly step: StepConfig;
  readonly tower: readonly { readonly w: Float32Array; readonly b: Float32Array }[];
  readonly towerFloats: number;
  readonly backend: string;
}

async function main(data: ReplicaWorkerData): Promise<void> {
  const { buffers, shapes, step: stepConfig } = data;
  const space = FeatureSpace.fromJSON(data.space);
  const optimizer = stepConfig.embeddings.optimizer;
  const views = viewsOf(
    buffers,
    shapes,
    optimizer,
    space.config.historyLength,
    space.config.searchLength,
    stepConfig.batchSize,
    stepConfig.negatives,
    data.towerFloats,
  );
  const { ctrl, error } = views;
  try {
    await initBackend({ backend: data.backend as "wasm", log: null });
    const table = (name: string): Float32Array => {
      const i = shapes.findIndex((s) => s.name === name);
      if (i < 0) throw new Error(`replica worker: no shared table "${name}"`);
      return views.tables[i]!;
    };
    const watch = table("watch");
    const model = CandidateGenModel.fromWeights(space, data.model, {
      watch,
      search: table("search"),
      categorical: [table("gender"), table("occupation"), table("geo")],
      output: data.model.sharedItemEmbeddings ? watch : table("output"),
      tower: data.tower,
      ...(data.model.historyPooling === "attention"
        ? { attention: { query: table("attention_query"), recency: table("attention_recency") } }
        : {}),
    });
    const tables = tablesInOrder(model, shapes);
    tables.forEach((t, i) => t.attachState(optimizer, views.state[i]![0], views.state[i]![1]));
    const step = new TrainStep(model, stepConfig);
    const [mainGrads, ownGrads] = views.towerGrads;
    const sum = new Float32Array(data.towerFloats);
    parentPort!.postMessage({ ready: true });

    let last = 0;
    for (;;) {
      // Wait for the next step (or STOP).
      let seq = Atomics.load(ctrl, CTRL.STEP);
      while (seq === last) {
        Atomics.wait(ctrl, CTRL.STEP, seq, 1000);
        seq = Atomics.load(ctrl, CTRL.STEP);
      }
      if (seq === STOP) break;
      last = seq;
      const rows = Atomics.load(ctrl, CTRL.ROWS);
      const split = Atomics.load(ctrl, CTRL.SPLIT);
      views.inputs.batch.size = rows;
      step.setLearningRateScale(views.scalars[2]!);
      if (split < rows) {
        const r = step.forwardBackward(views.inputs, split, rows, rows);
        flattenTower(r.towerGrads, ownGrads);
        views.scalars[1] = r.lossSum;
      } else {
        ownGrads.fill(0);
        views.scalars[1] = 0;
      }
      exportOwn(views, tables, 1);
      signal(ctrl, CTRL.WORKER_GRADS, seq);

      waitFor(ctrl, CTRL.MAIN_GRADS, seq, error);
      importOther(views, tables, 1);
      step.applySparseGrads({ parts: 2, part: 1 });
      for (let i = 0; i < sum.length; i++) sum[i] = mainGrads[i]! + ownGrads[i]!;
      step.applyTowerFlat(sum);
      signal(ctrl, CTRL.WORKER_DONE, seq);
    }
    step.dispose();
    model.dispose();
  } catch (err) {
    writeError(ctrl, error, err instanceof Error ? (err.stack ?? err.message) : String(err));
  }
}

if (parentPort !== null) void main(workerData as ReplicaWorkerData);
