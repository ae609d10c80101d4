/**
 * recsys report: the page and its figures from evaluate --json results, and the page opened in
 * Debian's headless Chromium (installed by .ci/run): a screenshot that is not blank and no
 * console message. A blank page and a page that logs an error are shown to fail the same checks.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ScorerResult } from "@recsys/eval";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { run } from "./commands/report.js";
import { buildSection, type EvaluationReport, type PipelineDetails } from "./evaluate-report.js";
import { inkStats, openInChromium } from "./headless-page.js";

let root = "";

/** A deterministic evaluate --json result: 300 users, 200 items, seed-dependent ranks. */
function fakeReport(seed: number): EvaluationReport {
  let state = seed * 7919;
  const rand = (): number => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 4294967296;
  const users = 300;
  const items = 200;
  const scorer = (name: string, skill: number): ScorerResult => {
    const ranks = Int32Array.from({ length: users }, () => Math.floor(rand() ** skill * 190));
    const topCounts = Int32Array.from({ length: items }, (_, i) => Math.floor(rand() * 30 * Math.exp(-i / (20 * skill))));
    const hr = ranks.filter((r) => r < 10).length / users;
    return {
      name,
      users,
      metrics: {
        "hr@10": hr,
        "ndcg@10": hr / 2,
        "hr@50": Math.min(1, hr * 3),
        "ndcg@50": hr / 1.5,
        mrr: hr / 3,
        "coverage@10": topCounts.filter((c) => c > 0).length / items,
      },
      seconds: 0,
      ranks,
      topCounts,
    };
  };
  const pipeline: PipelineDetails = {
    sources: {
      dnn: { recall: 0.5, budget: 100 },
      "co-watch": { recall: 0.45, budget: 100 },
      merged: { recall: 0.7, budget: 100, size: 300 },
    },
    recall_by_budget: {
      dnn: [1, 2, 5, 10, 20, 50, 100].map((b) => ({ budget: b, recall: (0.5 * Math.log1p(b)) / Math.log1p(100) })),
      "co-watch": [1, 2, 5, 10, 20, 50, 100].map((b) => ({ budget: b, recall: 0.45 * Math.sqrt(b / 100) })),
      merged: [1, 2, 5, 10, 20, 50, 100, 200, 300].map((b) => ({ budget: b, recall: (0.7 * Math.log1p(b)) / Math.log1p(300) })),
    },
    calibration: {
      pipeline: Array.from({ length: 10 }, (_, i) => ({
        predicted: 0.02 * (i + 1) ** 1.5,
        realisedWatch: 0.015 * (i + 1) ** 1.4,
        realisedOdds: 0.018 * (i + 1) ** 1.5,
        impressions: 100,
        positives: i,
      })),
    },
    ranker: { modelVersion: `rk-${seed}`, budget: 100, mergedSize: 300, seconds: 1, seed },
  };
  const section = (protocol: "lastout" | "lastout-shuffled") =>
    buildSection({
      protocol,
      tieSeed: protocol === "lastout" ? null : seed,
      users,
      modelVersion: `cg-${protocol}-${seed}`,
      modelsSkipped: null,
      models: [scorer("youtube-dnn", 2), scorer("pipeline", 3), scorer("pipeline_without_provenance", 2.5), scorer("merged_order", 1.8)],
      baselines: [scorer("most-popular", 1.2), scorer("item-knn", 1.6), scorer("item-knn@100", 1.6), scorer("next-id", 1)],
      popularity: Array.from({ length: items }, (_, i) => items - i),
      watch: new Float64Array(users).fill(1),
      pipeline,
    });
  const info = (protocol: string) => ({
    version: `cg-${protocol}-${seed}`,
    seed,
    epochs: 10,
    train: { examples_per_second: 1000, seconds: 40 },
  });
  return {
    dataset: "ml100k:/data/ml-100k",
    split: "test",
    users,
    tie_seed: seed,
    model_info: { lastout: info("lastout"), "lastout-shuffled": info("lastout-shuffled") },
    protocols: { lastout: section("lastout"), "lastout-shuffled": section("lastout-shuffled") },
  };
}

async function report(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => ((stdout += String(chunk)), true));
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => ((stderr += String(chunk)), true));
  try {
    return { code: await run(argv), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "recsys-report-"));
  for (const seed of [1, 2]) await writeFile(join(root, `s${seed}.json`), JSON.stringify(fakeReport(seed)));
});

afterAll(async () => {
  if (root !== "") await rm(root, { recursive: true, force: true });
});

describe("recsys report", () => {
  it("writes one self-contained page with every figure, and the SVG files", async () => {
    const r = await report(["--input", `${join(root, "s1.json")},${join(root, "s2.json")}`, "--out", join(root, "out")]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const files = (await readdir(join(root, "out"))).sort();
    expect(files).toEqual([
      "calibration.svg",
      "coverage.svg",
      "hr-curves.svg",
      "ndcg-curves.svg",
      "popularity.svg",
      "report.html",
      "source-recall.svg",
    ]);
    const html = await readFile(join(root, "out", "report.html"), "utf8");
    // Self-contained: no script, no external resource.
    expect(html).not.toMatch(/<script|<link|<img|src=|url\(/i);
    expect(html.match(/<svg/g)?.length).toBe(6);
    // Dataset, protocols, seeds and model versions on the page.
    for (const text of [
      "ml100k:/data/ml-100k",
      "lastout-shuffled",
      "cg-lastout-1",
      "cg-lastout-shuffled-2",
      "rk-2",
      "next-id",
      "item-knn@100",
      "pipeline − youtube-dnn",
    ])
      expect(html).toContain(text);
    const hr = await readFile(join(root, "out", "hr-curves.svg"), "utf8");
    expect(hr).toMatch(/^<svg /);
    for (const name of ["youtube-dnn", "pipeline", "most-popular", "item-knn", "next-id"]) expect(hr).toContain(name);
  });

  it("refuses files that are not evaluate --json results", async () => {
    await writeFile(join(root, "bad.json"), JSON.stringify({ hello: 1 }));
    const bad = await report(["--input", join(root, "bad.json"), "--out", join(root, "x")]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/not a recsys evaluate --json result/);
    expect((await report(["--input", join(root, "missing.json"), "--out", join(root, "x")])).stderr).toMatch(/cannot read/);
    expect((await report(["--out", join(root, "x")])).code).toBe(2);
  });

  it("the page renders in headless Chromium: not blank, no console message", async () => {
    const shot = await openInChromium(join(root, "out", "report.html"), join(root, "page.png"));
    expect(shot.consoleLines).toEqual([]);
    const stats = inkStats(shot.png);
    expect(stats.width).toBe(1280);
    expect(stats.ink).toBeGreaterThan(0.03);
    expect(stats.colours).toBeGreaterThan(50);
  }, 90_000);

  it("the same checks catch a blank page and a page that logs an error", async () => {
    await writeFile(join(root, "blank.html"), "<!DOCTYPE html><html><body></body></html>");
    const blank = await openInChromium(join(root, "blank.html"), join(root, "blank.png"), 400, 300);
    expect(inkStats(blank.png).ink).toBe(0);
    await writeFile(
      join(root, "noisy.html"),
      "<!DOCTYPE html><html><body><p>x</p><script>console.error('broken chart')</script></body></html>",
    );
    const noisy = await openInChromium(join(root, "noisy.html"), join(root, "noisy.png"), 400, 300);
    expect(noisy.consoleLines.join("\n")).toMatch(/broken chart/);
  }, 90_000);
});
