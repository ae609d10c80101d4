/**
 * `recsys report`: one self-contained HTML page (and one SVG file per figure) from one or more
 * `recsys evaluate --json` results — typically one per training seed. Charts are Vega-Lite
 * specifications rendered to SVG in Node by Vega (no browser, no script in the page):
 *
 *   - HR@K and NDCG@K for K = 1..100, every model and baseline, one panel per protocol (mean over
 *     the inputs);
 *   - per-source candidate recall of the target against the source's budget (pipeline);
 *   - the ranker's calibration: predicted exp(logit) against the realised watch time per bucket;
 *   - popularity bias: share of top-10 slots by item-popularity decile;
 *   - catalogue coverage@10.
 *
 * The page names the dataset, split, protocols, tie seeds, model seeds and versions of every
 * input, and tabulates each scorer's figures per input with the paired intervals.
 */
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { EvaluationReport, ProtocolSection, ScorerEntry } from "./evaluate-report.js";

export interface Figure {
  readonly id: string;
  readonly title: string;
  readonly caption: string;
  readonly svg: string;
}

/** Renders a Vega-Lite specification to an SVG string. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

type Row = Record<string, string | number>;

/** Every (protocol, section) of every input. */
function sections(reports: readonly EvaluationReport[]): { input: number; protocol: string; section: ProtocolSection }[] {
  const out: { input: number; protocol: string; section: ProtocolSection }[] = [];
  reports.forEach((r, input) => {
    for (const [protocol, section] of Object.entries(r.protocols)) if (section !== undefined) out.push({ input, protocol, section });
  });
  return out;
}

function entries(section: ProtocolSection): [string, ScorerEntry][] {
  return [...Object.entries(section.models), ...Object.entries(section.baselines)];
}

/** Mean of the rows' `value` per key. */
function meanBy(rows: Row[], keys: readonly string[]): Row[] {
  const groups = new Map<string, { row: Row; sum: number; n: number }>();
  for (const r of rows) {
    const key = keys.map((k) => String(r[k])).join("\u0000");
    const g = groups.get(key) ?? { row: Object.fromEntries(keys.map((k) => [k, r[k]!])), sum: 0, n: 0 };
    g.sum += Number(r["value"]);
    g.n++;
    groups.set(key, g);
  }
  return [...groups.values()].map((g) => ({ ...g.row, value: g.sum / g.n }));
}

const FONT = { config: { font: "DejaVu Sans, Arial, sans-serif", view: { stroke: "#ccc" }, legend: { labelLimit: 320 } } } as const;

/** The figures of the page. */
export async function buildFigures(reports: readonly EvaluationReport[]): Promise<Figure[]> {
  const all = sections(reports);
  const n = reports.length;
  const over = n > 1 ? `mean over the inputs that have each series, ${n} in all` : "one input";
  const figures: Figure[] = [];

  for (const metric of ["hr", "ndcg"] as const) {
    const rows: Row[] = [];
    for (const { protocol, section } of all) {
      for (const [name, e] of entries(section))
        e.curves[metric].forEach((v, k) => rows.push({ protocol, scorer: name, k: k + 1, value: v }));
    }
    const label = metric === "hr" ? "HR@K" : "NDCG@K";
    figures.push({
      id: `${metric}-curves`,
      title: `${label}, K = 1..100`,
      caption: `${label} of every model and baseline (${over}); one panel per protocol.`,
      svg: await renderSvg({
        ...FONT,
        data: { values: meanBy(rows, ["protocol", "scorer", "k"]) },
        facet: { column: { field: "protocol", type: "nominal", title: null } },
        spec: {
          width: 360,
          height: 260,
          mark: { type: "line", strokeWidth: 1.6 },
          encoding: {
            x: { field: "k", type: "quantitative", title: "K", scale: { domain: [1, 100] } },
            y: { field: "value", type: "quantitative", title: label },
            color: { field: "scorer", type: "nominal", title: "scorer" },
          },
        },
      }),
    });
  }

  const recallRows: Row[] = [];
  const calibRows: Row[] = [];
  for (const { protocol, section } of all) {
    const p = section.pipeline;
    if (p === undefined) continue;
    for (const [source, points] of Object.entries(p.recall_by_budget))
      for (const pt of points) recallRows.push({ protocol, source, budget: pt.budget, value: pt.recall });
    for (const [ranker, buckets] of Object.entries(p.calibration)) {
      buckets.forEach((b, i) => {
        calibRows.push({ protocol, ranker, bucket: i + 1, predicted: b.predicted, value: b.realisedOdds, kind: "watch per negative" });
        calibRows.push({ protocol, ranker, bucket: i + 1, predicted: b.predicted, value: b.realisedWatch, kind: "watch per impression" });
      });
    }
  }
  if (recallRows.length > 0) {
    figures.push({
      id: "source-recall",
      title: "Candidate recall against budget",
      caption: `Share of evaluated users whose target is in each source's first N candidates ("merged": the merged list) (${over}).`,
      svg: await renderSvg({
        ...FONT,
        data: { values: meanBy(recallRows, ["protocol", "source", "budget"]) },
        facet: { column: { field: "protocol", type: "nominal", title: null } },
        spec: {
          width: 360,
          height: 260,
          mark: { type: "line", point: true },
          encoding: {
            x: { field: "budget", type: "quantitative", scale: { type: "log" }, title: "budget (candidates per source)" },
            y: { field: "value", type: "quantitative", title: "recall of the target" },
            color: { field: "source", type: "nominal" },
          },
        },
      }),
    });
  }
  if (calibRows.length > 0) {
    const keyed: Row[] = calibRows.map((r) => ({ ...r, series: `${r["ranker"]}: ${r["kind"]}` }));
    const mean = new Map<string, Row & { n: number }>();
    for (const r of keyed) {
      const key = `${r["protocol"]}|${r["series"]}|${r["bucket"]}`;
      const m = mean.get(key) ?? { ...r, predicted: 0, value: 0, n: 0 };
      m["predicted"] = Number(m["predicted"]) + Number(r["predicted"]);
      m["value"] = Number(m["value"]) + Number(r["value"]);
      m.n++;
      mean.set(key, m);
    }
    const values = [...mean.values()].map((m) => ({ ...m, predicted: Number(m["predicted"]) / m.n, value: Number(m["value"]) / m.n }));
    const max = Math.max(...values.map((v) => Math.max(v.predicted, v.value)));
    figures.push({
      id: "calibration",
      title: "Ranker calibration",
      caption:
        "Held-out impressions (each user's target and 20 random merged candidates) in 10 equal-count buckets of predicted exp(logit); " +
        `against the realised watch time per negative impression (what exp(logit) estimates under weighted logistic regression) and per impression. The grey line is y = x (${over}).`,
      svg: await renderSvg({
        ...FONT,
        data: { values },
        facet: { column: { field: "protocol", type: "nominal", title: null } },
        spec: {
          width: 360,
          height: 300,
          layer: [
            {
              data: {
                values: [
                  { x: 0, y: 0 },
                  { x: max, y: max },
                ],
              },
              mark: { type: "line", color: "#999", strokeDash: [4, 4] },
              encoding: { x: { field: "x", type: "quantitative" }, y: { field: "y", type: "quantitative" } },
            },
            {
              mark: { type: "line", point: true },
              encoding: {
                x: { field: "predicted", type: "quantitative", title: "predicted exp(logit)" },
                y: { field: "value", type: "quantitative", title: "realised watch time" },
                color: { field: "series", type: "nominal", title: null },
              },
            },
          ],
        },
      }),
    });
  }

  const decileRows: Row[] = [];
  const coverageRows: Row[] = [];
  for (const { protocol, section } of all) {
    for (const [name, e] of entries(section)) {
      e.popularity_deciles.forEach((v, d) => decileRows.push({ protocol, scorer: name, decile: d + 1, value: v }));
      coverageRows.push({ protocol, scorer: name, value: e.metrics["coverage@10"] ?? NaN });
    }
  }
  figures.push({
    id: "popularity",
    title: "Popularity bias",
    caption: `Share of all top-10 slots taken by items of each popularity decile (1 = the 10 % most watched items in training, 10 = the least watched) (${over}).`,
    svg: await renderSvg({
      ...FONT,
      data: { values: meanBy(decileRows, ["protocol", "scorer", "decile"]) },
      facet: { row: { field: "protocol", type: "nominal", title: null } },
      spec: {
        width: 720,
        height: 180,
        mark: "bar",
        encoding: {
          x: { field: "decile", type: "ordinal", title: "item-popularity decile" },
          xOffset: { field: "scorer", type: "nominal" },
          y: { field: "value", type: "quantitative", title: "share of top-10 slots", axis: { format: "%" } },
          color: { field: "scorer", type: "nominal" },
        },
      },
    }),
  });
  figures.push({
    id: "coverage",
    title: "Catalogue coverage",
    caption: `coverage@10: share of the catalogue that appears in at least one user's top 10 (${over}).`,
    svg: await renderSvg({
      ...FONT,
      data: { values: meanBy(coverageRows, ["protocol", "scorer"]) },
      facet: { column: { field: "protocol", type: "nominal", title: null } },
      spec: {
        width: 300,
        height: 240,
        mark: "bar",
        encoding: {
          x: { field: "scorer", type: "nominal", sort: "-y", title: null, axis: { labelAngle: -40 } },
          y: { field: "value", type: "quantitative", title: "coverage@10", axis: { format: "%" } },
          color: { field: "scorer", type: "nominal", legend: null },
        },
      },
    }),
  });
  return figures;
}

const f4 = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(4));

/** The page: provenance, figures, per-input tables. */
export function buildHtml(
  reports: readonly EvaluationReport[],
  figures: readonly Figure[],
  sources: readonly string[],
  generatedAt: string,
): string {
  const datasets = [...new Set(reports.map((r) => r.dataset))];
  const head = [
    `<p><b>Dataset</b> ${datasets.map(escapeHtml).join(", ")} · <b>split</b> ${escapeHtml([...new Set(reports.map((r) => r.split))].join(", "))} · <b>users</b> ${[...new Set(reports.map((r) => r.users))].join(", ")}</p>`,
    "<table><thead><tr><th>input</th><th>protocol</th><th>tie seed</th><th>candidate generator (seed)</th><th>ranker (seed)</th><th>users</th></tr></thead><tbody>",
  ];
  reports.forEach((r, i) => {
    for (const [protocol, s] of Object.entries(r.protocols)) {
      if (s === undefined) continue;
      const info = r.model_info[protocol as keyof typeof r.model_info];
      const model = info === undefined ? "– (baselines only)" : `${escapeHtml(info.version)} (${info.seed ?? "?"})`;
      const ranker = s.pipeline === undefined ? "–" : `${escapeHtml(s.pipeline.ranker.modelVersion)} (${s.pipeline.ranker.seed ?? "?"})`;
      head.push(
        `<tr><td>${escapeHtml(sources[i] ?? String(i + 1))}</td><td>${escapeHtml(protocol)}</td><td>${s.tie_seed ?? "– (item id)"}</td><td>${model}</td><td>${ranker}</td><td>${s.users}</td></tr>`,
      );
    }
  });
  head.push("</tbody></table>");

  const tables: string[] = [];
  const protocols = [...new Set(reports.flatMap((r) => Object.keys(r.protocols)))];
  for (const protocol of protocols) {
    const names = [
      ...new Set(
        reports.flatMap((r) =>
          r.protocols[protocol as keyof typeof r.protocols] === undefined
            ? []
            : entries(r.protocols[protocol as keyof typeof r.protocols]!).map(([n]) => n),
        ),
      ),
    ];
    const metrics = ["hr@10", "ndcg@10", "hr@50", "mrr", "coverage@10"];
    const rows = names.map((name) => {
      const cells = metrics.map((m) => {
        const vals = reports.map((r) => {
          const s = r.protocols[protocol as keyof typeof r.protocols];
          return s === undefined ? undefined : (s.models[name] ?? s.baselines[name])?.metrics[m];
        });
        const got = vals.filter((v): v is number => v !== undefined && Number.isFinite(v));
        const mean = got.length > 0 ? got.reduce((a, b) => a + b, 0) / got.length : undefined;
        return `<td><b>${f4(mean)}</b>${reports.length > 1 ? `<br><span class="seeds">${vals.map(f4).join(" ")}</span>` : ""}</td>`;
      });
      return `<tr><th>${escapeHtml(name)}</th>${cells.join("")}</tr>`;
    });
    tables.push(
      `<h3>${escapeHtml(protocol)}</h3><table><thead><tr><th>scorer</th>${metrics.map((m) => `<th>${m}</th>`).join("")}</tr></thead><tbody>${rows.join("")}</tbody></table>`,
    );
    const comps: string[] = [];
    reports.forEach((r, i) => {
      const s = r.protocols[protocol as keyof typeof r.protocols];
      for (const c of s?.comparisons ?? []) {
        const verdict = c.lo > 0 ? "a better" : c.hi < 0 ? "b better" : "within noise";
        comps.push(
          `<tr><td>${escapeHtml(sources[i] ?? String(i + 1))}</td><td>${escapeHtml(c.a)} − ${escapeHtml(c.b)}</td><td>${c.metric}</td><td>${c.diff >= 0 ? "+" : ""}${c.diff.toFixed(4)}</td><td>[${c.lo.toFixed(4)}, ${c.hi.toFixed(4)}]</td><td>${verdict}</td></tr>`,
        );
      }
    });
    if (comps.length > 0) {
      tables.push(
        `<details><summary>Paired 95 % intervals over users (${escapeHtml(protocol)})</summary><table><thead><tr><th>input</th><th>a − b</th><th>metric</th><th>difference</th><th>95 % interval</th><th></th></tr></thead><tbody>${comps.join("")}</tbody></table></details>`,
      );
    }
  }

  const figs = figures.map(
    (f) => `<figure id="${f.id}"><h3>${escapeHtml(f.title)}</h3>${f.svg}<figcaption>${escapeHtml(f.caption)}</figcaption></figure>`,
  );
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>recsys evaluation: ${escapeHtml(datasets.join(", "))}</title>
<style>
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; background: #fff; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
.seeds { color: #777; font-size: 0.85em; }
figure { margin: 1.5em 0; }
figcaption { color: #555; font-size: 0.9em; max-width: 900px; }
</style>
</head>
<body>
<h1>Offline evaluation</h1>
<p>Protocols <code>lastout</code> (same-second events and score ties by item id) and <code>lastout-shuffled</code> (by a seeded permutation of the catalogue) of PROTOCOL.md: leave-last-out, full ranking of the catalogue with the user's history removed, every request served at the user's last visible event. <code>next-id</code> is a diagnostic (the items after the last visible one in id order, no learning), not a model. Generated ${escapeHtml(generatedAt)} by <code>recsys report</code>.</p>
${head.join("\n")}
<h2>Figures per scorer (mean; per input below the mean)</h2>
${tables.join("\n")}
${figs.join("\n")}
</body>
</html>
`;
}
