/**
 * Synchronous data-parallel training on two threads (the main thread and one worker thread).
 *
 * The embedding tables live in SharedArrayBuffers seen by both threads; each thread has its own
 * tfjs instance and an identical copy of the tower. Per step:
 *   main:   writes the encoded batch, labels, negatives and offsets to shared memory; signals;
 *   both:   forward + backward on their share of the rows (the loss is the mean over the whole
 *           batch, so the gradients add up exactly to the single-threaded ones);
 *   both:   export their sparse and tower gradients to shared memory; signal; wait for the
 *           other's; add the other thread's gradients of the rows of their partition
 *           (row % 2 === thread) and apply the lazy sparse updates to those rows only — the
 *           tables and optimiser state are shared, the partitions disjoint;
 *   both:   add the two tower gradients in the same order and take the same Adam step, so both
 *           tower copies stay bit-identical.
 * Neither thread reads the tables while they are being updated (the next step starts only when
 * both are done), so there are no races, and a seed gives the same model on every run.
 */
import { Worker } from "node:worker_threads";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FeatureSpace } from "@recsys/features";
import { tf } from "@recsys/tf";
import type { ModelConfig } from "./config.js";
import type { ReplicaWorkerData } from "./replica-worker.js";
import {
  CTRL,
  exportOwn,
  importOther,
  type SharedBuffers,
  type SharedViews,
  signal,
  STOP,
  type TableShape,
  tablesInOrder,
  waitFor,
} from "./shared-step.js";
import type { SparseTable } from "./sparse.js";
import { flattenTower, type StepConfig, type TrainStep } from "./train-step.js";

/** The compiled worker module (under vitest this module is the .ts source: use dist/). */
function workerPath(): string {
  const here = fileURLToPath(import.meta.url);
  const sibling = join(dirname(here), "replica-worker.js");
  if (!here.endsWith(".ts") && existsSync(sibling)) return sibling;
  const dist = join(dirname(here), "..", "dist", "replica-worker.js");
  if (existsSync(dist)) return dist;
  throw new Error(`candidate-gen: the compiled worker ${sibling} is missing (run tsc --build)`);
}

export class ParallelStep {
  private seq = 0;
  private readonly sum: Float32Array;
  private readonly tables: SparseTable[];
  /** Fraction of each batch's rows the main thread computes (it also does the sparse updates). */
  mainShare = 0.5;

  private constructor(
    private readonly step: TrainStep,
    private readonly views: SharedViews,
    private readonly worker: Worker,
    shapes: readonly TableShape[],
    towerFloats: number,
  ) {
    const model = step.model;
    this.sum = new Float32Array(towerFloats);
    this.tables = tablesInOrder(model, shapes);
  }

  /** Starts the worker and waits until it is ready. `model`'s tables must be views of `buffers.tables`. */
  static async start(
    step: TrainStep,
    space: FeatureSpace,
    modelConfig: ModelConfig,
    stepConfig: StepConfig,
    buffers: SharedBuffers,
    views: SharedViews,
    shapes: readonly TableShape[],
    towerFloats: number,
  ): Promise<ParallelStep> {
    const model = step.model;
    const data: ReplicaWorkerData = {
      buffers,
      shapes,
      space: space.toJSON(),
      model: modelConfig,
      step: stepConfig,
      tower: model.weights().tower,
      towerFloats,
      backend: tf.getBackend() === "tensorflow" ? "node" : tf.getBackend(),
    };
    const worker = new Worker(workerPath(), { workerData: data });
    try {
      await new Promise<void>((resolve, reject) => {
        // A failure inside the worker's try block is reported through shared memory.
        const poll = setInterval(() => {
          if (Atomics.load(views.ctrl, CTRL.ERROR) !== 0) {
            const end = views.error.indexOf(0);
            finish(new Error(`training worker failed: ${new TextDecoder().decode(views.error.slice(0, end < 0 ? undefined : end))}`));
          }
        }, 50);
        const onError = (err: Error): void => finish(new Error(`training worker failed to start: ${err.message}`));
        const onExit = (code: number): void => finish(new Error(`training worker exited during start-up (code ${code})`));
        const onMessage = (m: { ready?: boolean }): void => {
          if (m.ready === true) finish(null);
        };
        function finish(err: Error | null): void {
          clearInterval(poll);
          worker.off("error", onError);
          worker.off("exit", onExit);
          worker.off("message", onMessage);
          if (err === null) resolve();
          else reject(err);
        }
        worker.on("error", onError);
        worker.on("exit", onExit);
        worker.on("message", onMessage);
      });
    } catch (err) {
      await worker.terminate();
      throw err;
    }
    worker.on("error", () => {
      // Errors after start-up surface through shared memory (writeError); keep the process alive.
    });
    return new ParallelStep(step, views, worker, shapes, towerFloats);
  }

  /**
   * One step on the batch already written to the shared inputs (batch.size rows). Returns the
   * mean loss. `lrScale` scales both learning rates.
   */
  run(lrScale: number): number {
    const { ctrl, error, inputs, scalars } = this.views;
    const rows = inputs.batch.size;
    const split = Math.max(1, Math.min(rows, Math.round(rows * this.mainShare)));
    const seq = ++this.seq;
    scalars[2] = lrScale;
    this.step.setLearningRateScale(lrScale);
    ctrl[CTRL.ROWS] = rows;
    ctrl[CTRL.SPLIT] = split;
    signal(ctrl, CTRL.STEP, seq);

    const own = this.step.forwardBackward(inputs, 0, split, rows);
    const [mainGrads, workerGrads] = this.views.towerGrads;
    const t = performance.now();
    flattenTower(own.towerGrads, mainGrads);
    exportOwn(this.views, this.tables, 0);
    this.step.profile["exchange"] = (this.step.profile["exchange"] ?? 0) + (performance.now() - t);
    signal(ctrl, CTRL.MAIN_GRADS, seq);

    const w0 = performance.now();
    waitFor(ctrl, CTRL.WORKER_GRADS, seq, error);
    const t1 = performance.now();
    this.step.profile["wait_worker"] = (this.step.profile["wait_worker"] ?? 0) + (t1 - w0);
    importOther(this.views, this.tables, 0);
    this.step.profile["exchange"] = (this.step.profile["exchange"] ?? 0) + (performance.now() - t1);
    this.step.applySparseGrads({ parts: 2, part: 0 });
    for (let i = 0; i < this.sum.length; i++) this.sum[i] = mainGrads[i]! + workerGrads[i]!;
    this.step.applyTowerFlat(this.sum);
    const loss = (own.lossSum + scalars[1]!) / rows;
    // The worker must be done with this step (its buffers and its half of the updates) before
    // the caller writes the next batch.
    const w = performance.now();
    waitFor(ctrl, CTRL.WORKER_DONE, seq, error);
    this.step.profile["wait_worker"] = (this.step.profile["wait_worker"] ?? 0) + (performance.now() - w);
    return loss;
  }

  async close(): Promise<void> {
    signal(this.views.ctrl, CTRL.STEP, STOP);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        void this.worker.terminate().then(() => resolve());
      }, 5000);
      this.worker.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
