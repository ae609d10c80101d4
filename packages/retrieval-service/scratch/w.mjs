import { Worker, isMainThread, parentPort } from "node:worker_threads";
if (isMainThread) {
  const w = new Worker(new URL(import.meta.url));
  w.on("message", (m) => { console.log("main got", m); });
  w.on("error", (e) => console.log("err", e));
  w.on("exit", (c) => console.log("exit", c));
} else {
  const { HnswIndex, BruteForceIndex } = await import("@recsys/ann");
  const dim = 8, n = 1000;
  const vectors = new Float32Array(n*dim).map(() => Math.random());
  const ids = Array.from({length:n}, (_, i) => `i${i}`);
  const idx = HnswIndex.build({ids, vectors, dim}, {modelVersion: "v"});
  await idx.save("/tmp/wtest");
  parentPort.postMessage({ size: idx.size() });
}
