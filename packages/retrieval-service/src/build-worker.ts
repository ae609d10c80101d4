/**
 * Worker thread that builds one shard's index and saves it into a directory, so a large build
 * (seconds to minutes of CPU) does not stall the event loop that keeps serving the old index.
 * Input (workerData): {@link BuildJob}; output: one message `{ size }`, or an error.
 */
import { parentPort, workerData } from "node:worker_threads";
import { BruteForceIndex, HnswIndex, type VectorIndex } from "@recsys/ann";
import type { BuildJob } from "./shard-index.js";

const job = workerData as BuildJob;
const items = { ids: job.ids, vectors: job.vectors, dim: job.dim };
const index: VectorIndex =
  job.kind === "hnsw"
    ? HnswIndex.build(items, {
        modelVersion: job.modelVersion,
        annotations: job.annotations,
        M: job.M,
        efConstruction: job.efConstruction,
        ef: job.ef,
      })
    : BruteForceIndex.build(items, { modelVersion: job.modelVersion, annotations: job.annotations });
await index.save(job.dir);
parentPort!.postMessage({ size: index.size() });
