#!/usr/bin/env node
// Markdown tables of the session source's figures (docs/sequence-models.md) from
// `recsys evaluate --protocols lastout --json` results of bundles holding a session model and
// both rankers (packages/eval/scripts/ml100k-session.sh), one file per seed:
//   node packages/eval/scripts/summarize-session.mjs OUT/session-test-s1.json OUT/session-test-s2.json
// Per seed: HR@10, NDCG@10, HR@50, MRR of the pipeline, the pipeline with the session source ranked
// by the ranker trained without it and by the one trained behind it, and the session model alone;
// paired 95 % intervals over users (paired t, normal approximation) per seed and pooled ("all
// seeds": each user's difference averaged over the seeds first).
import { readFileSync } from "node:fs";
import { basename } from "node:path";

const files = process.argv.slice(2);
const runs = files.map((f) => JSON.parse(readFileSync(f, "utf8")).protocols.lastout);
const seeds = files.map((f) =>
  basename(f)
    .replace(/\.json$/, "")
    .replace(/^.*-s/, ""),
);
const SCORERS = [
  ["pipeline", "pipeline (ranker without the session source)"],
  ["pipeline_with_session_nosession_ranker", "pipeline_with_session, ranker trained without it"],
  ["pipeline_with_session", "pipeline_with_session, ranker trained behind it"],
  ["session_model", "SASRec session model alone"],
];
const METRICS = ["hr@10", "ndcg@10", "hr@50", "mrr"];
const f4 = (v) => (v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(4));
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const perUser = (ranks, metric) => {
  if (metric === "mrr") return ranks.map((r) => 1 / (r + 1));
  const [kind, k] = metric.split("@");
  return ranks.map((r) => (r < Number(k) ? (kind === "hr" ? 1 : 1 / Math.log2(r + 2)) : 0));
};
function interval(diffs) {
  const n = diffs.length;
  const m = mean(diffs);
  const sd = Math.sqrt(diffs.reduce((a, d) => a + (d - m) ** 2, 0) / (n - 1));
  const se = sd / Math.sqrt(n);
  return `${m >= 0 ? "+" : ""}${m.toFixed(4)} [${(m - 1.96 * se).toFixed(4)}, ${(m + 1.96 * se).toFixed(4)}]`;
}

console.log(`Seeds ${seeds.join(", ")}; ${runs[0].users} users; split ${files.map((f) => basename(f)).join(", ")}\n`);
for (const [k, run] of runs.entries()) {
  console.log(`Seed ${seeds[k]}:\n`);
  console.log(`| scorer | ${METRICS.join(" | ")} |`);
  console.log(`|---|${METRICS.map(() => "---|").join("")}`);
  for (const [name, label] of SCORERS) {
    const m = run.models[name]?.metrics;
    console.log(`| ${label} | ${METRICS.map((x) => f4(m?.[x])).join(" | ")} |`);
  }
  console.log("");
}
const PAIRS = [
  ["pipeline_with_session", "pipeline_with_session_nosession_ranker"],
  ["pipeline_with_session", "pipeline"],
  ["pipeline_with_session_nosession_ranker", "pipeline"],
  ["pipeline_with_session", "session_model"],
];
console.log(`Paired 95 % intervals over users, a − b (per seed; all seeds: per-user differences averaged over the seeds)\n`);
console.log(`| a − b | metric | ${seeds.map((s) => `seed ${s}`).join(" | ")} | all seeds |`);
console.log(`|---|---|${seeds.map(() => "---|").join("")}---|`);
for (const [a, b] of PAIRS) {
  if (!runs.every((r) => r.models[a] && r.models[b])) continue;
  for (const metric of ["hr@10", "ndcg@10"]) {
    const per = runs.map((r) => {
      const va = perUser(r.models[a].ranks, metric);
      const vb = perUser(r.models[b].ranks, metric);
      return va.map((v, u) => v - vb[u]);
    });
    const pooled = per[0].map((_, u) => mean(per.map((d) => d[u])));
    console.log(`| ${a} − ${b} | ${metric} | ${per.map(interval).join(" | ")} | ${interval(pooled)} |`);
  }
}
