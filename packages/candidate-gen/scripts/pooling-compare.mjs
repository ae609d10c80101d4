#!/usr/bin/env node
// Compares two history poolings of the candidate generator from `recsys evaluate --json` files.
//   node packages/candidate-gen/scripts/pooling-compare.mjs DIR SPLIT
// reads DIR/<pooling>-<split>-s<seed>.eval.json for pooling in {mean, attention} and prints, per
// metric: each seed's figures, the paired 95 % interval of attention − mean over users per seed
// (paired t, normal approximation) and pooled over the seeds (each user's difference averaged
// over the seeds first). Protocol lastout, scorer "youtube-dnn".
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const [dir, split] = process.argv.slice(2);
if (dir === undefined || (split !== "val" && split !== "test")) {
  console.error("usage: pooling-compare.mjs DIR val|test");
  process.exit(2);
}
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const perUser = (ranks, metric) => {
  const [kind, k] = metric.split("@");
  if (kind === "mrr") return ranks.map((r) => 1 / (r + 1));
  return ranks.map((r) => (r < Number(k) ? (kind === "hr" ? 1 : 1 / Math.log2(r + 2)) : 0));
};
function interval(diffs) {
  const n = diffs.length;
  const m = mean(diffs);
  const sd = Math.sqrt(diffs.reduce((a, d) => a + (d - m) ** 2, 0) / (n - 1));
  const se = sd / Math.sqrt(n);
  return { m, lo: m - 1.96 * se, hi: m + 1.96 * se };
}
const sign = (v) => (v >= 0 ? "+" : "") + v.toFixed(4);
const fmtI = ({ m, lo, hi }) => `${sign(m)} [${sign(lo)}, ${sign(hi)}]`;

const seeds = [];
for (let s = 1; s <= 10; s++) {
  const both = ["mean", "attention"].every((p) => {
    const f = join(dir, `${p}-${split}-s${s}.eval.json`);
    if (!existsSync(f)) return false;
    try {
      JSON.parse(readFileSync(f, "utf8"));
      return true;
    } catch {
      return false; // still being written
    }
  });
  if (both) seeds.push(s);
}
if (seeds.length === 0) {
  console.error(`no seed has both mean-${split}-sN.eval.json and attention-${split}-sN.eval.json in ${dir}`);
  process.exit(1);
}
const model = (p, s) =>
  JSON.parse(readFileSync(join(dir, `${p}-${split}-s${s}.eval.json`), "utf8")).protocols.lastout.models["youtube-dnn"];
const runs = Object.fromEntries(["mean", "attention"].map((p) => [p, seeds.map((s) => model(p, s))]));
const users = runs.mean[0].ranks.length;
console.log(`Split ${split}, protocol lastout, ${users} users, seeds ${seeds.join(", ")}\n`);
console.log(`| metric | mean pooling (per seed) | attention pooling (per seed) | attention − mean, paired 95 % per seed | all seeds |`);
console.log("|---|---|---|---|---|");
for (const metric of ["hr@10", "ndcg@10", "hr@50", "mrr"]) {
  const cell = (p) => {
    const v = runs[p].map((r) => r.metrics[metric]);
    return `${mean(v).toFixed(4)} (${v.map((x) => x.toFixed(4)).join(" ")})`;
  };
  const diffs = seeds.map((_, i) => {
    const a = perUser(runs.attention[i].ranks, metric);
    const b = perUser(runs.mean[i].ranks, metric);
    return a.map((v, u) => v - b[u]);
  });
  const pooled = interval(diffs[0].map((_, u) => mean(diffs.map((d) => d[u]))));
  console.log(
    `| ${metric} | ${cell("mean")} | ${cell("attention")} | ${diffs.map((d) => fmtI(interval(d))).join("; ")} | ${fmtI(pooled)} |`,
  );
}
