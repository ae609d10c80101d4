#!/usr/bin/env node
// Markdown tables of the pipeline with the session source against the PyTorch SASRec of the
// sequence bench, from the output directory of packages/eval/scripts/ml100k-pipeline-vs-sasrec.sh:
//   node packages/eval/scripts/summarize-pipeline-vs-sasrec.mjs OUT
// Reads OUT/sequence.json (`bench sequence --json`: rows per protocol, seed and model) and
// OUT/pipeline-P-sS.json (`recsys evaluate --protocols P --split test --json`). Per protocol and
// seed: HR@10 / NDCG@10 of pipeline_with_session, pipeline, our session model alone (the
// bundle's, train-session), the PyTorch SASRec and our SASRec of the bench, and the ratio
// pipeline_with_session / PyTorch SASRec − 1. Over the seeds, per protocol and metric:
//  - the mean of the per-seed ratios − 1 with a 95 % interval t(n−1)·sd/√n over the seeds, and
//    the per-seed paired difference (a − b) with the same kind of interval (as the bench's own);
//  - when the bench JSON holds per-user test ranks (`ranks`, written since the bench added
//    them): the per-user paired difference averaged over the seeds, 95 % normal interval over the
//    users, and that interval divided by the SASRec mean (relative; the denominator taken as
//    fixed).
// The target: pipeline_with_session ≥ 1.10 × SASRec on HR@10 and NDCG@10, both protocols.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const out = process.argv[2];
if (out === undefined) {
  console.error("usage: summarize-pipeline-vs-sasrec.mjs OUT");
  process.exit(2);
}
const TARGET = 0.1;
const METRICS = ["hr@10", "ndcg@10"];
const bench = JSON.parse(readFileSync(join(out, "sequence.json"), "utf8"));
const runs = readdirSync(out)
  .map((f) => /^pipeline-(lastout|lastout-shuffled)-s(-?\d+)\.json$/.exec(f))
  .filter((m) => m !== null)
  .map((m) => ({ protocol: m[1], seed: Number(m[2]), report: JSON.parse(readFileSync(join(out, m[0]), "utf8")) }));
if (runs.length === 0) {
  console.error(`no ${out}/pipeline-P-sS.json`);
  process.exit(1);
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs) => {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
};
// t₀.₉₇₅ by degrees of freedom (1.96 beyond 9).
const tQuantile = (df) => [NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262][df] ?? 1.96;
const overSeeds = (xs) => {
  const m = mean(xs);
  const half = xs.length < 2 ? NaN : (tQuantile(xs.length - 1) * sd(xs)) / Math.sqrt(xs.length);
  return { mean: m, lo: m - half, hi: m + half };
};
const perUser = (ranks, metric) => ranks.map((r) => (r < 10 ? (metric === "hr@10" ? 1 : 1 / Math.log2(r + 2)) : 0));
const f4 = (v) => (v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(4));
const sign = (v) => (!Number.isFinite(v) ? "–" : `${v >= 0 ? "+" : ""}${v.toFixed(4)}`);
const pct = (v) => (!Number.isFinite(v) ? "–" : `${v >= 0 ? "+" : ""}${(100 * v).toFixed(1)} %`);
const interval = (i, fmt) => `${fmt(i.mean)} [${fmt(i.lo)}, ${fmt(i.hi)}]`;

const warnings = [];
function benchRow(protocol, seed, model) {
  return bench.rows.find((r) => r.protocol === protocol && r.seed === seed && r.model === model);
}
function sessionEpochs(protocol, seed) {
  const f = join(out, "models", `${protocol}-s${seed}`, "session", "manifest.json");
  return existsSync(f) ? JSON.parse(readFileSync(f, "utf8")).training?.epochs : undefined;
}
// Metrics recomputed from per-user ranks must match the reported ones (the ranks are the right arrays).
function checkRanks(label, ranks, metrics) {
  for (const metric of METRICS) {
    const v = mean(perUser(ranks, metric));
    if (Math.abs(v - metrics[metric]) > 1e-6) warnings.push(`${label}: ${metric} from ranks ${v} ≠ reported ${metrics[metric]}`);
  }
}

console.log(
  `Sequence bench: ${bench.date}, ${bench.dataset}, shuffle seed ${bench.shuffle_seed}; pipelines: split test, ${runs[0].report.dataset}\n`,
);
const protocols = ["lastout", "lastout-shuffled"].filter((p) => runs.some((r) => r.protocol === p));
const verdicts = [];
for (const protocol of protocols) {
  const rs = runs.filter((r) => r.protocol === protocol).sort((a, b) => a.seed - b.seed);
  const rows = [];
  for (const { seed, report } of rs) {
    const section = report.protocols[protocol];
    if (protocol === "lastout-shuffled" && report.tie_seed !== bench.shuffle_seed)
      warnings.push(`${protocol} seed ${seed}: evaluated with tie seed ${report.tie_seed}, the bench shuffled with ${bench.shuffle_seed}`);
    const ref = benchRow(protocol, seed, "sasrec-pytorch");
    if (ref === undefined) {
      warnings.push(`${protocol} seed ${seed}: no sasrec-pytorch row in sequence.json; skipped`);
      continue;
    }
    const ours = benchRow(protocol, seed, "sasrec-tfjs");
    const m = (name) => section.models[name];
    for (const name of ["pipeline_with_session", "pipeline", "session_model"])
      if (m(name) === undefined) throw new Error(`${protocol} seed ${seed}: no ${name} in the evaluation`);
    checkRanks(`${protocol} seed ${seed} pipeline_with_session`, m("pipeline_with_session").ranks, m("pipeline_with_session").metrics);
    if (ref.ranks !== undefined) {
      checkRanks(`${protocol} seed ${seed} sasrec-pytorch`, ref.ranks, ref);
      if (ref.ranks.length !== m("pipeline_with_session").ranks.length)
        throw new Error(`${protocol} seed ${seed}: ${ref.ranks.length} users in the bench, ${section.users} in the evaluation`);
    }
    if (ours?.ranks !== undefined) checkRanks(`${protocol} seed ${seed} sasrec-tfjs`, ours.ranks, ours);
    rows.push({ seed, section, ref, ours, m });
  }
  if (rows.length === 0) continue;
  console.log(`## ${protocol} (${rows[0].section.users} users)\n`);
  console.log(
    "| seed | pipeline_with_session | pipeline | session model alone (train-session, epochs) | PyTorch SASRec (best epoch) | our SASRec, bench (best epoch) | pws / SASRec − 1: HR@10 | NDCG@10 |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  const both = (x) => (x === undefined ? "–" : `${f4(x["hr@10"])} / ${f4(x["ndcg@10"])}`);
  for (const { seed, ref, ours, m } of rows) {
    const pws = m("pipeline_with_session").metrics;
    console.log(
      `| ${seed} | ${both(pws)} | ${both(m("pipeline").metrics)} | ${both(m("session_model").metrics)} (${sessionEpochs(protocol, seed) ?? "?"}) | ${both(ref)} (${ref.best_epoch}) | ${both(ours)} (${ours?.best_epoch ?? "–"}) | ${METRICS.map((k) => pct(pws[k] / ref[k] - 1)).join(" | ")} |`,
    );
  }
  console.log("\nHR@10 / NDCG@10 per cell.\n");
  const perUserAvailable = rows.every((r) => Array.isArray(r.ref.ranks));
  console.log(
    `| metric | pipeline_with_session / SASRec − 1, mean over ${rows.length} seeds [95 % t(${rows.length - 1})] | pipeline_with_session − SASRec per seed, mean [95 % t(${rows.length - 1})] | per-user paired, seeds averaged [95 %] | relative to SASRec's mean | ≥ +10 %: mean / lower bound (seeds) / lower bound (users) |`,
  );
  console.log("|---|---|---|---|---|---|");
  for (const metric of METRICS) {
    const ratios = rows.map((r) => r.m("pipeline_with_session").metrics[metric] / r.ref[metric] - 1);
    const diffs = rows.map((r) => r.m("pipeline_with_session").metrics[metric] - r.ref[metric]);
    const ratio = overSeeds(ratios);
    const diff = overSeeds(diffs);
    let users = { mean: NaN, lo: NaN, hi: NaN };
    let rel = users;
    if (perUserAvailable) {
      const per = rows.map((r) => {
        const a = perUser(r.m("pipeline_with_session").ranks, metric);
        const b = perUser(r.ref.ranks, metric);
        return a.map((v, u) => v - b[u]);
      });
      const pooled = per[0].map((_, u) => mean(per.map((d) => d[u])));
      const mu = mean(pooled);
      const half = (1.96 * sd(pooled)) / Math.sqrt(pooled.length);
      users = { mean: mu, lo: mu - half, hi: mu + half };
      const base = mean(rows.map((r) => r.ref[metric]));
      rel = { mean: mu / base, lo: (mu - half) / base, hi: (mu + half) / base };
    }
    const yes = (v) => (!Number.isFinite(v) ? "–" : v >= TARGET ? "yes" : "no");
    const verdict = `${yes(ratio.mean)} / ${yes(ratio.lo)} / ${yes(rel.lo)}`;
    verdicts.push({ protocol, metric, mean: ratio.mean, lo: ratio.lo, userLo: rel.lo });
    console.log(
      `| ${metric} | ${interval(ratio, pct)} | ${interval(diff, sign)} | ${perUserAvailable ? interval(users, sign) : "– (no per-user ranks in sequence.json)"} | ${perUserAvailable ? interval(rel, pct) : "–"} | ${verdict} |`,
    );
  }
  console.log("");
}
const holds = (k) =>
  verdicts.some((v) => !Number.isFinite(v[k]))
    ? "is not defined (fewer than 2 seeds, or no per-user ranks)"
    : verdicts.length === 2 * 2 && verdicts.every((v) => v[k] >= TARGET)
      ? "holds"
      : "does not hold";
console.log(
  `Target (pipeline_with_session ≥ 1.10 × PyTorch SASRec on HR@10 and NDCG@10, lastout and lastout-shuffled): ` +
    `on the means ${holds("mean")}; ` +
    `on the lower bounds of the over-seeds intervals ${holds("lo")}; ` +
    `on the lower bounds of the per-user intervals ${holds("userLo")}` +
    `${verdicts.length < 4 ? " (not every protocol and metric was measured)" : ""}.`,
);
for (const w of warnings) console.log(`\nwarning: ${w}`);
