#!/usr/bin/env node
// Markdown tables for docs/evaluation.md from `recsys evaluate --json` results.
//   node packages/eval/scripts/summarize.mjs test OUT/test-s1.json OUT/test-s2.json OUT/test-s3.json
//   node packages/eval/scripts/summarize.mjs val DEFAULT_NAME OUT/val-*.json   (files named val-<setting>-s<seed>.json)
// Means over the inputs with per-input values in parentheses; paired 95 % intervals over users
// (paired t, normal approximation) per input and pooled ("all": each user's difference averaged
// over the inputs first).
import { readFileSync } from "node:fs";
import { basename } from "node:path";

const [mode, ...rest] = process.argv.slice(2);
const f4 = (v) => (v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(4));
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const perUser = (ranks, metric) => {
  const [kind, k] = metric.split("@");
  return ranks.map((r) => (r < Number(k) ? (kind === "hr" ? 1 : 1 / Math.log2(r + 2)) : 0));
};
function interval(diffs) {
  const n = diffs.length;
  const m = mean(diffs);
  const sd = Math.sqrt(diffs.reduce((a, d) => a + (d - m) ** 2, 0) / (n - 1));
  const se = sd / Math.sqrt(n);
  return { m, lo: m - 1.96 * se, hi: m + 1.96 * se };
}
const fmtI = ({ m, lo, hi }) => `${m >= 0 ? "+" : ""}${m.toFixed(4)} [${lo.toFixed(4)}, ${hi.toFixed(4)}]`;
const entry = (section, name) => section?.models?.[name] ?? section?.baselines?.[name];

if (mode === "test") {
  const runs = rest.map((f) => JSON.parse(readFileSync(f, "utf8")));
  const protocols = Object.keys(runs[0].protocols);
  console.log(
    `Seeds (files): ${rest.map((f) => basename(f)).join(", ")}; tie seeds ${runs.map((r) => r.tie_seed).join(", ")}; ${runs[0].users} users\n`,
  );
  const names = [];
  for (const r of runs)
    for (const p of protocols)
      for (const n of [...Object.keys(r.protocols[p].models), ...Object.keys(r.protocols[p].baselines)])
        if (!names.includes(n)) names.push(n);
  for (const metric of ["hr@10", "ndcg@10", "hr@50", "mrr", "coverage@10"]) {
    console.log(`**${metric}** (mean of the seeds; per seed in parentheses)\n`);
    console.log(`| scorer | ${protocols.join(" | ")} |`);
    console.log(`|---|${protocols.map(() => "---").join("|")}|`);
    for (const n of names) {
      const cells = protocols.map((p) => {
        const vals = runs.map((r) => entry(r.protocols[p], n)?.metrics[metric]);
        const got = vals.filter((v) => v !== undefined);
        if (got.length === 0) return "–";
        return `${f4(mean(got))} (${vals.map(f4).join(" ")})`;
      });
      console.log(`| ${n} | ${cells.join(" | ")} |`);
    }
    console.log("");
  }
  for (const p of protocols) {
    console.log(`**Paired 95 % intervals, ${p}** (a − b over users; per seed, and "all": per-user difference averaged over the seeds)\n`);
    console.log("| a − b | metric | " + rest.map((f) => basename(f, ".json")).join(" | ") + " | all |");
    console.log("|---|---|" + runs.map(() => "---").join("|") + "|---|");
    const keys = [];
    for (const r of runs)
      for (const c of r.protocols[p].comparisons) if (!keys.some((k) => k.a === c.a && k.b === c.b && k.metric === c.metric)) keys.push(c);
    for (const c of keys) {
      const per = runs.map((r) => r.protocols[p].comparisons.find((x) => x.a === c.a && x.b === c.b && x.metric === c.metric));
      const diffs = runs
        .filter((_, i) => per[i] !== undefined)
        .map((r) => {
          const a = perUser(entry(r.protocols[p], c.a).ranks, c.metric);
          const b = perUser(entry(r.protocols[p], c.b).ranks, c.metric);
          return a.map((v, u) => v - b[u]);
        });
      const pooled = interval(diffs[0].map((_, u) => mean(diffs.map((d) => d[u]))));
      const label = diffs.length < runs.length ? ` (${diffs.length} seed${diffs.length > 1 ? "s" : ""})` : "";
      console.log(
        `| ${c.a} − ${c.b} | ${c.metric} | ${per.map((x) => (x === undefined ? "–" : fmtI({ m: x.diff, lo: x.lo, hi: x.hi }))).join(" | ")} | ${fmtI(pooled)}${label} |`,
      );
    }
    console.log("");
  }
  // Tie order: each scorer's lastout − lastout-shuffled difference (users are the same; not paired per user: the targets differ).
  if (protocols.length === 2) {
    console.log("**lastout − lastout-shuffled**, HR@10 per seed (the share of the figure owed to the id order of same-second events)\n");
    console.log("| scorer | per seed | mean |");
    console.log("|---|---|---|");
    for (const n of names) {
      const d = runs.map(
        (r) =>
          (entry(r.protocols[protocols[0]], n)?.metrics["hr@10"] ?? NaN) - (entry(r.protocols[protocols[1]], n)?.metrics["hr@10"] ?? NaN),
      );
      if (d.some((v) => !Number.isFinite(v))) continue;
      console.log(
        `| ${n} | ${d.map((v) => (v >= 0 ? "+" : "") + v.toFixed(4)).join(" ")} | ${(mean(d) >= 0 ? "+" : "") + mean(d).toFixed(4)} |`,
      );
    }
  }
} else if (mode === "val") {
  const [def, ...files] = rest;
  const runs = new Map(); // setting -> seed -> report
  for (const f of files) {
    const m = /val-(.+)-s(\d+)\.json$/.exec(basename(f));
    if (m === null) throw new Error(`${f}: expected val-<setting>-s<seed>.json`);
    if (!runs.has(m[1])) runs.set(m[1], new Map());
    runs.get(m[1]).set(Number(m[2]), JSON.parse(readFileSync(f, "utf8")));
  }
  const seeds = [...runs.get(def).keys()].sort();
  console.log(
    `Validation split, protocol lastout, pipeline figures; seeds ${seeds.join(", ")}; paired intervals against "${def}" on the same users and seed\n`,
  );
  for (const metric of ["hr@10", "ndcg@10"]) {
    console.log(`| setting | ${metric} mean (per seed) | − ${def}, per seed | − ${def}, all seeds |`);
    console.log("|---|---|---|---|");
    for (const [name, bySeed] of runs) {
      const got = seeds.filter((s) => bySeed.has(s));
      const vals = got.map((s) => bySeed.get(s).protocols.lastout.models.pipeline.metrics[metric]);
      const diffs = got.map((s) => {
        const a = perUser(bySeed.get(s).protocols.lastout.models.pipeline.ranks, metric);
        const b = perUser(runs.get(def).get(s).protocols.lastout.models.pipeline.ranks, metric);
        return a.map((v, u) => v - b[u]);
      });
      const per = name === def ? "–" : diffs.map((d) => fmtI(interval(d))).join("; ");
      const pooled = name === def ? "–" : fmtI(interval(diffs[0].map((_, u) => mean(diffs.map((d) => d[u])))));
      console.log(
        `| ${name}${got.length < seeds.length ? ` (seeds ${got.join(",")})` : ""} | ${f4(mean(vals))} (${vals.map(f4).join(" ")}) | ${per} | ${pooled} |`,
      );
    }
    console.log("");
  }
} else {
  console.error("usage: summarize.mjs test FILE... | summarize.mjs val DEFAULT FILE...");
  process.exit(2);
}
