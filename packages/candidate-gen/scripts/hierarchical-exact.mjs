#!/usr/bin/env node
// What the serving approximation of the hierarchical softmax costs: ranks the catalogue of each
// hierarchical bundle two ways, protocol lastout,
//   serving: u · (w_c(j) + v_j), the bundle's item_embeddings.f32 (what `recsys evaluate` and the
//            retrieval index do);
//   exact:   log P(j | u) up to a per-user constant = u · (w_c(j) + v_j) − Z_c(j)(u), with
//            Z_c(u) = log Σ_{k ∈ c} exp(u · v_k) the within-cluster log-partition (v_k recovered as
//            item vector − cluster vector from cluster_embeddings.f32 and item_clusters.i32);
// and prints HR@10 / NDCG@10 of both and the paired 95 % interval of exact − serving.
//   node packages/candidate-gen/scripts/hierarchical-exact.mjs SPEC val|test DIR...
// Run after `npx tsc --build`.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createDatasetScorer, loadBundle } from "@recsys/candidate-gen";
import { lastoutSplit, loadDataset } from "@recsys/data";
import { evaluateLastout, pairedInterval } from "@recsys/eval";
import { contextFromDataset } from "@recsys/features";

const [spec, split, ...dirs] = process.argv.slice(2);
if (spec === undefined || (split !== "val" && split !== "test") || dirs.length === 0) {
  console.error("usage: hierarchical-exact.mjs SPEC val|test DIR...");
  process.exit(2);
}
const dataset = await loadDataset(spec);
const lastout = lastoutSplit(dataset.events, dataset.users.ids.length);
const sign = (v) => (v >= 0 ? "+" : "") + v.toFixed(4);
const raw = (file, Type) => {
  const b = readFileSync(file);
  return new Type(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

function exactScorer(bundle, dir) {
  const h = bundle.manifest.files.hierarchy;
  if (h === undefined) throw new Error(`${dir}: not a hierarchical bundle (trainConfig.output ${bundle.manifest.trainConfig.output})`);
  const d = bundle.dim;
  const w = raw(join(dir, h.clusterEmbeddings.file), Float32Array);
  const cluster = raw(join(dir, h.itemClusters.file), Int32Array);
  const emb = bundle.itemEmbeddings;
  const rows = bundle.itemIds.length;
  const index = new Map(bundle.itemIds.map((id, r) => [id, r]));
  const rowOf = dataset.items.ids.map((id) => index.get(id) ?? -1);
  const within = new Float64Array(rows);
  const serving = new Float64Array(rows);
  const clusters = h.clusterEmbeddings.rows;
  const logZ = new Float64Array(clusters);
  const max = new Float64Array(clusters);
  return {
    name: "exact",
    score(user, historyRows, asOf, out) {
      const u = bundle.userVector(contextFromDataset(dataset, user, historyRows, asOf), asOf);
      max.fill(-Infinity);
      for (let r = 0; r < rows; r++) {
        const c = cluster[r];
        let s = 0;
        let t = 0;
        for (let k = 0; k < d; k++) {
          s += u[k] * emb[r * d + k];
          t += u[k] * w[c * d + k];
        }
        serving[r] = s;
        within[r] = s - t; // u · v_r
        if (within[r] > max[c]) max[c] = within[r];
      }
      logZ.fill(0);
      for (let r = 0; r < rows; r++) logZ[cluster[r]] += Math.exp(within[r] - max[cluster[r]]);
      for (let c = 0; c < clusters; c++) logZ[c] = max[c] + Math.log(logZ[c]);
      for (let i = 0; i < out.length; i++) {
        const r = rowOf[i];
        out[i] = r < 0 ? -1e30 : serving[r] - logZ[cluster[r]];
      }
    },
  };
}

const perDir = [];
for (const dir of dirs) {
  const bundle = await loadBundle(dir);
  const result = evaluateLastout({
    dataset,
    split: lastout,
    target: split,
    scorers: [createDatasetScorer(bundle, dataset, { name: "serving" }), exactScorer(bundle, dir)],
  });
  const [s, e] = result.results;
  const line = ["hr@10", "ndcg@10"].map((m) => {
    const p = pairedInterval(e.ranks, s.ranks, m);
    return `${m} serving ${s.metrics[m].toFixed(4)}, exact ${e.metrics[m].toFixed(4)}, exact − serving ${sign(p.diff)} [${sign(p.lo)}, ${sign(p.hi)}]`;
  });
  console.log(`${dir} (${result.users} users, split ${split}): ${line.join("; ")}`);
  perDir.push([s, e]);
  bundle.dispose();
}
