#!/usr/bin/env node
// Compares two arms of ml100k-output.sh (sampled, hierarchical, hierarchical-sn) from `recsys
// evaluate --json` files.
//   node packages/candidate-gen/scripts/output-compare.mjs DIR SPLIT [BASE OTHER]
// reads DIR/<arm>-<split>-s<seed>.eval.json for arm in {BASE, OTHER} (default sampled,
// hierarchical) and prints, per metric: each seed's figures, the paired 95 % interval of OTHER − BASE over users
// per seed (@recsys/eval pairedInterval: paired t, normal approximation) and pooled over the seeds
// (each user's difference averaged over the seeds first), then the reference baselines of the same
// runs. Protocol lastout, scorer "youtube-dnn". Run after `npx tsc --build`.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pairedInterval, perUserValues } from "@recsys/eval";

const [dir, split, baseArm = "sampled", otherArm = "hierarchical"] = process.argv.slice(2);
if (dir === undefined || (split !== "val" && split !== "test")) {
  console.error("usage: output-compare.mjs DIR val|test [BASE OTHER]");
  process.exit(2);
}
const OUTPUTS = [baseArm, otherArm];
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sign = (v) => (v >= 0 ? "+" : "") + v.toFixed(4);
const fmt = ({ diff, lo, hi }) => `${sign(diff)} [${sign(lo)}, ${sign(hi)}]`;
const read = (p, s) => {
  const f = join(dir, `${p}-${split}-s${s}.eval.json`);
  if (!existsSync(f)) return null;
  try {
    return JSON.parse(readFileSync(f, "utf8")).protocols.lastout;
  } catch {
    return null; // still being written
  }
};
const seeds = [];
for (let s = 1; s <= 10; s++) if (OUTPUTS.every((p) => read(p, s) !== null)) seeds.push(s);
if (seeds.length === 0) {
  console.error(`no seed has both ${baseArm}-${split}-sN.eval.json and ${otherArm}-${split}-sN.eval.json in ${dir}`);
  process.exit(1);
}
const sections = Object.fromEntries(OUTPUTS.map((p) => [p, seeds.map((s) => read(p, s))]));
const runs = Object.fromEntries(OUTPUTS.map((p) => [p, sections[p].map((x) => x.models["youtube-dnn"])]));
const ranks = (r) => Int32Array.from(r.ranks);
const users = runs[baseArm][0].ranks.length;
console.log(`Split ${split}, protocol lastout, ${users} users, seeds ${seeds.join(", ")}\n`);
console.log(`| metric | ${baseArm} (per seed) | ${otherArm} (per seed) | ${otherArm} − ${baseArm}, paired 95 % per seed | all seeds |`);
console.log("|---|---|---|---|---|");
for (const metric of ["hr@10", "ndcg@10", "hr@50", "mrr"]) {
  const cell = (p) => {
    const v = runs[p].map((r) => r.metrics[metric]);
    return `${mean(v).toFixed(4)} (${v.map((x) => x.toFixed(4)).join(" ")})`;
  };
  const perSeed = seeds.map((_, i) => pairedInterval(ranks(runs[otherArm][i]), ranks(runs[baseArm][i]), metric));
  // Pooled: each user's difference averaged over the seeds, then the paired interval of that mean.
  const diffs = new Float64Array(users);
  seeds.forEach((_, i) => {
    const a = perUserValues(ranks(runs[otherArm][i]), metric);
    const b = perUserValues(ranks(runs[baseArm][i]), metric);
    for (let u = 0; u < users; u++) diffs[u] += (a[u] - b[u]) / seeds.length;
  });
  const m = mean(Array.from(diffs));
  const se = Math.sqrt(diffs.reduce((s, d) => s + (d - m) ** 2, 0) / (users - 1) / users);
  const pooled = { diff: m, lo: m - 1.96 * se, hi: m + 1.96 * se };
  console.log(`| ${metric} | ${cell(baseArm)} | ${cell(otherArm)} | ${perSeed.map(fmt).join("; ")} | ${fmt(pooled)} |`);
}
const first = sections[baseArm][0].baselines;
const base = Object.keys(first).map(
  (k) => `${k} HR@10 ${first[k].metrics["hr@10"].toFixed(4)} / NDCG@10 ${first[k].metrics["ndcg@10"].toFixed(4)}`,
);
console.log(`\nReference baselines (same runs): ${base.join(", ")}`);
const speed = (p) =>
  seeds
    .map((s) => {
      const log = readFileSync(join(dir, `${p}-${split}-s${s}.train.log`), "utf8");
      const m = /\((\d+) examples\/s on/.exec(log);
      return m === null ? "?" : m[1];
    })
    .join(", ");
console.log(`Training examples/s in these runs (not a benchmark): ${OUTPUTS.map((p) => `${p} ${speed(p)}`).join("; ")}`);
